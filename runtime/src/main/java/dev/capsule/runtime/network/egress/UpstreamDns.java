package dev.capsule.runtime.network.egress;

import org.xbill.DNS.ARecord;
import org.xbill.DNS.DClass;
import org.xbill.DNS.ExtendedResolver;
import org.xbill.DNS.Message;
import org.xbill.DNS.Name;
import org.xbill.DNS.Rcode;
import org.xbill.DNS.Record;
import org.xbill.DNS.Resolver;
import org.xbill.DNS.Section;
import org.xbill.DNS.SimpleResolver;
import org.xbill.DNS.TextParseException;
import org.xbill.DNS.Type;

import java.io.IOException;
import java.net.Inet4Address;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * The resolvers Capsule asks on the sandboxes' behalf (the host's own, by default), with a small cache of IPv4
 * answers. The sandboxes' DNS server forwards through it, and the transparent proxy resolves allowed names with it,
 * so the proxy usually sees the same addresses the sandbox was told.
 */
final class UpstreamDns {

    /** Per try: a lost packet costs this much, less than a client's own timeout (glibc: 5 s), before a retry. */
    private static final Duration TRY_TIMEOUT = Duration.ofMillis(1500);
    private static final int RETRIES = 3;
    private static final long MIN_TTL_SECONDS = 5;
    private static final long MAX_TTL_SECONDS = 300;
    private static final int MAX_CACHED = 10_000;

    private final List<InetSocketAddress> servers;
    private final Resolver resolver;
    private final ConcurrentHashMap<String, Cached> cache = new ConcurrentHashMap<>();

    private record Cached(List<Inet4Address> addresses, long expiresAtNanos) {}

    UpstreamDns(List<InetSocketAddress> servers) {
        if (servers.isEmpty()) {
            throw new IllegalArgumentException("no upstream DNS servers configured for the sandboxes' resolver");
        }
        this.servers = List.copyOf(servers);
        List<Resolver> resolvers = new ArrayList<>();
        for (InetSocketAddress server : servers) {
            SimpleResolver simple = new SimpleResolver(server);
            simple.setTimeout(TRY_TIMEOUT);
            resolvers.add(simple);
        }
        ExtendedResolver extended = new ExtendedResolver(resolvers);
        extended.setTimeout(TRY_TIMEOUT);
        extended.setRetries(RETRIES);
        this.resolver = extended;
    }

    List<InetSocketAddress> servers() {
        return servers;
    }

    /** Sends {@code query} upstream (retrying over TCP when the answer was truncated) and returns the answer. */
    Message forward(Message query) throws IOException {
        try {
            Message answer = resolver.sendAsync(query).toCompletableFuture()
                    .get(TRY_TIMEOUT.toMillis() * (RETRIES + 1) * servers.size() + 1000, TimeUnit.MILLISECONDS);
            remember(answer);
            return answer;
        } catch (ExecutionException e) {
            throw new IOException("upstream DNS " + servers + " failed: " + e.getCause(), e.getCause());
        } catch (TimeoutException e) {
            throw new IOException("upstream DNS " + servers + " did not answer", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while asking upstream DNS", e);
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
