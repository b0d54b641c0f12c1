package dev.capsule.runtime.network.egress;

import org.xbill.DNS.ARecord;
import org.xbill.DNS.DClass;
import org.xbill.DNS.Flags;
import org.xbill.DNS.Message;
import org.xbill.DNS.Name;
import org.xbill.DNS.Rcode;
import org.xbill.DNS.Record;
import org.xbill.DNS.Section;
import org.xbill.DNS.TextParseException;
import org.xbill.DNS.Type;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.Socket;
import java.net.Inet4Address;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

/**
 * The resolvers Capsule asks on the sandboxes' behalf (the host's own, by default), with a small cache of IPv4
 * answers. The sandboxes' DNS server forwards through it, and the transparent proxy resolves allowed names with it,
 * so the proxy usually sees the same addresses the sandbox was told.
 */
final class UpstreamDns {

    /** Per try: a lost packet costs this much, less than a client's own timeout (glibc: 5 s), before a retry. */
    private static final Duration TRY_TIMEOUT = Duration.ofMillis(1500);
    private static final int TRIES = 3;
    private static final long MIN_TTL_SECONDS = 5;
    private static final long MAX_TTL_SECONDS = 300;
    private static final int MAX_CACHED = 10_000;

    private final List<InetSocketAddress> servers;
    private final ConcurrentHashMap<String, Cached> cache = new ConcurrentHashMap<>();

    private record Cached(List<Inet4Address> addresses, long expiresAtNanos) {}

    UpstreamDns(List<InetSocketAddress> servers) {
        if (servers.isEmpty()) {
            throw new IllegalArgumentException("no upstream DNS servers configured for the sandboxes' resolver");
        }
        this.servers = List.copyOf(servers);
    }

    List<InetSocketAddress> servers() {
        return servers;
    }

    /**
     * Sends {@code query} upstream, each server in turn, each try waiting {@link #TRY_TIMEOUT}; a truncated UDP
     * answer is asked again over TCP. Returns the answer with the query's id.
     */
    Message forward(Message query) throws IOException {
        byte[] wire = query.toWire();
        IOException failure = null;
        for (int attempt = 0; attempt < TRIES; attempt++) {
            for (InetSocketAddress server : servers) {
                try {
                    Message answer = overUdp(wire, query.getHeader().getID(), server);
                    if (answer.getHeader().getFlag(Flags.TC)) {
                        answer = overTcp(wire, server);
                    }
                    remember(answer);
                    return answer;
                } catch (IOException e) {
                    failure = e;
                }
            }
        }
        throw new IOException("upstream DNS " + servers + " did not answer: " + failure.getMessage(), failure);
    }

    private static Message overUdp(byte[] wire, int id, InetSocketAddress server) throws IOException {
        try (DatagramSocket socket = new DatagramSocket()) {
            socket.setSoTimeout((int) TRY_TIMEOUT.toMillis());
            socket.connect(server);
            socket.send(new DatagramPacket(wire, wire.length));
            byte[] buffer = new byte[65_535];
            while (true) {
                DatagramPacket packet = new DatagramPacket(buffer, buffer.length);
                socket.receive(packet);
                Message answer = new Message(Arrays.copyOf(buffer, packet.getLength()));
                if (answer.getHeader().getID() == id && answer.getHeader().getFlag(Flags.QR)) {
                    return answer;
                }
            }
        }
    }

    private static Message overTcp(byte[] wire, InetSocketAddress server) throws IOException {
        try (Socket socket = new Socket()) {
            socket.connect(server, (int) TRY_TIMEOUT.toMillis());
            socket.setSoTimeout((int) TRY_TIMEOUT.toMillis() * 2);
            DataOutputStream out = new DataOutputStream(socket.getOutputStream());
            out.writeShort(wire.length);
            out.write(wire);
            out.flush();
            DataInputStream in = new DataInputStream(socket.getInputStream());
            byte[] answer = new byte[in.readUnsignedShort()];
            in.readFully(answer);
            return new Message(answer);
        }
    }

    /** The IPv4 addresses of {@code host}, from the cache while its TTL lasts; empty if it has none. */
    List<Inet4Address> resolve(String host) throws IOException {
        String key = key(host);
        Cached cached = cache.get(key);
        if (cached != null && cached.expiresAtNanos() - System.nanoTime() > 0) {
            return cached.addresses();
        }
        Message query;
        try {
            query = Message.newQuery(Record.newRecord(Name.fromString(key + "."), Type.A, DClass.IN));
        } catch (TextParseException e) {
            throw new IOException("not a DNS name: " + host, e);
        }
        Message answer = forward(query);
        if (answer.getRcode() != Rcode.NOERROR) {
            return List.of();
        }
        Cached stored = cache.get(key);
        return stored == null ? List.of() : stored.addresses();
    }

    /** Keeps the IPv4 addresses of an answer to an A query, under the name that was asked. */
    private void remember(Message answer) {
        Record question = answer.getQuestion();
        if (question == null || question.getType() != Type.A || answer.getRcode() != Rcode.NOERROR) {
            return;
        }
        List<Inet4Address> addresses = new ArrayList<>();
        long ttl = MAX_TTL_SECONDS;
        for (Record record : answer.getSection(Section.ANSWER)) {
            if (record instanceof ARecord a && a.getAddress() instanceof Inet4Address address) {
                addresses.add(address);
                ttl = Math.min(ttl, record.getTTL());
            }
        }
        if (cache.size() >= MAX_CACHED) {
            long now = System.nanoTime();
            cache.values().removeIf(entry -> entry.expiresAtNanos() - now <= 0);
            if (cache.size() >= MAX_CACHED) {
                cache.clear();
            }
        }
        cache.put(key(question.getName().toString()), new Cached(List.copyOf(addresses),
                System.nanoTime() + TimeUnit.SECONDS.toNanos(Math.max(MIN_TTL_SECONDS, ttl))));
    }

    private static String key(String name) {
        String lower = name.toLowerCase(Locale.ROOT);
        return lower.endsWith(".") ? lower.substring(0, lower.length() - 1) : lower;
    }
}
