package dev.capsule.server.testing;

import dev.capsule.runtime.SandboxInstance;
import io.vertx.core.Vertx;
import io.vertx.core.http.HttpServer;
import io.vertx.core.http.HttpServerRequest;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Consumer;

/**
 * A plain HTTP server on a random 127.x.y.z address at envd's port, standing in for the envd of every sandbox its
 * {@link #runtime} "starts" there, so the lifecycle can create, pause, resume and kill: {@code /init} answers 204,
 * {@code /health} 204, anything else goes to the test's handler (404 by default). Not envd: it checks nothing.
 */
public final class EnvdStandIn implements AutoCloseable {

    public final Vertx vertx = Vertx.vertx();
    public final InetAddress address;
    public final RecordingRuntime runtime = RecordingRuntime.loopback();
    public volatile Consumer<HttpServerRequest> other = req -> req.response().setStatusCode(404).end();
    private final HttpServer server;

    public EnvdStandIn() throws Exception {
        address = randomLoopback();
        server = vertx.createHttpServer().requestHandler(req -> {
            switch (req.path()) {
                case "/init" -> req.body().onComplete(b -> req.response().setStatusCode(204).end());
                case "/health" -> req.response().setStatusCode(204).end();
                default -> other.accept(req);
            }
        });
        try {
            server.listen(SandboxInstance.ENVD_PORT, address.getHostAddress()).toCompletionStage().toCompletableFuture()
                    .get(10, TimeUnit.SECONDS);
        } catch (Exception e) {
            vertx.close();
            throw new IllegalStateException("cannot start the envd stand-in at " + address, e);
        }
        runtime.onStart = spec -> address;
    }

    private static InetAddress randomLoopback() throws UnknownHostException {
        var rnd = ThreadLocalRandom.current();
        return InetAddress.getByName("127." + rnd.nextInt(1, 250) + "." + rnd.nextInt(1, 250) + "." + rnd.nextInt(2, 250));
    }

    @Override
    public void close() throws ExecutionException, TimeoutException {
        try {
            vertx.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
