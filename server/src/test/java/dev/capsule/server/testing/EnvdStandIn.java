package dev.capsule.server.testing;

import dev.capsule.runtime.SandboxInstance;
import io.vertx.core.Vertx;
import io.vertx.core.http.HttpServer;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;

/**
 * A real HTTP server on a random 127.x.y.z address playing a sandbox's envd (answers /init and /health), and a
 * {@link RecordingRuntime} that hands that address out, so the lifecycle can create, pause, resume and kill.
 */
public final class EnvdStandIn implements AutoCloseable {

    public final Vertx vertx = Vertx.vertx();
    public final InetAddress address;
    public final RecordingRuntime runtime = RecordingRuntime.loopback();
    private final HttpServer envd;

    public EnvdStandIn() {
        var rnd = ThreadLocalRandom.current();
        try {
            address = InetAddress.getByName("127." + rnd.nextInt(1, 250) + "." + rnd.nextInt(1, 250) + "." + rnd.nextInt(2, 250));
        } catch (UnknownHostException e) {
            throw new IllegalStateException(e);
        }
        envd = vertx.createHttpServer().requestHandler(req -> {
            if (req.path().equals("/init")) {
                req.body().onSuccess(b -> req.response().setStatusCode(204).end());
            } else if (req.path().equals("/health")) {
                req.response().setStatusCode(204).end();
            } else {
                req.response().setStatusCode(404).end();
            }
        });
        try {
            envd.listen(SandboxInstance.ENVD_PORT, address.getHostAddress()).toCompletionStage().toCompletableFuture()
                    .get(10, TimeUnit.SECONDS);
        } catch (Exception e) {
            vertx.close();
            throw new IllegalStateException("cannot start the envd stand-in at " + address, e);
        }
        runtime.onStart = spec -> address;
    }

    @Override
    public void close() throws Exception {
        vertx.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
    }
}
