package dev.capsule.runtime;

import java.util.List;

/**
 * A sandbox's egress policy: internet on or off, CIDRs/IPs/domains allowed and denied (allow beats deny). The
 * security issue adds domains, proxies and public-traffic rules; the fields here are what the control plane has now.
 */
public record NetworkPolicy(boolean internetAccess, List<String> allowOut, List<String> denyOut) {

    public static final NetworkPolicy OPEN = new NetworkPolicy(true, List.of(), List.of());

    public NetworkPolicy {
        allowOut = List.copyOf(allowOut);
        denyOut = List.copyOf(denyOut);
    }
}
