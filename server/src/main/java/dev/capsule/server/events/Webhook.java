package dev.capsule.server.events;

import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.time.Instant;
import java.util.List;

/** A webhook as the API shows it; its signature secret is never part of it. */
public record Webhook(String id, String name, String url, boolean enabled, List<String> events, Instant createdAt) {

    public Webhook {
        events = List.copyOf(events);
    }

    public JsonObject toJson() {
        return new JsonObject().put("id", id).put("teamId", SandboxEvents.TEAM_ID).put("name", name)
                .put("createdAt", createdAt.toString()).put("enabled", enabled).put("url", url)
                .put("events", new JsonArray(events));
    }
}
