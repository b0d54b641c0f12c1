package dev.capsule.connect;

import dev.capsule.connect.testing.CountRequest;
import dev.capsule.connect.testing.CountResponse;
import dev.capsule.connect.testing.SayRequest;
import dev.capsule.connect.testing.SayResponse;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static dev.capsule.connect.Wire.endErrorCode;
import static dev.capsule.connect.Wire.envelope;
import static dev.capsule.connect.Wire.envelopes;
import static dev.capsule.connect.Wire.frames;
import static dev.capsule.connect.Wire.utf8;
import static org.assertj.core.api.Assertions.assertThat;

/** Server- and client-streaming calls over HTTP/1.1 with the JDK client: framing, codecs, errors, gzip, deadlines. */
class StreamCallTest {
    static EchoServer server;
    static HttpClient http;

    @BeforeAll
    static void start() throws Exception {
        server = new EchoServer();
        http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
    }

    @AfterAll
    static void stop() throws Exception {
        http.close();
        server.close();
    }

    @BeforeEach
    void clear() {
        server.cancellations.clear();
        server.handlerOutcomes.clear();
    }

    static HttpRequest.Builder post(String method, String contentType, byte[] body) {
        return HttpRequest.newBuilder(URI.create(server.url(method)))
                .timeout(Duration.ofSeconds(30))
                .header("Content-Type", contentType)
                .POST(HttpRequest.BodyPublishers.ofByteArray(body));
    }

    static HttpResponse<byte[]> send(HttpRequest.Builder request) throws Exception {
        return http.send(request.build(), HttpResponse.BodyHandlers.ofByteArray());
    }

    static byte[] jsonEnvelope(String json) {
        return envelope(0, utf8(json));
    }

    @Test
    void serverStreamJson() throws Exception {
        HttpResponse<byte[]> response = send(post("Count", "application/connect+json",
                jsonEnvelope("{\"upTo\":3}")).header("Connect-Protocol-Version", "1"));

        assertThat(response.statusCode()).isEqualTo(200);
        assertThat(response.headers().firstValue("Content-Type")).hasValue("application/connect+json");
        List<Wire.Frame> frames = frames(response.body());
        assertThat(frames).hasSize(4);
        for (int i = 0; i < 3; i++) {
            assertThat(frames.get(i).flags()).isZero();
            assertThat(Wire.fromJson(frames.get(i).text(), CountResponse.getDefaultInstance()).getNumber())
                    .isEqualTo(i + 1);
        }
        assertThat(frames.get(3).flags()).isEqualTo(0x02);
        assertThat(frames.get(3).text()).isEqualTo("{}");
        assertThat(server.handlerOutcomes.poll(30, TimeUnit.SECONDS)).isEqualTo("ok");
    }

    @Test
    void serverStreamProto() throws Exception {
        CountRequest request = CountRequest.newBuilder().setUpTo(2).build();

        HttpResponse<byte[]> response = send(post("Count", "application/connect+proto",
                envelope(0, request.toByteArray())));

        assertThat(response.statusCode()).isEqualTo(200);
        assertThat(response.headers().firstValue("Content-Type")).hasValue("application/connect+proto");
        List<Wire.Frame> frames = frames(response.body());
        assertThat(frames).hasSize(3);
        assertThat(CountResponse.parseFrom(frames.get(0).payload()).getNumber()).isEqualTo(1);
        assertThat(CountResponse.parseFrom(frames.get(1).payload()).getNumber()).isEqualTo(2);
        assertThat(frames.get(2).isEnd()).isTrue();
        assertThat(frames.get(2).text()).isEqualTo("{}"); // end messages are JSON even with the proto codec
    }

    @Test
    void serverStreamWithNoMessagesStillEnds() throws Exception {
        HttpResponse<byte[]> response = send(post("Count", "application/connect+json", jsonEnvelope("{}")));

        assertThat(response.statusCode()).isEqualTo(200);
        assertThat(frames(response.body())).singleElement()
                .satisfies(f -> assertThat(f.isEnd()).isTrue())
                .satisfies(f -> assertThat(f.text()).isEqualTo("{}"));
    }

    @Test
    void handlerErrorEndsTheStreamWithItAfterTheMessagesSent() throws Exception {
        HttpResponse<byte[]> response = send(post("Count", "application/connect+json",
                jsonEnvelope("{\"upTo\":2,\"failWith\":\"not_found\"}")));

        assertThat(response.statusCode()).isEqualTo(200);
        List<Wire.Frame> frames = frames(response.body());
        assertThat(frames).hasSize(3);
        Wire.Frame end = frames.get(2);
        assertThat(end.isEnd()).isTrue();
        assertThat(endErrorCode(end.text())).isEqualTo("not_found");
        assertThat(Wire.struct(end.text()).getFieldsOrThrow("error").getStructValue()
                .getFieldsOrThrow("message").getStringValue()).isEqualTo("failed as asked after 2 messages");
        assertThat(Wire.struct(end.text()).getFieldsOrThrow("metadata").getStructValue().getFieldsCount()).isZero();
    }

    @Test
    void malformedStreamRequestEndsWithInvalidArgument() throws Exception {
        for (byte[] body : List.of(jsonEnvelope("{nope"), utf8("{\"upTo\":1}"), new byte[] {0, 0, 0},
                envelopes(jsonEnvelope("{}"), jsonEnvelope("{}")), envelope(0, new byte[] {0x08, (byte) 0x80}))) {
            HttpResponse<byte[]> response = send(post("Count",
                    body.length == 7 ? "application/connect+proto" : "application/connect+json", body));

            assertThat(response.statusCode()).isEqualTo(200);
            Wire.Frame end = frames(response.body()).getLast();
            assertThat(end.isEnd()).isTrue();
            assertThat(endErrorCode(end.text())).isEqualTo("invalid_argument");
        }
    }

    @Test
    void streamHeaderProblemsAreReportedInTheEndMessage() throws Exception {
        HttpResponse<byte[]> badVersion = send(post("Count", "application/connect+json", jsonEnvelope("{}"))
                .header("Connect-Protocol-Version", "7"));
        HttpResponse<byte[]> badTimeout = send(post("Count", "application/connect+json", jsonEnvelope("{}"))
                .header("Connect-Timeout-Ms", "soon"));
        HttpResponse<byte[]> badEncoding = send(post("Count", "application/connect+json", jsonEnvelope("{}"))
                .header("Connect-Content-Encoding", "zstd"));

        assertThat(badVersion.statusCode()).isEqualTo(200);
        assertThat(endErrorCode(frames(badVersion.body()).getLast().text())).isEqualTo("invalid_argument");
        assertThat(endErrorCode(frames(badTimeout.body()).getLast().text())).isEqualTo("invalid_argument");
        assertThat(endErrorCode(frames(badEncoding.body()).getLast().text())).isEqualTo("unimplemented");
        assertThat(badEncoding.headers().firstValue("Connect-Accept-Encoding")).hasValue("gzip");
    }

    @Test
    void streamInterceptorRefusalEndsTheStream() throws Exception {
        HttpResponse<byte[]> response = send(post("Count", "application/connect+json", jsonEnvelope("{\"upTo\":1}"))
                .header("X-Deny", "yes"));

        assertThat(response.statusCode()).isEqualTo(200);
        assertThat(frames(response.body())).hasSize(1);
        assertThat(endErrorCode(frames(response.body()).getFirst().text())).isEqualTo("unauthenticated");
    }

    @Test
    void unaryContentTypeOnAStreamIs415() throws Exception {
        HttpResponse<byte[]> response = send(post("Count", "application/json", utf8("{}")));

        assertThat(response.statusCode()).isEqualTo(415);
        assertThat(response.headers().firstValue("Accept-Post"))
                .hasValue("application/connect+json or application/connect+proto");
    }

    @Test
    void oversizeStreamMessageIsResourceExhausted() throws Exception {
        byte[] big = jsonEnvelope("{\"failWith\":\"" + "x".repeat(EchoServer.MAX_MESSAGE_BYTES) + "\"}");

        HttpResponse<byte[]> response = send(post("Count", "application/connect+json", big));

        assertThat(response.statusCode()).isEqualTo(200);
        assertThat(endErrorCode(frames(response.body()).getLast().text())).isEqualTo("resource_exhausted");
    }

    @Test
    void gzipBothWaysOnAServerStream() throws Exception {
        byte[] request = Wire.gzip(utf8("{\"upTo\":3,\"payloadBytes\":4096}"));

        HttpResponse<byte[]> response = send(post("Count", "application/connect+json", envelope(0x01, request))
                .header("Connect-Content-Encoding", "gzip")
                .header("Connect-Accept-Encoding", "gzip"));

        assertThat(response.statusCode()).isEqualTo(200);
        assertThat(response.headers().firstValue("Connect-Content-Encoding")).hasValue("gzip");
        List<Wire.Frame> frames = frames(response.body());
        assertThat(frames).hasSize(4);
        for (int i = 0; i < 3; i++) {
            Wire.Frame frame = frames.get(i);
            assertThat(frame.isCompressed()).isTrue();
            CountResponse message = Wire.fromJson(new String(Wire.gunzip(frame.payload()),
                    java.nio.charset.StandardCharsets.UTF_8), CountResponse.getDefaultInstance());
            assertThat(message.getNumber()).isEqualTo(i + 1);
            assertThat(message.getPayload().size()).isEqualTo(4096);
        }
        assertThat(frames.get(3).flags()).isEqualTo(0x02);
    }

    @Test
    void smallMessagesStayUncompressedWithoutGzipAcceptance() throws Exception {
        HttpResponse<byte[]> response = send(post("Count", "application/connect+json",
                jsonEnvelope("{\"upTo\":1,\"payloadBytes\":4096}")));

        assertThat(response.headers().firstValue("Connect-Content-Encoding")).isEmpty();
        assertThat(frames(response.body()).getFirst().flags()).isZero();
    }

    @Test
    void compressedFlagWithoutEncodingHeaderIsRefused() throws Exception {
        HttpResponse<byte[]> response = send(post("Count", "application/connect+json",
                envelope(0x01, Wire.gzip(utf8("{}")))));

        Wire.Frame end = frames(response.body()).getLast();
        assertThat(endErrorCode(end.text())).isEqualTo("internal");
    }

    @Test
    void deadlineEndsTheStreamAndCancelsTheHandler() throws Exception {
        HttpResponse<byte[]> response = send(post("Count", "application/connect+json",
                jsonEnvelope("{\"upTo\":100000,\"delayMs\":20}")).header("Connect-Timeout-Ms", "300"));

        assertThat(response.statusCode()).isEqualTo(200);
        List<Wire.Frame> frames = frames(response.body());
        assertThat(frames.getLast().isEnd()).isTrue();
        assertThat(endErrorCode(frames.getLast().text())).isEqualTo("deadline_exceeded");
        assertThat(frames.subList(0, frames.size() - 1)).allSatisfy(f -> assertThat(f.isEnd()).isFalse());
        ConnectException reason = server.cancellations.poll(30, TimeUnit.SECONDS);
        assertThat(reason).isNotNull();
        assertThat(reason.code()).isEqualTo(Code.DEADLINE_EXCEEDED);
        // The handler's next send() threw, so it stopped instead of counting to 100000.
        assertThat(server.handlerOutcomes.poll(30, TimeUnit.SECONDS)).isEqualTo("deadline_exceeded");
    }

    @Test
    void clientStreamJson() throws Exception {
        byte[] body = envelopes(jsonEnvelope("{\"text\":\"a\",\"bigNumber\":\"1\"}"),
                jsonEnvelope("{\"text\":\"b\",\"big_number\":2}"), jsonEnvelope("{\"text\":\"c\"}"));

        HttpResponse<byte[]> response = send(post("Collect", "application/connect+json", body));

        assertThat(response.statusCode()).isEqualTo(200);
        List<Wire.Frame> frames = frames(response.body());
        assertThat(frames).hasSize(2);
        SayResponse message = Wire.fromJson(frames.get(0).text(), SayResponse.getDefaultInstance());
        assertThat(message.getText()).isEqualTo("a,b,c");
        assertThat(message.getBigNumber()).isEqualTo(3);
        assertThat(frames.get(1).text()).isEqualTo("{}");
    }

    @Test
    void clientStreamProtoWithGzip() throws Exception {
        List<byte[]> parts = new ArrayList<>();
        for (int i = 0; i < 50; i++) {
            byte[] message = SayRequest.newBuilder().setText("m" + i).setBigNumber(i).build().toByteArray();
            parts.add(i % 2 == 0 ? envelope(0x01, Wire.gzip(message)) : envelope(0, message));
        }

        HttpResponse<byte[]> response = send(post("Collect", "application/connect+proto",
                envelopes(parts.toArray(byte[][]::new))).header("Connect-Content-Encoding", "gzip"));

        List<Wire.Frame> frames = frames(response.body());
        assertThat(frames).hasSize(2);
        SayResponse message = SayResponse.parseFrom(frames.get(0).payload());
        assertThat(message.getText()).startsWith("m0,m1,m2,").endsWith(",m49");
        assertThat(message.getBigNumber()).isEqualTo(49 * 50 / 2);
    }

    @Test
    void clientStreamWithNoMessages() throws Exception {
        HttpResponse<byte[]> response = send(post("Collect", "application/connect+json", new byte[0]));

        List<Wire.Frame> frames = frames(response.body());
        assertThat(frames).hasSize(2);
        assertThat(frames.get(0).text()).isEqualTo("{}");
        assertThat(frames.get(1).isEnd()).isTrue();
    }

    @Test
    void clientStreamRefusesTruncatedAndEndFlaggedMessages() throws Exception {
        byte[] truncated = envelopes(jsonEnvelope("{\"text\":\"a\"}"), new byte[] {0, 0, 0, 0, 10, '{'});
        byte[] endFlagged = envelopes(jsonEnvelope("{\"text\":\"a\"}"), envelope(0x02, utf8("{}")));

        for (byte[] body : List.of(truncated, endFlagged)) {
            HttpResponse<byte[]> response = send(post("Collect", "application/connect+json", body));

            assertThat(response.statusCode()).isEqualTo(200);
            assertThat(frames(response.body())).hasSize(1);
            assertThat(endErrorCode(frames(response.body()).getFirst().text())).isEqualTo("invalid_argument");
        }
    }

    @Test
    void clientStreamRefusesAnOversizeMessage() throws Exception {
        byte[] body = envelopes(jsonEnvelope("{\"text\":\"a\"}"),
                jsonEnvelope("{\"text\":\"" + "y".repeat(EchoServer.MAX_MESSAGE_BYTES) + "\"}"));

        HttpResponse<byte[]> response = send(post("Collect", "application/connect+json", body));

        assertThat(endErrorCode(frames(response.body()).getLast().text())).isEqualTo("resource_exhausted");
        assertThat(server.handlerOutcomes.poll(30, TimeUnit.SECONDS)).isEqualTo("resource_exhausted");
    }

    @Test
    void manyConcurrentStreamsKeepTheirMessagesApart() throws Exception {
        List<CompletableFuture<HttpResponse<byte[]>>> calls = new ArrayList<>();
        for (int i = 1; i <= 32; i++) {
            calls.add(http.sendAsync(post("Count", "application/connect+json",
                    jsonEnvelope("{\"upTo\":" + i + "}")).build(), HttpResponse.BodyHandlers.ofByteArray()));
        }

        for (int i = 1; i <= 32; i++) {
            List<Wire.Frame> frames = frames(calls.get(i - 1).get(60, TimeUnit.SECONDS).body());
            assertThat(frames).hasSize(i + 1);
            for (int n = 1; n <= i; n++) {
                assertThat(Wire.fromJson(frames.get(n - 1).text(), CountResponse.getDefaultInstance()).getNumber())
                        .isEqualTo(n);
            }
            assertThat(frames.getLast().text()).isEqualTo("{}");
        }
    }
}
