package dev.capsule.server.events;

import dev.capsule.server.logging.LogContext;
import dev.capsule.server.store.Store;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Clock;
import java.time.Duration;
import java.util.Base64;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Consumer;

/**
 * Delivers events to webhooks, at least once and in order per webhook, off the lifecycle's path. Deliveries are
 * rows written with their event ({@link SandboxEvents}); this class only reads and updates them, so a restart
 * carries on where the last run stopped, a delivery in flight at a crash is sent again with the same
 * {@code e2b-delivery-id}, and a slow or dead receiver delays nothing but its own webhook's queue.
 *
 * <p>Each webhook's oldest pending delivery is its head: it is attempted when due, at most one attempt per
 * webhook at a time, and later deliveries wait behind it — a receiver gets events in the order they happened.
 * A refused attempt (no connection, a timeout, a non-2xx status) is retried after a backoff that doubles from
 * {@code firstBackoff} up to {@code maxBackoff}; after {@value #MAX_ATTEMPTS} attempts the delivery is marked
 * failed and the queue moves on. Each POST carries {@code e2b-webhook-id}, {@code e2b-delivery-id},
 * {@code e2b-signature-version: v1} and {@code e2b-signature} = base64url without padding of
 * SHA-256(secret + body), the body being the event's JSON exactly as sent.
 */
public final class WebhookDispatcher implements AutoCloseable {

    public static final int MAX_ATTEMPTS = 15;
    public static final Duration FIRST_BACKOFF = Duration.ofSeconds(1);
    public static final Duration MAX_BACKOFF = Duration.ofMinutes(10);
    /** Longest the loop sleeps without being woken: a safety net, deliveries are found on wake-ups. */
    private static final long MAX_IDLE_MILLIS = 30_000;
    private static final Duration CONNECT_TIMEOUT = Duration.ofSeconds(5);
    private static final Duration REQUEST_TIMEOUT = Duration.ofSeconds(10);
    private static final System.Logger LOG = System.getLogger(WebhookDispatcher.class.getName());

    /** How one attempt ended: {@code delivered}, {@code retry} (refused, will be retried) or {@code failed} (given up). */
    public enum Outcome { DELIVERED, RETRY, FAILED }

    private final Store store;
    private final SandboxEvents events;
    private final Webhooks webhooks;
    private final Clock clock;
    private final Duration firstBackoff;
    private final Duration maxBackoff;
    private final ExecutorService attempts = Executors.newVirtualThreadPerTaskExecutor();
    private final HttpClient http;
    private final Set<String> inFlight = ConcurrentHashMap.newKeySet();
    private final List<Consumer<Outcome>> outcomes = new CopyOnWriteArrayList<>();
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition changed = lock.newCondition();
    private boolean signalled;
    private boolean closed;
    private Thread loop;

    public WebhookDispatcher(Store store, SandboxEvents events, Webhooks webhooks, Clock clock) {
        this(store, events, webhooks, clock, FIRST_BACKOFF, MAX_BACKOFF);
    }

    public WebhookDispatcher(Store store, SandboxEvents events, Webhooks webhooks, Clock clock,
                             Duration firstBackoff, Duration maxBackoff) {
        this.store = store;
        this.events = events;
        this.webhooks = webhooks;
        this.clock = clock;
        this.firstBackoff = firstBackoff;
        this.maxBackoff = maxBackoff;
        this.http = HttpClient.newBuilder().connectTimeout(CONNECT_TIMEOUT).followRedirects(HttpClient.Redirect.NEVER)
                .version(HttpClient.Version.HTTP_1_1).executor(attempts).build();
        events.onRecorded(e -> wake());
    }

    /** Starts delivering, including whatever a previous run left pending. */
    public void start() {
        loop = Thread.ofVirtual().name("webhook-dispatcher").start(this::run);
    }

    /** Told after each attempt, for the server's metrics. */
    public void onOutcome(Consumer<Outcome> listener) {
        outcomes.add(listener);
    }

    /** Looks for due deliveries now (an event was recorded, a webhook changed, an attempt ended). */
    public void wake() {
        lock.lock();
        try {
            signalled = true;
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    private void run() {
        while (true) {
            long sleep;
            try {
                sleep = dispatchDue();
            } catch (RuntimeException e) {
                LOG.log(System.Logger.Level.WARNING, "looking for due webhook deliveries failed; retrying in 5 s", e);
                sleep = 5_000;
            }
            lock.lock();
            try {
                long nanos = TimeUnit.MILLISECONDS.toNanos(sleep);
                while (!closed && !signalled && nanos > 0) {
                    nanos = changed.awaitNanos(nanos);
                }
                if (closed) return;
                signalled = false;
            } catch (InterruptedException e) {
                return;
            } finally {
                lock.unlock();
            }
        }
    }

    private record Head(String deliveryId, String webhookId, String url, String eventId, int attempts, long dueAt) {}

    /** Starts the attempts that are due; returns milliseconds until the next head is due. */
    private long dispatchDue() {
        List<Head> heads = store.read(h -> h.createQuery("""
                SELECT d.id, d.webhook_id, w.url, d.event_id, d.attempts, d.next_attempt_at
                FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
                WHERE w.enabled = :t AND d.status = 'pending' AND d.id = (SELECT MIN(p.id) FROM webhook_deliveries p
                  WHERE p.webhook_id = d.webhook_id AND p.status = 'pending')""")
                .bind("t", true)
                .map((rs, c) -> new Head(rs.getString(1), rs.getString(2), rs.getString(3), rs.getString(4),
                        rs.getInt(5), rs.getLong(6))).list());
        long now = clock.millis();
        long next = MAX_IDLE_MILLIS;
        for (Head head : heads) {
            if (inFlight.contains(head.webhookId())) continue;
            if (head.dueAt() <= now) {
                inFlight.add(head.webhookId());
                attempts.execute(() -> {
                    try {
                        attempt(head);
                    } finally {
                        inFlight.remove(head.webhookId());
                        wake();
                    }
                });
            } else {
                next = Math.min(next, head.dueAt() - now);
            }
        }
        return next;
    }

    private void attempt(Head head) {
        Optional<SandboxEvent> event = events.find(head.eventId());
        if (event.isEmpty()) {
            finish(head, Outcome.FAILED, null, "the event is no longer stored (past the events retention)");
            return;
        }
        LogContext.forSandbox(event.get().sandboxId(), () -> send(head, event.get()));
    }

    private void send(Head head, SandboxEvent event) {
        String body = event.toJson().encode();
        String secret = store.read(h -> webhooks.secret(h, head.webhookId()));
        Integer status = null;
        String error;
        try {
            HttpRequest request = HttpRequest.newBuilder(URI.create(head.url())).timeout(REQUEST_TIMEOUT)
                    .header("Content-Type", "application/json")
                    .header("User-Agent", "capsule-webhooks")
                    .header("e2b-webhook-id", head.webhookId())
                    .header("e2b-delivery-id", head.deliveryId())
                    .header("e2b-signature-version", "v1")
                    .header("e2b-signature", signature(secret, body))
                    .POST(HttpRequest.BodyPublishers.ofString(body, StandardCharsets.UTF_8)).build();
            HttpResponse<Void> response = http.send(request, HttpResponse.BodyHandlers.discarding());
            status = response.statusCode();
            if (status >= 200 && status < 300) {
                finish(head, Outcome.DELIVERED, status, null);
                return;
            }
            error = "the receiver answered " + status;
        } catch (IOException | IllegalArgumentException e) {
            error = e.getClass().getSimpleName() + (e.getMessage() == null ? "" : ": " + e.getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return; // closing: the delivery stays pending for the next run
        }
        int attempts = head.attempts() + 1;
        if (attempts >= MAX_ATTEMPTS) {
            LOG.log(System.Logger.Level.WARNING, "giving up webhook delivery " + head.deliveryId() + " of event "
                    + event.type() + " to " + head.url() + " after " + attempts + " attempts: " + error);
            finish(head, Outcome.FAILED, status, error);
        } else {
            long delay = backoff(attempts).toMillis();
            LOG.log(System.Logger.Level.INFO, "webhook delivery " + head.deliveryId() + " to " + head.url()
                    + " failed (" + error + "); attempt " + (attempts + 1) + " in " + delay + " ms");
            long now = clock.millis();
            Integer answered = status;
            String reason = error;
            store.write(h -> h.createUpdate("""
                    UPDATE webhook_deliveries SET attempts = :a, next_attempt_at = :next, last_attempt_at = :now,
                      last_status = :status, last_error = :error WHERE id = :id AND status = 'pending'""")
                    .bind("a", attempts).bind("next", now + delay).bind("now", now).bind("status", answered)
                    .bind("error", reason).bind("id", head.deliveryId()).execute());
            tell(Outcome.RETRY);
        }
    }

    /** The wait before attempt {@code attempts + 1}: firstBackoff doubled per attempt made, at most maxBackoff. */
    Duration backoff(int attempts) {
        long millis = firstBackoff.toMillis() << Math.min(attempts - 1, 30);
        return Duration.ofMillis(Math.min(millis, maxBackoff.toMillis()));
    }

    private void finish(Head head, Outcome outcome, Integer status, String error) {
        long now = clock.millis();
        store.write(h -> {
            h.createUpdate("""
                    UPDATE webhook_deliveries SET status = :st, attempts = attempts + 1, last_attempt_at = :now,
                      finished_at = :now, last_status = :status, last_error = :error WHERE id = :id""")
                    .bind("st", outcome == Outcome.DELIVERED ? "delivered" : "failed").bind("now", now)
                    .bind("status", status).bind("error", error).bind("id", head.deliveryId()).execute();
            // the delivery log is bounded: finished deliveries beyond the newest DELIVERY_LOG_SIZE go
            h.createUpdate("""
                    DELETE FROM webhook_deliveries WHERE webhook_id = :w AND status <> 'pending' AND id <
                      (SELECT id FROM webhook_deliveries WHERE webhook_id = :w AND status <> 'pending'
                       ORDER BY id DESC LIMIT 1 OFFSET :keep)""")
                    .bind("w", head.webhookId()).bind("keep", Webhooks.DELIVERY_LOG_SIZE - 1).execute();
            return null;
        });
        tell(outcome);
    }

    private void tell(Outcome outcome) {
        for (Consumer<Outcome> listener : outcomes) {
            try {
                listener.accept(outcome);
            } catch (RuntimeException e) {
                LOG.log(System.Logger.Level.WARNING, "a webhook outcome listener failed", e);
            }
        }
    }

    /** E2B's v1 signature: base64url without padding of SHA-256 over the secret followed by the raw body. */
    public static String signature(String secret, String body) {
        try {
            MessageDigest sha = MessageDigest.getInstance("SHA-256");
            sha.update(secret.getBytes(StandardCharsets.UTF_8));
            sha.update(body.getBytes(StandardCharsets.UTF_8));
            return Base64.getUrlEncoder().withoutPadding().encodeToString(sha.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 unavailable", e);
        }
    }

    /** Stops the loop; attempts in flight are abandoned and stay pending, so the next start sends them again. */
    @Override
    public void close() {
        lock.lock();
        try {
            closed = true;
            changed.signalAll();
        } finally {
            lock.unlock();
        }
        if (loop != null) {
            try {
                loop.join(5_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        attempts.shutdownNow();
        http.shutdownNow();
    }
}
