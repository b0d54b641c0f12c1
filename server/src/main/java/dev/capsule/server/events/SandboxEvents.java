package dev.capsule.server.events;

import dev.capsule.server.logs.SandboxLogs;
import dev.capsule.server.store.Store;
import dev.capsule.server.store.TimeOrderedIds;
import io.vertx.core.json.JsonObject;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.BiConsumer;
import java.util.function.Consumer;
import java.sql.ResultSet;
import java.sql.SQLException;
import org.jdbi.v3.core.statement.StatementContext;

/**
 * What happens to sandboxes, as E2B's lifecycle events: the lifecycle records every state change here (its
 * private {@code event(...)} helper is the one caller), and in the same transaction this writes the event, one
 * pending delivery per webhook subscribed to its type, and a line in the sandbox's log — so a delivery exists
 * before anyone attempts it, and a crash loses none of the three alone. Listeners ({@link #onRecorded}) are told
 * afterwards, outside the transaction: the webhook dispatcher wakes there, never on the lifecycle's time.
 *
 * <p>Also the lifecycle's other notices to observability: {@link #beforeDestroy} (the sandbox's files are about
 * to go: read its console now) and {@link #transitionTook} (durations for the server's metrics). Listeners must
 * be quick and must not throw; they run under the sandbox's lock.
 */
public final class SandboxEvents {

    public static final String CREATED = "sandbox.lifecycle.created";
    public static final String UPDATED = "sandbox.lifecycle.updated";
    public static final String PAUSED = "sandbox.lifecycle.paused";
    public static final String RESUMED = "sandbox.lifecycle.resumed";
    public static final String CHECKPOINTED = "sandbox.lifecycle.checkpointed";
    public static final String KILLED = "sandbox.lifecycle.killed";
    /** Every event type, as webhooks subscribe to them and the events API filters by them. */
    public static final List<String> TYPES = List.of(CREATED, UPDATED, PAUSED, RESUMED, CHECKPOINTED, KILLED);
    /** A Capsule server is one team: every event and webhook belongs to it. */
    public static final String TEAM_ID = "00000000-0000-0000-0000-000000000000";

    private static final System.Logger LOG = System.getLogger(SandboxEvents.class.getName());

    private final Store store;
    private final Clock clock;
    private final List<Consumer<SandboxEvent>> recorded = new CopyOnWriteArrayList<>();
    private final List<Consumer<String>> beforeDestroy = new CopyOnWriteArrayList<>();
    private final List<BiConsumer<String, Duration>> transitions = new CopyOnWriteArrayList<>();

    public SandboxEvents(Store store, Clock clock) {
        this.store = store;
        this.clock = clock;
    }

    /**
     * Records an event of {@code sandboxId}. {@code dataJson} is its {@code eventData} object as JSON text, or
     * null. The template is the sandbox row's, or (after a kill, the row gone) the one its earlier events name;
     * a create or a resume starts a new execution id, other events carry the current one.
     */
    public SandboxEvent record(String sandboxId, String type, String dataJson) {
        if (!TYPES.contains(type)) throw new IllegalArgumentException("unknown event type " + type);
        Instant at = Instant.ofEpochMilli(clock.millis());
        String id = TimeOrderedIds.next(at.toEpochMilli());
        SandboxEvent event = store.write(h -> {
            Optional<Previous> previous = h.createQuery("""
                    SELECT template_id, execution_id FROM events WHERE sandbox_id = :s AND template_id IS NOT NULL
                    ORDER BY created_at DESC, id DESC""")
                    .bind("s", sandboxId).setMaxRows(1)
                    .map((rs, c) -> new Previous(rs.getString(1), rs.getString(2))).findFirst();
            String template = h.createQuery("SELECT template_id FROM sandboxes WHERE id = :s").bind("s", sandboxId)
                    .mapTo(String.class).findOne().or(() -> previous.map(Previous::templateId)).orElse(null);
            String execution = type.equals(CREATED) || type.equals(RESUMED) || previous.isEmpty()
                    || previous.get().executionId() == null ? UUID.randomUUID().toString() : previous.get().executionId();
            var e = new SandboxEvent(id, type, sandboxId, template, execution, dataJson, at);
            h.createUpdate("""
                    INSERT INTO events (id, sandbox_id, type, data, created_at, template_id, execution_id)
                    VALUES (:id, :s, :t, :d, :at, :template, :execution)""")
                    .bind("id", id).bind("s", sandboxId).bind("t", type).bind("d", dataJson)
                    .bind("at", at.toEpochMilli()).bind("template", template).bind("execution", execution).execute();
            Webhooks.enqueueDeliveries(h, e, at.toEpochMilli());
            SandboxLogs.insert(h, sandboxId, at.toEpochMilli(), "info", describe(e),
                    new JsonObject().put("source", "lifecycle").put("event", type).put("eventId", id), null);
            return e;
        });
        for (Consumer<SandboxEvent> listener : recorded) {
            try {
                listener.accept(event);
            } catch (RuntimeException ex) {
                LOG.log(System.Logger.Level.WARNING, "a listener of event " + type + " of sandbox " + sandboxId + " failed", ex);
            }
        }
        return event;
    }

    private record Previous(String templateId, String executionId) {}

    /** The sandbox's log line for an event. */
    private static String describe(SandboxEvent e) {
        return switch (e.type()) {
            case CREATED -> "sandbox created from template " + e.templateId();
            case UPDATED -> {
                String end = e.data() == null ? null : new JsonObject(e.data()).getString("set_timeout");
                yield end == null ? "sandbox updated" : "sandbox timeout set: it ends at " + end;
            }
            case PAUSED -> "sandbox paused";
            case RESUMED -> "sandbox resumed";
            case CHECKPOINTED -> "sandbox checkpointed";
            case KILLED -> "sandbox killed";
            default -> e.type();
        };
    }

    /** Called after each event is stored, on the recording thread. */
    public void onRecorded(Consumer<SandboxEvent> listener) {
        recorded.add(listener);
    }

    /** Called with a sandbox's id just before the driver removes it and its files. */
    public void onBeforeDestroy(Consumer<String> listener) {
        beforeDestroy.add(listener);
    }

    /** Called with a transition's name ({@code create}, {@code pause}, {@code resume}) and how long it took. */
    public void onTransition(BiConsumer<String, Duration> listener) {
        transitions.add(listener);
    }

    /** The lifecycle is about to destroy {@code sandboxId}. Never throws. */
    public void beforeDestroy(String sandboxId) {
        for (Consumer<String> listener : beforeDestroy) {
            try {
                listener.accept(sandboxId);
            } catch (RuntimeException e) {
                LOG.log(System.Logger.Level.WARNING, "preparing the removal of sandbox " + sandboxId + " failed", e);
            }
        }
    }

    /** A transition that began at {@code startNanos} ({@link System#nanoTime()}) completed. Never throws. */
    public void transitionTook(String transition, long startNanos) {
        Duration took = Duration.ofNanos(System.nanoTime() - startNanos);
        for (BiConsumer<String, Duration> listener : transitions) {
            try {
                listener.accept(transition, took);
            } catch (RuntimeException e) {
                LOG.log(System.Logger.Level.WARNING, "recording the duration of a " + transition + " failed", e);
            }
        }
    }

    // ---- reads ----

    /** A page of events, optionally of one sandbox and of some types, newest first unless {@code ascending}. */
    public List<SandboxEvent> page(String sandboxId, List<String> types, boolean ascending, int offset, int limit) {
        String dir = ascending ? "ASC" : "DESC";
        String where = (sandboxId == null ? "1 = 1" : "sandbox_id = :s") + (types.isEmpty() ? "" : " AND type IN (<types>)");
        return store.read(h -> {
            var q = h.createQuery("SELECT * FROM events WHERE " + where + " ORDER BY created_at " + dir + ", id " + dir
                    + " LIMIT :limit OFFSET :offset").bind("limit", limit).bind("offset", offset);
            if (sandboxId != null) q.bind("s", sandboxId);
            if (!types.isEmpty()) q.bindList("types", types);
            return q.map(SandboxEvents::row).list();
        });
    }

    /** One event by id. */
    public Optional<SandboxEvent> find(String eventId) {
        return store.read(h -> h.createQuery("SELECT * FROM events WHERE id = :id").bind("id", eventId)
                .map(SandboxEvents::row).findOne());
    }

    private static SandboxEvent row(ResultSet rs, StatementContext c) throws SQLException {
        return new SandboxEvent(rs.getString("id"), rs.getString("type"), rs.getString("sandbox_id"),
                rs.getString("template_id"), rs.getString("execution_id"), rs.getString("data"),
                Instant.ofEpochMilli(rs.getLong("created_at")));
    }

    /**
     * Whether this server knows sandbox {@code id}: it runs or is paused, or it was killed and something of it
     * (events, logs, metrics) is still within its retention. Metrics and logs of others are 404s.
     */
    public boolean known(String id) {
        return store.read(h -> h.createQuery("""
                SELECT 1 FROM sandboxes WHERE id = :id
                UNION ALL SELECT 1 FROM events WHERE sandbox_id = :id
                UNION ALL SELECT 1 FROM sandbox_logs WHERE sandbox_id = :id
                UNION ALL SELECT 1 FROM sandbox_metrics WHERE sandbox_id = :id""")
                .bind("id", id).setMaxRows(1).mapTo(Integer.class).findFirst().isPresent());
    }

    /** Deletes events older than {@code retention}; returns how many. */
    public int prune(Duration retention) {
        long cutoff = clock.millis() - retention.toMillis();
        return store.write(h -> h.createUpdate("DELETE FROM events WHERE created_at < :cutoff").bind("cutoff", cutoff).execute());
    }
}
