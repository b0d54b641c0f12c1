package dev.capsule.runtime;

import java.util.List;

/**
 * A sandbox's egress policy: internet on or off ({@code allow_internet_access} in E2B's API), and CIDRs, IPs or
 * domains allowed and denied (E2B's {@code network.allowOut}/{@code denyOut}; allow beats deny).
 *
 * <p>What is enforced today: {@code internetAccess}, by the sandbox's nftables chain
 * ({@link dev.capsule.runtime.network.SandboxNetworks}). The allow and deny lists come with the egress policy
 * issue (#5); until then the network layer refuses a policy with non-empty lists rather than ignore them, so
 * nobody believes a deny rule protects them when it does not.
 */
public record NetworkPolicy(boolean internetAccess, List<String> allowOut, List<String> denyOut) {

    /** E2B's default: the sandbox may open connections anywhere outside the host and the other sandboxes. */
    public static final NetworkPolicy OPEN = new NetworkPolicy(true, List.of(), List.of());

    /** {@code allow_internet_access: false}: no outbound connections; the host still reaches the sandbox. */
    public static final NetworkPolicy NO_INTERNET = new NetworkPolicy(false, List.of(), List.of());

    public NetworkPolicy {
        allowOut = List.copyOf(allowOut);
        denyOut = List.copyOf(denyOut);
    }

    /** Whether the policy has allow or deny lists, which are not enforced yet (issue #5). */
    public boolean hasLists() {
        return !allowOut.isEmpty() || !denyOut.isEmpty();
    }
}
