package dev.capsule.runtime.network.egress;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The egress listeners that run in the server's JVM on the host, where nothing inside a sandbox can reach their
 * configuration: the sandboxes' DNS server ({@link DnsServer}, UDP and TCP) and the transparent TCP proxy
 * ({@link TransparentProxy}). They listen on free ports of all the host's addresses; the host's nftables rules
 * redirect sandbox traffic to them and close those ports to everything that is not a sandbox. Both look the policy
 * up per packet or connection through an {@link EgressDirectory}, so a policy change applies at once.
 */
public final class EgressServices implements AutoCloseable {

    private final DnsServer dns;
    private final TransparentProxy proxy;

    private EgressServices(DnsServer dns, TransparentProxy proxy) {
        this.dns = dns;
        this.proxy = proxy;
    }

    /**
     * Starts the listeners.
     *
     * @param upstreams DNS servers the sandboxes' queries are forwarded to
     * @param mark      {@code SO_MARK} of the proxy's outgoing connections (the host's rules match it)
     */
    public static EgressServices start(List<InetSocketAddress> upstreams, EgressDirectory directory, int mark) {
        UpstreamDns upstream = new UpstreamDns(upstreams);
        DnsServer dns = null;
        try {
            dns = new DnsServer(upstream, directory);
            return new EgressServices(dns, new TransparentProxy(upstream, directory, mark));
        } catch (IOException | RuntimeException e) {
            if (dns != null) {
                dns.close();
            }
            if (e instanceof IOException io) {
                throw new UncheckedIOException("cannot start the sandboxes' DNS server and egress proxy: "
                        + io.getMessage(), io);
            }
            throw (RuntimeException) e;
        }
    }

    public int dnsUdpPort() {
        return dns.udpPort();
    }

    public int dnsTcpPort() {
        return dns.tcpPort();
    }

    public int proxyPort() {
        return proxy.port();
    }

    /**
     * Throws unless this JVM can run the transparent proxy (it needs {@code --add-exports
     * java.base/sun.nio.ch=ALL-UNNAMED}), which policies with domains or an egress proxy need.
     */
    public static void requireProxySupport() {
        SocketOptions.requireAvailable();
    }

    /** Ends the proxied connections of the sandbox at {@code sandbox} that its current rules no longer allow. */
    public void policyChanged(InetAddress sandbox) {
        proxy.recheck(sandbox);
    }

    @Override
    public void close() {
        try {
            proxy.close();
        } finally {
            dns.close();
        }
    }

    /**
     * The name servers of the host's {@code /etc/resolv.conf} ({@code nameserver} lines), which are what the host
     * itself resolves with; {@code 1.1.1.1} and {@code 8.8.8.8} when it lists none.
     */
    public static List<String> hostResolvers() {
        List<String> servers = new ArrayList<>();
        try {
            for (String line : Files.readAllLines(Path.of("/etc/resolv.conf"))) {
                String[] words = line.strip().split("\\s+");
                if (words.length >= 2 && words[0].equals("nameserver")) {
                    servers.add(words[1]);
                }
            }
        } catch (IOException e) {
            // no resolv.conf: the fallback below
        }
        return servers.isEmpty() ? List.of("1.1.1.1", "8.8.8.8") : List.copyOf(servers);
    }

    /**
     * {@code host} or {@code host:port} (IPv4 literal, or a bracketed or bare IPv6 literal) as a DNS server address.
     *
     * @throws IllegalArgumentException not an address literal
     */
    public static InetSocketAddress parseServer(String text) {
        String host = text.strip();
        int port = 53;
        if (host.startsWith("[")) {
            int close = host.indexOf(']');
            if (close < 0) {
                throw new IllegalArgumentException("DNS server '" + text + "' lacks a closing ']'");
            }
            if (host.length() > close + 1) {
                port = port(text, host.substring(close + 2));
            }
            host = host.substring(1, close);
        } else if (host.indexOf(':') >= 0 && host.indexOf(':') == host.lastIndexOf(':')) {
            port = port(text, host.substring(host.indexOf(':') + 1));
            host = host.substring(0, host.indexOf(':'));
        }
        if (host.contains(":")) {
            try {
                return new InetSocketAddress(InetAddress.getByName(host), port); // an IPv6 literal: no lookup
            } catch (IOException e) {
                throw new IllegalArgumentException("DNS server '" + text + "' is not an IP address", e);
            }
        }
        java.net.Inet4Address address = dev.capsule.runtime.network.Ipv4Cidr.parseInet(host);
        if (address == null) {
            throw new IllegalArgumentException("DNS server '" + text + "' must be an IP address, optionally with "
                    + ":port (e.g. 192.0.2.53 or 192.0.2.53:5353)");
        }
        return new InetSocketAddress(address, port);
    }

    private static int port(String text, String port) {
        try {
            int value = Integer.parseInt(port);
            if (value >= 1 && value <= 65535) {
                return value;
            }
        } catch (NumberFormatException e) {
            // below
        }
        throw new IllegalArgumentException("DNS server '" + text + "' has no valid port after ':'");
    }
}
