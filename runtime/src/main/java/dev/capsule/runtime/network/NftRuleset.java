package dev.capsule.runtime.network;

import dev.capsule.runtime.NetworkPolicy;

import java.util.Collection;
import java.util.stream.Collectors;

/**
 * Writes the nftables scripts for one capsule-owned table, {@code inet <name>}. Nothing outside that table is
 * touched, so removing the table removes every rule Capsule ever added.
 *
 * <p>Layout: a {@code prerouting} chain drops anything from a sandbox interface whose source is not that
 * sandbox's address (and all IPv6, which sandboxes do not get), so the rules below can trust addresses.
 * {@code forward} sends sandbox traffic to {@code from_sandbox} (no sandbox-to-sandbox, no link-local or cloud
 * metadata, then the sandbox's own chain {@code sbx_<iface>} via the {@code sandbox_egress} map) and
 * traffic towards sandboxes to {@code to_sandbox} (replies only). {@code input} closes the host to sandboxes
 * except the configured host services and replies to the host's own connections; the host reaching a sandbox
 * goes out through {@code output} and is not filtered. {@code postrouting} masquerades the pool.
 */
final class NftRuleset {

    /**
     * Link group of every sandbox veth made by any Capsule instance: cross-instance rules (no sandbox-to-sandbox,
     * the forwarding guard, NAT) match the group, so instances with different prefixes still isolate each other.
     */
    static final int LINK_GROUP = 0xCA75;

    private final NetworkConfig config;
    private final String table;

    NftRuleset(NetworkConfig config) {
        this.config = config;
        this.table = "inet " + config.name();
    }

    /**
     * Creates the table's fixed part if missing and rewrites its fixed rules (in the same transaction, so no
     * packet sees a half-written chain). Per-sandbox chains and map entries are left as they are.
     *
     * @param guard drop forwarded traffic that touches no sandbox: set when Capsule itself turned forwarding
     *              on, so that enabling it opens nothing else on the host
     */
    String ensureTable(boolean guard) {
        String wildcard = '"' + config.interfacePrefix() + "*\"";
        StringBuilder s = new StringBuilder();
        s.append("add table ").append(table).append(" { comment \"capsule sandbox networks; managed by Capsule, "
                + "do not edit\"; }\n");
        s.append("add set ").append(table).append(" sandbox_addrs { type ifname . ipv4_addr; }\n");
        s.append("add map ").append(table).append(" sandbox_egress { type ifname : verdict; }\n");
        chain(s, "prerouting", "type filter hook prerouting priority raw; policy accept;");
        chain(s, "forward", "type filter hook forward priority filter; policy accept;");
        chain(s, "from_sandbox", null);
        chain(s, "to_sandbox", null);
        chain(s, "input", "type filter hook input priority filter; policy accept;");
        chain(s, "to_host", null);
        chain(s, "postrouting", "type nat hook postrouting priority srcnat; policy accept;");

        rule(s, "prerouting", "iifname " + wildcard + " meta nfproto != ipv4 drop comment \"sandboxes have no IPv6\"");
        rule(s, "prerouting", "iifname " + wildcard + " iifname . ip saddr != @sandbox_addrs drop "
                + "comment \"source must be the sandbox's own address\"");

        rule(s, "forward", "iifname " + wildcard + " goto from_sandbox");
        rule(s, "forward", "oifname " + wildcard + " goto to_sandbox");
        if (guard) {
            rule(s, "forward", "iifgroup != " + LINK_GROUP + " oifgroup != " + LINK_GROUP
                    + " drop comment \"Capsule enabled ip_forward: forward sandbox traffic only\"");
        }

        rule(s, "from_sandbox", "oifgroup " + LINK_GROUP + " drop comment \"sandboxes cannot reach each other\"");
        rule(s, "from_sandbox", "ip daddr 169.254.0.0/16 drop comment \"link-local and cloud metadata\"");
        rule(s, "from_sandbox", "iifname vmap @sandbox_egress");
        rule(s, "from_sandbox", "drop comment \"interface of no known sandbox\"");

        rule(s, "to_sandbox", "ct state established,related accept");
        rule(s, "to_sandbox", "drop comment \"only replies reach a sandbox from outside the host\"");

        rule(s, "input", "iifname " + wildcard + " goto to_host");
        rule(s, "to_host", "ct state established,related accept");
        for (HostService.Protocol protocol : HostService.Protocol.values()) {
            String ports = config.hostServices().stream()
                    .filter(service -> service.protocol() == protocol)
                    .map(service -> Integer.toString(service.port()))
                    .distinct()
                    .collect(Collectors.joining(", "));
            if (!ports.isEmpty()) {
                rule(s, "to_host", protocol.name().toLowerCase(java.util.Locale.ROOT) + " dport { " + ports
                        + " } accept comment \"host services open to sandboxes\"");
            }
        }
        rule(s, "to_host", "drop comment \"the host's services are closed to sandboxes\"");

        rule(s, "postrouting", "ip saddr " + config.pool() + " oifgroup != " + LINK_GROUP + " masquerade");
        return s.toString();
    }

    /** Replaces the whole table in one transaction: the fixed part plus exactly {@code sandboxes}. */
    String replaceTable(boolean guard, Collection<SandboxNetwork> sandboxes) {
        StringBuilder s = new StringBuilder(deleteTable());
        if (sandboxes.isEmpty()) {
            return s.toString();
        }
        s.append(ensureTable(guard));
        for (SandboxNetwork sandbox : sandboxes) {
            s.append(addSandbox(sandbox));
        }
        return s.toString();
    }

    /** Deletes the table; never fails on a missing table because it first adds it. */
    String deleteTable() {
        return "add table " + table + "\ndelete table " + table + "\n";
    }

    String addSandbox(SandboxNetwork sandbox) {
        String chain = chainName(sandbox.hostInterface());
        StringBuilder s = new StringBuilder();
        s.append("add chain ").append(table).append(' ').append(chain)
                .append(" { comment \"sandbox ").append(sandbox.sandboxId()).append("\"; }\n");
        policyRules(s, chain, sandbox.policy());
        s.append("add element ").append(table).append(" sandbox_addrs { \"").append(sandbox.hostInterface())
                .append("\" . ").append(sandbox.addressText()).append(" }\n");
        s.append("add element ").append(table).append(" sandbox_egress { \"").append(sandbox.hostInterface())
                .append("\" : goto ").append(chain).append(" }\n");
        return s.toString();
    }

    /** Rewrites a running sandbox's egress chain in one transaction. */
    String updatePolicy(SandboxNetwork sandbox) {
        String chain = chainName(sandbox.hostInterface());
        StringBuilder s = new StringBuilder();
        s.append("flush chain ").append(table).append(' ').append(chain).append('\n');
        policyRules(s, chain, sandbox.policy());
        return s.toString();
    }

    String removeSandbox(String hostInterface, String address) {
        String chain = chainName(hostInterface);
        return "delete element " + table + " sandbox_egress { \"" + hostInterface + "\" }\n"
                + "delete element " + table + " sandbox_addrs { \"" + hostInterface + "\" . " + address + " }\n"
                + "flush chain " + table + ' ' + chain + '\n'
                + "delete chain " + table + ' ' + chain + '\n';
    }

    static String chainName(String hostInterface) {
        return "sbx_" + hostInterface;
    }

    /**
     * Every packet reaching a sandbox's chain belongs to a connection the sandbox opened (nothing from outside
     * may open one to it), so "no internet" drops even established flows: turning access off cuts them at once.
     */
    private void policyRules(StringBuilder s, String chain, NetworkPolicy policy) {
        if (policy.internetAccess()) {
            rule(s, chain, "accept comment \"internet access on\"");
        } else {
            rule(s, chain, "drop comment \"internet access off\"");
        }
    }

    private void chain(StringBuilder s, String name, String spec) {
        s.append("add chain ").append(table).append(' ').append(name);
        if (spec != null) {
            s.append(" { ").append(spec).append(" }");
        }
        s.append('\n');
        s.append("flush chain ").append(table).append(' ').append(name).append('\n');
    }

    private void rule(StringBuilder s, String chain, String rule) {
        s.append("add rule ").append(table).append(' ').append(chain).append(' ').append(rule).append('\n');
    }
}
