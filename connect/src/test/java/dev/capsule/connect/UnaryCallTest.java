package dev.capsule.connect;

import dev.capsule.connect.testing.SayRequest;
import dev.capsule.connect.testing.SayResponse;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.concurrent.TimeUnit;

import static dev.capsule.connect.Wire.errorCode;
import static dev.capsule.connect.Wire.struct;
import static dev.capsule.connect.Wire.utf8;
import static org.assertj.core.api.Assertions.assertThat;

/** Unary calls over HTTP/1.1 with the JDK client: codecs, field names, errors, limits, deadlines, gzip. */
class UnaryCallTest {
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

    static HttpRequest.Builder post(String method, String contentType, byte[] body) {
        return HttpRequest.newBuilder(URI.create(server.url(method)))
                .timeout(Duration.ofSeconds(30))
                .header("Content-Type", contentType)
                .POST(HttpRequest.BodyPublishers.ofByteArray(body));
    }

    static HttpResponse<byte[]> send(HttpRequest.Builder request) throws Exception {
        return http.send(request.build(), HttpResponse.BodyHandlers.ofByteArray());
    }

    static HttpResponse<String> sendJson(String method, String json) throws Exception {
        return http.send(post(method, "application/json", utf8(json)).build(), HttpResponse.BodyHandlers.ofString());
    }

    @Test
    void jsonRoundTripKeepsInt64AsStringAndBytesAsBase64() throws Exception {
        HttpResponse<String> response = sendJson("Say",
                "{\"text\":\"hi\",\"bigNumber\":\"9007199254740993\",\"data\":\"AQID\"}");

        assertThat(response.statusCode()).isEqualTo(200);
        assertThat(response.headers().firstValue("Content-Type")).hasValue("application/json");
        assertThat(response.body()).contains("\"bigNumber\":\"9007199254740993\"");
        SayResponse message = Wire.fromJson(response.body(), SayResponse.getDefaultInstance());
        assertThat(message.getText()).isEqualTo("hi");
        assertThat(message.getBigNumber()).isEqualTo(9007199254740993L);
        assertThat(message.getData().toByteArray()).containsExactly(1, 2, 3);
    }

    @Test
    void jsonAcceptsSnakeCaseNamesNumbersForInt64AndIgnoresUnknownFields() throws Exception {
        HttpResponse<String> response = sendJson("Say",
                "{\"text\":\"a\",\"big_number\":42,\"somethingNew\":{\"nested\":[1,2]},\"other\":null}");

        assertThat(response.statusCode()).isEqualTo(200);
        SayResponse message = Wire.fromJson(response.body(), SayResponse.getDefaultInstance());
        assertThat(message.getText()).isEqualTo("a");
        assertThat(message.getBigNumber()).isEqualTo(42);
    }

    @Test
    void emptyJsonBodyIsTheDefaultMessage() throws Exception {
        HttpResponse<String> response = sendJson("Say", "");

        assertThat(response.statusCode()).isEqualTo(200);
        assertThat(response.body()).isEqualTo("{}");
    }

    @Test
    void protoRoundTrip() throws Exception {
        SayRequest request = SayRequest.newBuilder().setText("binary").setBigNumber(-7).build();

        HttpResponse<byte[]> response = send(post("Say", "application/proto", request.toByteArray())
                .header("Connect-Protocol-Version", "1"));

        assertThat(response.statusCode()).isEqualTo(200);
        assertThat(response.headers().firstValue("Content-Type")).hasValue("application/proto");
        SayResponse message = SayResponse.parseFrom(response.body());
        assertThat(message.getText()).isEqualTo("binary");
        assertThat(message.getBigNumber()).isEqualTo(-7);
    }

    @Test
    void contentTypeParametersAreAllowed() throws Exception {
        HttpResponse<byte[]> response = send(post("Say", "application/json; charset=utf-8", utf8("{\"text\":\"x\"}")));

        assertThat(response.statusCode()).isEqualTo(200);
    }

    @ParameterizedTest
    @ValueSource(strings = {"{", "{\"text\":", "[1,2]", "{\"bigNumber\":\"twelve\"}", "{\"text\":5.5.5}", "\u0000", "{}x", "{\"text\":\"a\"} {}",
            "/* comment */ {}", "{text:\"unquoted\"}", "{\"text\":\"a\",\"text\":\"b\"}", "\"just a string\""})
    void malformedJsonIsInvalidArgumentWithAMessage(String body) throws Exception {
        HttpResponse<String> response = sendJson("Say", body);

        assertThat(response.statusCode()).isEqualTo(400);
        assertThat(response.headers().firstValue("Content-Type")).hasValue("application/json");
        assertThat(errorCode(response.body())).isEqualTo("invalid_argument");
        assertThat(struct(response.body()).getFieldsOrThrow("message").getStringValue())
                .contains("test.SayRequest");
    }

    @Test
    void malformedProtobufIsInvalidArgument() throws Exception {
        HttpResponse<String> response = http.send(post("Say", "application/proto",
                new byte[] {0x0a, 0x7f, 0x01}).build(), HttpResponse.BodyHandlers.ofString());

        assertThat(response.statusCode()).isEqualTo(400);
        assertThat(errorCode(response.body())).isEqualTo("invalid_argument");
        assertThat(struct(response.body()).getFieldsOrThrow("message").getStringValue()).isNotBlank();
    }

    @ParameterizedTest
    @EnumSource(Code.class)
    void everyCodeMapsToItsHttpStatus(Code code) throws Exception {
        HttpResponse<String> response = sendJson("Say", "{\"text\":\"error:" + code.wireName() + "\"}");

        assertThat(response.statusCode()).isEqualTo(code.httpStatus());
        assertThat(errorCode(response.body())).isEqualTo(code.wireName());
        assertThat(struct(response.body()).getFieldsOrThrow("message").getStringValue())
                .isEqualTo("you asked for " + code.wireName());
    }

    @Test
    void codesUseConnectsStatusTable() {
        assertThat(Code.CANCELED.httpStatus()).isEqualTo(499);
        assertThat(Code.INVALID_ARGUMENT.httpStatus()).isEqualTo(400);
        assertThat(Code.DEADLINE_EXCEEDED.httpStatus()).isEqualTo(504);
        assertThat(Code.NOT_FOUND.httpStatus()).isEqualTo(404);
        assertThat(Code.ALREADY_EXISTS.httpStatus()).isEqualTo(409);
        assertThat(Code.PERMISSION_DENIED.httpStatus()).isEqualTo(403);
        assertThat(Code.RESOURCE_EXHAUSTED.httpStatus()).isEqualTo(429);
        assertThat(Code.FAILED_PRECONDITION.httpStatus()).isEqualTo(400);
        assertThat(Code.ABORTED.httpStatus()).isEqualTo(409);
        assertThat(Code.UNIMPLEMENTED.httpStatus()).isEqualTo(501);
        assertThat(Code.INTERNAL.httpStatus()).isEqualTo(500);
        assertThat(Code.UNAVAILABLE.httpStatus()).isEqualTo(503);
        assertThat(Code.UNAUTHENTICATED.httpStatus()).isEqualTo(401);
        assertThat(Code.fromWireName("no_such_code")).isEqualTo(Code.UNKNOWN);
    }

    @Test
    void anUnexpectedExceptionIsInternal() throws Exception {
        HttpResponse<String> response = sendJson("Say", "{\"text\":\"boom\"}");

        assertThat(response.statusCode()).isEqualTo(500);
        assertThat(errorCode(response.body())).isEqualTo("internal");
    }

    @Test
    void anInterceptorCanRefuseTheCall() throws Exception {
        HttpResponse<String> response = http.send(post("Say", "application/json", utf8("{}"))
                .header("X-Deny", "1").build(), HttpResponse.BodyHandlers.ofString());

        assertThat(response.statusCode()).isEqualTo(401);
        assertThat(errorCode(response.body())).isEqualTo("unauthenticated");
    }

    @Test
    void handlersCanSetResponseHeaders() throws Exception {
        HttpResponse<String> response = sendJson("Say", "{\"text\":\"header\"}");

        assertThat(response.statusCode()).isEqualTo(200);
        assertThat(response.headers().firstValue("X-Echo")).hasValue("yes");
    }

    @Test
    void unknownMethodIsUnimplementedWith404() throws Exception {
        HttpResponse<String> response = sendJson("Shout", "{}");

        assertThat(response.statusCode()).isEqualTo(404);
        assertThat(errorCode(response.body())).isEqualTo("unimplemented");
        assertThat(struct(response.body()).getFieldsOrThrow("message").getStringValue()).contains("/test.Echo/Shout");
    }

    @Test
    void unknownServiceIsNotThisRoutersPath() throws Exception {
        HttpResponse<String> response = http.send(HttpRequest.newBuilder(
                        URI.create("http://127.0.0.1:" + server.port() + "/other.Service/Say"))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString("{}")).build(), HttpResponse.BodyHandlers.ofString());

        assertThat(response.statusCode()).isEqualTo(418);
    }

    @Test
    void getIsNotAllowed() throws Exception {
        HttpResponse<String> response = http.send(HttpRequest.newBuilder(URI.create(server.url("Say"))).GET().build(),
                HttpResponse.BodyHandlers.ofString());

        assertThat(response.statusCode()).isEqualTo(405);
        assertThat(response.headers().firstValue("Allow")).hasValue("POST");
    }

    @ParameterizedTest
    @ValueSource(strings = {"text/plain", "application/connect+json", "application/xml", "application/grpc"})
    void wrongContentTypeIs415(String contentType) throws Exception {
        HttpResponse<byte[]> response = send(post("Say", contentType, utf8("{}")));

        assertThat(response.statusCode()).isEqualTo(415);
        assertThat(response.headers().firstValue("Accept-Post")).hasValue("application/json or application/proto");
    }

    @Test
    void missingContentTypeIs415() throws Exception {
        HttpResponse<byte[]> response = send(HttpRequest.newBuilder(URI.create(server.url("Say")))
                .POST(HttpRequest.BodyPublishers.ofString("{}")));

        assertThat(response.statusCode()).isEqualTo(415);
    }

    @Test
    void protocolVersionOtherThanOneIsRefused() throws Exception {
        HttpResponse<String> response = http.send(post("Say", "application/json", utf8("{}"))
                .header("Connect-Protocol-Version", "2").build(), HttpResponse.BodyHandlers.ofString());

        assertThat(response.statusCode()).isEqualTo(400);
        assertThat(errorCode(response.body())).isEqualTo("invalid_argument");
    }

    @Test
    void oversizeBodyIsResourceExhausted() throws Exception {
        String big = "{\"text\":\"" + "x".repeat(EchoServer.MAX_MESSAGE_BYTES) + "\"}";

        HttpResponse<String> response = sendJson("Say", big);

        assertThat(response.statusCode()).isEqualTo(429);
        assertThat(errorCode(response.body())).isEqualTo("resource_exhausted");
    }

    @Test
    void oversizeBodyWithoutContentLengthIsResourceExhausted() throws Exception {
        byte[] big = utf8("{\"text\":\"" + "x".repeat(4 * EchoServer.MAX_MESSAGE_BYTES) + "\"}");
        // An InputStream publisher has no known length: the body is sent chunked.
        HttpResponse<String> response = http.send(post("Say", "application/json", new byte[0])
                .POST(HttpRequest.BodyPublishers.ofInputStream(() -> new java.io.ByteArrayInputStream(big))).build(),
                HttpResponse.BodyHandlers.ofString());

        assertThat(response.statusCode()).isEqualTo(429);
        assertThat(errorCode(response.body())).isEqualTo("resource_exhausted");
    }

    @Test
    void gzipBombIsResourceExhausted() throws Exception {
        byte[] bomb = Wire.gzip(utf8("{\"text\":\"" + "x".repeat(16 * EchoServer.MAX_MESSAGE_BYTES) + "\"}"));
        assertThat(bomb.length).isLessThan(EchoServer.MAX_MESSAGE_BYTES);

        HttpResponse<String> response = http.send(post("Say", "application/json", bomb)
                .header("Content-Encoding", "gzip").build(), HttpResponse.BodyHandlers.ofString());

        assertThat(response.statusCode()).isEqualTo(429);
        assertThat(errorCode(response.body())).isEqualTo("resource_exhausted");
    }

    @Test
    void gzippedRequestIsDecompressed() throws Exception {
        HttpResponse<String> response = http.send(post("Say", "application/json",
                Wire.gzip(utf8("{\"text\":\"squeezed\"}"))).header("Content-Encoding", "gzip").build(),
                HttpResponse.BodyHandlers.ofString());

        assertThat(response.statusCode()).isEqualTo(200);
        assertThat(response.headers().firstValue("Content-Encoding")).isEmpty();
        assertThat(Wire.fromJson(response.body(), SayResponse.getDefaultInstance()).getText()).isEqualTo("squeezed");
    }

    @Test
    void invalidGzipIsInvalidArgument() throws Exception {
        HttpResponse<String> response = http.send(post("Say", "application/json", utf8("{\"text\":\"plain\"}"))
                .header("Content-Encoding", "gzip").build(), HttpResponse.BodyHandlers.ofString());

        assertThat(response.statusCode()).isEqualTo(400);
        assertThat(errorCode(response.body())).isEqualTo("invalid_argument");
    }

    @Test
    void largeResponseIsGzippedWhenTheClientAcceptsIt() throws Exception {
        String text = "repeat me ".repeat(1000);
        HttpResponse<byte[]> response = send(post("Say", "application/json", utf8("{\"text\":\"" + text + "\"}"))
                .header("Accept-Encoding", "br, gzip;q=0.8"));

        assertThat(response.statusCode()).isEqualTo(200);
        assertThat(response.headers().firstValue("Content-Encoding")).hasValue("gzip");
        String json = new String(Wire.gunzip(response.body()), java.nio.charset.StandardCharsets.UTF_8);
        assertThat(Wire.fromJson(json, SayResponse.getDefaultInstance()).getText()).isEqualTo(text);
    }

    @Test
    void responseIsNotGzippedWhenTheClientRefusesGzip() throws Exception {
        String text = "repeat me ".repeat(1000);
        HttpResponse<String> response = http.send(post("Say", "application/json", utf8("{\"text\":\"" + text + "\"}"))
                .header("Accept-Encoding", "gzip;q=0").build(), HttpResponse.BodyHandlers.ofString());

        assertThat(response.headers().firstValue("Content-Encoding")).isEmpty();
        assertThat(Wire.fromJson(response.body(), SayResponse.getDefaultInstance()).getText()).isEqualTo(text);
    }

    @Test
    void unsupportedRequestEncodingIsUnimplemented() throws Exception {
        HttpResponse<String> response = http.send(post("Say", "application/json", utf8("{}"))
                .header("Content-Encoding", "br").build(), HttpResponse.BodyHandlers.ofString());

        assertThat(response.statusCode()).isEqualTo(501);
        assertThat(errorCode(response.body())).isEqualTo("unimplemented");
        assertThat(response.headers().firstValue("Accept-Encoding")).hasValue("gzip");
    }

    @Test
    void deadlineAnswers504AndCancelsTheHandler() throws Exception {
        server.cancellations.clear();
        server.handlerOutcomes.clear();

        HttpResponse<String> response = http.send(post("Say", "application/json", utf8("{\"text\":\"sleep\"}"))
                .header("Connect-Timeout-Ms", "200").build(), HttpResponse.BodyHandlers.ofString());

        assertThat(response.statusCode()).isEqualTo(504);
        assertThat(errorCode(response.body())).isEqualTo("deadline_exceeded");
        ConnectException reason = server.cancellations.poll(30, TimeUnit.SECONDS);
        assertThat(reason).isNotNull();
        assertThat(reason.code()).isEqualTo(Code.DEADLINE_EXCEEDED);
        assertThat(server.handlerOutcomes.poll(30, TimeUnit.SECONDS)).isEqualTo("woken");
    }

    @Test
    void aGenerousDeadlineDoesNotDisturbTheCall() throws Exception {
        HttpResponse<String> response = http.send(post("Say", "application/json", utf8("{\"text\":\"quick\"}"))
                .header("Connect-Timeout-Ms", "60000").build(), HttpResponse.BodyHandlers.ofString());

        assertThat(response.statusCode()).isEqualTo(200);
    }

    @ParameterizedTest
    @ValueSource(strings = {"abc", "-5", "12345678901", "1.5", ""})
    void invalidTimeoutHeaderIsInvalidArgument(String timeout) throws Exception {
        HttpResponse<String> response = http.send(post("Say", "application/json", utf8("{}"))
                .header("Connect-Timeout-Ms", timeout).build(), HttpResponse.BodyHandlers.ofString());

        assertThat(response.statusCode()).isEqualTo(400);
        assertThat(errorCode(response.body())).isEqualTo("invalid_argument");
    }

    @Test
    void clientThatHangsUpCancelsAUnaryHandler() throws Exception {
        server.cancellations.clear();
        var pending = http.sendAsync(post("Say", "application/json", utf8("{\"text\":\"sleep\"}")).build(),
                HttpResponse.BodyHandlers.ofString());
        org.awaitility.Awaitility.await().until(() -> server.running.get() > 0);

        pending.cancel(true);

        ConnectException reason = server.cancellations.poll(30, TimeUnit.SECONDS);
        assertThat(reason).isNotNull();
        assertThat(reason.code()).isEqualTo(Code.CANCELED);
    }
}
