package dev.capsule.runtime.network;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

/**
 * A stand-in "internet" for egress tests, in one network namespace the test makes: HTTP (:80) and TLS (:443)
 * servers that say who they are, and echo servers (:7), on documentation addresses (198.51.100.0/24,
 * 203.0.113.0/24), a DNS server with a fixed table, a SOCKS5 proxy that logs what it tunnels, and stand-ins for the cloud metadata service and a private
 * network. The host reaches it over a veth on a benchmarking /30 and host routes to those addresses, all of which
 * {@link #close()} removes with the namespace. No traffic leaves the machine.
 */
public final class StandInInternet implements AutoCloseable {

    public static final String ALLOWED = "198.51.100.10";
    public static final String CDN = "198.51.100.11";
    /** A CDN address the name no longer resolves to: a client that cached it still reaches the CDN via the proxy. */
    public static final String CDN_STALE = "198.51.100.12";
    public static final String OPEN = "198.51.100.20";
    public static final String BLOCKED = "203.0.113.66";
    public static final String DNS = "198.51.100.53";
    public static final String SOCKS = "203.0.113.80";
    public static final String METADATA = "169.254.169.254";
    public static final String PRIVATE = "172.31.255.1";
    public static final String SOCKS_USER = "tunnel";
    public static final String SOCKS_PASSWORD = "s3cret";

    /** Server names by address; every one answers on :80 and :443. */
    static final Map<String, String> SERVERS = Map.of(ALLOWED, "allowed", CDN, "cdn", CDN_STALE, "cdn-old",
            OPEN, "open", BLOCKED, "blocked", METADATA, "metadata", PRIVATE, "private");
    /** The DNS table; everything else is NXDOMAIN. */
    static final Map<String, String> NAMES = Map.of("allowed.test", ALLOWED, "cdn.allowed.test", CDN,
            "open.test", OPEN, "blocked.test", BLOCKED, "rebind.allowed.test", "10.213.9.9");
    private static final List<String> ROUTED = List.of("198.51.100.0/24", "203.0.113.0/24", METADATA + "/32",
            PRIVATE + "/32");

    /** A name that resolves to the host's own address on the stand-in's link ({@link #hostAddress()}). */
    public static final String HOST_NAME = "host.allowed.test";

    private final String namespace;
    private final String link;
    private final String hostSide;
    private final Path dir;
    private final Process process;
    private final BlockingQueue<String> log = new LinkedBlockingQueue<>();

    /**
     * @param namespace name of the namespace to make
     * @param link      host end of its veth
     * @param linkNet   the /30's first three octets and base, e.g. {@code 198.18.2.0}: host .1, namespace .2
     */
    public StandInInternet(String namespace, String link, String linkNet) throws IOException {
        this.namespace = namespace;
        this.link = link;
        String base = linkNet.substring(0, linkNet.lastIndexOf('.') + 1);
        int last = Integer.parseInt(linkNet.substring(linkNet.lastIndexOf('.') + 1));
        this.hostSide = base + (last + 1);
        String inside = base + (last + 2);
        this.dir = Files.createTempDirectory("capsule-internet");
        try {
            HostNet.ok("ip", "netns", "add", namespace);
            HostNet.ok("ip", "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", namespace);
            HostNet.ok("ip", "addr", "add", hostSide + "/30", "dev", link);
            HostNet.ok("ip", "link", "set", link, "up");
            HostNet.ok("ip", "-n", namespace, "addr", "add", inside + "/30", "dev", "eth0");
            HostNet.ok("ip", "-n", namespace, "link", "set", "eth0", "up");
            HostNet.ok("ip", "-n", namespace, "link", "set", "lo", "up");
            HostNet.ok("ip", "-n", namespace, "route", "add", "default", "via", hostSide);
            for (String address : SERVERS.keySet()) {
                HostNet.ok("ip", "-n", namespace, "addr", "add", address + "/32", "dev", "lo");
            }
            for (String address : List.of(DNS, SOCKS)) {
                HostNet.ok("ip", "-n", namespace, "addr", "add", address + "/32", "dev", "lo");
            }
            for (String routed : ROUTED) {
                HostNet.ok("ip", "route", "add", routed, "via", inside, "dev", link);
            }
            Path cert = dir.resolve("cert.pem");
            Path key = dir.resolve("key.pem");
            HostNet.ok("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-subj", "/CN=stand-in", "-days", "1", "-keyout", key.toString(), "-out",
                    cert.toString());
            Path script = resource("internet.py");
            process = new ProcessBuilder("ip", "netns", "exec", namespace, HostNet.PYTHON, "-u", script.toString(),
                    json(SERVERS), json(names(hostSide)), DNS, SOCKS, cert.toString(), key.toString(), SOCKS_USER,
                    SOCKS_PASSWORD).redirectError(ProcessBuilder.Redirect.DISCARD).start();
        } catch (IOException | RuntimeException e) {
            removeHostState();
            throw e;
        }
        BufferedReader out = new BufferedReader(new InputStreamReader(process.getInputStream(),
                StandardCharsets.UTF_8));
        Thread.ofVirtual().start(() -> {
            try {
                for (String line; (line = out.readLine()) != null; ) {
                    log.add(line);
                }
            } catch (IOException e) {
                // the process ended
            }
        });
        String ready = poll(20);
        if (!"ready".equals(ready)) {
            close();
            throw new IllegalStateException("the stand-in internet did not start: " + ready);
        }
        // The host's first packets there wait for neighbour discovery; send them now, not in a test.
        Path client = resource("client.py");
        HostNet.run(HostNet.PYTHON, client.toString(), "dns", DNS, "allowed.test");
        HostNet.run(HostNet.PYTHON, client.toString(), "http", OPEN, "80", "warm-up");
        Files.delete(client);
        drain();
    }

    /** The DNS table plus {@link #HOST_NAME}. */
    private static Map<String, String> names(String hostSide) {
        Map<String, String> names = new java.util.HashMap<>(NAMES);
        names.put(HOST_NAME, hostSide);
        return names;
    }

    /**
     * The host's address on the link to the stand-in: not in any default-denied range, as a host's public address
     * would not be.
     */
    public String hostAddress() {
        return hostSide;
    }

    /** A copy of a test resource under egress/ as a file (python runs it by path). */
    static Path resource(String name) throws IOException {
        Path file = Files.createTempFile("capsule-" + name.replace(".py", ""), ".py");
        try (InputStream in = StandInInternet.class.getResourceAsStream("/egress/" + name)) {
            Files.write(file, in.readAllBytes());
        }
        file.toFile().deleteOnExit();
        return file;
    }

    private static String json(Map<String, String> map) {
        return map.entrySet().stream().map(e -> "\"" + e.getKey() + "\": \"" + e.getValue() + "\"")
                .collect(Collectors.joining(", ", "{", "}"));
    }

    /** The next log line (a DNS query or a tunnel) within the timeout, or null. */
    public String poll(double seconds) {
        try {
            return log.poll((long) (seconds * 1000), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return null;
        }
    }

    /** Everything logged so far, and forgets it. */
    public List<String> drain() {
        List<String> lines = new java.util.ArrayList<>();
        log.drainTo(lines);
        return lines;
    }

    @Override
    public void close() {
        if (process != null) {
            process.destroy();
            try {
                if (!process.waitFor(5, TimeUnit.SECONDS)) {
                    process.destroyForcibly();
                    process.waitFor();
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        removeHostState();
    }

    private void removeHostState() {
        HostNet.run("ip", "link", "del", link); // its routes go with it
        HostNet.run("ip", "netns", "del", namespace);
        try (var files = Files.list(dir)) {
            for (Path file : files.toList()) {
                Files.deleteIfExists(file);
            }
            Files.deleteIfExists(dir);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
