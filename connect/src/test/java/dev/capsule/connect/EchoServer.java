package dev.capsule.connect;

import com.google.protobuf.ByteString;
import dev.capsule.connect.testing.CountRequest;
import dev.capsule.connect.testing.CountResponse;
import dev.capsule.connect.testing.SayRequest;
import dev.capsule.connect.testing.SayResponse;
import io.vertx.core.Vertx;
import io.vertx.core.http.HttpServer;
import io.vertx.core.http.HttpServerOptions;

import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The test service {@code test.Echo} on a real Vert.x HTTP server (loopback, free port, HTTP/1.1 and h2c), with a
 * record of what its handlers saw so tests can check cancellation and back-pressure from the server's side.
 *
 * <p>{@code Say} echoes its request; some texts are commands: {@code error:<code>} throws that Connect code,
 * {@code boom} throws a plain exception, {@code sleep} waits until the call is cancelled, {@code header} sets a
 * response header. {@code Count} streams {@code up_to} numbers. {@code Collect} joins the texts it receives.
 */
final class EchoServer implements AutoCloseable {
    static final int MAX_MESSAGE_BYTES = 64 * 1024;

    /** Reasons passed to onCancel listeners, in order. */
    final BlockingQueue<ConnectException> cancellations = new LinkedBlockingQueue<>();
    /** What each handler ended with: "ok" or the exception it saw from send()/receive(). */
    final BlockingQueue<String> handlerOutcomes = new LinkedBlockingQueue<>();
    /** Count messages the current Count handlers have sent successfully. */
    final AtomicInteger sent = new AtomicInteger();
    /** Handlers currently running. */
    final AtomicInteger running = new AtomicInteger();

    final Vertx vertx;
    final ConnectRouter router;
    private final HttpServer server;

    EchoServer() throws Exception {
        vertx = Vertx.vertx();
        router = ConnectRouter.builder()
                .maxMessageBytes(MAX_MESSAGE_BYTES)
                .interceptor(context -> {
                    if (context.header("X-Deny") != null) {
                        throw new ConnectException(Code.UNAUTHENTICATED, "denied by X-Deny: leave the header out");
                    }
                })
                .unary("test.Echo", "Say", SayRequest.getDefaultInstance(), this::say)
                .serverStream("test.Echo", "Count", CountRequest.getDefaultInstance(), this::count)
                .clientStream("test.Echo", "Collect", SayRequest.getDefaultInstance(), this::collect)
                .build();
        server = vertx.createHttpServer(new HttpServerOptions().setHost("127.0.0.1").setPort(0)
                        .setHttp2ClearTextEnabled(true))
                .requestHandler(request -> {
                    if (router.handles(request)) {
                        router.handle(request);
                    } else {
                        request.response().setStatusCode(418).end("not a Connect path");
                    }
                });
        server.listen().toCompletionStage().toCompletableFuture().get(30, TimeUnit.SECONDS);
    }

    int port() {
        return server.actualPort();
    }

    String url(String method) {
        return "http://127.0.0.1:" + port() + "/test.Echo/" + method;
    }

    private SayResponse say(SayRequest request, CallContext context) throws InterruptedException {
        running.incrementAndGet();
        try {
            String text = request.getText();
            if (text.startsWith("error:")) {
                throw new ConnectException(Code.fromWireName(text.substring(6)), "you asked for " + text.substring(6));
            }
            switch (text) {
                case "boom" -> throw new IllegalStateException("boom");
                case "sleep" -> {
                    CountDownLatch cancelled = new CountDownLatch(1);
                    context.onCancel(reason -> {
                        cancellations.add(reason);
                        cancelled.countDown();
                    });
                    cancelled.await();
                    handlerOutcomes.add("woken");
                }
                case "header" -> context.setResponseHeader("X-Echo", "yes");
                default -> { }
            }
            return SayResponse.newBuilder().setText(text).setBigNumber(request.getBigNumber())
                    .setData(request.getData()).build();
        } finally {
            running.decrementAndGet();
        }
    }

    private void count(CountRequest request, CallContext context, StreamSender<CountResponse> out)
            throws InterruptedException {
        running.incrementAndGet();
        context.onCancel(cancellations::add);
        try {
            ByteString payload = ByteString.copyFrom(new byte[request.getPayloadBytes()]);
            for (int i = 1; i <= request.getUpTo(); i++) {
                if (request.getDelayMs() > 0) {
                    Thread.sleep(request.getDelayMs());
                }
                out.send(CountResponse.newBuilder().setNumber(i).setPayload(payload).build());
                sent.incrementAndGet();
            }
            if (!request.getFailWith().isEmpty()) {
                throw new ConnectException(Code.fromWireName(request.getFailWith()), "failed as asked after "
                        + request.getUpTo() + " messages");
            }
            handlerOutcomes.add("ok");
        } catch (ConnectException e) {
            handlerOutcomes.add(e.code().wireName());
            throw e;
        } finally {
            running.decrementAndGet();
        }
    }

    private SayResponse collect(StreamReceiver<SayRequest> in, CallContext context) {
        running.incrementAndGet();
        try {
            StringBuilder joined = new StringBuilder();
            long sum = 0;
            for (SayRequest request = in.receive(); request != null; request = in.receive()) {
                if (!joined.isEmpty()) {
                    joined.append(',');
                }
                joined.append(request.getText());
                sum += request.getBigNumber();
            }
            handlerOutcomes.add("ok");
            return SayResponse.newBuilder().setText(joined.toString()).setBigNumber(sum).build();
        } catch (ConnectException e) {
            handlerOutcomes.add(e.code().wireName());
            throw e;
        } finally {
            running.decrementAndGet();
        }
    }

    @Override
    public void close() throws Exception {
        router.close();
        vertx.close().toCompletionStage().toCompletableFuture().get(30, TimeUnit.SECONDS);
    }
}
