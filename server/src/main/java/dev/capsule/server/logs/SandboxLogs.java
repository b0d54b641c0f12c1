package dev.capsule.server.logs;

import dev.capsule.runtime.ConsoleOutput;
import dev.capsule.runtime.SandboxRuntime;
import dev.capsule.server.logging.LogContext;
import dev.capsule.server.store.Store;
import dev.capsule.server.store.TimeOrderedIds;
import io.vertx.core.json.JsonObject;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.jdbi.v3.core.Handle;

/**
 * Each sandbox's log: its lifecycle messages (written by the events component with each event) and its console
 * — envd's own output, which the driver keeps in a file that goes with the sandbox. {@link #collectRunning} copies
 * new console lines into the store at the sampling interval, and the lifecycle's {@code beforeDestroy} notice
 * makes {@link #collect} read the rest just before a kill, so a killed sandbox's log stays readable for the
 * retention window. A console line's timestamp is when it was copied (the console has none of its own): within
 * one interval of when it was written. Where the copying got to is stored with each line, so a restarted server
 * reads on from there without repeating lines.
 */
public final class SandboxLogs {

    /** The levels in rising order. */
    public static final List<String> LEVELS = List.of("debug", "info", "warn", "error");
    /** One read of a console: lines up to this size. */
    static final int READ_BYTES = 64 * 1024;
    /** At most this much console output is copied per sandbox per pass; the rest follows on the next one. */
    static final int MAX_BYTES_PER_PASS = 1024 * 1024;
    private static final System.Logger LOG = System.getLogger(SandboxLogs.class.getName());

    private final Store store;
    private final SandboxRuntime runtime;
    private final Clock clock;
    private final Map<String, Long> offsets = new ConcurrentHashMap<>();

    public SandboxLogs(Store store, SandboxRuntime runtime, Clock clock) {
        this.store = store;
        this.runtime = runtime;
        this.clock = clock;
    }

    /** A log line as the API returns it. */
    public record Line(String id, Instant timestamp, String level, String message, JsonObject fields) {
        public JsonObject toJson() {
            return new JsonObject().put("timestamp", timestamp.toString()).put("level", level)
                    .put("message", message).put("fields", fields);
        }
    }

    /** Adds a line to a sandbox's log inside the caller's transaction. */
    public static void insert(Handle h, String sandboxId, long at, String level, String message, JsonObject fields,
                              Long consoleOffset) {
        h.createUpdate("""
                INSERT INTO sandbox_logs (id, sandbox_id, logged_at, level, message, fields, console_offset)
                VALUES (:id, :s, :at, :level, :message, :fields, :offset)""")
                .bind("id", TimeOrderedIds.next(at)).bind("s", sandboxId).bind("at", at).bind("level", level)
                .bind("message", message).bind("fields", fields.encode()).bind("offset", consoleOffset).execute();
    }

    /** Copies new console lines of every running sandbox of this server's drivers; forgets the offsets of sandboxes gone. */
    public void collectRunning() {
        List<String> running = store.read(h -> h.createQuery("SELECT id FROM sandboxes WHERE state = 'running' AND runtime IN (<r>)")
                .bindList("r", runtime.drivers()).mapTo(String.class).list());
        offsets.keySet().retainAll(Set.copyOf(running));
        for (String id : running) {
            try {
                LogContext.forSandbox(id, () -> collect(id));
            } catch (RuntimeException e) {
                LOG.log(System.Logger.Level.WARNING, "copying the console of sandbox " + id + " failed", e);
            }
        }
    }

    /** Copies the sandbox's new console lines into its log (at most {@link #MAX_BYTES_PER_PASS}). */
    public synchronized void collect(String sandboxId) {
        long from = offsets.computeIfAbsent(sandboxId, this::storedOffset);
        long start = from;
        while (from - start < MAX_BYTES_PER_PASS) {
            Optional<ConsoleOutput> read = runtime.console(sandboxId, from, READ_BYTES);
            if (read.isEmpty() || read.get().lines().isEmpty()) break;
            ConsoleOutput out = read.get();
            long at = clock.millis();
            store.write(h -> {
                for (ConsoleLines.Entry e : ConsoleLines.parse(out.lines())) {
                    insert(h, sandboxId, at, e.level(), e.message(), e.fields(), out.next());
                }
                return null;
            });
            from = out.next();
        }
        offsets.put(sandboxId, from);
    }

    /** The sandbox is about to be destroyed: copy the rest of its console and forget it. */
    public void beforeDestroy(String sandboxId) {
        collect(sandboxId);
        offsets.remove(sandboxId);
    }

    private long storedOffset(String sandboxId) {
        Long offset = store.read(h -> h.createQuery("SELECT MAX(console_offset) FROM sandbox_logs WHERE sandbox_id = :s")
                .bind("s", sandboxId).mapTo(Long.class).one());
        return offset == null ? 0 : offset;
    }

    /**
     * Lines of a sandbox from {@code cursor} (epoch ms, inclusive): the oldest first going forward, the newest
     * first going backward (lines at or before the cursor). {@code minLevel} drops lower levels; {@code search}
     * keeps lines whose message contains it, ignoring case.
     */
    public List<Line> page(String sandboxId, long cursor, boolean forward, int limit, String minLevel, String search) {
        var sql = new StringBuilder("SELECT * FROM sandbox_logs WHERE sandbox_id = :s AND logged_at ")
                .append(forward ? ">= :cursor" : "<= :cursor");
        List<String> levels = minLevel == null ? LEVELS : LEVELS.subList(LEVELS.indexOf(minLevel), LEVELS.size());
        if (levels.size() < LEVELS.size()) sql.append(" AND level IN (<levels>)");
        if (search != null) sql.append(" AND LOWER(message) LIKE :search ESCAPE '\\'");
        String dir = forward ? "ASC" : "DESC";
        sql.append(" ORDER BY logged_at ").append(dir).append(", id ").append(dir).append(" LIMIT :limit");
        return store.read(h -> {
            var q = h.createQuery(sql.toString()).bind("s", sandboxId).bind("cursor", cursor).bind("limit", limit);
            if (levels.size() < LEVELS.size()) q.bindList("levels", levels);
            if (search != null) {
                String escaped = search.toLowerCase(java.util.Locale.ROOT).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_");
                q.bind("search", "%" + escaped + "%");
            }
            return q.map((rs, c) -> new Line(rs.getString("id"), Instant.ofEpochMilli(rs.getLong("logged_at")),
                    rs.getString("level"), rs.getString("message"), new JsonObject(rs.getString("fields")))).list();
        });
    }

    /** Deletes the logs of sandboxes that are gone and whose lines are older than {@code retention}. */
    public int prune(Duration retention) {
        long cutoff = clock.millis() - retention.toMillis();
        return store.write(h -> h.createUpdate("""
                DELETE FROM sandbox_logs WHERE logged_at < :cutoff AND sandbox_id NOT IN (SELECT id FROM sandboxes)""")
                .bind("cutoff", cutoff).execute());
    }
}
