package dev.capsule.server.events;

import io.vertx.core.json.JsonObject;
import java.time.Instant;

/**
 * One event's delivery to one webhook, as its delivery log shows it: {@code pending} (with the time of the next
 * attempt), {@code delivered} or {@code failed} (every attempt refused), the attempts made and the last outcome.
 * Its id is the {@code e2b-delivery-id} header, the same on every attempt.
 */
public record Delivery(String id, String webhookId, String eventId, String eventType, String status, int attempts,
                       Instant createdAt, Instant lastAttemptAt, Instant nextAttemptAt, Integer lastStatus,
                       String lastError, Instant finishedAt) {

    public JsonObject toJson() {
        return new JsonObject().put("id", id).put("webhookId", webhookId).put("eventId", eventId)
                .put("eventType", eventType).put("status", status).put("attempts", attempts)
                .put("createdAt", createdAt.toString())
                .put("lastAttemptAt", lastAttemptAt == null ? null : lastAttemptAt.toString())
                .put("nextAttemptAt", nextAttemptAt == null ? null : nextAttemptAt.toString())
                .put("responseStatus", lastStatus).put("error", lastError)
                .put("finishedAt", finishedAt == null ? null : finishedAt.toString());
    }
}
