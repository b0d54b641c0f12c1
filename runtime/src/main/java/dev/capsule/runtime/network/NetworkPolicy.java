package dev.capsule.runtime.network;

/**
 * What a sandbox may reach on the network. For now only E2B's {@code allow_internet_access}; the egress
 * policy issue adds allow/deny lists, domains and a proxy here, enforced by the same per-sandbox chain.
 */
public record NetworkPolicy(boolean allowInternetAccess) {

    /** E2B's default: the sandbox may open connections to the internet. */
    public static final NetworkPolicy INTERNET = new NetworkPolicy(true);

    /** {@code allow_internet_access: false}: no outbound connections; inbound from the host still works. */
    public static final NetworkPolicy NO_INTERNET = new NetworkPolicy(false);
}
