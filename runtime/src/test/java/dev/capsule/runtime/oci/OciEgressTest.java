package dev.capsule.runtime.oci;

import dev.capsule.runtime.NetworkPolicy;
import dev.capsule.runtime.Resources;
import dev.capsule.runtime.SandboxInstance;
import dev.capsule.runtime.SandboxSpec;
import dev.capsule.runtime.TestEnvironment;
import dev.capsule.runtime.host.Mounts;
import dev.capsule.runtime.network.HostNet;
import dev.capsule.runtime.network.Ipv4Cidr;
import dev.capsule.runtime.network.NetworkConfig;
import dev.capsule.runtime.network.StandInInternet;
import org.awaitility.Awaitility;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.UnknownHostException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static dev.capsule.runtime.network.StandInInternet.ALLOWED;
import static dev.capsule.runtime.network.StandInInternet.BLOCKED;
import static dev.capsule.runtime.network.StandInInternet.CDN;
import static dev.capsule.runtime.network.StandInInternet.CDN_STALE;
import static dev.capsule.runtime.network.StandInInternet.DNS;
import static dev.capsule.runtime.network.StandInInternet.METADATA;
import static dev.capsule.runtime.network.StandInInternet.OPEN;
import static dev.capsule.runtime.network.StandInInternet.PRIVATE;
import static dev.capsule.runtime.network.StandInInternet.SOCKS;
import static dev.capsule.runtime.network.StandInInternet.SOCKS_PASSWORD;
import static dev.capsule.runtime.network.StandInInternet.SOCKS_USER;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * Egress policies on real sandboxes: started by the oci driver with real runc, envd and nftables, probed from
 * inside with the template's own python3, curl, getent, ip and sudo, against a {@link StandInInternet} (HTTP, TLS
 * and echo servers, a DNS server and a SOCKS5 proxy with credentials) in a namespace this test makes. Every probe
 * of a sandbox runs at once in one {@code client.py batch}; what a policy refuses fails at once (reset or refused),
 * so only probes of the host's closed services wait for their timeout. Ends with nothing of ours left on the host.
 */
class OciEgressTest {

    static final String NETWORK_NAME = "capsuleoeg";
    static final String LINK_PREFIX = "cpe";
    static final String BLOCKED_PREFIX = "blocked ";

    static final String HOST_GREETING = "hello from the host";

    static StandInInternet internet;
    static ServerSocket hostServer;
    static byte[] client;
    static Path dataDir;
    static Path runcRoot;
    static OciRuntime runtime;
    static OciRuntimeConfig config;
    static final List<String> ids = new ArrayList<>();

    @BeforeAll
    static void startInternetAndDriver() throws IOException {
        internet = new StandInInternet("cpw-internet", "cpwnet", "198.18.3.0");
        try (InputStream in = OciEgressTest.class.getResourceAsStream("/egress/client.py")) {
            client = in.readAllBytes();
        }
        dataDir = Files.createTempDirectory("capsule-egress-data");
        runcRoot = Files.createTempDirectory("capsule-egress-runc");
        NetworkConfig network = NetworkConfig.defaults().withName(NETWORK_NAME, LINK_PREFIX)
                .withPool(Ipv4Cidr.parse("10.216.0.0/24")).withNameservers(List.of(DNS));
        config = OciRuntimeConfig.defaults().withRunc(runcRoot, RuncRuntime.DEFAULT_CGROUP_PARENT)
                .withDirectories(dataDir, TestEnvironment.cacheDir()).withNetwork(network);
        runtime = new OciRuntime(config);
        runtime.prepare();
    }

    @AfterAll
    static void stopEverything() {
        try {
            if (runtime != null) {
                runtime.removeOrphans(Set.of());
                runtime.close();
                OciRuntimeTest.assertNothingLeft(config, ids);
            }
            for (Path dir : new Path[] {dataDir, runcRoot}) {
                if (dir != null) {
                    Mounts.deleteTree(dir);
                }
            }
        } finally {
            if (internet != null) {
                internet.close();
            }
        }
        assertThat(HostNet.namespaces("cpw-internet")).isEmpty();
        assertThat(HostNet.links("cpwnet")).isEmpty();
    }

    /** A greeting on every connection, from a service of the host listening on all its addresses. */
    @BeforeAll
    static void startHostService() throws IOException {
        hostServer = new ServerSocket(0);
        Thread.ofVirtual().start(() -> {
            while (!hostServer.isClosed()) {
                try (Socket socket = hostServer.accept()) {
                    socket.getOutputStream().write(HOST_GREETING.getBytes(StandardCharsets.UTF_8));
                } catch (IOException e) {
                    // closed, or the client left
                }
            }
        });
    }

    @AfterAll
    static void stopHostService() throws IOException {
        hostServer.close();
    }

    /** What the host itself reads from its service at {@code address}. */
    static String greeting(String address) {
        try (Socket socket = new Socket(address, hostServer.getLocalPort())) {
            return new String(socket.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @AfterEach
    void destroySandboxes() {
        ids.forEach(runtime::destroy);
    }

    /** A running sandbox with client.py in its home. */
    record Box(SandboxInstance instance, EnvdClient envd) {

        String address() {
            return instance.address().getHostAddress();
        }

        String gateway() {
            try {
                return InetAddress.getByAddress(OciRuntimeTest.gatewayOf(instance.address().getAddress()))
                        .getHostAddress();
            } catch (UnknownHostException e) {
                throw new IllegalStateException(e);
            }
        }

        /** Runs a bash script as the sandbox's user. */
        EnvdClient.Result sh(String script) {
            return envd.run(script);
        }

        /** Runs the probes at once (as root with {@code sudo}); each probe's answer, or null when it was blocked. */
        Map<String, String> probe(boolean root, String... probes) {
            StringBuilder script = new StringBuilder(root ? "sudo -n " : "").append(
                    "env CLIENT_TIMEOUT=4 python3 /home/user/client.py batch");
            for (String probe : probes) {
                script.append(" '").append(probe).append('\'');
            }
            EnvdClient.Result result = envd.run(script.toString());
            assertThat(result.exitCode()).as(result.stderr()).isZero();
            List<String> lines = result.stdout().lines().toList();
            assertThat(lines).hasSize(probes.length);
            Map<String, String> answers = new LinkedHashMap<>();
            for (int i = 0; i < probes.length; i++) {
                String line = lines.get(i);
                if (line.startsWith(BLOCKED_PREFIX)) {
                    System.out.println(instance.sandboxId() + ": " + probes[i] + ": " + line); // why, in the output
                }
                answers.put(probes[i], line.startsWith("ok ") ? line.substring(3) : null);
            }
            return answers;
        }

        Map<String, String> probe(String... probes) {
            return probe(false, probes);
        }
    }

    static String http(String address, String host) {
        return "http " + address + " 80 " + host;
    }

    static String tls(String address, String serverName) {
        return "tls " + address + " 443 " + serverName;
    }

    static String dns(String server, String name) {
        return "dns " + server + " " + name;
    }

    static Box start(NetworkPolicy policy) {
        String id = OciRuntimeTest.newId();
        ids.add(id);
        SandboxInstance instance = runtime.start(new SandboxSpec(id, "base", Resources.DEFAULT, policy));
        EnvdClient envd = new EnvdClient(instance);
        assertThat(envd.upload("/home/user/client.py", client)).isEqualTo(200);
        internet.drain();
        return new Box(instance, envd);
    }

    @Test
    void internetAccessAndAddressRulesAllowWhatTheyListAndAllowBeatsDeny() {
        Box offline = start(NetworkPolicy.NO_INTERNET);
        Box onlyOne = start(new NetworkPolicy(true, List.of(ALLOWED), List.of(NetworkPolicy.ALL_TRAFFIC)));
        Box allowInDeny = start(new NetworkPolicy(true, List.of(OPEN), List.of("198.51.100.0/24")));
        Box offButOne = start(new NetworkPolicy(false, List.of(OPEN + "/32"), List.of()));

        Map<String, String> off = offline.probe(http(OPEN, "x"), tls(ALLOWED, "allowed.test"), http(BLOCKED, "x"),
                dns("9.9.9.9", "open.test"));
        assertThat(off.get(http(OPEN, "x"))).isNull();
        assertThat(off.get(tls(ALLOWED, "allowed.test"))).isNull();
        assertThat(off.get(http(BLOCKED, "x"))).isNull();
        assertThat(off.get(dns("9.9.9.9", "open.test"))).as("no DNS leaves either").isEqualTo("NXDOMAIN");
        assertThat(offline.sh("curl -sS -m 4 http://" + OPEN + "/ 2>&1; echo exit=$?").stdout())
                .doesNotContain("hello").doesNotContain("exit=0");
        assertThat(internet.drain()).noneMatch(line -> line.contains("open.test"));

        Map<String, String> one = onlyOne.probe(http(ALLOWED, "x"), http(OPEN, "x"), http(BLOCKED, "x"));
        assertThat(one.get(http(ALLOWED, "x"))).isEqualTo("hello from allowed host=x");
        assertThat(one.get(http(OPEN, "x"))).isNull();
        assertThat(one.get(http(BLOCKED, "x"))).isNull();

        Map<String, String> inDeny = allowInDeny.probe(http(OPEN, "x"), http(ALLOWED, "x"), http(CDN, "x"),
                http(BLOCKED, "x"));
        assertThat(inDeny.get(http(OPEN, "x"))).as("allow beats deny").isEqualTo("hello from open host=x");
        assertThat(inDeny.get(http(ALLOWED, "x"))).as("in the denied CIDR").isNull();
        assertThat(inDeny.get(http(CDN, "x"))).as("in the denied CIDR").isNull();
        assertThat(inDeny.get(http(BLOCKED, "x"))).as("outside it, internet on").isEqualTo("hello from blocked host=x");

        Map<String, String> butOne = offButOne.probe(http(OPEN, "x"), http(ALLOWED, "x"));
        assertThat(butOne.get(http(OPEN, "x"))).isEqualTo("hello from open host=x");
        assertThat(butOne.get(http(ALLOWED, "x"))).isNull();
    }

    @Test
    void privateLinkLocalAndMetadataRangesAreDeniedUnlessOpenedOnPurpose() {
        Box open = start(NetworkPolicy.OPEN);
        Box everything = start(new NetworkPolicy(true, List.of("0.0.0.0/0"), List.of()));
        Box opened = start(new NetworkPolicy(true, List.of(PRIVATE), List.of()));

        String hostService = "tcp " + open.gateway() + " " + hostServer.getLocalPort();
        Map<String, String> fromOpen = open.probe(http(OPEN, "x"), http(METADATA, "x"), http(PRIVATE, "x"),
                hostService);
        assertThat(fromOpen.get(http(OPEN, "x"))).as("control").isEqualTo("hello from open host=x");
        assertThat(fromOpen.get(http(METADATA, "x"))).isNull();
        assertThat(fromOpen.get(http(PRIVATE, "x"))).isNull();
        assertThat(greeting(open.gateway())).as("control: the host's service listens there").isEqualTo(HOST_GREETING);
        assertThat(fromOpen.get(hostService)).as("a service on the host, at the sandbox's gateway").isNull();
        assertThat(open.sh("curl -sS -m 4 http://169.254.169.254/latest/meta-data/ 2>&1; echo exit=$?").stdout())
                .doesNotContain("hello").doesNotContain("exit=0");

        assertThat(everything.probe(http(PRIVATE, "x")).get(http(PRIVATE, "x")))
                .as("0.0.0.0/0 is not a private range").isNull();

        Map<String, String> fromOpened = opened.probe(http(PRIVATE, "x"), http(METADATA, "x"));
        assertThat(fromOpened.get(http(PRIVATE, "x"))).isEqualTo("hello from private host=x");
        assertThat(fromOpened.get(http(METADATA, "x"))).isNull();
    }

    @Test
    void theHostsServicesAreClosedDirectlyAndThroughTheProxy() {
        Box direct = start(NetworkPolicy.OPEN);
        Box proxied = start(new NetworkPolicy(true, List.of("*.allowed.test"), List.of(NetworkPolicy.ALL_TRAFFIC)));
        String port = Integer.toString(hostServer.getLocalPort());
        String host = internet.hostAddress(); // not in a default-denied range, as a public address of the host
        assertThat(greeting(host)).as("control: the host's service listens there").isEqualTo(HOST_GREETING);

        assertThat(direct.probe("tcp " + host + " " + port).get("tcp " + host + " " + port)).isNull();
        // An allowed name that resolves to the host: the proxy (in the server, on the host) would connect to the
        // host's own service were its connections not marked and refused on the way to the host.
        String viaProxy = "http " + OPEN + " " + port + " " + StandInInternet.HOST_NAME;
        Map<String, String> named = proxied.probe(viaProxy, dns("9.9.9.9", StandInInternet.HOST_NAME),
                "http " + OPEN + " 80 cdn.allowed.test");
        assertThat(named.get(dns("9.9.9.9", StandInInternet.HOST_NAME))).isEqualTo(host);
        assertThat(named.get("http " + OPEN + " 80 cdn.allowed.test")).as("control: the proxy connects by name")
                .isEqualTo("hello from cdn host=cdn.allowed.test");
        assertThat(named.get(viaProxy)).isNull();
    }

    @Test
    void domainRulesGoByNameAndASpoofedNameNeverReachesTheDialledAddress() {
        Box exact = start(new NetworkPolicy(true, List.of("allowed.test"), List.of(NetworkPolicy.ALL_TRAFFIC)));
        Box wildcard = start(new NetworkPolicy(true, List.of("*.allowed.test", OPEN),
                List.of(NetworkPolicy.ALL_TRAFFIC)));

        Map<String, String> byName = exact.probe(dns("9.9.9.9", "allowed.test"), dns("9.9.9.9", "cdn.allowed.test"),
                dns("9.9.9.9", "leak-a-secret.blocked.test"), tls(ALLOWED, "allowed.test"),
                http(ALLOWED, "allowed.test"), tls(BLOCKED, "allowed.test"), http(BLOCKED, "allowed.test"),
                tls(BLOCKED, "blocked.test"), tls(CDN, "cdn.allowed.test"), http(OPEN, "x"),
                "echo " + ALLOWED + " 7");
        assertThat(byName.get(dns("9.9.9.9", "allowed.test"))).isEqualTo(ALLOWED);
        assertThat(byName.get(dns("9.9.9.9", "cdn.allowed.test"))).as("not the exact name").isEqualTo("NXDOMAIN");
        assertThat(byName.get(dns("9.9.9.9", "leak-a-secret.blocked.test"))).isEqualTo("NXDOMAIN");
        assertThat(byName.get(tls(ALLOWED, "allowed.test"))).isEqualTo("hello from allowed sni=allowed.test");
        assertThat(byName.get(http(ALLOWED, "allowed.test"))).isEqualTo("hello from allowed host=allowed.test");
        assertThat(byName.get(tls(BLOCKED, "allowed.test"))).as("spoofed SNI to a disallowed address")
                .isEqualTo("hello from allowed sni=allowed.test");
        assertThat(byName.get(http(BLOCKED, "allowed.test"))).as("spoofed Host to a disallowed address")
                .isEqualTo("hello from allowed host=allowed.test");
        assertThat(byName.get(tls(BLOCKED, "blocked.test"))).isNull();
        assertThat(byName.get(tls(CDN, "cdn.allowed.test"))).isNull();
        assertThat(byName.get(http(OPEN, "x"))).isNull();
        assertThat(byName.get("echo " + ALLOWED + " 7")).as("no SNI or Host: address rules only").isNull();
        assertThat(internet.drain()).contains("dns allowed.test").noneMatch(line -> line.contains("blocked.test"));
        assertThat(exact.sh("curl -sS -m 4 http://allowed.test/"
                + " && python3 /home/user/client.py tls allowed.test 443 allowed.test").stdout())
                .as("through the sandbox's resolv.conf, as programs do")
                .isEqualTo("hello from allowed host=allowed.test\nhello from allowed sni=allowed.test\n");

        Map<String, String> sub = wildcard.probe(dns("9.9.9.9", "cdn.allowed.test"), dns("9.9.9.9", "allowed.test"),
                tls(CDN_STALE, "cdn.allowed.test"), tls(BLOCKED, "cdn.allowed.test"), tls(ALLOWED, "allowed.test"),
                tls(ALLOWED, "rebind.allowed.test"), http(OPEN, "x"), http(CDN, "x"), "echo " + OPEN + " 7");
        assertThat(sub.get(dns("9.9.9.9", "cdn.allowed.test"))).isEqualTo(CDN);
        assertThat(sub.get(dns("9.9.9.9", "allowed.test"))).as("*.domain does not cover the domain")
                .isEqualTo("NXDOMAIN");
        assertThat(sub.get(tls(CDN_STALE, "cdn.allowed.test")))
                .as("an address the name no longer resolves to: connected to the name's current one")
                .isEqualTo("hello from cdn sni=cdn.allowed.test");
        assertThat(sub.get(tls(BLOCKED, "cdn.allowed.test"))).isEqualTo("hello from cdn sni=cdn.allowed.test");
        assertThat(sub.get(tls(ALLOWED, "allowed.test"))).isNull();
        assertThat(sub.get(tls(ALLOWED, "rebind.allowed.test"))).as("an allowed name resolving to a private address")
                .isNull();
        assertThat(sub.get(http(OPEN, "x"))).as("an address in allowOut next to domains")
                .isEqualTo("hello from open host=x");
        assertThat(sub.get(http(CDN, "x"))).as("the CDN's address without its name").isNull();
        assertThat(sub.get("echo " + OPEN + " 7")).as("neither TLS nor HTTP, to an allowed address").isEqualTo("ping");
    }

    @Test
    void rootInTheSandboxCannotUndoThePolicy() {
        Box box = start(new NetworkPolicy(true, List.of("allowed.test", "*.allowed.test"),
                List.of(NetworkPolicy.ALL_TRAFFIC)));

        assertThat(box.sh("sudo -n id -u").stdout()).isEqualTo("0\n");
        assertThat(box.sh("command -v nft iptables; true").stdout()).as("the template has no packet filter tools")
                .isEmpty();
        String network = "ip route; ip -4 addr; ip link";
        String before = box.sh(network).stdout();
        // Everything root tries on its own network is refused: the sandbox holds no CAP_NET_ADMIN (nor
        // CAP_SYS_ADMIN for a namespace of its own). Had any succeeded, the probes below would still go through the
        // host's rules, which are out of the sandbox's reach.
        for (String attempt : List.of("ip route add " + BLOCKED + "/32 dev eth0", "ip route replace default dev eth0",
                "ip route del default", "ip addr add 10.216.0.250/24 dev eth0", "ip link set eth0 mtu 1400",
                "ip link add dummy0 type dummy", "unshare --net true")) {
            EnvdClient.Result result = box.sh("sudo -n " + attempt);
            assertThat(result.exitCode()).as(attempt + " as root: " + result.stderr()).isNotZero();
            assertThat(result.stderr()).as(attempt).contains("not permitted");
        }
        assertThat(box.sh(network).stdout()).isEqualTo(before);
        // What root can do: point resolv.conf elsewhere, dial raw addresses, craft packets.
        assertThat(box.sh("echo 'nameserver " + BLOCKED + "' | sudo -n tee /etc/resolv.conf >/dev/null"
                + " && cat /etc/resolv.conf").stdout()).isEqualTo("nameserver " + BLOCKED + "\n");
        assertThat(box.sh("getent hosts allowed.test").stdout()).as("answered by Capsule's resolver anyway")
                .startsWith(ALLOWED);
        assertThat(box.sh("getent hosts blocked.test; echo exit=$?").stdout()).isEqualTo("exit=2\n");

        Map<String, String> asRoot = box.probe(true, http(BLOCKED, "x"), http(OPEN, "x"), tls(BLOCKED, "blocked.test"),
                tls(BLOCKED, "allowed.test"), dns(BLOCKED, "blocked.test"), "dns " + BLOCKED + " blocked.test tcp",
                "tcp " + box.gateway() + " " + hostServer.getLocalPort(), http(METADATA, "x"));
        assertThat(asRoot.get(http(BLOCKED, "x"))).isNull();
        assertThat(asRoot.get(http(OPEN, "x"))).isNull();
        assertThat(asRoot.get(tls(BLOCKED, "blocked.test"))).isNull();
        assertThat(asRoot.get(tls(BLOCKED, "allowed.test"))).isEqualTo("hello from allowed sni=allowed.test");
        assertThat(asRoot.get(dns(BLOCKED, "blocked.test"))).as("DNS to any server ends at Capsule's")
                .isEqualTo("NXDOMAIN");
        assertThat(asRoot.get("dns " + BLOCKED + " blocked.test tcp")).isEqualTo("NXDOMAIN");
        assertThat(asRoot.get("tcp " + box.gateway() + " " + hostServer.getLocalPort())).isNull();
        assertThat(asRoot.get(http(METADATA, "x"))).isNull();
        assertThat(internet.drain()).noneMatch(line -> line.contains("blocked.test"));

        // A hand-made packet from another source address is dropped before anything routes it; the same packet
        // from the sandbox's own address reaches Capsule's resolver, which forwards the allowed name.
        Map<String, String> raw = box.probe(true, "rawdns " + box.address() + " " + DNS + " control.allowed.test",
                "rawdns 198.51.100.99 " + DNS + " spoofed.allowed.test");
        assertThat(raw.values()).containsOnly("sent");
        List<String> seen = new ArrayList<>();
        Awaitility.await().atMost(Duration.ofSeconds(10)).until(() -> {
            seen.addAll(internet.drain());
            return seen.contains("dns control.allowed.test");
        });
        seen.addAll(internet.drain());
        assertThat(seen).noneMatch(line -> line.contains("spoofed"));
    }

    @Test
    void anEgressProxyWithCredentialsTunnelsTheSandboxesTcpAndFailsClosed() {
        NetworkPolicy.EgressProxy proxy = new NetworkPolicy.EgressProxy(SOCKS + ":1080", SOCKS_USER,
                SOCKS_PASSWORD);
        Box tunnelled = start(new NetworkPolicy(true, List.of(), List.of(), proxy));
        Box domains = start(new NetworkPolicy(true, List.of("allowed.test"), List.of(NetworkPolicy.ALL_TRAFFIC),
                proxy));
        Box wrongPassword = start(new NetworkPolicy(true, List.of(), List.of(),
                new NetworkPolicy.EgressProxy(SOCKS + ":1080", SOCKS_USER, "wrong")));

        Map<String, String> all = tunnelled.probe(http(OPEN, "open.test"), tls(BLOCKED, "blocked.test"),
                http(METADATA, "x"));
        assertThat(all.get(http(OPEN, "open.test"))).isEqualTo("hello from open host=open.test");
        assertThat(all.get(tls(BLOCKED, "blocked.test"))).isEqualTo("hello from blocked sni=blocked.test");
        assertThat(all.get(http(METADATA, "x"))).as("default-denied ranges are not tunnelled either").isNull();
        assertThat(internet.drain()).as("the proxy's own log, user included")
                .contains("socks " + SOCKS_USER + " " + OPEN + ":80", "socks " + SOCKS_USER + " " + BLOCKED + ":443")
                .noneMatch(line -> line.contains(METADATA));

        Map<String, String> named = domains.probe(tls(BLOCKED, "allowed.test"), tls(OPEN, "open.test"));
        assertThat(named.get(tls(BLOCKED, "allowed.test"))).isEqualTo("hello from allowed sni=allowed.test");
        assertThat(named.get(tls(OPEN, "open.test"))).as("filtering comes before the tunnel").isNull();
        assertThat(internet.drain()).as("by name, so the proxy resolves it")
                .contains("socks " + SOCKS_USER + " allowed.test:443")
                .noneMatch(line -> line.startsWith("socks ") && line.contains("open"));

        assertThat(wrongPassword.probe(http(OPEN, "open.test")).get(http(OPEN, "open.test")))
                .as("no direct fallback").isNull();
        assertThat(internet.drain()).contains("socks-denied " + SOCKS_USER)
                .noneMatch(line -> line.startsWith("socks " + SOCKS_USER));
    }

    /** Starts {@code client.py hold} in the background: a connection kept open, its progress in {@code file}. */
    static void hold(Box box, String address, String host, String file) {
        box.sh("setsid python3 /home/user/client.py hold " + address + " 7 " + host + " " + file
                + " >/dev/null 2>&1 < /dev/null &");
        Awaitility.await().atMost(Duration.ofSeconds(20)).until(() -> pings(box, file) >= 2);
    }

    /** How many echoes the held connection got; -1 once it was cut. */
    static int pings(Box box, String file) {
        List<String> lines = box.sh("cat " + file + " 2>/dev/null").stdout().lines().toList();
        if (lines.stream().anyMatch(line -> line.startsWith("cut "))) {
            return -1;
        }
        return lines.size();
    }

    @Test
    void aPolicyUpdateTakesEffectOnTheRunningSandboxBothWaysAndCutsWhatItNoLongerAllows() {
        Box direct = start(NetworkPolicy.OPEN);
        Box proxied = start(new NetworkPolicy(true, List.of("allowed.test"), List.of(NetworkPolicy.ALL_TRAFFIC)));
        String id = direct.instance().sandboxId();

        // allow → still allowed: a held connection lives on
        hold(direct, OPEN, "-", "/tmp/open");
        runtime.applyNetworkPolicy(id, new NetworkPolicy(true, List.of(), List.of("203.0.113.0/24")));
        int before = pings(direct, "/tmp/open");
        Awaitility.await().atMost(Duration.ofSeconds(10)).until(() -> pings(direct, "/tmp/open") > before + 2);
        Map<String, String> narrowed = direct.probe(http(OPEN, "x"), http(BLOCKED, "x"));
        assertThat(narrowed.get(http(OPEN, "x"))).isEqualTo("hello from open host=x");
        assertThat(narrowed.get(http(BLOCKED, "x"))).isNull();

        // allow → deny: the held connection is cut (its next packet is answered with a reset), new ones fail
        runtime.applyNetworkPolicy(id, NetworkPolicy.NO_INTERNET);
        Awaitility.await().atMost(Duration.ofSeconds(10)).until(() -> pings(direct, "/tmp/open") == -1);
        assertThat(direct.sh("tail -1 /tmp/open").stdout()).contains("ConnectionResetError");
        Map<String, String> denied = direct.probe(http(OPEN, "x"), dns("9.9.9.9", "open.test"));
        assertThat(denied.get(http(OPEN, "x"))).isNull();
        assertThat(denied.get(dns("9.9.9.9", "open.test"))).isEqualTo("NXDOMAIN");

        // deny → allow by name, then deny → allow everything
        runtime.applyNetworkPolicy(id, new NetworkPolicy(true, List.of("allowed.test"),
                List.of(NetworkPolicy.ALL_TRAFFIC)));
        Map<String, String> byName = direct.probe(tls(BLOCKED, "allowed.test"), http(OPEN, "x"));
        assertThat(byName.get(tls(BLOCKED, "allowed.test"))).isEqualTo("hello from allowed sni=allowed.test");
        assertThat(byName.get(http(OPEN, "x"))).isNull();
        runtime.applyNetworkPolicy(id, NetworkPolicy.OPEN);
        Map<String, String> reopened = direct.probe(http(OPEN, "x"), http(BLOCKED, "x"), dns("9.9.9.9", "open.test"));
        assertThat(reopened.get(http(OPEN, "x"))).isEqualTo("hello from open host=x");
        assertThat(reopened.get(http(BLOCKED, "x"))).isEqualTo("hello from blocked host=x");
        assertThat(reopened.get(dns("9.9.9.9", "open.test"))).isEqualTo(OPEN);

        // allow everything → allow by name: a direct connection is cut even to the allowed name's address, since
        // only the proxy knows names and it never saw this one; a new connection to that name goes through it
        hold(direct, ALLOWED, "allowed.test", "/tmp/direct-named");
        runtime.applyNetworkPolicy(id, new NetworkPolicy(true, List.of("allowed.test"),
                List.of(NetworkPolicy.ALL_TRAFFIC)));
        Awaitility.await().atMost(Duration.ofSeconds(10)).until(() -> pings(direct, "/tmp/direct-named") == -1);
        hold(direct, ALLOWED, "allowed.test", "/tmp/proxied-named");

        // a connection allowed by name goes through the proxy: an update that no longer allows the name closes it
        String proxiedId = proxied.instance().sandboxId();
        hold(proxied, ALLOWED, "allowed.test", "/tmp/named");
        runtime.applyNetworkPolicy(proxiedId, new NetworkPolicy(true, List.of("allowed.test", "cdn.allowed.test"),
                List.of(NetworkPolicy.ALL_TRAFFIC)));
        int kept = pings(proxied, "/tmp/named");
        Awaitility.await().atMost(Duration.ofSeconds(10)).until(() -> pings(proxied, "/tmp/named") > kept + 2);
        runtime.applyNetworkPolicy(proxiedId, new NetworkPolicy(true, List.of("cdn.allowed.test"),
                List.of(NetworkPolicy.ALL_TRAFFIC)));
        Awaitility.await().atMost(Duration.ofSeconds(10)).until(() -> pings(proxied, "/tmp/named") == -1);
        Map<String, String> moved = proxied.probe(tls(CDN, "cdn.allowed.test"), tls(ALLOWED, "allowed.test"));
        assertThat(moved.get(tls(CDN, "cdn.allowed.test"))).isEqualTo("hello from cdn sni=cdn.allowed.test");
        assertThat(moved.get(tls(ALLOWED, "allowed.test"))).isNull();
    }
}
