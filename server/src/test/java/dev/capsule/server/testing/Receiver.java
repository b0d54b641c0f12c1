package dev.capsule.server.testing;

import io.vertx.core.Vertx;
import io.vertx.core.http.HttpServer;
import io.vertx.core.http.HttpServerRequest;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

/**
 * A webhook receiver on a free loopback port: records every request (headers and raw body) and answers with the
 * status {@code answer} gives for it (null: never answer, as a hung receiver).
 */
public final class Receiver implements AutoCloseable {

    public record Request(Map<String, String> headers, String body) {
        public String header(String name) {
            return headers.get(name.toLowerCase(java.util.Locale.ROOT));
        }
    }

    public final List<Request> requests = new CopyOnWriteArrayList<>();
    public final List<HttpServerRequest> held = new CopyOnWriteArrayList<>();
    public volatile Function<Request, Integer> answer = r -> 200;
    private final Vertx vertx;
    private final HttpServer server;

    public Receiver(Vertx vertx) throws Exception {
        this.vertx = vertx;
        this.server = vertx.createHttpServer().requestHandler(req -> req.body().onSuccess(b -> {
            var headers = new java.util.HashMap<String, String>();
            req.headers().forEach(e -> headers.put(e.getKey().toLowerCase(java.util.Locale.ROOT), e.getValue()));
            var r = new Request(Map.copyOf(headers), b.toString());
            requests.add(r);
            Integer status = answer.apply(r);
            if (status == null) held.add(req);
            else req.response().setStatusCode(status).end();
        }));
        server.listen(0, "127.0.0.1").toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
    }

    public String url() {
        return "http://127.0.0.1:" + server.actualPort() + "/hook";
    }

    @Override
    public void close() throws Exception {
        server.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
    }
}
