package dev.capsule.server.lifecycle;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.Map;

/** Talks to a sandbox's envd on the host side: {@code POST /init} with env vars, access token and default user. */
public final class EnvdClient {

    private static final ObjectMapper JSON = new ObjectMapper();
    private final HttpClient http = HttpClient.newBuilder()
            .version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(5)).build();
    private final Duration timeout;

    public EnvdClient(Duration timeout) {
        this.timeout = timeout;
    }

    /** Sends {@code /init}; throws IOException unless envd answers 2xx. Blocks: call from a virtual thread. */
    public void init(InetAddress address, int port, Map<String, String> envVars, String accessToken, String defaultUser)
            throws IOException, InterruptedException {
        var body = new LinkedHashMap<String, Object>();
        body.put("envVars", envVars);
        body.put("accessToken", accessToken);
        body.put("defaultUser", defaultUser);
        body.put("timestamp", Instant.now().toString());
        String json;
        try {
            json = JSON.writeValueAsString(body);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
        var request = HttpRequest.newBuilder(URI.create("http://" + hostPart(address) + ":" + port + "/init"))
                .timeout(timeout).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(json)).build();
        HttpResponse<String> response = http.send(request, HttpResponse.BodyHandlers.ofString());
        if (response.statusCode() / 100 != 2) {
            throw new IOException("envd /init answered " + response.statusCode() + ": " + response.body());
        }
    }

    static String hostPart(InetAddress address) {
        String a = address.getHostAddress();
        return address instanceof Inet6Address ? "[" + a + "]" : a;
    }
}
