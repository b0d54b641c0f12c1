package dev.capsule.runtime.oci;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.capsule.runtime.SandboxInstance;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Base64;

/**
 * What the tests say to a sandbox's envd over real HTTP, as the E2B SDK would: {@code GET /health}, a Connect
 * server-streaming {@code process.Process/Start} in JSON, and {@code /files} up and down.
 */
public final class EnvdClient {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(5)).build();

    /** A finished command: what it printed and how it ended. */
    public record Result(String stdout, String stderr, int exitCode) {}

    private final String base;

    public EnvdClient(SandboxInstance sandbox) {
        this.base = "http://" + sandbox.address().getHostAddress() + ":" + SandboxInstance.ENVD_PORT;
    }

    public int health() {
        return send(HttpRequest.newBuilder(URI.create(base + "/health")).GET(), HttpResponse.BodyHandlers.discarding())
                .statusCode();
    }

    /** Runs {@code script} with bash as the default user and waits for it to end. */
    public Result run(String script) {
        ObjectNode request = JSON.createObjectNode();
        ObjectNode process = request.putObject("process");
        process.put("cmd", "/bin/bash");
        ArrayNode args = process.putArray("args");
        args.add("-l").add("-c").add(script);
        byte[] json = request.toString().getBytes(StandardCharsets.UTF_8);
        ByteBuffer envelope = ByteBuffer.allocate(5 + json.length).put((byte) 0).putInt(json.length).put(json);
        HttpResponse<byte[]> response = send(HttpRequest.newBuilder(URI.create(base + "/process.Process/Start"))
                .header("Content-Type", "application/connect+json")
                .timeout(Duration.ofSeconds(60))
                .POST(HttpRequest.BodyPublishers.ofByteArray(envelope.array())), HttpResponse.BodyHandlers.ofByteArray());
        if (response.statusCode() != 200) {
            throw new IllegalStateException("Start answered " + response.statusCode() + ": " + new String(response.body()));
        }
        ByteBuffer in = ByteBuffer.wrap(response.body());
        ByteArrayOutputStream stdout = new ByteArrayOutputStream();
        ByteArrayOutputStream stderr = new ByteArrayOutputStream();
        Integer exitCode = null;
        while (in.remaining() >= 5) {
            int flags = in.get();
            byte[] message = new byte[in.getInt()];
            in.get(message);
            JsonNode node = readTree(message);
            if ((flags & 0x02) != 0) {
                if (node.has("error")) {
                    throw new IllegalStateException("Start ended with an error: " + node);
                }
                break;
            }
            JsonNode event = node.path("event");
            stdout.writeBytes(Base64.getDecoder().decode(event.path("data").path("stdout").asText("")));
            stderr.writeBytes(Base64.getDecoder().decode(event.path("data").path("stderr").asText("")));
            if (event.has("end")) {
                exitCode = event.path("end").path("exitCode").asInt(0);
            }
        }
        if (exitCode == null) {
            throw new IllegalStateException("Start's stream had no end event: " + new String(response.body()));
        }
        return new Result(stdout.toString(StandardCharsets.UTF_8), stderr.toString(StandardCharsets.UTF_8), exitCode);
    }

    /** {@code POST /files?path=} as multipart form data, field {@code file}, as the SDK writes a file. */
    public int upload(String path, byte[] content) {
        String boundary = "capsule-test-boundary-7d1c";
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        body.writeBytes(("--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"upload\"\r\n"
                + "Content-Type: application/octet-stream\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
        body.writeBytes(content);
        body.writeBytes(("\r\n--" + boundary + "--\r\n").getBytes(StandardCharsets.US_ASCII));
        return send(HttpRequest.newBuilder(URI.create(base + "/files?path=" + encode(path)))
                .header("Content-Type", "multipart/form-data; boundary=" + boundary)
                .POST(HttpRequest.BodyPublishers.ofByteArray(body.toByteArray())),
                HttpResponse.BodyHandlers.discarding()).statusCode();
    }

    /** {@code GET /files?path=}: the file's bytes. */
    public byte[] download(String path) {
        HttpResponse<byte[]> response = send(HttpRequest.newBuilder(URI.create(base + "/files?path=" + encode(path)))
                .GET(), HttpResponse.BodyHandlers.ofByteArray());
        if (response.statusCode() != 200) {
            throw new IllegalStateException("GET /files answered " + response.statusCode() + ": "
                    + new String(response.body()));
        }
        return response.body();
    }

    private static String encode(String path) {
        return URLEncoder.encode(path, StandardCharsets.UTF_8);
    }

    private static JsonNode readTree(byte[] message) {
        try {
            return JSON.readTree(message);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static <T> HttpResponse<T> send(HttpRequest.Builder request, HttpResponse.BodyHandler<T> handler) {
        try {
            return HTTP.send(request.build(), handler);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }
}
