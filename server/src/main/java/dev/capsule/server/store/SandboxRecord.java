package dev.capsule.server.store;

import dev.capsule.runtime.Resources;
import java.time.Duration;
import java.time.Instant;
import java.util.Map;

/**
 * A sandbox as stored. {@code network} is the create request's {@code network} object as JSON text (null when
 * absent); {@code address} is where the gateway reaches it (null while creating, and while paused without memory:
 * its network is released then); {@code runtime} the driver's name. {@code timeout} is the timeout it was created
 * with (null on rows from before it was stored: the server's default applies). {@code memoryKept}: while paused,
 * whether the pause keeps its memory (false = filesystem only, resuming cold-boots it); while running, whether its
 * last resume or server restart kept its memory (false after a cold boot).
 * {@code trafficAccessToken} is what requests to its user ports must carry in {@code e2b-traffic-access-token}
 * (null: they are public); {@code apiKeyId} the id of the API key that created it (null for rows from before
 * per-key quotas), which the key's sandbox quota counts.
 */
public record SandboxRecord(
        String id,
        String templateId,
        String alias,
        SandboxState state,
        Instant startedAt,
        Instant endAt,
        Resources resources,
        Map<String, String> metadata,
        Map<String, String> envVars,
        String envdAccessToken,
        Boolean allowInternetAccess,
        String network,
        Lifecycle lifecycle,
        String address,
        String runtime,
        Duration timeout,
        boolean memoryKept,
        String trafficAccessToken,
        String apiKeyId) {

    public SandboxRecord {
        metadata = Map.copyOf(metadata);
        envVars = Map.copyOf(envVars);
    }

    /**
     * A sandbox whose own timeout is not known (the server default applies), whose memory was kept, with public
     * user ports and no creating key (rows from before those existed, tests).
     */
    public SandboxRecord(String id, String templateId, String alias, SandboxState state, Instant startedAt, Instant endAt,
                         Resources resources, Map<String, String> metadata, Map<String, String> envVars,
                         String envdAccessToken, Boolean allowInternetAccess, String network, Lifecycle lifecycle,
                         String address, String runtime) {
        this(id, templateId, alias, state, startedAt, endAt, resources, metadata, envVars, envdAccessToken,
                allowInternetAccess, network, lifecycle, address, runtime, null, true,
                null, null);
    }

    /** What happens at the timeout, and whether gateway traffic wakes a paused sandbox (the persistence issue). */
    public record Lifecycle(boolean pauseOnTimeout, boolean autoPauseMemory, boolean autoResume) {
        public static final Lifecycle KILL = new Lifecycle(false, true, false);

        public String onTimeout() {
            return pauseOnTimeout ? "pause" : "kill";
        }
    }

    public SandboxRecord withState(SandboxState s) {
        return new SandboxRecord(id, templateId, alias, s, startedAt, endAt, resources, metadata, envVars,
                envdAccessToken, allowInternetAccess, network, lifecycle, address, runtime, timeout, memoryKept,
                trafficAccessToken, apiKeyId);
    }

    public SandboxRecord withEndAt(Instant t) {
        return new SandboxRecord(id, templateId, alias, state, startedAt, t, resources, metadata, envVars,
                envdAccessToken, allowInternetAccess, network, lifecycle, address, runtime, timeout, memoryKept,
                trafficAccessToken, apiKeyId);
    }

    public SandboxRecord withAddress(String a) {
        return new SandboxRecord(id, templateId, alias, state, startedAt, endAt, resources, metadata, envVars,
                envdAccessToken, allowInternetAccess, network, lifecycle, a, runtime, timeout, memoryKept,
                trafficAccessToken, apiKeyId);
    }

    public SandboxRecord withMemoryKept(boolean kept) {
        return new SandboxRecord(id, templateId, alias, state, startedAt, endAt, resources, metadata, envVars,
                envdAccessToken, allowInternetAccess, network, lifecycle, address, runtime, timeout, kept,
                trafficAccessToken, apiKeyId);
    }
}
