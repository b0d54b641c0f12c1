package dev.capsule.envd;

import com.google.protobuf.Empty;
import com.google.protobuf.Struct;
import com.google.protobuf.Value;
import dev.capsule.connect.ConnectRouter;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;

class EnvdServerTest {
    /** A tiny Connect service: {@code /test.Probe/Whoami} answers with the Authorization header it saw. */
    static final class ProbeService implements RpcService {
        volatile boolean closed;

        @Override
        public void register(ConnectRouter.Builder router) {
            router.unary("test.Probe", "Whoami", Empty.getDefaultInstance(), (Empty request, dev.capsule.connect.CallContext ctx) ->
                    Struct.newBuilder().putFields("auth", Value.newBuilder()
                            .setStringValue(String.valueOf(ctx.header("Authorization"))).build()).build());
        }

        @Override
        public void close() {
            closed = true;
        }
    }

    ProbeService probe;
    EnvdFixture envd;

    @BeforeEach
    void start() throws Exception {
        probe = new ProbeService();
        envd = new EnvdFixture(List.of(probe));
    }

    @AfterEach
    void stop() throws Exception {
        envd.close();
        assertThat(probe.closed).isTrue();
    }

    private HttpResponse<String> init(String json, String token) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(envd.uri("/init"))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(json));
        if (token != null) {
            b.header("X-Access-Token", token);
        }
        return envd.send(b);
    }

    private HttpResponse<String> rpc(String token) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(envd.uri("/test.Probe/Whoami"))
                .header("Content-Type", "application/json")
                .header("Authorization", "Basic dXNlcjo=")
                .POST(HttpRequest.BodyPublishers.ofString("{}"));
        if (token != null) {
            b.header("X-Access-Token", token);
        }
        return envd.send(b);
    }

    @Test
    void healthIsNoContent() throws Exception {
        HttpResponse<String> r = envd.get("/health");
        assertThat(r.statusCode()).isEqualTo(204);
        assertThat(r.body()).isEmpty();
    }

    @Test
    void initSetsEnvVarsDefaultsAndIsIdempotent() throws Exception {
        String body = """
                {"envVars":{"A":"1","B":"two"},"accessToken":"tok","timestamp":"2020-01-01T00:00:00Z",
                 "defaultUser":"other","defaultWorkdir":"/tmp","volumeMounts":[],"hyperloopIP":"10.0.0.1"}""";
        assertThat(init(body, null).statusCode()).isEqualTo(204);
        assertThat(init(body, null).statusCode()).isEqualTo(204);
        assertThat(envd.state.envVars()).containsExactlyInAnyOrderEntriesOf(Map.of("A", "1", "B", "two"));
        assertThat(envd.state.accessToken()).isEqualTo("tok");
        assertThat(envd.state.defaultUser()).isEqualTo("other");
        assertThat(envd.state.defaultWorkdir()).isEqualTo("/tmp");

        // later env vars merge into the earlier ones
        assertThat(init("{\"envVars\":{\"C\":\"3\"}}", "tok").statusCode()).isEqualTo(204);
        HttpResponse<String> envs = envd.send(HttpRequest.newBuilder(envd.uri("/envs")).header("X-Access-Token", "tok"));
        assertThat(envs.statusCode()).isEqualTo(200);
        assertThat(new JsonObject(envs.body()).getMap()).isEqualTo(Map.of("A", "1", "B", "two", "C", "3"));
    }

    @Test
    void initNeedsTheTokenOnceOneIsSet() throws Exception {
        assertThat(init("{\"accessToken\":\"first\"}", null).statusCode()).isEqualTo(204);
        HttpResponse<String> takeover = init("{\"accessToken\":\"\"}", null);
        assertThat(takeover.statusCode()).isEqualTo(401);
        assertThat(new JsonObject(takeover.body()).getInteger("code")).isEqualTo(401);
        assertThat(init("{\"accessToken\":\"evil\"}", "wrong").statusCode()).isEqualTo(401);
        assertThat(init("{\"defaultUser\":\"root\",\"envVars\":{\"LD_PRELOAD\":\"/tmp/x.so\"}}", null).statusCode())
                .isEqualTo(401);
        assertThat(envd.state.defaultUser()).isNotEqualTo("root");
        assertThat(envd.state.envVars()).doesNotContainKey("LD_PRELOAD");
        assertThat(init("{\"accessToken\":\"first\"}", null).statusCode()).as("an idempotent repeat").isEqualTo(204);
        assertThat(envd.state.accessToken()).isEqualTo("first");
        assertThat(init("{\"accessToken\":\"second\"}", "first").statusCode()).isEqualTo(204);
        assertThat(envd.state.accessToken()).isEqualTo("second");
    }

    @Test
    void initRejectsMalformedJson() throws Exception {
        HttpResponse<String> r = init("{not json", null);
        assertThat(r.statusCode()).isEqualTo(400);
        assertThat(new JsonObject(r.body()).getInteger("code")).isEqualTo(400);
        assertThat(init("", null).statusCode()).isEqualTo(204);
    }

    @Test
    void envsListsTheInitEnvVars() throws Exception {
        HttpResponse<String> r = envd.get("/envs");
        assertThat(r.statusCode()).isEqualTo(200);
        assertThat(r.headers().firstValue("Content-Type")).hasValue("application/json");
        assertThat(new JsonObject(r.body()).isEmpty()).isTrue();
    }

    @Test
    void metricsReportsRealFigures() throws Exception {
        HttpResponse<String> r = envd.get("/metrics");
        assertThat(r.statusCode()).isEqualTo(200);
        JsonObject m = new JsonObject(r.body());
        assertThat(m.fieldNames()).containsExactlyInAnyOrder("ts", "cpu_count", "cpu_used_pct", "mem_total",
                "mem_used", "mem_cache", "mem_total_mib", "mem_used_mib", "disk_used", "disk_total");
        assertThat(m.getLong("ts")).isCloseTo(System.currentTimeMillis() / 1000, org.assertj.core.data.Offset.offset(60L));
        assertThat(m.getInteger("cpu_count")).isPositive();
        assertThat(m.getDouble("cpu_used_pct")).isBetween(0.0, 100.0);
        assertThat(m.getLong("mem_total")).isPositive();
        assertThat(m.getLong("mem_used")).isPositive().isLessThanOrEqualTo(m.getLong("mem_total"));
        assertThat(m.getLong("mem_total_mib")).isEqualTo(m.getLong("mem_total") / (1024 * 1024));
        assertThat(m.getLong("disk_total")).isPositive();
        assertThat(m.getLong("disk_used")).isPositive().isLessThanOrEqualTo(m.getLong("disk_total"));
        // a second call measures CPU since the first
        assertThat(new JsonObject(envd.get("/metrics").body()).getDouble("cpu_used_pct")).isBetween(0.0, 100.0);
    }

    @Test
    void everythingButTheExemptEndpointsNeedsTheTokenOnceSet() throws Exception {
        assertThat(envd.get("/envs").statusCode()).isEqualTo(200);
        assertThat(rpc(null).statusCode()).isEqualTo(200);
        envd.state.setAccessToken("secret");

        for (String path : List.of("/envs", "/metrics", "/nope")) {
            HttpResponse<String> missing = envd.get(path);
            assertThat(missing.statusCode()).as(path).isEqualTo(401);
            JsonObject error = new JsonObject(missing.body());
            assertThat(error.getInteger("code")).isEqualTo(401);
            assertThat(error.getString("message")).contains("valid access token");
            HttpResponse<String> wrong = envd.send(HttpRequest.newBuilder(envd.uri(path)).header("X-Access-Token", "secreT"));
            assertThat(wrong.statusCode()).as(path).isEqualTo(401);
        }
        HttpResponse<String> ok = envd.send(HttpRequest.newBuilder(envd.uri("/envs")).header("X-Access-Token", "secret"));
        assertThat(ok.statusCode()).isEqualTo(200);
        assertThat(envd.get("/health").statusCode()).isEqualTo(204);
        assertThat(envd.send(HttpRequest.newBuilder(envd.uri("/nope")).header("X-Access-Token", "secret"))
                .statusCode()).isEqualTo(404);
    }

    @Test
    void connectCallsNeedTheTokenOnceSet() throws Exception {
        envd.state.setAccessToken("secret");
        HttpResponse<String> refused = rpc(null);
        assertThat(refused.statusCode()).isEqualTo(401);
        assertThat(new JsonObject(refused.body()).getString("code")).isEqualTo("unauthenticated");
        assertThat(rpc("nope").statusCode()).isEqualTo(401);
        HttpResponse<String> ok = rpc("secret");
        assertThat(ok.statusCode()).isEqualTo(200);
        assertThat(new JsonObject(ok.body()).getString("auth")).isEqualTo("Basic dXNlcjo=");
    }

    @Test
    void unknownConnectMethodIsUnimplemented() throws Exception {
        HttpResponse<String> r = envd.send(HttpRequest.newBuilder(envd.uri("/test.Probe/Nope"))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString("{}")));
        assertThat(r.statusCode()).isEqualTo(404);
        assertThat(new JsonObject(r.body()).getString("code")).isEqualTo("unimplemented");
    }

    @Test
    void wrongMethodIs405() throws Exception {
        HttpResponse<String> r = envd.send(HttpRequest.newBuilder(envd.uri("/health"))
                .POST(HttpRequest.BodyPublishers.noBody()));
        assertThat(r.statusCode()).isEqualTo(405);
        assertThat(r.headers().firstValue("Allow")).hasValue("GET");
        assertThat(envd.send(HttpRequest.newBuilder(envd.uri("/files")).DELETE()).statusCode()).isEqualTo(405);
    }

    @Test
    void corsPreflightAllowsAnyOriginAndHeaders() throws Exception {
        envd.state.setAccessToken("secret"); // preflights carry no token and must still pass
        HttpResponse<String> r = envd.send(HttpRequest.newBuilder(envd.uri("/process.Process/Start"))
                .method("OPTIONS", HttpRequest.BodyPublishers.noBody())
                .header("Origin", "https://example.com")
                .header("Access-Control-Request-Method", "POST")
                .header("Access-Control-Request-Headers", "content-type,connect-protocol-version,x-access-token"));
        assertThat(r.statusCode()).isEqualTo(204);
        assertThat(r.headers().firstValue("Access-Control-Allow-Origin")).hasValue("*");
        assertThat(r.headers().firstValue("Access-Control-Allow-Methods")).hasValue("POST");
        assertThat(r.headers().firstValue("Access-Control-Allow-Headers"))
                .hasValue("content-type,connect-protocol-version,x-access-token");

        HttpResponse<String> actual = envd.send(HttpRequest.newBuilder(envd.uri("/health"))
                .header("Origin", "https://example.com"));
        assertThat(actual.headers().firstValue("Access-Control-Allow-Origin")).hasValue("*");
        assertThat(actual.headers().firstValue("Access-Control-Expose-Headers").orElse(""))
                .contains("Connect-Content-Encoding", "Grpc-Status");
    }

    @Test
    void servesH2cWithPriorKnowledge() throws Exception {
        io.vertx.core.Vertx vertx = io.vertx.core.Vertx.vertx();
        try {
            var client = vertx.createHttpClient(new io.vertx.core.http.HttpClientOptions()
                    .setProtocolVersion(io.vertx.core.http.HttpVersion.HTTP_2).setHttp2ClearTextUpgrade(false));
            var response = client.request(io.vertx.core.http.HttpMethod.GET, envd.server.port(), "127.0.0.1", "/health")
                    .compose(req -> req.send())
                    .toCompletionStage().toCompletableFuture().get(10, java.util.concurrent.TimeUnit.SECONDS);
            assertThat(response.version()).isEqualTo(io.vertx.core.http.HttpVersion.HTTP_2);
            assertThat(response.statusCode()).isEqualTo(204);
        } finally {
            vertx.close().toCompletionStage().toCompletableFuture().get(10, java.util.concurrent.TimeUnit.SECONDS);
        }
    }

    @SuppressWarnings("unused")
    private static JsonArray array(String s) {
        return new JsonArray(s);
    }
}
