package dev.capsule.server.api;

import dev.capsule.runtime.NetworkPolicy;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.util.List;

/**
 * E2B's {@code allow_internet_access} and {@code network} ({@code SandboxNetworkConfig} on create,
 * {@code SandboxNetworkUpdateConfig} on {@code PUT /sandboxes/{id}/network}) as a {@link NetworkPolicy}, refusing with
 * 400 and the reason what cannot be enforced. The stored form of {@code network} never holds the proxy password.
 */
final class NetworkBodies {

    private NetworkBodies() {}

    /** The policy of a create or update body; {@code network} may be null. */
    static NetworkPolicy policy(Boolean internet, JsonObject network) {
        List<String> allowOut = network == null ? List.of() : Bodies.stringList(network, "allowOut");
        List<String> denyOut = network == null ? List.of() : Bodies.stringList(network, "denyOut");
        JsonObject proxy = network == null ? null : Bodies.optionalObject(network, "egressProxy");
        if (network != null) {
            checkRules(network);
        }
        try {
            NetworkPolicy.EgressProxy egressProxy = proxy == null ? null : new NetworkPolicy.EgressProxy(
                    string(proxy, "address"), string(proxy, "username"), string(proxy, "password"));
            return new NetworkPolicy(!Boolean.FALSE.equals(internet), allowOut, denyOut, egressProxy);
        } catch (IllegalArgumentException e) {
            throw Bodies.bad(e.getMessage());
        }
    }

    /** {@code network} as stored and returned by getInfo: as sent, without {@code egressProxy.password}. */
    static String stored(JsonObject network) {
        if (network == null) return null;
        JsonObject copy = network.copy();
        JsonObject proxy = copy.getValue("egressProxy") instanceof JsonObject o ? o : null;
        if (proxy != null) proxy.remove("password");
        return copy.encode();
    }

    /**
     * {@code rules} (per-domain request transforms) need the proxy to terminate TLS, which Capsule does not do: a
     * rule that transforms anything is refused rather than silently not applied; rules without transforms are fine.
     */
    private static void checkRules(JsonObject network) {
        JsonObject rules = Bodies.optionalObject(network, "rules");
        if (rules == null) return;
        for (var entry : rules) {
            if (!(entry.getValue() instanceof JsonArray list)) {
                throw Bodies.bad("'network.rules." + entry.getKey() + "' must be an array of rules");
            }
            for (Object rule : list) {
                if (rule instanceof JsonObject o && o.getValue("transform") != null) {
                    throw Bodies.bad("network.rules transforms (for '" + entry.getKey() + "') are not supported by "
                            + "this server: it does not decrypt the sandbox's TLS; remove the transform");
                }
            }
        }
    }

    private static String string(JsonObject object, String field) {
        Object value = object.getValue(field);
        if (value == null) return null;
        if (value instanceof String s) return s;
        throw Bodies.bad("'network.egressProxy." + field + "' must be a string");
    }
}
