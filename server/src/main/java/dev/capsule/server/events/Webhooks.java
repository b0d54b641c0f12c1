package dev.capsule.server.events;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.capsule.server.store.SecretBox;
import dev.capsule.server.store.Store;
import dev.capsule.server.store.TimeOrderedIds;
import java.net.URI;
import java.net.URISyntaxException;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Clock;
import java.time.Instant;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.UUID;
import org.jdbi.v3.core.Handle;
import org.jdbi.v3.core.statement.StatementContext;

/**
 * The webhooks of this server (E2B-PROTOCOL.md §7) and their delivery log. Signature secrets are sealed with the
 * store's {@link SecretBox} and only {@link #secret} (for signing) opens them; nothing returns them.
 */
public final class Webhooks {

    /** Finished deliveries kept per webhook for {@code GET /events/webhooks/{id}/deliveries}; older ones are dropped. */
    public static final int DELIVERY_LOG_SIZE = 100;

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final TypeReference<List<String>> STRINGS = new TypeReference<>() {};

    private final Store store;
    private final SecretBox secrets;
    private final Clock clock;

    public Webhooks(Store store, SecretBox secrets, Clock clock) {
        this.store = store;
        this.secrets = secrets;
        this.clock = clock;
    }

    /** What a create or an update sets; null fields are left as they are (update) or defaulted (create). */
    public record Change(String name, String url, Boolean enabled, List<String> events, String secret) {

        /** Checks each given field; throws {@link IllegalArgumentException} saying what to send instead. */
        public Change {
            if (name != null && (name.isBlank() || name.length() > 200)) {
                throw new IllegalArgumentException("'name' must be 1 to 200 characters");
            }
            if (url != null) checkUrl(url);
            if (events != null) {
                if (events.isEmpty()) {
                    throw new IllegalArgumentException("'events' must list at least one event type, e.g. [\""
                            + SandboxEvents.CREATED + "\"]; known types: " + String.join(", ", SandboxEvents.TYPES));
                }
                for (String type : events) {
                    if (!SandboxEvents.TYPES.contains(type)) {
                        throw new IllegalArgumentException("'events' has unknown type '" + type + "'; known types: "
                                + String.join(", ", SandboxEvents.TYPES));
                    }
                }
                events = List.copyOf(new java.util.LinkedHashSet<>(events));
            }
            if (secret != null && (secret.isEmpty() || secret.length() > 1000)) {
                throw new IllegalArgumentException("'signatureSecret' must be 1 to 1000 characters");
            }
        }

        private static void checkUrl(String url) {
            URI uri;
            try {
                uri = new URI(url);
            } catch (URISyntaxException e) {
                throw new IllegalArgumentException("'url' is not a valid URL (" + e.getReason() + "); send e.g. https://example.com/hook");
            }
            String scheme = uri.getScheme() == null ? "" : uri.getScheme().toLowerCase(Locale.ROOT);
            if (!scheme.equals("http") && !scheme.equals("https")) {
                throw new IllegalArgumentException("'url' must be an http or https URL, got '" + url + "'");
            }
            if (uri.getHost() == null || uri.getHost().isEmpty()) {
                throw new IllegalArgumentException("'url' must name a host, got '" + url + "'");
            }
        }
    }

    public Webhook create(Change c) {
        if (c.name() == null || c.url() == null || c.events() == null || c.secret() == null) {
            throw new IllegalArgumentException("a webhook needs 'name', 'url', 'events' and 'signatureSecret'");
        }
        var hook = new Webhook(UUID.randomUUID().toString(), c.name(), c.url(), c.enabled() == null || c.enabled(),
                c.events(), Instant.ofEpochMilli(clock.millis()));
        store.write(h -> h.createUpdate("""
                INSERT INTO webhooks (id, name, url, enabled, events, secret, created_at)
                VALUES (:id, :name, :url, :enabled, :events, :secret, :at)""")
                .bind("id", hook.id()).bind("name", hook.name()).bind("url", hook.url()).bind("enabled", hook.enabled())
                .bind("events", toJson(hook.events())).bind("secret", secrets.seal(c.secret()))
                .bind("at", hook.createdAt().toEpochMilli()).execute());
        return hook;
    }

    public List<Webhook> list() {
        return store.read(h -> h.createQuery("SELECT * FROM webhooks ORDER BY created_at, id").map(Webhooks::row).list());
    }

    public Optional<Webhook> find(String id) {
        return store.read(h -> h.createQuery("SELECT * FROM webhooks WHERE id = :id").bind("id", id).map(Webhooks::row).findOne());
    }

    /** Applies the given fields; empty when there is no such webhook. */
    public Optional<Webhook> update(String id, Change c) {
        return store.write(h -> {
            Optional<Webhook> found = h.createQuery("SELECT * FROM webhooks WHERE id = :id").bind("id", id).map(Webhooks::row).findOne();
            if (found.isEmpty()) return Optional.<Webhook>empty();
            Webhook old = found.get();
            var updated = new Webhook(id, c.name() == null ? old.name() : c.name(), c.url() == null ? old.url() : c.url(),
                    c.enabled() == null ? old.enabled() : c.enabled(), c.events() == null ? old.events() : c.events(),
                    old.createdAt());
            h.createUpdate("UPDATE webhooks SET name = :name, url = :url, enabled = :enabled, events = :events WHERE id = :id")
                    .bind("id", id).bind("name", updated.name()).bind("url", updated.url())
                    .bind("enabled", updated.enabled()).bind("events", toJson(updated.events())).execute();
            if (c.secret() != null) {
                h.createUpdate("UPDATE webhooks SET secret = :secret WHERE id = :id").bind("id", id)
                        .bind("secret", secrets.seal(c.secret())).execute();
            }
            return Optional.of(updated);
        });
    }

    /** Deletes the webhook and its deliveries, pending ones included; empty when there is none. */
    public Optional<Webhook> delete(String id) {
        return store.write(h -> {
            Optional<Webhook> found = h.createQuery("SELECT * FROM webhooks WHERE id = :id").bind("id", id).map(Webhooks::row).findOne();
            found.ifPresent(w -> {
                h.createUpdate("DELETE FROM webhook_deliveries WHERE webhook_id = :id").bind("id", id).execute();
                h.createUpdate("DELETE FROM webhooks WHERE id = :id").bind("id", id).execute();
            });
            return found;
        });
    }

    /** The webhook's signature secret, for signing a delivery. */
    String secret(Handle h, String webhookId) {
        return secrets.open(h.createQuery("SELECT secret FROM webhooks WHERE id = :id").bind("id", webhookId)
                .mapTo(String.class).one());
    }

    /**
     * In the event's own transaction: one pending delivery, due now, per enabled webhook subscribed to its type.
     * Delivery ids are time-ordered, so a webhook's oldest pending delivery is its smallest id.
     */
    static void enqueueDeliveries(Handle h, SandboxEvent event, long now) {
        List<Webhook> hooks = h.createQuery("SELECT * FROM webhooks WHERE enabled = :t").bind("t", true).map(Webhooks::row).list();
        for (Webhook w : hooks) {
            if (!w.events().contains(event.type())) continue;
            h.createUpdate("""
                    INSERT INTO webhook_deliveries (id, webhook_id, event_id, status, attempts, next_attempt_at, created_at)
                    VALUES (:id, :w, :e, 'pending', 0, :now, :now)""")
                    .bind("id", TimeOrderedIds.next(now)).bind("w", w.id()).bind("e", event.id()).bind("now", now).execute();
        }
    }

    /** The newest deliveries of a webhook, pending ones included, newest first. */
    public List<Delivery> deliveries(String webhookId, int limit) {
        return store.read(h -> h.createQuery("""
                SELECT d.*, e.type AS event_type FROM webhook_deliveries d LEFT JOIN events e ON e.id = d.event_id
                WHERE d.webhook_id = :w ORDER BY d.id DESC LIMIT :limit""")
                .bind("w", webhookId).bind("limit", limit).map(Webhooks::delivery).list());
    }

    private static Webhook row(ResultSet rs, StatementContext c) throws SQLException {
        return new Webhook(rs.getString("id"), rs.getString("name"), rs.getString("url"), rs.getBoolean("enabled"),
                fromJson(rs.getString("events")), Instant.ofEpochMilli(rs.getLong("created_at")));
    }

    static Delivery delivery(ResultSet rs, StatementContext c) throws SQLException {
        return new Delivery(rs.getString("id"), rs.getString("webhook_id"), rs.getString("event_id"),
                rs.getString("event_type"), rs.getString("status"), rs.getInt("attempts"),
                Instant.ofEpochMilli(rs.getLong("created_at")), instant(rs, "last_attempt_at"),
                rs.getString("status").equals("pending") ? Instant.ofEpochMilli(rs.getLong("next_attempt_at")) : null,
                (Integer) rs.getObject("last_status", Integer.class), rs.getString("last_error"), instant(rs, "finished_at"));
    }

    private static Instant instant(ResultSet rs, String column) throws SQLException {
        long v = rs.getLong(column);
        return rs.wasNull() ? null : Instant.ofEpochMilli(v);
    }

    private static String toJson(List<String> events) {
        try {
            return JSON.writeValueAsString(events);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    private static List<String> fromJson(String json) {
        try {
            return JSON.readValue(json, STRINGS);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("corrupt webhook event list in the store: " + json, e);
        }
    }
}
