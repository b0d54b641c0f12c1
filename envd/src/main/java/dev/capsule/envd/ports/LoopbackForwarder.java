package dev.capsule.envd.ports;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.NetworkInterface;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.IntPredicate;
import java.util.function.Supplier;

/**
 * Makes servers that listen only on the sandbox's loopback reachable through the gateway, as E2B's envd does: dev
 * servers often bind 127.0.0.1, and the gateway can only reach the sandbox's own address. Every scan reads
 * {@code /proc/net/tcp} and {@code /proc/net/tcp6}; for each port listened on only at a loopback address it listens
 * on the sandbox's other addresses at the same port and relays every connection to the loopback listener. When that
 * listener goes away, so does the relay. Only for envd inside a sandbox ({@code --forward-loopback}): on a host it
 * would expose the host's private services.
 */
public final class LoopbackForwarder implements AutoCloseable {

    private static final System.Logger LOG = System.getLogger(LoopbackForwarder.class.getName());

    /**
     * A listening TCP socket from /proc/net/tcp*: its port, whether it is bound to a loopback address only, and
     * whether that address is IPv6 proper (::1; an IPv4-mapped ::ffff:127.0.0.1, as Java binds, counts as IPv4).
     */
    public record Listener(int port, boolean loopback, boolean ipv6) {}

    private final Supplier<List<Listener>> scanner;
    private final Supplier<List<InetAddress>> bindAddresses;
    private final IntPredicate forwardable;
    private final Duration interval;
    private final Map<Integer, Relay> relays = new HashMap<>();
    private final Thread loop;
    private volatile boolean closed;

    /**
     * @param scanner       the listening sockets now (normally {@link #procNetTcp})
     * @param bindAddresses where relays listen (normally {@link #sandboxAddresses}: every non-loopback IPv4 address)
     * @param forwardable   which ports may be relayed (envd's own port is already reachable)
     */
    public LoopbackForwarder(Supplier<List<Listener>> scanner, Supplier<List<InetAddress>> bindAddresses,
                             IntPredicate forwardable, Duration interval) {
        this.scanner = scanner;
        this.bindAddresses = bindAddresses;
        this.forwardable = forwardable;
        this.interval = interval;
        this.loop = Thread.ofVirtual().name("envd-loopback-forwarder").unstarted(this::run);
    }

    /** The forwarder envd runs in a sandbox: this machine's /proc and addresses, a scan a second. */
    public static LoopbackForwarder forSandbox(int envdPort) {
        return new LoopbackForwarder(LoopbackForwarder::procNetTcp, LoopbackForwarder::sandboxAddresses,
                port -> port != envdPort, Duration.ofSeconds(1));
    }

    public LoopbackForwarder start() {
        loop.start();
        return this;
    }

    /** Ports relayed now. */
    public synchronized Set<Integer> forwardedPorts() {
        return Set.copyOf(relays.keySet());
    }

    private void run() {
        while (!closed) {
            try {
                scanOnce();
            } catch (RuntimeException e) {
                LOG.log(System.Logger.Level.WARNING, "scanning for loopback listeners failed; retrying", e);
            }
            try {
                Thread.sleep(interval);
            } catch (InterruptedException e) {
                return;
            }
        }
    }

    /** One scan: starts relays for new loopback-only listeners and stops those whose listener is gone. */
    synchronized void scanOnce() {
        if (closed) return;
        List<Listener> listeners = scanner.get();
        Map<Integer, Boolean> loopbackOnly = new HashMap<>(); // port -> listener is IPv6 only
        Set<Integer> elsewhere = new HashSet<>();
        for (Listener l : listeners) {
            if (l.loopback()) loopbackOnly.merge(l.port(), l.ipv6(), (a, b) -> a && b);
            else elsewhere.add(l.port());
        }
        relays.entrySet().removeIf(e -> {
            if (loopbackOnly.containsKey(e.getKey())) return false;
            e.getValue().close();
            return true;
        });
        for (var e : loopbackOnly.entrySet()) {
            int port = e.getKey();
            // Our own relay shows up as a non-loopback listener on its port: only new ports are checked for others.
            if (relays.containsKey(port) || elsewhere.contains(port) || !forwardable.test(port)) continue;
            Relay relay = Relay.open(port, e.getValue(), bindAddresses.get());
            if (relay != null) relays.put(port, relay);
        }
    }

    @Override
    public synchronized void close() {
        closed = true;
        loop.interrupt();
        relays.values().forEach(Relay::close);
        relays.clear();
    }

    /** Listening TCP sockets from /proc/net/tcp and /proc/net/tcp6 (missing files count as none). */
    public static List<Listener> procNetTcp() {
        List<Listener> out = new ArrayList<>();
        for (String file : List.of("/proc/net/tcp", "/proc/net/tcp6")) {
            Path path = Path.of(file);
            if (!Files.isReadable(path)) continue;
            try {
                out.addAll(parse(Files.readString(path), file.endsWith("6")));
            } catch (IOException e) {
                throw new UncheckedIOException("cannot read " + file, e);
            }
        }
        return out;
    }

    /** Parses a /proc/net/tcp or tcp6 table: rows in state 0A (LISTEN) become listeners. */
    public static List<Listener> parse(String table, boolean ipv6) {
        List<Listener> out = new ArrayList<>();
        for (String line : table.split("\n")) {
            String[] f = line.trim().split("\\s+");
            if (f.length < 4 || !f[0].endsWith(":") || !"0A".equals(f[3])) continue;
            int colon = f[1].lastIndexOf(':');
            if (colon < 0) continue;
            String addr = f[1].substring(0, colon);
            int port;
            try {
                port = Integer.parseInt(f[1].substring(colon + 1), 16);
            } catch (NumberFormatException e) {
                continue;
            }
            boolean v4Mapped = addr.regionMatches(true, 0, "0000000000000000FFFF0000", 0, 24);
            out.add(new Listener(port, isLoopback(addr), ipv6 && !v4Mapped));
        }
        return out;
    }

    /**
     * Whether a /proc/net address (hex, 32-bit words in host order, little-endian here) is loopback: 127.0.0.0/8,
     * ::1, or ::ffff:127.x.y.z.
     */
    static boolean isLoopback(String hex) {
        if (hex.length() == 8) return hex.regionMatches(true, 6, "7F", 0, 2);
        if (hex.length() == 32) {
            if (hex.equalsIgnoreCase("00000000000000000000000001000000")) return true;
            return hex.regionMatches(true, 0, "0000000000000000FFFF0000", 0, 24) && hex.regionMatches(true, 30, "7F", 0, 2);
        }
        return false;
    }

    /** The sandbox's own addresses to relay on: every non-loopback IPv4 address of an interface that is up. */
    public static List<InetAddress> sandboxAddresses() {
        List<InetAddress> out = new ArrayList<>();
        try {
            for (NetworkInterface nif : NetworkInterface.networkInterfaces().toList()) {
                if (!nif.isUp() || nif.isLoopback()) continue;
                nif.inetAddresses().filter(a -> a instanceof Inet4Address && !a.isLoopbackAddress()).forEach(out::add);
            }
        } catch (SocketException e) {
            throw new UncheckedIOException("cannot list the network interfaces", e);
        }
        return out;
    }

    /** Listens at one port on the sandbox's addresses and relays each connection to the loopback listener. */
    private static final class Relay {
        private final List<ServerSocket> sockets;
        private final Set<Socket> open = java.util.concurrent.ConcurrentHashMap.newKeySet();

        private Relay(List<ServerSocket> sockets) {
            this.sockets = sockets;
        }

        /** A relay for {@code port}, or null when no address could be bound (something else listens there). */
        static Relay open(int port, boolean ipv6Only, List<InetAddress> addresses) {
            List<ServerSocket> bound = new ArrayList<>();
            for (InetAddress address : addresses) {
                try {
                    ServerSocket s = new ServerSocket();
                    s.setReuseAddress(true);
                    s.bind(new InetSocketAddress(address, port), 128);
                    bound.add(s);
                } catch (IOException e) {
                    LOG.log(System.Logger.Level.DEBUG, "cannot relay port " + port + " on " + address + ": " + e);
                }
            }
            if (bound.isEmpty()) return null;
            Relay relay = new Relay(bound);
            InetSocketAddress target = new InetSocketAddress(ipv6Only ? "::1" : "127.0.0.1", port);
            for (ServerSocket s : bound) Thread.ofVirtual().name("envd-relay-" + port).start(() -> relay.accept(s, target));
            return relay;
        }

        private void accept(ServerSocket server, InetSocketAddress target) {
            while (!server.isClosed()) {
                Socket client;
                try {
                    client = server.accept();
                } catch (IOException e) {
                    return; // closed
                }
                Thread.ofVirtual().start(() -> relay(client, target));
            }
        }

        private void relay(Socket client, InetSocketAddress target) {
            Socket upstream = new Socket();
            open.add(client);
            open.add(upstream);
            try (client; upstream) {
                upstream.connect(target, 5000);
                Thread back = Thread.ofVirtual().start(() -> pump(upstream, client));
                pump(client, upstream);
                back.join();
            } catch (IOException e) {
                // The loopback server refused or went away: closing the client tells it so.
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } finally {
                open.remove(client);
                open.remove(upstream);
            }
        }

        /** Copies one direction until EOF, then half-closes the other side so the peer sees the end too. */
        private void pump(Socket from, Socket to) {
            // The streams are not closed here: closing one closes its socket, which the other direction still uses.
            try {
                InputStream in = from.getInputStream();
                OutputStream out = to.getOutputStream();
                in.transferTo(out);
                out.flush();
                to.shutdownOutput();
            } catch (IOException e) {
                try {
                    to.close();
                } catch (IOException ignored) {
                    // already closed
                }
            }
        }

        void close() {
            for (ServerSocket s : sockets) {
                try {
                    s.close();
                } catch (IOException ignored) {
                    // closing anyway
                }
            }
            for (Socket s : open) {
                try {
                    s.close();
                } catch (IOException ignored) {
                    // closing anyway
                }
            }
        }
    }
}
