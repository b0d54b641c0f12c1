package dev.capsule.server.gateway;

import static org.assertj.core.api.Assertions.assertThat;

import dev.capsule.envd.auth.Signatures;
import dev.capsule.server.testing.EnvdStandIn;
import dev.capsule.server.testing.RecordingRuntime;
import dev.capsule.server.testing.TestServer;
import io.vertx.core.Vertx;
import io.vertx.core.http.HttpServer;
import io.vertx.core.json.JsonObject;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What the gateway lets through to a sandbox: traffic tokens on user ports, envd's internal endpoints however they
 * are spelled, signed /files URLs without a sandbox id, and which requests may wake a paused sandbox. The sandboxes
 * are created through the API; their "envd" and "user port" are HTTP servers of this test at their address.
 */
class GatewayAccessTest {

    @TempDir Path tmp;
    EnvdStandIn envd;
    RecordingRuntime runtime;
    TestServer s;
    Vertx vertx;
    int userPort;

    @BeforeEach
    void start() throws Exception {
        envd = new EnvdStandIn();
        envd.other = req -> req.response().end("envd " + req.method() + " " + req.uri());
        runtime = envd.runtime;
        s = new TestServer(tmp.resolve("data"), runtime);
        vertx = Vertx.vertx();
        HttpServer user = vertx.createHttpServer().requestHandler(req -> req.response().end("user " + req.path()));
        user.listen(0, envd.address.getHostAddress()).toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
        userPort = user.actualPort();
    }

    @AfterEach
    void stop() throws Exception {
        s.close();
        vertx.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
        envd.close();
    }

    JsonObject create(String body) {
        var r = s.post("/v2/sandboxes", body);
        assertThat(r.statusCode()).as(r.body()).isEqualTo(201);
        return new JsonObject(r.body());
    }

    HttpRequest.Builder to(String id, int port, String pathAndQuery) {
        return HttpRequest.newBuilder(URI.create(s.url(pathAndQuery))).header("E2b-Sandbox-Id", id)
                .header("E2b-Sandbox-Port", String.valueOf(port));
    }

    static void assertRefused(HttpResponse<String> r, int status, String id, String message) {
        assertThat(r.statusCode()).as(r.body()).isEqualTo(status);
        JsonObject body = new JsonObject(r.body());
        assertThat(body.getInteger("code")).isEqualTo(status);
        assertThat(body.getString("sandboxId")).isEqualTo(id);
        assertThat(body.getString("message")).isEqualTo(message);
    }

    @Test
    void userPortsOfAClosedSandboxNeedItsTrafficTokenAndEnvdDoesNot() {
        JsonObject sbx = create("{\"templateID\":\"base\",\"network\":{\"allowPublicTraffic\":false}}");
        String id = sbx.getString("sandboxID");
        String token = sbx.getString("trafficAccessToken");

        assertRefused(s.send(to(id, userPort, "/x").GET().build()), 403, id,
                "Sandbox is secured with traffic access token. Token header 'e2b-traffic-access-token' is missing");
        assertRefused(s.send(to(id, userPort, "/x").header("e2b-traffic-access-token", token + "0").GET().build()), 403, id,
                "Sandbox is secured with traffic access token. Provided token in header 'e2b-traffic-access-token' is invalid");
        assertThat(s.send(to(id, userPort, "/x").header("E2B-Traffic-Access-Token", token).GET().build()).body())
                .isEqualTo("user /x");
        // by Host as well
        String host = userPort + "-" + id + ".localhost:" + s.server.port();
        assertThat(s.send(HttpRequest.newBuilder(URI.create(s.url("/y"))).header("Host", host).GET().build()).statusCode())
                .isEqualTo(403);
        assertThat(s.send(HttpRequest.newBuilder(URI.create(s.url("/y"))).header("Host", host)
                .header("e2b-traffic-access-token", token).GET().build()).body()).isEqualTo("user /y");
        // envd's port is guarded by envd's own token, not the traffic token
        assertThat(s.send(to(id, 49983, "/envs").GET().build()).body()).isEqualTo("envd GET /envs");

        // an open sandbox's ports need nothing
        String open = create("{\"templateID\":\"base\"}").getString("sandboxID");
        assertThat(s.send(to(open, userPort, "/z").GET().build()).body()).isEqualTo("user /z");
    }

    @Test
    void envdInternalEndpointsAreRefusedHoweverSpelledAndByHost() {
        String id = create("{\"templateID\":\"base\"}").getString("sandboxID");
        for (String path : List.of("/init", "//init", "/./init", "/init/", "/%69nit", "/%2569nit", "/files/../init",
                "/x/..%2Finit", "/freeze", "/fsthaw?x=1", "/%2e/unfreeze")) {
            var r = s.send(to(id, 49983, path).POST(HttpRequest.BodyPublishers.ofString("{}")).build());
            assertThat(r.statusCode()).as(path).isEqualTo(403);
            var byHost = s.send(HttpRequest.newBuilder(URI.create(s.url(path))).header("Host", "49983-" + id + ".localhost")
                    .POST(HttpRequest.BodyPublishers.ofString("{}")).build());
            assertThat(byHost.statusCode()).as("by Host: " + path).isEqualTo(403);
        }
        assertThat(Gateway.canonicalPath("/a/./b//c/../d/")).isEqualTo("/a/b/d");
        assertThat(Gateway.canonicalPath("/../../init")).isEqualTo("/init");
        assertThat(s.send(to(id, 49983, "/initial").GET().build()).body()).isEqualTo("envd GET /initial");
    }

    @Test
    void signedFilesUrlsWithoutASandboxIdGoToTheSandboxWhoseTokenSignedThem() {
        create("{\"templateID\":\"base\"}"); // another sandbox, whose token must not match
        JsonObject sbx = create("{\"templateID\":\"base\"}");
        String token = sbx.getString("envdAccessToken");
        String path = "/home/user/a b.txt";
        long exp = 4_000_000_000L;
        String read = Signatures.sign(path, Signatures.Operation.READ, "user", token, exp);
        String query = "/files?path=" + enc(path) + "&username=user&signature=" + enc(read) + "&signature_expiration=" + exp;

        var got = s.send(HttpRequest.newBuilder(URI.create(s.url(query))).GET().build());
        assertThat(got.body()).isEqualTo("envd GET " + query);
        // a write needs a write signature
        var wrongOp = s.send(HttpRequest.newBuilder(URI.create(s.url(query))).POST(HttpRequest.BodyPublishers.ofString("x")).build());
        assertRefused(wrongOp, 401, "", "invalid signature");
        String write = Signatures.sign(path, Signatures.Operation.WRITE, null, token, null);
        String upload = "/files?path=" + enc(path) + "&signature=" + enc(write);
        assertThat(s.send(HttpRequest.newBuilder(URI.create(s.url(upload))).POST(HttpRequest.BodyPublishers.ofString("x")).build())
                .body()).isEqualTo("envd POST " + upload);
        // tampered: another path, expiry or user
        for (String tampered : List.of(query.replace("a%20b", "c"), query.replace("4000000000", "4000000001"),
                query.replace("username=user", "username=root"), query.replace("signature_expiration=4000000000", "signature_expiration=x"))) {
            assertRefused(s.send(HttpRequest.newBuilder(URI.create(s.url(tampered))).GET().build()), 401, "", "invalid signature");
        }
        // without a signature it is API traffic (which has no /files)
        assertThat(s.send(s.request("/files?path=x").GET().build()).statusCode()).isEqualTo(404);
    }

    @Test
    void aPausedSandboxWakesOnlyForRequestsItsTargetWouldAccept() {
        JsonObject sbx = create("{\"templateID\":\"base\",\"autoPause\":true,\"autoResume\":{\"enabled\":true},"
                + "\"network\":{\"allowPublicTraffic\":false}}");
        String id = sbx.getString("sandboxID");
        assertThat(s.post("/sandboxes/" + id + "/pause", "{}").statusCode()).isEqualTo(204);

        assertRefused(s.send(to(id, 49983, "/envs").GET().build()), 401, id,
                "unauthorized access, please provide a valid access token or method signing if supported");
        assertRefused(s.send(to(id, 49983, "/envs").header("X-Access-Token", "wrong").GET().build()), 401, id,
                "unauthorized access, please provide a valid access token or method signing if supported");
        assertThat(s.send(to(id, userPort, "/u").GET().build()).statusCode()).isEqualTo(403);
        assertThat(runtime.transitions).doesNotContain("resume:" + id);

        var woken = s.send(to(id, userPort, "/u").header("e2b-traffic-access-token", sbx.getString("trafficAccessToken")).GET().build());
        assertThat(woken.body()).isEqualTo("user /u");
        assertThat(runtime.transitions).contains("resume:" + id);

        assertThat(s.post("/sandboxes/" + id + "/pause", "{}").statusCode()).isEqualTo(204);
        var byToken = s.send(to(id, 49983, "/envs").header("X-Access-Token", sbx.getString("envdAccessToken")).GET().build());
        assertThat(byToken.body()).isEqualTo("envd GET /envs");
    }

    static String enc(String s) {
        return URLEncoder.encode(s, StandardCharsets.UTF_8).replace("+", "%20");
    }
}
