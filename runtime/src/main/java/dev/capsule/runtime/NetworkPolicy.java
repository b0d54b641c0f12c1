package dev.capsule.runtime;

import dev.capsule.runtime.network.egress.EgressRules;

import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * A sandbox's egress policy, E2B's {@code allow_internet_access} and {@code network.allowOut} / {@code denyOut} /
 * {@code egressProxy}: internet on or off, IPv4 addresses, CIDRs, domains and {@code *.domain} wildcards allowed,
 * addresses and CIDRs denied (allow beats deny), and a SOCKS5 proxy the sandbox's outbound TCP is tunnelled through.
 * {@code internetAccess} false is the same as {@code 0.0.0.0/0} in {@code denyOut}.
 *
 * <p>Every instance is valid: the constructor refuses what cannot be enforced, with a message that says what to
 * change (bad CIDRs, domains in {@code denyOut}, domains without a deny-all, IPv6, a proxy on an internal address).
 * {@link EgressRules#of} gives the parsed form the network layer enforces.
 *
 * @param egressProxy SOCKS5 proxy for outbound TCP, or null to connect directly
 */
public record NetworkPolicy(boolean internetAccess, List<String> allowOut, List<String> denyOut,
                            EgressProxy egressProxy) {

    /** E2B's default: the sandbox may open connections anywhere outside the host and the other sandboxes. */
    public static final NetworkPolicy OPEN = new NetworkPolicy(true, List.of(), List.of());

    /** {@code allow_internet_access: false}: no outbound connections; the host still reaches the sandbox. */
    public static final NetworkPolicy NO_INTERNET = new NetworkPolicy(false, List.of(), List.of());

    /** E2B's {@code ALL_TRAFFIC}: in {@code denyOut} it makes everything not allowed blocked. */
    public static final String ALL_TRAFFIC = "0.0.0.0/0";

    /** @throws IllegalArgumentException the policy cannot be enforced; the message says why and what to change */
    public NetworkPolicy {
        allowOut = List.copyOf(allowOut);
        denyOut = List.copyOf(denyOut);
        EgressRules.of(allowOut, denyOut, internetAccess, egressProxy); // validates
    }

    public NetworkPolicy(boolean internetAccess, List<String> allowOut, List<String> denyOut) {
        this(internetAccess, allowOut, denyOut, null);
    }

    /**
     * A SOCKS5 proxy (RFC 1928, with RFC 1929 username/password when {@code username} is set) at {@code host:port}.
     * The password is never printed by {@link #toString()}.
     */
    public record EgressProxy(String address, String username, String password) {

        public EgressProxy {
            if (address == null || address.isBlank()) {
                throw new IllegalArgumentException("egressProxy.address is required, as host:port (e.g. "
                        + "proxy.example.com:1080)");
            }
            address = address.strip();
            if (username != null && username.isEmpty()) {
                username = null;
            }
            if (password != null && password.isEmpty()) {
                password = null;
            }
            if (username == null && password != null) {
                throw new IllegalArgumentException("egressProxy.password needs egressProxy.username (SOCKS5 "
                        + "username/password authentication); send both or neither");
            }
            for (String[] field : new String[][] {{"username", username}, {"password", password}}) {
                if (field[1] != null && field[1].getBytes(StandardCharsets.UTF_8).length > 255) {
                    throw new IllegalArgumentException("egressProxy." + field[0] + " is longer than SOCKS5's 255 "
                            + "bytes; shorten it");
                }
            }
            int colon = address.lastIndexOf(':');
            if (colon <= 0 || address.startsWith("[")) {
                throw new IllegalArgumentException("egressProxy.address must be host:port with an IPv4 address or "
                        + "a host name (e.g. proxy.example.com:1080), got '" + address + "'");
            }
            port(address); // validates
        }

        public String host() {
            return address.substring(0, address.lastIndexOf(':')).toLowerCase(java.util.Locale.ROOT);
        }

        public int port() {
            return port(address);
        }

        private static int port(String address) {
            String text = address.substring(address.lastIndexOf(':') + 1);
            int port;
            try {
                port = Integer.parseInt(text);
            } catch (NumberFormatException e) {
                port = -1;
            }
            if (port < 1 || port > 65535) {
                throw new IllegalArgumentException("egressProxy.address needs a port 1-65535 after the ':', got '"
                        + address + "'");
            }
            return port;
        }

        @Override
        public String toString() {
            return "EgressProxy[" + address + (username == null ? "" : ", user " + username) + "]";
        }
    }
}
