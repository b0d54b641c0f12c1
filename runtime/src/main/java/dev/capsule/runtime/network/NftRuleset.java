package dev.capsule.runtime.network;

import dev.capsule.runtime.network.egress.EgressRules;

import java.util.Collection;
import java.util.stream.Collectors;

/**
 * Writes the nftables scripts for one capsule-owned table, {@code inet <name>}. Nothing outside that table is
 * touched, so removing the table removes every rule Capsule ever added. Every rule is in the host's namespace,
 * which nothing inside a sandbox can reach: sandboxes hold no CAP_NET_ADMIN, and even root with it in the sandbox's
 * own namespace changes only that namespace.
 *
 * <p>Layout: a {@code prerouting} chain drops anything from a sandbox interface whose source is not that
 * sandbox's address (and all IPv6, which sandboxes do not get), so the rules below can trust addresses.
 * {@code dstnat} redirects all DNS from sandboxes (UDP and TCP port 53, whatever the address) to Capsule's DNS
 * server, and every new TCP connection of the sandboxes in {@code proxied} (domain rules or an egress proxy) to the
 * transparent proxy. {@code forward} sends sandbox traffic to {@code from_sandbox} (no sandbox-to-sandbox, then the
 * sandbox's own chain {@code sbx_<iface>} via the {@code sandbox_egress} map, with its allow and deny lists and
 * the {@code default_denied} ranges; what they refuse goes to {@code refuse}, which rejects it) and traffic towards
 * sandboxes to {@code to_sandbox} (replies only).
 * {@code input} closes the host to sandboxes except Capsule's DNS server and proxy, the configured host services
 * and replies to the host's own connections, and closes the DNS and proxy ports to everything but sandboxes;
 * the host reaching a sandbox goes out through {@code output} and is not filtered, except the proxy's marked
 * connections, which may reach neither a sandbox nor the host. {@code postrouting} masquerades the pool.
 */
final class NftRuleset {

    /**
     * Link group of every sandbox veth made by any Capsule instance: cross-instance rules (no sandbox-to-sandbox,
     * the forwarding guard, NAT) match the group, so instances with different prefixes still isolate each other.
     */
    static final int LINK_GROUP = 0xCA75;

    /** {@code SO_MARK} of the egress proxy's outgoing connections. */
    static final int PROXY_MARK = 0xCA75;

    /** Where Capsule's DNS server (UDP and TCP) and transparent proxy listen on this host. */
    record EgressPorts(int dnsUdp, int dnsTcp, int proxy) {}

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
     * @param ports where the egress listeners of this instance are
     */
    String ensureTable(boolean guard, EgressPorts ports) {
        String wildcard = '"' + config.interfacePrefix() + "*\"";
        StringBuilder s = new StringBuilder();
        s.append("add table ").append(table).append(" { comment \"capsule sandbox networks; managed by Capsule, "
                + "do not edit\"; }\n");
        s.append("add set ").append(table).append(" sandbox_addrs { type ifname . ipv4_addr; }\n");
        s.append("add map ").append(table).append(" sandbox_egress { type ifname : verdict; }\n");
        s.append("add set ").append(table).append(" proxied { type ifname; }\n");
        s.append("add set ").append(table).append(" default_denied { type ipv4_addr; flags interval; }\n");
        s.append("flush set ").append(table).append(" default_denied\n");
        s.append("add element ").append(table).append(" default_denied { ")
                .append(EgressRules.DEFAULT_DENIED.stream().map(Ipv4Cidr::toString).collect(Collectors.joining(", ")))
                .append(" }\n");
        chain(s, "prerouting", "type filter hook prerouting priority raw; policy accept;");
        chain(s, "dstnat", "type nat hook prerouting priority dstnat; policy accept;");
        chain(s, "output", "type filter hook output priority filter; policy accept;");
        chain(s, "forward", "type filter hook forward priority filter; policy accept;");
        chain(s, "from_sandbox", null);
        chain(s, "to_sandbox", null);
        chain(s, "input", "type filter hook input priority filter; policy accept;");
        chain(s, "to_host", null);
        chain(s, "refuse", null);
        chain(s, "postrouting", "type nat hook postrouting priority srcnat; policy accept;");

        rule(s, "prerouting", "iifname " + wildcard + " meta nfproto != ipv4 drop comment \"sandboxes have no IPv6\"");
        rule(s, "prerouting", "iifname " + wildcard + " iifname . ip saddr != @sandbox_addrs drop "
                + "comment \"source must be the sandbox's own address\"");

        rule(s, "dstnat", "iifname " + wildcard + " udp dport 53 redirect to :" + ports.dnsUdp()
                + " comment \"all DNS of sandboxes goes to Capsule's resolver\"");
        rule(s, "dstnat", "iifname " + wildcard + " tcp dport 53 redirect to :" + ports.dnsTcp());
        rule(s, "dstnat", "iifname @proxied fib daddr type != local meta l4proto tcp redirect to :" + ports.proxy()
                + " comment \"domain rules and egress proxies: TCP goes through Capsule's proxy\"");

        rule(s, "forward", "iifname " + wildcard + " goto from_sandbox");
        rule(s, "forward", "oifname " + wildcard + " goto to_sandbox");
        if (guard) {
            rule(s, "forward", "iifgroup != " + LINK_GROUP + " oifgroup != " + LINK_GROUP
                    + " drop comment \"Capsule enabled ip_forward: forward sandbox traffic only\"");
        }

        rule(s, "from_sandbox", "oifgroup " + LINK_GROUP + " drop comment \"sandboxes cannot reach each other\"");
        rule(s, "from_sandbox", "iifname vmap @sandbox_egress");
        rule(s, "from_sandbox", "drop comment \"interface of no known sandbox\"");

        rule(s, "refuse", "meta l4proto tcp reject with tcp reset comment \"fail at once, do not time out\"");
        rule(s, "refuse", "reject with icmpx type admin-prohibited");

        rule(s, "to_sandbox", "ct state established,related accept");
        rule(s, "to_sandbox", "drop comment \"only replies reach a sandbox from outside the host\"");

        rule(s, "input", "iifname " + wildcard + " goto to_host");
        rule(s, "input", "udp dport " + ports.dnsUdp() + " drop comment \"Capsule's resolver is for sandboxes only\"");
        rule(s, "input", "tcp dport { " + ports.dnsTcp() + ", " + ports.proxy()
                + " } drop comment \"Capsule's resolver and egress proxy are for sandboxes only\"");
        rule(s, "to_host", "ct state established,related accept");
        rule(s, "to_host", "udp dport " + ports.dnsUdp() + " accept comment \"Capsule's resolver\"");
        rule(s, "to_host", "tcp dport { " + ports.dnsTcp() + ", " + ports.proxy()
                + " } accept comment \"Capsule's resolver and egress proxy\"");
        for (HostService.Protocol protocol : HostService.Protocol.values()) {
            String servicePorts = config.hostServices().stream()
                    .filter(service -> service.protocol() == protocol)
                    .map(service -> Integer.toString(service.port()))
                    .distinct()
                    .collect(Collectors.joining(", "));
            if (!servicePorts.isEmpty()) {
                rule(s, "to_host", protocol.name().toLowerCase(java.util.Locale.ROOT) + " dport { " + servicePorts
                        + " } accept comment \"host services open to sandboxes\"");
            }
        }
        rule(s, "to_host", "drop comment \"the host's services are closed to sandboxes\"");

        rule(s, "output", "meta mark " + PROXY_MARK + " oifgroup " + LINK_GROUP
                + " reject comment \"the egress proxy never connects to a sandbox\"");
        rule(s, "output", "meta mark " + PROXY_MARK + " oifname \"lo\" reject comment \"nor to the host\"");

        rule(s, "postrouting", "ip saddr " + config.pool() + " oifgroup != " + LINK_GROUP + " masquerade");
        return s.toString();
    }

    /** Replaces the whole table in one transaction: the fixed part plus exactly {@code sandboxes}. */
    String replaceTable(boolean guard, EgressPorts ports, Collection<SandboxNetwork> sandboxes) {
        StringBuilder s = new StringBuilder(deleteTable());
        if (sandboxes.isEmpty()) {
            return s.toString();
        }
        s.append(ensureTable(guard, ports));
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
        policyRules(s, sandbox);
        s.append("add element ").append(table).append(" sandbox_addrs { \"").append(sandbox.hostInterface())
                .append("\" . ").append(sandbox.addressText()).append(" }\n");
        s.append("add element ").append(table).append(" sandbox_egress { \"").append(sandbox.hostInterface())
                .append("\" : goto ").append(chain).append(" }\n");
        return s.toString();
    }

    /** Rewrites a running sandbox's egress chain and proxying in one transaction. */
    String updatePolicy(SandboxNetwork sandbox) {
        String chain = chainName(sandbox.hostInterface());
        StringBuilder s = new StringBuilder();
        s.append("flush chain ").append(table).append(' ').append(chain).append('\n');
        policyRules(s, sandbox);
        return s.toString();
    }

    String removeSandbox(String hostInterface, String address) {
        String chain = chainName(hostInterface);
        return "delete element " + table + " sandbox_egress { \"" + hostInterface + "\" }\n"
                + "delete element " + table + " sandbox_addrs { \"" + hostInterface + "\" . " + address + " }\n"
                + proxied(hostInterface, false)
                + "flush chain " + table + ' ' + chain + '\n'
                + "delete chain " + table + ' ' + chain + '\n';
    }

    static String chainName(String hostInterface) {
        return "sbx_" + hostInterface;
    }

    /**
     * The sandbox's chain, in the order {@link EgressRules} decides: opened private ranges, the default-denied
     * ranges, allowOut, denyOut, then the default. Every packet reaching it belongs to a connection the sandbox
     * opened (nothing from outside may open one to it), so a stricter policy cuts even established flows at once.
     * What a policy refuses is rejected, not dropped ({@code refuse}: a TCP reset, else ICMP administratively
     * prohibited): a new connection fails at once instead of timing out, and an established one that the policy no
     * longer allows is reset at its next packet. The sandbox learns only that the policy refused it.
     * TCP of a proxied sandbox never gets here (it is redirected to the proxy, which asks the same rules).
     */
    private void policyRules(StringBuilder s, SandboxNetwork sandbox) {
        String chain = chainName(sandbox.hostInterface());
        EgressRules rules = EgressRules.of(sandbox.policy());
        if (!rules.openedPrivate().isEmpty()) {
            rule(s, chain, "ip daddr " + set(rules.openedPrivate()) + " accept comment \"opened private ranges\"");
        }
        rule(s, chain, "ip daddr @default_denied goto refuse comment \"private, link-local, metadata, loopback\"");
        if (rules.allowAll()) {
            rule(s, chain, "accept comment \"allowOut 0.0.0.0/0\"");
        } else {
            if (!rules.allowed().isEmpty()) {
                rule(s, chain, "ip daddr " + set(rules.allowed()) + " accept comment \"allowOut\"");
            }
            if (rules.denyAll()) {
                rule(s, chain, "goto refuse comment \"denyOut 0.0.0.0/0 or internet access off\"");
            } else {
                if (!rules.denied().isEmpty()) {
                    rule(s, chain, "ip daddr " + set(rules.denied()) + " goto refuse comment \"denyOut\"");
                }
                rule(s, chain, "accept comment \"internet access on\"");
            }
        }
        s.append(proxied(sandbox.hostInterface(), rules.proxied()));
    }

    /** Puts the interface into the proxied set or takes it out, whether or not it was there (add, then delete). */
    private String proxied(String hostInterface, boolean proxied) {
        String element = " proxied { \"" + hostInterface + "\" }\n";
        return "add element " + table + element + (proxied ? "" : "delete element " + table + element);
    }

    private static String set(java.util.List<Ipv4Cidr> cidrs) {
        return "{ " + cidrs.stream().map(Ipv4Cidr::toString).collect(Collectors.joining(", ")) + " }";
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
