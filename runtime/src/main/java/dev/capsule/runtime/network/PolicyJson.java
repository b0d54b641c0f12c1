package dev.capsule.runtime.network;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.capsule.runtime.NetworkPolicy;
import java.util.ArrayList;
import java.util.List;

/**
 * A sandbox's egress policy as the drivers record it in their own per-sandbox files (the oci driver's
 * {@code sandbox.json}, the microvm driver's {@code vm.json}), so a restarted server or a cold boot re-applies the
 * policy in force. The egress proxy's password is kept too: the data directory is root's only, and nothing else has
 * it (the store drops it).
 */
public final class PolicyJson {

    private PolicyJson() {
    }

    /** Writes {@code policy} as the object {@code field} of {@code parent}. */
    public static void write(ObjectNode parent, String field, NetworkPolicy policy) {
        ObjectNode json = parent.putObject(field);
        json.put("internetAccess", policy.internetAccess());
        policy.allowOut().forEach(json.putArray("allowOut")::add);
        policy.denyOut().forEach(json.putArray("denyOut")::add);
        NetworkPolicy.EgressProxy proxy = policy.egressProxy();
        if (proxy != null) {
            json.putObject("egressProxy").put("address", proxy.address()).put("username", proxy.username())
                    .put("password", proxy.password());
        }
    }

    /** The policy written by {@link #write}; a missing object is an open policy. */
    public static NetworkPolicy read(JsonNode json) {
        List<String> allow = new ArrayList<>();
        json.path("allowOut").forEach(node -> allow.add(node.asText()));
        List<String> deny = new ArrayList<>();
        json.path("denyOut").forEach(node -> deny.add(node.asText()));
        JsonNode proxy = json.path("egressProxy");
        return new NetworkPolicy(json.path("internetAccess").asBoolean(true), allow, deny,
                proxy.isObject() ? new NetworkPolicy.EgressProxy(proxy.path("address").asText(),
                        proxy.path("username").textValue(), proxy.path("password").textValue()) : null);
    }
}
