package dev.capsule.server.store;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import dev.capsule.runtime.Resources;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.locks.ReentrantLock;
import java.util.stream.Stream;
import org.flywaydb.core.Flyway;
import org.jdbi.v3.core.Handle;
import org.jdbi.v3.core.Jdbi;
import org.jdbi.v3.core.statement.StatementContext;

/**
 * The control plane's database: sandboxes, templates, API keys and events, on SQLite (a file in the data directory)
 * or PostgreSQL (a {@code jdbc:postgresql:} URL), with the same Flyway migrations.
 *
 * <p>SQLite allows one writer at a time. Every write here takes {@link #writeLock} first and runs in its own short
 * transaction, so writers in this JVM queue in Java instead of racing for SQLite's lock (two deferred transactions
 * upgrading read locks is how SQLite deadlocks); WAL mode lets reads run beside the writer, and the busy timeout
 * covers other processes (the CLI) writing to the same file. PostgreSQL needs no lock and gets none.
 */
public final class Store implements AutoCloseable {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final TypeReference<Map<String, String>> STRING_MAP = new TypeReference<>() {};

    private final HikariDataSource dataSource;
    private final Jdbi jdbi;
    private final SecretBox secrets;
    private final boolean sqlite;
    private final ReentrantLock writeLock = new ReentrantLock(true);

    private Store(HikariDataSource dataSource, SecretBox secrets, boolean sqlite) {
        this.dataSource = dataSource;
        this.jdbi = Jdbi.create(dataSource);
        this.secrets = secrets;
        this.sqlite = sqlite;
    }

    /** Opens the database at {@code url} (creating a SQLite file's directory), and migrates it to the latest schema. */
    public static Store open(String url, String user, String password, SecretBox secrets) {
        boolean sqlite = url.startsWith("jdbc:sqlite:");
        if (!sqlite && !url.startsWith("jdbc:postgresql:")) {
            throw new IllegalArgumentException("unsupported database URL '" + url
                    + "'; use jdbc:sqlite:<file> or jdbc:postgresql://host:port/db");
        }
        var hc = new HikariConfig();
        hc.setJdbcUrl(url);
        hc.setPoolName("capsule-store");
        if (user != null && !user.isBlank()) hc.setUsername(user);
        if (password != null && !password.isBlank()) hc.setPassword(password);
        if (sqlite) {
            createParentDirectory(url);
            // sqlite-jdbc applies these pragmas to every connection it opens.
            hc.addDataSourceProperty("journal_mode", "WAL");
            hc.addDataSourceProperty("busy_timeout", "10000");
            hc.addDataSourceProperty("foreign_keys", "true");
            hc.setMaximumPoolSize(4);
        } else {
            hc.setMaximumPoolSize(8);
        }
        var ds = new HikariDataSource(hc);
        try {
            Flyway.configure().dataSource(ds).locations("classpath:db/migration").load().migrate();
        } catch (RuntimeException e) {
            ds.close();
            throw e;
        }
        return new Store(ds, secrets, sqlite);
    }

    private static void createParentDirectory(String url) {
        String path = url.substring("jdbc:sqlite:".length());
        int q = path.indexOf('?');
        if (q >= 0) path = path.substring(0, q);
        if (path.isEmpty() || path.startsWith(":memory:") || path.startsWith("file:")) return;
        var parent = java.nio.file.Path.of(path).toAbsolutePath().getParent();
        try {
            java.nio.file.Files.createDirectories(parent);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException("cannot create " + parent + " for the database; check permissions"
                    + " or set CAPSULE_DATA_DIR to a writable directory", e);
        }
    }

    public boolean isSqlite() {
        return sqlite;
    }

    /** Runs {@code work} in one write transaction (under the writer lock on SQLite). */
    public <T> T write(java.util.function.Function<Handle, T> work) {
        if (sqlite) writeLock.lock();
        try {
            return jdbi.inTransaction(work::apply);
        } finally {
            if (sqlite) writeLock.unlock();
        }
    }

    /** Runs {@code work} with a handle for reads (no transaction, no writer lock). */
    public <T> T read(java.util.function.Function<Handle, T> work) {
        return jdbi.withHandle(work::apply);
    }

    // ---- sandboxes ----

    public void insertSandbox(SandboxRecord s) {
        write(h -> h.createUpdate("""
                INSERT INTO sandboxes (id, template_id, alias, state, started_at, end_at, cpu_count, memory_mb,
                  disk_size_mb, metadata, env_vars, envd_access_token, allow_internet_access, network, on_timeout,
                  auto_resume, auto_pause_memory, address, runtime, timeout_ms, memory_kept, traffic_access_token,
                  api_key_id)
                VALUES (:id, :templateId, :alias, :state, :startedAt, :endAt, :cpu, :mem, :disk, :metadata, :envVars,
                  :token, :internet, :network, :onTimeout, :autoResume, :autoPauseMemory, :address, :runtime,
                  :timeoutMs, :memoryKept, :trafficToken, :apiKeyId)""")
                .bind("id", s.id()).bind("templateId", s.templateId()).bind("alias", s.alias())
                .bind("state", s.state().wire()).bind("startedAt", s.startedAt().toEpochMilli())
                .bind("endAt", s.endAt().toEpochMilli()).bind("cpu", s.resources().cpuCount())
                .bind("mem", s.resources().memoryMB()).bind("disk", s.resources().diskSizeMB())
                .bind("metadata", toJson(s.metadata())).bind("envVars", secrets.seal(toJson(s.envVars())))
                .bind("token", secrets.seal(s.envdAccessToken())).bind("internet", s.allowInternetAccess())
                .bind("network", s.network()).bind("onTimeout", s.lifecycle().onTimeout())
                .bind("autoResume", s.lifecycle().autoResume()).bind("autoPauseMemory", s.lifecycle().autoPauseMemory())
                .bind("address", s.address()).bind("runtime", s.runtime())
                .bind("timeoutMs", s.timeout() == null ? null : s.timeout().toMillis()).bind("memoryKept", s.memoryKept())
                .bind("trafficToken", s.trafficAccessToken() == null ? null : secrets.seal(s.trafficAccessToken()))
                .bind("apiKeyId", s.apiKeyId())
                .execute());
    }

    public Optional<SandboxRecord> findSandbox(String id) {
        return read(h -> h.createQuery("SELECT * FROM sandboxes WHERE id = :id").bind("id", id)
                .map(this::sandbox).findOne());
    }

    /** Sets state, address and end time of an existing row; false if the row is gone. */
    public boolean updateSandbox(String id, SandboxState state, String address, Instant endAt) {
        return write(h -> h.createUpdate("UPDATE sandboxes SET state = :state, address = :address, end_at = :endAt WHERE id = :id")
                .bind("id", id).bind("state", state.wire()).bind("address", address).bind("endAt", endAt.toEpochMilli())
                .execute()) == 1;
    }

    /** As {@link #updateSandbox(String, SandboxState, String, Instant)}, also setting whether memory was kept. */
    public boolean updateSandbox(String id, SandboxState state, String address, Instant endAt, boolean memoryKept) {
        return write(h -> h.createUpdate("""
                UPDATE sandboxes SET state = :state, address = :address, end_at = :endAt, memory_kept = :kept
                WHERE id = :id""")
                .bind("id", id).bind("state", state.wire()).bind("address", address).bind("endAt", endAt.toEpochMilli())
                .bind("kept", memoryKept).execute()) == 1;
    }

    /** Records a sandbox's replaced egress settings ({@code allow_internet_access} and the network JSON). */
    public boolean updateNetwork(String id, Boolean allowInternetAccess, String network) {
        return write(h -> h.createUpdate("UPDATE sandboxes SET allow_internet_access = :internet, network = :network"
                        + " WHERE id = :id")
                .bind("id", id).bind("internet", allowInternetAccess).bind("network", network).execute()) == 1;
    }

    public boolean deleteSandbox(String id) {
        return write(h -> h.createUpdate("DELETE FROM sandboxes WHERE id = :id").bind("id", id).execute()) == 1;
    }

    public List<SandboxRecord> allSandboxes() {
        return read(h -> h.createQuery("SELECT * FROM sandboxes ORDER BY started_at, id").map(this::sandbox).list());
    }

    /**
     * What the sandbox quota of API key {@code apiKeyId} sees: how many of its sandboxes are in {@code states}, and
     * the earliest end time among its running ones (null when none runs).
     */
    public KeyUsage keyUsage(String apiKeyId, Set<SandboxState> states) {
        return read(h -> h.createQuery("""
                SELECT COUNT(*) AS n, MIN(CASE WHEN state = :running THEN end_at END) AS first_end
                FROM sandboxes WHERE api_key_id = :key AND state IN (<states>)""")
                .bind("key", apiKeyId).bind("running", SandboxState.RUNNING.wire())
                .bindList("states", states.stream().map(SandboxState::wire).toList())
                .map((rs, c) -> new KeyUsage(rs.getInt("n"), instantOrNull(rs, "first_end"))).one());
    }

    /** A key's sandbox count, and when its first running sandbox times out (null: none runs). */
    public record KeyUsage(int sandboxes, Instant firstEnd) {}

    public int countSandboxes(SandboxState state) {
        return read(h -> h.createQuery("SELECT COUNT(*) FROM sandboxes WHERE state = :s").bind("s", state.wire())
                .mapTo(Integer.class).one());
    }

    /**
     * One page of sandboxes in {@code q.states()}, ordered by (started_at, id). Metadata is matched here rather than
     * in SQL because JSON operators differ between SQLite and PostgreSQL; rows are streamed, so only what a page
     * needs is read.
     */
    public SandboxQuery.Page listSandboxes(SandboxQuery q) {
        if (q.states().isEmpty()) return new SandboxQuery.Page(List.of(), null);
        String cmp = q.ascending() ? ">" : "<";
        String dir = q.ascending() ? "ASC" : "DESC";
        String where = "state IN (<states>)" + (q.after() == null ? ""
                : " AND (started_at " + cmp + " :t OR (started_at = :t AND id " + cmp + " :cid))");
        return read(h -> {
            var query = h.createQuery("SELECT * FROM sandboxes WHERE " + where
                    + " ORDER BY started_at " + dir + ", id " + dir)
                    .bindList("states", q.states().stream().map(SandboxState::wire).toList());
            if (q.after() != null) query.bind("t", q.after().startedAt().toEpochMilli()).bind("cid", q.after().id());
            var items = new ArrayList<SandboxRecord>();
            boolean more = false;
            try (Stream<SandboxRecord> rows = query.map(this::sandbox).stream()) {
                var it = rows.filter(s -> s.metadata().entrySet().containsAll(q.metadata().entrySet())).iterator();
                while (it.hasNext()) {
                    SandboxRecord s = it.next();
                    if (items.size() == q.limit()) {
                        more = true;
                        break;
                    }
                    items.add(s);
                }
            }
            SandboxRecord last = items.isEmpty() ? null : items.getLast();
            return new SandboxQuery.Page(List.copyOf(items),
                    more ? new SandboxQuery.Cursor(last.startedAt(), last.id()) : null);
        });
    }

    private SandboxRecord sandbox(ResultSet rs, StatementContext ctx) throws SQLException {
        Boolean internet = rs.getObject("allow_internet_access") == null ? null : rs.getBoolean("allow_internet_access");
        return new SandboxRecord(
                rs.getString("id"), rs.getString("template_id"), rs.getString("alias"),
                SandboxState.fromWire(rs.getString("state")),
                Instant.ofEpochMilli(rs.getLong("started_at")), Instant.ofEpochMilli(rs.getLong("end_at")),
                new Resources(rs.getInt("cpu_count"), rs.getInt("memory_mb"), rs.getInt("disk_size_mb")),
                fromJson(rs.getString("metadata")), fromJson(secrets.open(rs.getString("env_vars"))),
                secrets.open(rs.getString("envd_access_token")), internet, rs.getString("network"),
                new SandboxRecord.Lifecycle("pause".equals(rs.getString("on_timeout")),
                        rs.getBoolean("auto_pause_memory"), rs.getBoolean("auto_resume")),
                rs.getString("address"), rs.getString("runtime"),
                rs.getObject("timeout_ms") == null ? null : java.time.Duration.ofMillis(rs.getLong("timeout_ms")),
                rs.getBoolean("memory_kept"),
                rs.getString("traffic_access_token") == null ? null : secrets.open(rs.getString("traffic_access_token")),
                rs.getString("api_key_id"));
    }

    // ---- templates ----

    /**
     * The template or snapshot with this id or alias (a snapshot's name); a {@code :tag} suffix is accepted and only
     * {@code default} exists. Snapshots still being stored and the internal snapshots of forks are not found.
     */
    public Optional<TemplateRecord> findTemplate(String ref) {
        String name = untagged(ref);
        return read(h -> h.createQuery("""
                SELECT t.id FROM templates t WHERE t.ready = :ready AND t.kind <> 'fork' AND t.id IN (
                  SELECT id FROM templates WHERE id = :n UNION SELECT template_id FROM template_aliases WHERE alias = :n)""")
                .bind("n", name).bind("ready", true).mapTo(String.class).findFirst()
                .map(id -> template(h, id)));
    }

    /** {@code ref} without its {@code :default} tag. */
    private static String untagged(String ref) {
        String tag = ":" + SnapshotRecord.TAG;
        return ref.endsWith(tag) ? ref.substring(0, ref.length() - tag.length()) : ref;
    }

    private TemplateRecord template(Handle h, String id) {
        var aliases = h.createQuery("SELECT alias FROM template_aliases WHERE template_id = :id ORDER BY alias")
                .bind("id", id).mapTo(String.class).list();
        return h.createQuery("SELECT cpu_count, memory_mb, disk_size_mb, runtime FROM templates WHERE id = :id")
                .bind("id", id).map((rs, c) -> new TemplateRecord(id, aliases,
                        new Resources(rs.getInt(1), rs.getInt(2), rs.getInt(3)), rs.getString(4))).one();
    }

    /** Creates or replaces a template and its aliases. */
    public void putTemplate(TemplateRecord t) {
        write(h -> {
            h.createUpdate("DELETE FROM template_aliases WHERE template_id = :id").bind("id", t.id()).execute();
            h.createUpdate("DELETE FROM templates WHERE id = :id").bind("id", t.id()).execute();
            h.createUpdate("""
                    INSERT INTO templates (id, cpu_count, memory_mb, disk_size_mb, created_at, runtime)
                    VALUES (:id, :c, :m, :d, :at, :runtime)""")
                    .bind("id", t.id()).bind("c", t.resources().cpuCount()).bind("m", t.resources().memoryMB())
                    .bind("d", t.resources().diskSizeMB()).bind("at", System.currentTimeMillis())
                    .bind("runtime", t.runtime()).execute();
            for (String alias : t.aliases()) {
                h.createUpdate("INSERT INTO template_aliases (alias, template_id) VALUES (:a, :id)")
                        .bind("a", alias).bind("id", t.id()).execute();
            }
            return null;
        });
    }

    // ---- snapshots ----

    /** {@code templates.kind} of a snapshot a user made (listed, deletable) and of a fork's internal one. */
    public static final String SNAPSHOT = "snapshot", FORK_SNAPSHOT = "fork";

    /**
     * Records a snapshot the driver is about to store, not ready: it is neither found nor listed until
     * {@link #finishSnapshot}, and restart recovery deletes it if that never happens ({@link #unfinishedSnapshots}).
     * {@code runtime}: the driver that stores it, the only one that can start sandboxes from it.
     */
    public void insertSnapshot(String id, String kind, String sourceSandboxId, Resources resources, String runtime,
                               Instant createdAt) {
        write(h -> h.createUpdate("""
                INSERT INTO templates (id, cpu_count, memory_mb, disk_size_mb, created_at, kind, ready, source_sandbox_id,
                  runtime)
                VALUES (:id, :c, :m, :d, :at, :kind, :ready, :source, :runtime)""")
                .bind("id", id).bind("c", resources.cpuCount()).bind("m", resources.memoryMB())
                .bind("d", resources.diskSizeMB()).bind("at", createdAt.toEpochMilli()).bind("kind", kind)
                .bind("ready", false).bind("source", sourceSandboxId).bind("runtime", runtime).execute());
    }

    /**
     * Marks a stored snapshot ready with its size and gives it {@code name} (null: none). A snapshot that had that
     * name loses it together with its row, in the same transaction, so the name never names nothing; its id is
     * returned so the caller deletes its files.
     *
     * @throws IllegalArgumentException the name is a template's that is not a snapshot (nothing changed)
     */
    public Optional<String> finishSnapshot(String id, long sizeBytes, String name) {
        return write(h -> {
            Optional<String> replaced = Optional.empty();
            if (name != null) {
                var holder = h.createQuery("""
                        SELECT t.id, t.kind FROM templates t WHERE t.id = :n
                        UNION SELECT t.id, t.kind FROM templates t JOIN template_aliases a ON a.template_id = t.id
                        WHERE a.alias = :n""")
                        .bind("n", name).map((rs, c) -> new String[] {rs.getString(1), rs.getString(2)}).list();
                for (String[] row : holder) {
                    if (!SNAPSHOT.equals(row[1]) || row[0].equals(name)) {
                        throw new IllegalArgumentException("the name '" + name + "' is taken by template '" + row[0] + "'");
                    }
                    deleteTemplateRow(h, row[0]);
                    replaced = Optional.of(row[0]);
                }
                h.createUpdate("INSERT INTO template_aliases (alias, template_id) VALUES (:a, :id)")
                        .bind("a", name).bind("id", id).execute();
            }
            h.createUpdate("UPDATE templates SET ready = :ready, size_bytes = :size WHERE id = :id")
                    .bind("ready", true).bind("size", sizeBytes).bind("id", id).execute();
            return replaced;
        });
    }

    /** The kind ({@code template}, {@code snapshot}...) of the ready template that {@code ref} names by id or alias. */
    public Optional<String> templateKind(String ref) {
        String name = untagged(ref);
        return read(h -> h.createQuery("""
                SELECT t.kind FROM templates t WHERE t.ready = :ready AND t.id IN (
                  SELECT id FROM templates WHERE id = :n UNION SELECT template_id FROM template_aliases WHERE alias = :n)""")
                .bind("n", name).bind("ready", true).mapTo(String.class).findFirst());
    }

    /** The ready snapshot (not a fork's) that {@code ref} names: its id, name or either with {@code :default}. */
    public Optional<SnapshotRecord> findSnapshot(String ref) {
        String name = untagged(ref);
        return read(h -> h.createQuery(SNAPSHOT_COLUMNS + """
                WHERE t.kind = :kind AND t.ready = :ready AND t.id IN (
                  SELECT id FROM templates WHERE id = :n UNION SELECT template_id FROM template_aliases WHERE alias = :n)""")
                .bind("n", name).bind("kind", SNAPSHOT).bind("ready", true).map(Store::snapshot).findFirst());
    }

    /**
     * One page of ready snapshots (not forks' internal ones), newest first, optionally only those taken from
     * {@code sourceSandboxId} or named {@code name} (with or without {@code :default}).
     */
    public SnapshotRecord.Page listSnapshots(String sourceSandboxId, String name, SandboxQuery.Cursor after, int limit) {
        if (limit < 1) throw new IllegalArgumentException("limit must be >= 1");
        String where = "WHERE t.kind = :kind AND t.ready = :ready"
                + (sourceSandboxId == null ? "" : " AND t.source_sandbox_id = :source")
                + (name == null ? "" : " AND a.alias = :name")
                + (after == null ? "" : " AND (t.created_at < :t OR (t.created_at = :t AND t.id < :cid))");
        return read(h -> {
            var query = h.createQuery(SNAPSHOT_COLUMNS + where + " ORDER BY t.created_at DESC, t.id DESC LIMIT :limit")
                    .bind("kind", SNAPSHOT).bind("ready", true).bind("limit", limit + 1);
            if (sourceSandboxId != null) query.bind("source", sourceSandboxId);
            if (name != null) query.bind("name", untagged(name));
            if (after != null) query.bind("t", after.startedAt().toEpochMilli()).bind("cid", after.id());
            List<SnapshotRecord> rows = query.map(Store::snapshot).list();
            if (rows.size() <= limit) return new SnapshotRecord.Page(rows, null);
            List<SnapshotRecord> page = List.copyOf(rows.subList(0, limit));
            SnapshotRecord last = page.getLast();
            return new SnapshotRecord.Page(page, new SandboxQuery.Cursor(last.createdAt(), last.id()));
        });
    }

    private static final String SNAPSHOT_COLUMNS = """
            SELECT t.id, a.alias, t.source_sandbox_id, t.created_at, t.size_bytes
            FROM templates t LEFT JOIN template_aliases a ON a.template_id = t.id
            """;

    private static SnapshotRecord snapshot(ResultSet rs, StatementContext ctx) throws SQLException {
        return new SnapshotRecord(rs.getString(1), rs.getString(2), rs.getString(3), Instant.ofEpochMilli(rs.getLong(4)),
                rs.getLong(5));
    }

    /** Ids of snapshots a crash left unfinished, and of forks' internal snapshots (never meant to outlive a call). */
    public List<String> unfinishedSnapshots() {
        return read(h -> h.createQuery("SELECT id FROM templates WHERE ready = :ready OR kind = :fork ORDER BY id")
                .bind("ready", false).bind("fork", FORK_SNAPSHOT).mapTo(String.class).list());
    }

    /** Deletes a template row and its aliases; false if there was none. */
    public boolean deleteTemplate(String id) {
        return write(h -> deleteTemplateRow(h, id));
    }

    private static boolean deleteTemplateRow(Handle h, String id) {
        h.createUpdate("DELETE FROM template_aliases WHERE template_id = :id").bind("id", id).execute();
        return h.createUpdate("DELETE FROM templates WHERE id = :id").bind("id", id).execute() == 1;
    }

    // ---- API keys ----

    public void insertApiKey(ApiKeyRecord k) {
        write(h -> h.createUpdate("INSERT INTO api_keys (id, key_hash, name, created_at) VALUES (:id, :hash, :name, :at)")
                .bind("id", k.id()).bind("hash", k.keyHash()).bind("name", k.name())
                .bind("at", k.createdAt().toEpochMilli()).execute());
    }

    public Optional<ApiKeyRecord> findApiKey(String id) {
        return read(h -> h.createQuery("SELECT * FROM api_keys WHERE id = :id").bind("id", id).map(Store::apiKey).findOne());
    }

    public List<ApiKeyRecord> listApiKeys() {
        return read(h -> h.createQuery("SELECT * FROM api_keys ORDER BY created_at, id").map(Store::apiKey).list());
    }

    /** Sets a key's own limits (null fields: the server's settings); false if there is no such key. */
    public boolean setApiKeyLimits(String id, ApiKeyRecord.Limits limits) {
        return write(h -> h.createUpdate("""
                UPDATE api_keys SET max_requests = :requests, max_creates_per_second = :creates, max_sandboxes = :sandboxes
                WHERE id = :id""")
                .bind("id", id).bind("requests", limits.requests()).bind("creates", limits.createsPerSecond())
                .bind("sandboxes", limits.sandboxes()).execute()) == 1;
    }

    /** Marks a key revoked; false if there is no such key or it was already revoked. */
    public boolean revokeApiKey(String id, Instant at) {
        return write(h -> h.createUpdate("UPDATE api_keys SET revoked_at = :at WHERE id = :id AND revoked_at IS NULL")
                .bind("id", id).bind("at", at.toEpochMilli()).execute()) == 1;
    }

    public boolean hasActiveApiKey() {
        return read(h -> h.createQuery("SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL").mapTo(Integer.class).one()) > 0;
    }

    private static ApiKeyRecord apiKey(ResultSet rs, StatementContext ctx) throws SQLException {
        return new ApiKeyRecord(rs.getString("id"), rs.getString("key_hash"), rs.getString("name"),
                Instant.ofEpochMilli(rs.getLong("created_at")), instantOrNull(rs, "last_used_at"), instantOrNull(rs, "revoked_at"),
                new ApiKeyRecord.Limits(integerOrNull(rs, "max_requests"), integerOrNull(rs, "max_creates_per_second"),
                        integerOrNull(rs, "max_sandboxes")));
    }

    // ---- events ----

    public List<EventRecord> events(String sandboxId) {
        return read(h -> h.createQuery("SELECT * FROM events WHERE sandbox_id = :s ORDER BY created_at, id").bind("s", sandboxId)
                .map((rs, c) -> new EventRecord(rs.getString("id"), rs.getString("sandbox_id"), rs.getString("type"),
                        rs.getString("data"), Instant.ofEpochMilli(rs.getLong("created_at")))).list());
    }

    // ---- helpers ----

    private static Instant instantOrNull(ResultSet rs, String col) throws SQLException {
        long v = rs.getLong(col);
        return rs.wasNull() ? null : Instant.ofEpochMilli(v);
    }

    private static Integer integerOrNull(ResultSet rs, String col) throws SQLException {
        int v = rs.getInt(col);
        return rs.wasNull() ? null : v;
    }

    static String toJson(Map<String, String> m) {
        try {
            return JSON.writeValueAsString(new LinkedHashMap<>(m));
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    static Map<String, String> fromJson(String s) {
        try {
            return JSON.readValue(s, STRING_MAP);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("corrupt JSON in the store: " + e.getOriginalMessage(), e);
        }
    }

    /** Test and diagnostics access to the raw database. */
    public Jdbi jdbi() {
        return jdbi;
    }

    @Override
    public void close() {
        dataSource.close();
    }
}
