package dev.capsule.runtime.network.egress;

import dev.capsule.runtime.NetworkPolicy;
import dev.capsule.runtime.network.Ipv4Cidr;

import java.net.Inet4Address;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;

/**
 * A {@link NetworkPolicy} parsed into what the host enforces, and the one place its decisions are made (the
 * nftables rules are written from the same lists, the proxy and the resolver ask the methods here).
 *
 * <p>Order of a decision for an address, first match wins: an {@code allowOut} CIDR inside a default-denied range
 * allows (that is how a user opens a private network on purpose); the {@link #DEFAULT_DENIED} ranges deny;
 * {@code allowOut} allows (allow beats deny); {@code denyOut} denies; everything else is allowed unless the policy
 * denies all ({@code 0.0.0.0/0} in {@code denyOut} or internet access off). Domains in {@code allowOut} are names,
 * not addresses: they allow TCP connections whose TLS SNI or HTTP Host names them (checked by the transparent
 * proxy, which connects to the addresses the name resolves to) and DNS answers for them.
 */
public final class EgressRules {

    /**
     * Ranges no sandbox reaches unless an {@code allowOut} CIDR inside them opens them: "this network", private
     * (RFC 1918), shared/CGNAT (RFC 6598), loopback, link-local (incl. the cloud metadata service 169.254.169.254),
     * multicast and reserved. The host itself and the other sandboxes are closed by the host's own rules and can
     * never be opened.
     */
    public static final List<Ipv4Cidr> DEFAULT_DENIED = List.of(
            Ipv4Cidr.parse("0.0.0.0/8"), Ipv4Cidr.parse("10.0.0.0/8"), Ipv4Cidr.parse("100.64.0.0/10"),
            Ipv4Cidr.parse("127.0.0.0/8"), Ipv4Cidr.parse("169.254.0.0/16"), Ipv4Cidr.parse("172.16.0.0/12"),
            Ipv4Cidr.parse("192.168.0.0/16"), Ipv4Cidr.parse("224.0.0.0/4"), Ipv4Cidr.parse("240.0.0.0/4"));

    /** More entries than this per list are refused: each becomes a set element on every packet's path. */
    static final int MAX_ENTRIES = 1000;

    private final List<Ipv4Cidr> openedPrivate;
    private final List<Ipv4Cidr> allowed;
    private final List<Ipv4Cidr> denied;
    private final List<DomainPattern> domains;
    private final boolean allowAll;
    private final boolean denyAll;
    private final NetworkPolicy.EgressProxy proxy;

    private EgressRules(List<Ipv4Cidr> openedPrivate, List<Ipv4Cidr> allowed, List<Ipv4Cidr> denied,
                        List<DomainPattern> domains, boolean allowAll, boolean denyAll,
                        NetworkPolicy.EgressProxy proxy) {
        this.openedPrivate = openedPrivate;
        this.allowed = allowed;
        this.denied = denied;
        this.domains = domains;
        this.allowAll = allowAll;
        this.denyAll = denyAll;
        this.proxy = proxy;
    }

    public static EgressRules of(NetworkPolicy policy) {
        return of(policy.allowOut(), policy.denyOut(), policy.internetAccess(), policy.egressProxy());
    }

    /**
     * Parses and checks a policy's parts ({@link NetworkPolicy}'s constructor calls this).
     *
     * @throws IllegalArgumentException what cannot be enforced, naming the entry and what to do instead
     */
    public static EgressRules of(List<String> allowOut, List<String> denyOut, boolean internetAccess,
                                 NetworkPolicy.EgressProxy proxy) {
        for (var list : List.of(List.of("allowOut", allowOut), List.of("denyOut", denyOut))) {
            if (((List<?>) list.get(1)).size() > MAX_ENTRIES) {
                throw new IllegalArgumentException("network." + list.get(0) + " has more than " + MAX_ENTRIES
                        + " entries; use CIDRs that cover several addresses");
            }
        }
        List<Ipv4Cidr> openedPrivate = new ArrayList<>();
        List<Ipv4Cidr> allowed = new ArrayList<>();
        List<DomainPattern> domains = new ArrayList<>();
        boolean allowAll = false;
        for (String entry : allowOut) {
            Ipv4Cidr cidr = parseAddressEntry(entry, "allowOut");
            if (cidr == null) {
                domains.add(DomainPattern.parse(entry));
            } else if (cidr.prefixLength() == 0) {
                allowAll = true;
            } else if (insideDefaultDenied(cidr)) {
                openedPrivate.add(cidr);
            } else {
                allowed.add(cidr);
            }
        }
        List<Ipv4Cidr> denied = new ArrayList<>();
        boolean denyAll = !internetAccess;
        for (String entry : denyOut) {
            Ipv4Cidr cidr = parseAddressEntry(entry, "denyOut");
            if (cidr == null) {
                throw new IllegalArgumentException("network.denyOut takes IPv4 addresses and CIDRs only, not '"
                        + entry + "': domains can only be allowed (put it in allowOut and deny 0.0.0.0/0 instead)");
            }
            if (cidr.prefixLength() == 0) {
                denyAll = true;
            } else {
                denied.add(cidr);
            }
        }
        if (!domains.isEmpty() && !denyAll) {
            throw new IllegalArgumentException("network.allowOut has domains " + domains + " but denyOut does not "
                    + "contain " + NetworkPolicy.ALL_TRAFFIC + ": allowing a domain only means something when "
                    + "everything else is denied; add \"" + NetworkPolicy.ALL_TRAFFIC + "\" to denyOut");
        }
        if (proxy != null) {
            Inet4Address literal = Ipv4Cidr.parseInet(proxy.host());
            if (literal != null && inAny(DEFAULT_DENIED, literal)) {
                throw new IllegalArgumentException("egressProxy.address " + proxy.address() + " is in a private, "
                        + "loopback or link-local range, which the host never reaches on a sandbox's behalf; use "
                        + "a proxy on a public address");
            }
            if (literal == null && DomainPattern.normalize(proxy.host()) == null) {
                throw new IllegalArgumentException("egressProxy.address must be host:port with an IPv4 address or a "
                        + "host name, got '" + proxy.address() + "'");
            }
        }
        return new EgressRules(minimal(openedPrivate), minimal(allowed), minimal(denied), List.copyOf(domains),
                allowAll, denyAll, proxy);
    }

    /** The entry as a CIDR ({@code a.b.c.d} is {@code /32}), null if it is not an address (a domain, then). */
    private static Ipv4Cidr parseAddressEntry(String entry, String list) {
        if (entry == null || entry.isBlank()) {
            throw new IllegalArgumentException("network." + list + " has an empty entry; remove it");
        }
        String text = entry.strip();
        if (text.contains(":")) {
            throw new IllegalArgumentException("network." + list + " entry '" + entry + "' is IPv6 or has a port: "
                    + "sandboxes have IPv4 only and rules cover all ports; use an IPv4 address, CIDR or domain");
        }
        if (text.contains("/")) {
            try {
                return Ipv4Cidr.parse(text);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("network." + list + " entry '" + entry + "' is not a valid "
                        + "IPv4 CIDR: " + e.getMessage(), e);
            }
        }
        if (text.chars().allMatch(c -> c == '.' || (c >= '0' && c <= '9'))) {
            try {
                return Ipv4Cidr.ofAddress(text);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("network." + list + " entry '" + entry + "' is not a valid "
                        + "IPv4 address", e);
            }
        }
        return null;
    }

    private static boolean insideDefaultDenied(Ipv4Cidr cidr) {
        return DEFAULT_DENIED.stream().anyMatch(range -> range.contains(cidr));
    }

    /** Without the CIDRs another one contains, so the rest are disjoint (what nftables interval sets require). */
    private static List<Ipv4Cidr> minimal(List<Ipv4Cidr> cidrs) {
        List<Ipv4Cidr> distinct = List.copyOf(new LinkedHashSet<>(cidrs));
        return distinct.stream()
                .filter(cidr -> distinct.stream().noneMatch(other -> !other.equals(cidr) && other.contains(cidr)))
                .toList();
    }

    static boolean inAny(Collection<Ipv4Cidr> cidrs, Inet4Address address) {
        for (Ipv4Cidr cidr : cidrs) {
            if (cidr.contains(address)) {
                return true;
            }
        }
        return false;
    }

    /** Whether the sandbox may open a connection to {@code address} by address (any protocol, any port). */
    public boolean allows(Inet4Address address) {
        if (inAny(openedPrivate, address)) {
            return true;
        }
        if (inAny(DEFAULT_DENIED, address)) {
            return false;
        }
        if (allowAll || inAny(allowed, address)) {
            return true;
        }
        return !denyAll && !inAny(denied, address);
    }

    /** Whether {@code host} is one of the allowed domains. */
    public boolean allowsName(String host) {
        for (DomainPattern domain : domains) {
            if (domain.matches(host)) {
                return true;
            }
        }
        return false;
    }

    /**
     * Whether the proxy may connect to {@code address} for an allowed domain: anything but the default-denied
     * ranges (unless opened), so a name resolving to a private or metadata address (DNS rebinding) gets nowhere.
     */
    public boolean allowsResolved(Inet4Address address) {
        return inAny(openedPrivate, address) || !inAny(DEFAULT_DENIED, address);
    }

    /** Whether DNS answers only the allowed domains: everything not allowed is denied. */
    public boolean denyAll() {
        return denyAll;
    }

    public boolean allowAll() {
        return allowAll;
    }

    /** Whether the sandbox's TCP goes through the transparent proxy: domain rules or an egress proxy. */
    public boolean proxied() {
        return !domains.isEmpty() || proxy != null;
    }

    public boolean hasDomains() {
        return !domains.isEmpty();
    }

    public NetworkPolicy.EgressProxy proxy() {
        return proxy;
    }

    /** {@code allowOut} CIDRs inside a default-denied range, which they open. */
    public List<Ipv4Cidr> openedPrivate() {
        return openedPrivate;
    }

    public List<Ipv4Cidr> allowed() {
        return allowed;
    }

    public List<Ipv4Cidr> denied() {
        return denied;
    }

    @Override
    public String toString() {
        return String.format(Locale.ROOT, "EgressRules[opened %s, allow %s, domains %s, deny %s, proxy %s]",
                openedPrivate, allowAll ? "all" : allowed, domains, denyAll ? "all" : denied, proxy);
    }
}
