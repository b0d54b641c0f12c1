/**
 * Sandbox networking on the host, driven by {@code ip} (iproute2) and {@code nft} (nftables).
 *
 * <p>Each sandbox gets a named network namespace {@code <name>-<sandboxId>} (a bind mount under
 * {@code /run/netns}, which a runtime joins by path), a veth pair whose host end {@code <prefix><block>}
 * carries the sandbox id as its alias and Capsule's link group, and a /30 of the pool: gateway on the host
 * end, the sandbox on {@code eth0} with a default route via the gateway. Everything Capsule knows is
 * derivable from the host, which is how {@link dev.capsule.runtime.network.SandboxNetworks#adopt} works after
 * a restart without a state file.
 *
 * <p>All rules live in one table, {@code inet <name>}: anti-spoofing in prerouting, NAT for the pool,
 * per-sandbox egress chains, no sandbox-to-sandbox traffic, no access to the host's services except the
 * configured ones, no link-local/metadata range. The host reaches every port of a sandbox. Deleting the table
 * removes all of it; Capsule touches nothing else in the ruleset. When Capsule turns {@code ip_forward} on it
 * also guards forwarding so only sandbox traffic is forwarded, and turns it off again with the last sandbox.
 */
package dev.capsule.runtime.network;
