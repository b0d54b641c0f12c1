package dev.capsule.runtime.envd;

import dev.capsule.runtime.SandboxInstance;

import java.io.IOException;
import java.net.InetAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;

/**
 * Runs envd's common requests (an empty {@code /init}, then per round a command, a file written and read back, a
 * health check) in a fresh sandbox, so its user's first requests find their classes loaded and their code compiled:
 * a JVM's first request of a kind costs about ten times a later one in a container, and seconds under TCG (the
 * server's {@code /init} to a VM timed out without this). The warm pool runs it on each sandbox it keeps, the
 * microvm driver on a template snapshot's VM before it is saved. The empty {@code /init} sets nothing that the
 * server's own {@code /init} does not replace.
 */
public final class EnvdWarmup {

    private static final String BOUNDARY = "capsule-warmup-boundary";

    private EnvdWarmup() {
    }

    /** Sends the requests; each must succeed. Its connections are closed when it returns. */
    public static void run(InetAddress address, int rounds, Duration timeout) throws IOException {
        String base = "http://" + address.getHostAddress() + ":" + SandboxInstance.ENVD_PORT;
        try (HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(timeout)
                .build()) {
            expect(http, HttpRequest.newBuilder(URI.create(base + "/init")).timeout(timeout)
                    .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString("{}")), 204);
            for (int round = 0; round < rounds; round++) {
                String body = send(http, process(base, "echo warm " + round + "; cat /etc/hostname >/dev/null",
                        timeout), 200);
                if (!body.contains("\"end\"")) {
                    throw new IOException("envd's process stream ended without an end event: " + body);
                }
                String path = "/tmp/capsule-warmup-" + round;
                String multipart = "--" + BOUNDARY + "\r\nContent-Disposition: form-data; name=\"file\"; "
                        + "filename=\"warmup\"\r\nContent-Type: application/octet-stream\r\n\r\nwarm\r\n--" + BOUNDARY
                        + "--\r\n";
                expect(http, HttpRequest.newBuilder(URI.create(base + "/files?path=" + path)).timeout(timeout)
                        .header("Content-Type", "multipart/form-data; boundary=" + BOUNDARY)
                        .POST(HttpRequest.BodyPublishers.ofString(multipart)), 200);
                expect(http, HttpRequest.newBuilder(URI.create(base + "/files?path=" + path)).timeout(timeout)
                        .GET(), 200);
                expect(http, HttpRequest.newBuilder(URI.create(base + "/health")).timeout(timeout).GET(), 204);
            }
            send(http, process(base, "rm -f /tmp/capsule-warmup-*", timeout), 200);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while warming up envd", e);
        }
    }

    private static HttpRequest.Builder process(String base, String script, Duration timeout) {
        String escaped = script.replace("\\", "\\\\").replace("\"", "\\\"");
        byte[] json = ("{\"process\":{\"cmd\":\"/bin/bash\",\"args\":[\"-l\",\"-c\",\"" + escaped + "\"]}}")
                .getBytes(StandardCharsets.UTF_8);
        ByteBuffer envelope = ByteBuffer.allocate(5 + json.length).put((byte) 0).putInt(json.length).put(json);
        return HttpRequest.newBuilder(URI.create(base + "/process.Process/Start")).timeout(timeout)
                .header("Content-Type", "application/connect+json").header("Connect-Protocol-Version", "1")
                .POST(HttpRequest.BodyPublishers.ofByteArray(envelope.array()));
    }

    private static void expect(HttpClient http, HttpRequest.Builder request, int status)
            throws IOException, InterruptedException {
        send(http, request, status);
    }

    private static String send(HttpClient http, HttpRequest.Builder request, int status)
            throws IOException, InterruptedException {
        HttpRequest built = request.build();
        HttpResponse<String> response = http.send(built, HttpResponse.BodyHandlers.ofString());
        if (response.statusCode() != status) {
            throw new IOException("envd answered " + built.method() + " " + built.uri().getPath() + " with "
                    + response.statusCode() + " (expected " + status + "): " + response.body());
        }
        return response.body();
    }
}
