package dev.capsule.server.gateway;

import static org.assertj.core.api.Assertions.assertThat;

import dev.capsule.server.store.SandboxState;
import dev.capsule.server.testing.RecordingRuntime;
import dev.capsule.server.testing.TestServer;
import io.vertx.core.Vertx;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.http.HttpServer;
import io.vertx.core.json.JsonObject;
import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.WebSocket;
import java.nio.file.Path;
import java.time.Instant;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The gateway against real HTTP servers on loopback standing in as a sandbox's ports: the sandbox row says its
 * address is 127.0.0.1, so traffic for its port P goes to the test's server on 127.0.0.1:P.
 */
class GatewayTest {

    static final String ID = "gwsandbox00000000001";
    @TempDir Path tmp;
    TestServer s;
    Vertx vertx;
    HttpServer upstream;
    int port;
    CompletableFuture<Void> releaseStream = new CompletableFuture<>();
    CompletableFuture<Void> foreverClosed = new CompletableFuture<>();

    @BeforeEach
    void start() throws Exception {
        s = new TestServer(tmp.resolve("data"), new RecordingRuntime());
        vertx = Vertx.vertx();
        upstream = vertx.createHttpServer().webSocketHandler(ws -> ws.textMessageHandler(t -> ws.writeTextMessage("echo:" + t))
                .binaryMessageHandler(b -> ws.writeBinaryMessage(Buffer.buffer("bin:").appendBuffer(b))))
                .requestHandler(req -> {
                    switch (req.path()) {
                        case "/hello" -> req.response().putHeader("X-Upstream", "yes")
                                .end("hello " + req.getHeader("Host") + " " + req.query());
                        case "/echo" -> {
                            req.response().setChunked(true);
                            req.pipeTo(req.response());
                        }
                        case "/stream" -> {
                            // first chunk now, second only when the test has seen the first: proves no buffering
                            req.response().setChunked(true).write("first\n");
                            releaseStream.thenRun(() -> vertx.runOnContext(v -> req.response().end("second\n")));
                        }
                        case "/forever" -> {
                            // a stream that never ends by itself, like a long-running command's output
                            req.connection().closeHandler(v -> foreverClosed.complete(null));
                            req.response().setChunked(true).write("tick\n");
                        }
                        default -> req.response().setStatusCode(404).end();
                    }
                });
        upstream.listen(0, "127.0.0.1").toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
        port = upstream.actualPort();
        s.insertSandbox(ID, SandboxState.RUNNING, Instant.now(), Map.of(), "127.0.0.1");
    }

    @AfterEach
    void stop() throws Exception {
        s.close();
        vertx.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
    }

    private HttpRequest.Builder viaHeaders(String path, int p) {
        return HttpRequest.newBuilder(URI.create(s.url(path))).header("E2b-Sandbox-Id", ID).header("E2b-Sandbox-Port", String.valueOf(p));
    }

    @Test
    void routesByHeadersAndByHostWithoutAnApiKey() {
        var r = s.send(viaHeaders("/hello?x=1", port).GET().build());
        assertThat(r.statusCode()).isEqualTo(200);
        assertThat(r.body()).startsWith("hello 127.0.0.1:").endsWith(" x=1");
        assertThat(r.headers().firstValue("X-Upstream")).contains("yes");

        var byHost = s.send(HttpRequest.newBuilder(URI.create(s.url("/hello?y=2")))
                .header("Host", port + "-" + ID + ".localhost:" + s.server.port()).GET().build());
        assertThat(byHost.statusCode()).isEqualTo(200);
        assertThat(byHost.body()).isEqualTo("hello " + port + "-" + ID + ".localhost:" + s.server.port() + " y=2");

        // /health with the sandbox header is the sandbox's, not the API's
        assertThat(s.send(viaHeaders("/nothing", port).GET().build()).statusCode()).isEqualTo(404);
    }

    @Test
    void streamsRequestAndResponseBodiesBothWays() throws Exception {
        byte[] big = new byte[8 * 1024 * 1024];
        new java.util.Random(1).nextBytes(big);
        var echoed = s.http.send(viaHeaders("/echo", port).POST(HttpRequest.BodyPublishers.ofInputStream(() -> new java.io.ByteArrayInputStream(big))).build(),
                HttpResponse.BodyHandlers.ofByteArray());
        assertThat(echoed.statusCode()).isEqualTo(200);
        assertThat(echoed.body()).isEqualTo(big);

        HttpResponse<InputStream> streaming = s.http.send(viaHeaders("/stream", port).GET().build(), HttpResponse.BodyHandlers.ofInputStream());
        try (InputStream in = streaming.body()) {
            byte[] first = new byte[6];
            int n = 0;
            while (n < 6) n += in.read(first, n, 6 - n);
            assertThat(new String(first)).isEqualTo("first\n"); // arrived before the upstream finished
            releaseStream.complete(null);
            assertThat(new String(in.readAllBytes())).isEqualTo("second\n");
        }
    }

    @Test
    void aClientThatLeavesClosesTheSandboxSideOfItsStream() throws Exception {
        try (java.net.Socket client = new java.net.Socket("127.0.0.1", s.server.port())) {
            client.getOutputStream().write(("GET /forever HTTP/1.1\r\nHost: localhost\r\nE2b-Sandbox-Id: " + ID
                    + "\r\nE2b-Sandbox-Port: " + port + "\r\n\r\n").getBytes(java.nio.charset.StandardCharsets.US_ASCII));
            var in = new java.io.BufferedReader(new java.io.InputStreamReader(client.getInputStream(),
                    java.nio.charset.StandardCharsets.US_ASCII));
            for (String line = in.readLine(); line != null && !line.equals("tick"); line = in.readLine()) {
                // headers and the chunk size line
            }
        }
        foreverClosed.get(20, TimeUnit.SECONDS);
    }

    @Test
    void bridgesWebSockets() throws Exception {
        var received = new java.util.concurrent.LinkedBlockingQueue<String>();
        WebSocket ws = s.http.newWebSocketBuilder().header("E2b-Sandbox-Id", ID).header("E2b-Sandbox-Port", String.valueOf(port))
                .buildAsync(URI.create("ws://127.0.0.1:" + s.server.port() + "/ws"), new WebSocket.Listener() {
                    @Override
                    public CompletionStage<?> onText(WebSocket w, CharSequence data, boolean last) {
                        received.add(data.toString());
                        w.request(1);
                        return null;
                    }

                    @Override
                    public CompletionStage<?> onBinary(WebSocket w, java.nio.ByteBuffer data, boolean last) {
                        byte[] b = new byte[data.remaining()];
                        data.get(b);
                        received.add(new String(b));
                        w.request(1);
                        return null;
                    }
                }).get(10, TimeUnit.SECONDS);
        ws.sendText("ping", true).get(10, TimeUnit.SECONDS);
        assertThat(received.poll(10, TimeUnit.SECONDS)).isEqualTo("echo:ping");
        ws.sendBinary(java.nio.ByteBuffer.wrap("raw".getBytes()), true).get(10, TimeUnit.SECONDS);
        assertThat(received.poll(10, TimeUnit.SECONDS)).isEqualTo("bin:raw");
        ws.sendClose(WebSocket.NORMAL_CLOSURE, "bye").get(10, TimeUnit.SECONDS);
    }

    @Test
    void answers502ForUnknownKilledPausedAndClosedPorts() throws Exception {
        assert502(s.send(HttpRequest.newBuilder(URI.create(s.url("/health"))).header("E2b-Sandbox-Id", "unknown0000000000000")
                .header("E2b-Sandbox-Port", "49983").GET().build()), "unknown0000000000000", "not found");
        assert502(s.send(HttpRequest.newBuilder(URI.create(s.url("/x"))).header("E2b-Sandbox-Id", "../etc")
                .header("E2b-Sandbox-Port", "49983").GET().build()), "../etc", "not found");

        int closed;
        try (var sock = new java.net.ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            closed = sock.getLocalPort();
        }
        assert502(s.send(viaHeaders("/hello", closed).GET().build()), ID, "nothing answered on port " + closed);

        s.insertSandbox("pausedsandbox0000001", SandboxState.PAUSED, Instant.now(), Map.of(), "127.0.0.1");
        assert502(s.send(HttpRequest.newBuilder(URI.create(s.url("/hello"))).header("E2b-Sandbox-Id", "pausedsandbox0000001")
                .header("E2b-Sandbox-Port", String.valueOf(port)).GET().build()), "pausedsandbox0000001", "paused");

        assertThat(s.send(viaHeaders("/hello", port).GET().build()).statusCode()).isEqualTo(200); // cached route
        assertThat(s.delete("/sandboxes/" + ID).statusCode()).isEqualTo(204);
        assert502(s.send(viaHeaders("/hello", port).GET().build()), ID, "not found");

        var noPort = s.send(HttpRequest.newBuilder(URI.create(s.url("/x"))).header("E2b-Sandbox-Id", ID).GET().build());
        assertThat(noPort.statusCode()).isEqualTo(400);
        assertThat(new JsonObject(noPort.body()).getString("message")).contains("E2b-Sandbox-Port");
    }

    @Test
    void envdInternalEndpointsAreNotReachable() {
        var r = s.send(viaHeaders("/init", 49983).POST(HttpRequest.BodyPublishers.ofString("{}")).build());
        assertThat(r.statusCode()).isEqualTo(403);
        assertThat(new JsonObject(r.body()).getString("sandboxId")).isEqualTo(ID);
    }

    private static void assert502(HttpResponse<String> r, String id, String messagePart) {
        assertThat(r.statusCode()).isEqualTo(502);
        JsonObject body = new JsonObject(r.body());
        assertThat(body.getInteger("code")).isEqualTo(502);
        assertThat(body.getString("sandboxId")).isEqualTo(id);
        assertThat(body.getString("message")).contains(messagePart);
    }
}
