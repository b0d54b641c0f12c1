package dev.capsule.runtime.network.egress;

import dev.capsule.runtime.NetworkPolicy;
import dev.capsule.runtime.network.Ipv4Cidr;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Where nftables sends every new TCP connection of a sandbox whose policy has domain rules or an egress proxy. For
 * each connection it learns the original destination ({@code SO_ORIGINAL_DST}) and decides with the sandbox's
 * {@link EgressRules}:
 * <ul>
 *   <li>a destination the address rules allow is connected to as dialled;</li>
 *   <li>otherwise, with domain rules, it reads the TLS SNI or HTTP Host the client sends first and, when that name is
 *       allowed, connects to <em>the addresses the name resolves to</em> (through Capsule's resolver), preferring
 *       the dialled one when it is among them — so a CDN's changing addresses work, and a client that dials a
 *       blocked address with an allowed name reaches the allowed name's server, never the blocked one. Resolved
 *       addresses in private, loopback or link-local ranges are refused (DNS rebinding);</li>
 *   <li>anything else is reset.</li>
 * </ul>
 * With an egress proxy the same decision is made, then the connection is opened through the proxy (SOCKS5 CONNECT,
 * with the name when the decision was by name). If the proxy cannot be reached the connection fails: nothing falls
 * back to a direct connection. The proxy's own connections carry a mark that the host's rules keep away from the
 * host and the sandboxes.
 */
final class TransparentProxy implements AutoCloseable {

    private static final System.Logger LOG = System.getLogger(TransparentProxy.class.getName());
    /** How long a client may take to send its ClientHello or request head before the connection is dropped. */
    static final int SNIFF_TIMEOUT_MILLIS = 10_000;
    private static final int CONNECT_TIMEOUT_MILLIS = 10_000;

    private final UpstreamDns dns;
    private final EgressDirectory directory;
    private final int mark;
    private final ServerSocketChannel server;
    private final Thread acceptLoop;
    private final ConcurrentHashMap<InetAddress, Set<Relay>> relays = new ConcurrentHashMap<>();
    private volatile boolean closed;

    TransparentProxy(UpstreamDns dns, EgressDirectory directory, int mark) throws IOException {
        this.dns = dns;
        this.directory = directory;
        this.mark = mark;
        this.server = ServerSocketChannel.open().bind(new InetSocketAddress(0), 1024);
        this.acceptLoop = Thread.ofVirtual().name("capsule-egress-proxy").start(this::serve);
    }

    int port() {
        return server.socket().getLocalPort();
    }

    private void serve() {
        while (!closed) {
            SocketChannel client;
            try {
                client = server.accept();
            } catch (ClosedChannelException e) {
                return;
            } catch (IOException e) {
                LOG.log(System.Logger.Level.WARNING, "egress proxy: accepting failed", e);
                continue;
            }
            Thread.ofVirtual().start(() -> handle(client));
        }
    }

    /** One proxied connection: decide, connect, relay until both sides are done. */
    private void handle(SocketChannel client) {
        Relay relay = null;
        try {
            InetSocketAddress peer = (InetSocketAddress) client.getRemoteAddress();
            EgressRules rules = directory.rulesFor(peer.getAddress());
            InetSocketAddress original = SocketOptions.originalDestination(client);
            if (rules == null || original.equals(client.getLocalAddress())
                    || !(original.getAddress() instanceof Inet4Address dialled)) {
                reset(client); // not a sandbox, or a direct connection to the proxy's port
                return;
            }
            Socket socket = client.socket();
            byte[] prefix = new byte[0];
            String name = null;
            List<Inet4Address> targets;
            if (rules.allows(dialled)) {
                targets = List.of(dialled);
            } else if (rules.hasDomains()) {
                socket.setSoTimeout(SNIFF_TIMEOUT_MILLIS);
                HostSniffer.Sniffed sniffed = HostSniffer.sniff(socket.getInputStream());
                socket.setSoTimeout(0);
                prefix = sniffed.prefix();
                name = sniffed.host();
                targets = name == null || !rules.allowsName(name) ? List.of() : resolve(name, dialled, rules);
            } else {
                targets = List.of();
            }
            if (targets.isEmpty()) {
                String named = name;
                LOG.log(System.Logger.Level.DEBUG, () -> "egress proxy: blocked " + peer.getAddress().getHostAddress()
                        + " -> " + original + (named == null ? "" : " (" + named + ")"));
                reset(client);
                return;
            }
            relay = new Relay(peer.getAddress(), dialled, name, rules.proxy(), client);
            register(relay);
            relay.recheck(directory.rulesFor(peer.getAddress())); // in case the policy changed while we decided
            relay.upstream = connect(targets, original.getPort(), name, rules.proxy());
            relay.run(prefix);
        } catch (IOException | RuntimeException e) {
            LOG.log(System.Logger.Level.DEBUG, "egress proxy: connection ended: " + e.getMessage());
            reset(client);
        } finally {
            if (relay != null) {
                relay.close();
                unregister(relay);
            }
        }
    }

    /** The allowed addresses of {@code name}, the dialled one first when it is among them. */
    private List<Inet4Address> resolve(String name, Inet4Address dialled, EgressRules rules) throws IOException {
        List<Inet4Address> targets = new ArrayList<>();
        for (Inet4Address address : dns.resolve(name)) {
            if (rules.allowsResolved(address)) {
                if (address.equals(dialled)) {
                    targets.addFirst(address);
                } else {
                    targets.add(address);
                }
            }
        }
        return targets;
    }

    /** A connection to the first target that answers, directly or through the egress proxy. */
    private Socket connect(List<Inet4Address> targets, int port, String name, NetworkPolicy.EgressProxy proxy)
            throws IOException {
        if (proxy == null) {
            IOException failure = null;
            for (Inet4Address target : targets) {
                try {
                    return open(new InetSocketAddress(target, port));
                } catch (IOException e) {
                    failure = e;
                }
            }
            throw failure;
        }
        Socket tunnel = open(proxyAddress(proxy));
        try {
            Socks5.connect(tunnel.getInputStream(), tunnel.getOutputStream(), proxy, name, targets.getFirst(), port);
            return tunnel;
        } catch (IOException | RuntimeException e) {
            tunnel.close();
            throw e;
        }
    }

    /** The proxy's address; a name is resolved through Capsule's resolver and must not lead inside. */
    private InetSocketAddress proxyAddress(NetworkPolicy.EgressProxy proxy) throws IOException {
        Inet4Address literal = Ipv4Cidr.parseInet(proxy.host());
        List<Inet4Address> candidates = literal != null ? List.of(literal) : dns.resolve(proxy.host());
        for (Inet4Address candidate : candidates) {
            if (!EgressRules.inAny(EgressRules.DEFAULT_DENIED, candidate)) {
                return new InetSocketAddress(candidate, proxy.port());
            }
        }
        throw new IOException("egress proxy " + proxy.address() + " resolves to no public IPv4 address "
                + candidates);
    }

    private Socket open(InetSocketAddress address) throws IOException {
        SocketChannel channel = SocketChannel.open();
        try {
            SocketOptions.mark(channel, mark);
            channel.socket().connect(address, CONNECT_TIMEOUT_MILLIS);
            return channel.socket();
        } catch (IOException | RuntimeException e) {
            channel.close();
            throw e;
        }
    }

    private static void reset(SocketChannel client) {
        try (client) {
            client.socket().setSoLinger(true, 0); // RST: the client fails at once instead of waiting
        } catch (IOException e) {
            // already gone
        }
    }

    private void register(Relay relay) {
        relays.computeIfAbsent(relay.sandbox, k -> ConcurrentHashMap.newKeySet()).add(relay);
    }

    private void unregister(Relay relay) {
        relays.computeIfPresent(relay.sandbox, (k, set) -> {
            set.remove(relay);
            return set.isEmpty() ? null : set;
        });
    }

    /**
     * Re-decides the open connections of the sandbox at {@code sandbox} under its current rules and closes those no
     * longer allowed (or whose egress proxy changed), so a policy update also ends proxied connections.
     */
    void recheck(InetAddress sandbox) {
        EgressRules rules = directory.rulesFor(sandbox);
        for (Relay relay : relays.getOrDefault(sandbox, Set.of())) {
            relay.recheck(rules);
        }
    }

    @Override
    public void close() {
        closed = true;
        try {
            server.close();
            acceptLoop.join();
        } catch (IOException e) {
            LOG.log(System.Logger.Level.WARNING, "closing the egress proxy failed", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        relays.values().forEach(set -> set.forEach(Relay::close));
    }

    /** One relayed connection, with what it was allowed by. */
    private static final class Relay {
        final InetAddress sandbox;
        final Inet4Address dialled;
        final String name;
        final NetworkPolicy.EgressProxy proxy;
        final SocketChannel client;
        volatile Socket upstream;
        volatile boolean closed;

        Relay(InetAddress sandbox, Inet4Address dialled, String name, NetworkPolicy.EgressProxy proxy,
              SocketChannel client) {
            this.sandbox = sandbox;
            this.dialled = dialled;
            this.name = name;
            this.proxy = proxy;
            this.client = client;
        }

        void recheck(EgressRules rules) {
            boolean allowed = rules != null && Objects.equals(rules.proxy(), proxy)
                    && (name == null ? rules.allows(dialled) : rules.allowsName(name));
            if (!allowed) {
                close();
            }
        }

        /** Sends what was read while deciding, then copies both ways; returns when both directions ended. */
        void run(byte[] prefix) throws IOException {
            Socket up = upstream;
            if (closed) {
                return;
            }
            Socket down = client.socket();
            OutputStream upOut = up.getOutputStream();
            upOut.write(prefix);
            upOut.flush();
            Thread back = Thread.ofVirtual().start(() -> pump(up::getInputStream, down));
            pump(down::getInputStream, up);
            try {
                back.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }

        /**
         * Copies until end of stream, then half-closes the other side; any failure ends the whole relay. The
         * stream is not closed here: closing a socket's stream closes the socket, which the other direction uses.
         */
        private void pump(InputStreamSource source, Socket to) {
            try {
                source.open().transferTo(to.getOutputStream());
                to.shutdownOutput();
            } catch (IOException e) {
                close();
            }
        }

        void close() {
            closed = true;
            try {
                client.close();
            } catch (IOException e) {
                // closing anyway
            }
            Socket up = upstream;
            if (up != null) {
                try {
                    up.close();
                } catch (IOException e) {
                    // closing anyway
                }
            }
        }
    }

    /** An input stream that may fail to open, so {@link Relay#pump} handles that failure like any other. */
    @FunctionalInterface
    private interface InputStreamSource {
        InputStream open() throws IOException;
    }
}
