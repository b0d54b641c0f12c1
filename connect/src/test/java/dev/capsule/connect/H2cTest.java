package dev.capsule.connect;

import dev.capsule.connect.testing.CountResponse;
import dev.capsule.connect.testing.SayResponse;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.http.HttpClientAgent;
import io.vertx.core.http.HttpClientOptions;
import io.vertx.core.http.HttpClientRequest;
import io.vertx.core.http.HttpClientResponse;
import io.vertx.core.http.HttpMethod;
import io.vertx.core.http.HttpVersion;
import io.vertx.core.http.RequestOptions;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/** The same router over cleartext HTTP/2 (prior knowledge), with Vert.x's own client. */
class H2cTest {
    static EchoServer server;
    HttpClientAgent client;

    @BeforeAll
    static void start() throws Exception {
        server = new EchoServer();
    }

    @AfterAll
    static void stop() throws Exception {
        server.close();
    }

    /** A client (one HTTP/2 connection) per test, so that what one test leaves unread cannot stall the next. */
    @BeforeEach
    void connect() {
        client = server.vertx.createHttpClient(new HttpClientOptions()
                .setProtocolVersion(HttpVersion.HTTP_2).setHttp2ClearTextUpgrade(false));
    }

    @AfterEach
    void disconnect() throws Exception {
        client.close().toCompletionStage().toCompletableFuture().get(30, TimeUnit.SECONDS);
    }

    private HttpClientRequest open(String method, String contentType) throws Exception {
        return client.request(new RequestOptions().setMethod(HttpMethod.POST).setHost("127.0.0.1")
                        .setPort(server.port()).setURI("/test.Echo/" + method)
                        .putHeader("Content-Type", contentType))
                .toCompletionStage().toCompletableFuture().get(30, TimeUnit.SECONDS);
    }

    private record Reply(HttpClientResponse response, byte[] body) {}

    private Reply call(String method, String contentType, byte[] body, String... headers) throws Exception {
        HttpClientRequest request = open(method, contentType);
        for (int i = 0; i < headers.length; i += 2) {
            request.putHeader(headers[i], headers[i + 1]);
        }
        // body() must be asked for in the response callback: data that arrives before it is asked for is lost.
        return request.send(Buffer.buffer(body))
                .compose(response -> response.body().map(content -> new Reply(response, content.getBytes())))
                .toCompletionStage().toCompletableFuture().get(30, TimeUnit.SECONDS);
    }

    @Test
    void unaryOverH2c() throws Exception {
        Reply reply = call("Say", "application/json", Wire.utf8("{\"text\":\"over h2\"}"));

        assertThat(reply.response().version()).isEqualTo(HttpVersion.HTTP_2);
        assertThat(reply.response().statusCode()).isEqualTo(200);
        assertThat(Wire.fromJson(new String(reply.body(), java.nio.charset.StandardCharsets.UTF_8),
                SayResponse.getDefaultInstance()).getText()).isEqualTo("over h2");
    }

    @Test
    void unaryErrorOverH2c() throws Exception {
        Reply reply = call("Say", "application/json", Wire.utf8("{\"text\":\"error:already_exists\"}"));

        assertThat(reply.response().statusCode()).isEqualTo(409);
        assertThat(Wire.errorCode(new String(reply.body(), java.nio.charset.StandardCharsets.UTF_8)))
                .isEqualTo("already_exists");
    }

    @Test
    void oversizeUnaryOverH2cDoesNotBreakTheConnection() throws Exception {
        // Several refused uploads in a row would exhaust the connection's flow-control window if the server kept
        // their unread bytes; the server reads and drops the rest of each refused upload, so the connection stays usable.
        for (int i = 0; i < 3; i++) {
            assertThat(call("Say", "application/json", Wire.utf8("{\"text\":\"" + "w".repeat(100_000) + "\"}"))
                    .response().statusCode()).isEqualTo(429);
        }
        Reply tooBig = call("Say", "application/json",
                Wire.utf8("{\"text\":\"" + "z".repeat(2 * EchoServer.MAX_MESSAGE_BYTES) + "\"}"));
        Reply next = call("Say", "application/json", Wire.utf8("{\"text\":\"still here\"}"));

        assertThat(tooBig.response().statusCode()).isEqualTo(429);
        assertThat(next.response().statusCode()).isEqualTo(200);
    }

    @Test
    void serverStreamOverH2c() throws Exception {
        Reply reply = call("Count", "application/connect+json", Wire.envelope(0, Wire.utf8("{\"upTo\":5}")));

        assertThat(reply.response().statusCode()).isEqualTo(200);
        List<Wire.Frame> frames = Wire.frames(reply.body());
        assertThat(frames).hasSize(6);
        assertThat(Wire.fromJson(frames.get(4).text(), CountResponse.getDefaultInstance()).getNumber()).isEqualTo(5);
        assertThat(frames.get(5).text()).isEqualTo("{}");
    }

    @Test
    void streamDeadlineOverH2c() throws Exception {
        server.cancellations.clear();
        Reply reply = call("Count", "application/connect+json",
                Wire.envelope(0, Wire.utf8("{\"upTo\":100000,\"delayMs\":20}")), "Connect-Timeout-Ms", "200");

        assertThat(Wire.endErrorCode(Wire.frames(reply.body()).getLast().text())).isEqualTo("deadline_exceeded");
        assertThat(server.cancellations.poll(30, TimeUnit.SECONDS).code()).isEqualTo(Code.DEADLINE_EXCEEDED);
    }

    @Test
    void streamResetByTheClientCancelsTheHandler() throws Exception {
        server.cancellations.clear();
        server.handlerOutcomes.clear();
        HttpClientRequest request = open("Count", "application/connect+json");
        HttpClientResponse response = request.send(Buffer.buffer(Wire.envelope(0,
                        Wire.utf8("{\"upTo\":1000000,\"delayMs\":5}"))))
                .toCompletionStage().toCompletableFuture().get(30, TimeUnit.SECONDS);
        assertThat(response.statusCode()).isEqualTo(200);
        await().atMost(Duration.ofSeconds(30)).until(() -> server.sent.get() > 0);

        request.reset();

        assertThat(server.cancellations.poll(30, TimeUnit.SECONDS).code()).isEqualTo(Code.CANCELED);
        assertThat(server.handlerOutcomes.poll(30, TimeUnit.SECONDS)).isEqualTo("canceled");
    }
}
