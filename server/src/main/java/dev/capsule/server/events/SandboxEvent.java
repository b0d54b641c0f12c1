package dev.capsule.server.events;

import io.vertx.core.json.JsonObject;
import java.time.Instant;

/**
 * A lifecycle event as stored, rendered in E2B's shape by {@link #toJson()}: the events API returns it and
 * webhooks receive it as their POST body. {@code data} is the event's JSON text or null ({@code eventData}).
 * Capsule has one team per server ({@link SandboxEvents#TEAM_ID}) and no separate template builds, so
 * {@code sandboxBuildId} is the template id.
 */
public record SandboxEvent(String id, String type, String sandboxId, String templateId, String executionId,
                           String data, Instant timestamp) {

    public JsonObject toJson() {
        return new JsonObject()
                .put("version", "v1")
                .put("id", id)
                .put("type", type)
                .put("eventData", data == null ? null : new JsonObject(data))
                .put("sandboxBuildId", templateId)
                .put("sandboxExecutionId", executionId)
                .put("sandboxId", sandboxId)
                .put("sandboxTeamId", SandboxEvents.TEAM_ID)
                .put("sandboxTemplateId", templateId)
                .put("timestamp", timestamp.toString());
    }
}
