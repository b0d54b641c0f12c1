package dev.capsule.runtime.pool;

import dev.capsule.runtime.SandboxInstance;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;

/**
 * Runs one command through a fresh sandbox's envd before the sandbox waits in the pool. envd's first command costs
 * about ten times a later one (its JVM loads and links that path then), and a pooled sandbox should answer its
 * user's first command at the later speed. Failures only cost that speed, so they are reported, not thrown.
 */
final class EnvdWarmup {
    private static final Duration TIMEOUT = Duration.ofSeconds(20);
    private static final HttpClient HTTP = HttpClient.newBuilder()
            .version(HttpClient.Version.HTTP_1_1).connectTimeout(TIMEOUT).build();

    private EnvdWarmup() {}

    /**
     * Sends an empty {@code /init} (what the server's create sends next, with the sandbox's settings) and starts
     * {@code true} through envd's process service, reading its stream to the end; false if either failed.
     */
    static boolean run(SandboxInstance sandbox) {
        String base = "http://" + sandbox.address().getHostAddress() + ":" + SandboxInstance.ENVD_PORT;
        HttpRequest init = HttpRequest.newBuilder(URI.create(base + "/init")).timeout(TIMEOUT)
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString("{}"))
                .build();
        byte[] json = "{\"process\":{\"cmd\":\"/bin/true\"},\"stdin\":false}".getBytes(StandardCharsets.UTF_8);
        ByteBuffer envelope = ByteBuffer.allocate(5 + json.length).put((byte) 0).putInt(json.length).put(json);
        URI uri = URI.create(base + "/process.Process/Start");
        HttpRequest request = HttpRequest.newBuilder(uri).timeout(TIMEOUT)
                .header("Content-Type", "application/connect+json")
                .header("Connect-Protocol-Version", "1")
                .POST(HttpRequest.BodyPublishers.ofByteArray(envelope.array()))
                .build();
        try {
            if (HTTP.send(init, HttpResponse.BodyHandlers.discarding()).statusCode() != 204) {
                return false;
            }
            HttpResponse<byte[]> response = HTTP.send(request, HttpResponse.BodyHandlers.ofByteArray());
            return response.statusCode() == 200
                    && new String(response.body(), StandardCharsets.UTF_8).contains("\"end\"");
        } catch (IOException e) {
            return false;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }
}
