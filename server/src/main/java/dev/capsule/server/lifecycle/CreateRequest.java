package dev.capsule.server.lifecycle;

import dev.capsule.runtime.NetworkPolicy;
import dev.capsule.server.store.SandboxRecord;
import java.time.Duration;
import java.util.Map;

/**
 * A validated create request. {@code timeout} null means the configured default; {@code network} is the request's
 * network object as JSON text (null if absent), stored for getInfo;
 * {@code policy} is what the driver enforces of it now. {@code publicTraffic} false gives the sandbox a traffic
 * access token its user ports require; {@code apiKeyId} is the key that asks (its quota counts the sandbox);
 * {@code runtime} the driver to run it on (a Capsule extension; null: the template's, else the server's default).
 */
public record CreateRequest(
        String templateRef,
        Duration timeout,
        Map<String, String> metadata,
        Map<String, String> envVars,
        Boolean allowInternetAccess,
        String network,
        NetworkPolicy policy,
        SandboxRecord.Lifecycle lifecycle,
        boolean publicTraffic,
        String apiKeyId,
        String runtime) {

    public CreateRequest {
        metadata = Map.copyOf(metadata);
        envVars = Map.copyOf(envVars);
    }
}
