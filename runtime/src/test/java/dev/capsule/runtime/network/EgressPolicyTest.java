package dev.capsule.runtime.network;

import dev.capsule.runtime.NetworkPolicy;

import static dev.capsule.runtime.network.StandInInternet.ALLOWED;
import static dev.capsule.runtime.network.StandInInternet.BLOCKED;
import static dev.capsule.runtime.network.StandInInternet.CDN_STALE;
import static dev.capsule.runtime.network.StandInInternet.METADATA;
import static dev.capsule.runtime.network.StandInInternet.OPEN;
import static dev.capsule.runtime.network.StandInInternet.PRIVATE;
import static dev.capsule.runtime.network.StandInInternet.SOCKS;
import static dev.capsule.runtime.network.StandInInternet.SOCKS_PASSWORD;
import static dev.capsule.runtime.network.StandInInternet.SOCKS_USER;
import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Egress policies on the real host: real namespaces, veths, nftables, and Capsule's DNS server and transparent proxy
 * in this JVM, against a {@link StandInInternet} in a namespace this test makes. Programs "in the sandbox" run with
 * {@code ip netns exec} in its namespace — with every capability there, more than a sandbox's root has — so what
 * they cannot do, a sandbox cannot either. Each test ends with nothing of ours left on the host.
 */
class EgressPolicyTest {

    static final NetworkConfig CONFIG = NetworkConfig.defaults()
            .withName("capsuleeg", "ceg")
            .withPool(Ipv4Cidr.parse("10.219.0.0/24"))
            .withNameservers(List.of(StandInInternet.DNS));

    static StandInInternet internet;
    static Path client;
    SandboxNetworks networks;

    @BeforeAll
    static void startInternet() throws IOException {
        internet = new StandInInternet("cgw-internet", "cgwnet", "198.18.2.0");
        client = StandInInternet.resource("client.py");
    }

    @AfterAll
    static void stopInternet() throws IOException {
        if (internet != null) {
            internet.close();
        }
        if (client != null) {
            Files.deleteIfExists(client);
        }
        assertThat(HostNet.namespaces("cgw-internet")).isEmpty();
        assertThat(HostNet.links("cgwnet")).isEmpty();
    }

    @AfterEach
    void cleanUp() {
        if (networks != null) {
            networks.releaseAll();
            networks.close();
        }
        assertThat(HostNet.namespaces("capsuleeg-")).isEmpty();
        assertThat(HostNet.links("ceg")).isEmpty();
        assertThat(HostNet.nftTables()).doesNotContain("table inet capsuleeg");
    }

    SandboxNetwork sandbox(String id, NetworkPolicy policy) {
        if (networks == null) {
            networks = SandboxNetworks.open(CONFIG);
        }
        internet.drain();
        return networks.allocate(id, policy);
    }

    /** What {@code client.py args} printed in the sandbox's namespace, or null if it failed. */
    static String in(SandboxNetwork sandbox, String... args) {
        List<String> command = new java.util.ArrayList<>(List.of("ip", "netns", "exec", sandbox.namespace(),
                HostNet.PYTHON, client.toString()));
        command.addAll(List.of(args));
        HostNet.Run run = HostNet.run(command.toArray(String[]::new));
        if (run.exitCode() != 0) {
            System.out.println(String.join(" ", args) + ": " + run.stderr().strip()); // why, in the test's output
        }
        return run.exitCode() == 0 ? run.stdout().strip() : null;
    }

    static String http(SandboxNetwork sandbox, String address, String host) {
        return in(sandbox, "http", address, "80", host);
    }

    static String tls(SandboxNetwork sandbox, String address, String serverName) {
        return in(sandbox, "tls", address, "443", serverName);
    }

    static String dns(SandboxNetwork sandbox, String server, String name) {
        return in(sandbox, "dns", server, name);
    }

    @Test
    void addressRulesAllowWhatTheyListAndAllowBeatsDeny() {
        SandboxNetwork onlyOne = sandbox("only-one", new NetworkPolicy(true, List.of(ALLOWED),
                List.of(NetworkPolicy.ALL_TRAFFIC)));
        SandboxNetwork denyRange = sandbox("deny-range", new NetworkPolicy(true, List.of(),
                List.of("203.0.113.0/24")));
        SandboxNetwork allowInsideDeny = sandbox("allow-in-deny", new NetworkPolicy(true, List.of(BLOCKED),
                List.of("203.0.113.0/24")));
        SandboxNetwork offButOne = sandbox("off-but-one", new NetworkPolicy(false, List.of(OPEN + "/32"),
                List.of()));

        assertThat(http(onlyOne, ALLOWED, "x")).startsWith("hello from allowed");
        assertThat(http(onlyOne, OPEN, "x")).isNull();
        assertThat(http(onlyOne, BLOCKED, "x")).isNull();

        assertThat(http(denyRange, OPEN, "x")).startsWith("hello from open");
        assertThat(http(denyRange, BLOCKED, "x")).isNull();

        assertThat(http(allowInsideDeny, BLOCKED, "x")).startsWith("hello from blocked");

        assertThat(http(offButOne, OPEN, "x")).startsWith("hello from open");
        assertThat(http(offButOne, ALLOWED, "x")).isNull();
    }

    @Test
    void privateLinkLocalAndMetadataRangesAreDeniedUnlessOpenedOnPurpose() {
        SandboxNetwork open = sandbox("open", NetworkPolicy.OPEN);
        SandboxNetwork opened = sandbox("opened", new NetworkPolicy(true, List.of(PRIVATE), List.of()));
        SandboxNetwork everything = sandbox("everything", new NetworkPolicy(true, List.of("0.0.0.0/0"), List.of()));

        assertThat(http(open, OPEN, "x")).as("control").startsWith("hello from open");
        assertThat(http(open, METADATA, "x")).isNull();
        assertThat(http(open, PRIVATE, "x")).isNull();
        assertThat(http(everything, PRIVATE, "x")).as("0.0.0.0/0 is not a private range").isNull();
        assertThat(http(opened, PRIVATE, "x")).startsWith("hello from private");
        assertThat(http(opened, METADATA, "x")).isNull();
    }

    @Test
    void domainRulesGoByNameAndASpoofedNameReachesOnlyTheNamedServer() {
        SandboxNetwork sandbox = sandbox("domains", new NetworkPolicy(true,
                List.of("allowed.test", "*.allowed.test"), List.of(NetworkPolicy.ALL_TRAFFIC)));

        // DNS: answered through Capsule's resolver whatever server the sandbox asks; other names never leave.
        assertThat(dns(sandbox, "9.9.9.9", "allowed.test")).isEqualTo(ALLOWED);
        assertThat(dns(sandbox, sandbox.gateway().getHostAddress(), "cdn.allowed.test")).isEqualTo(StandInInternet.CDN);
        assertThat(in(sandbox, "dns", "1.1.1.1", "allowed.test", "tcp")).as("DNS over TCP").isEqualTo(ALLOWED);
        assertThat(dns(sandbox, "9.9.9.9", "leak-a-secret.blocked.test")).isEqualTo("NXDOMAIN");
        assertThat(internet.drain()).contains("dns allowed.test", "dns cdn.allowed.test")
                .noneMatch(line -> line.contains("blocked.test"));

        assertThat(tls(sandbox, ALLOWED, "allowed.test")).isEqualTo("hello from allowed sni=allowed.test");
        assertThat(http(sandbox, ALLOWED, "allowed.test")).isEqualTo("hello from allowed host=allowed.test");
        assertThat(tls(sandbox, CDN_STALE, "cdn.allowed.test"))
                .as("an address the name no longer resolves to: the proxy connects to the current one")
                .isEqualTo("hello from cdn sni=cdn.allowed.test");

        assertThat(tls(sandbox, BLOCKED, "blocked.test")).isNull();
        assertThat(http(sandbox, BLOCKED, "blocked.test")).isNull();
        assertThat(tls(sandbox, BLOCKED, "allowed.test")).as("spoofed SNI to a blocked address")
                .isEqualTo("hello from allowed sni=allowed.test");
        assertThat(http(sandbox, BLOCKED, "allowed.test")).as("spoofed Host to a blocked address")
                .isEqualTo("hello from allowed host=allowed.test");
        assertThat(http(sandbox, OPEN, "open.test")).as("a name not allowed").isNull();
        assertThat(tls(sandbox, ALLOWED, "rebind.allowed.test")).as("an allowed name resolving to a private address")
                .isNull();
        assertThat(in(sandbox, "echo", ALLOWED, "7")).as("no SNI or Host: address rules only").isNull();
    }

    @Test
    void aWildcardCoversSubdomainsButNotTheDomainItself() {
        SandboxNetwork sandbox = sandbox("wildcard", new NetworkPolicy(true, List.of("*.allowed.test"),
                List.of(NetworkPolicy.ALL_TRAFFIC)));
        assertThat(tls(sandbox, CDN_STALE, "cdn.allowed.test")).isEqualTo("hello from cdn sni=cdn.allowed.test");
        assertThat(tls(sandbox, ALLOWED, "allowed.test")).isNull();
        assertThat(dns(sandbox, "9.9.9.9", "allowed.test")).isEqualTo("NXDOMAIN");
    }

    @Test
    void anEgressProxyTunnelsTheSandboxesTcpAndFailsClosed() {
        NetworkPolicy.EgressProxy proxy = new NetworkPolicy.EgressProxy(SOCKS + ":1080", SOCKS_USER,
                SOCKS_PASSWORD);
        SandboxNetwork tunnelled = sandbox("tunnelled", new NetworkPolicy(true, List.of(), List.of(), proxy));
        SandboxNetwork domains = sandbox("tunnelled-domains", new NetworkPolicy(true, List.of("allowed.test"),
                List.of(NetworkPolicy.ALL_TRAFFIC), proxy));
        SandboxNetwork wrongPassword = sandbox("wrong-password", new NetworkPolicy(true, List.of(), List.of(),
                new NetworkPolicy.EgressProxy(SOCKS + ":1080", SOCKS_USER, "wrong")));

        assertThat(http(tunnelled, OPEN, "open.test")).isEqualTo("hello from open host=open.test");
        assertThat(internet.drain()).contains("socks " + SOCKS_USER + " " + OPEN + ":80");

        assertThat(tls(domains, BLOCKED, "allowed.test")).isEqualTo("hello from allowed sni=allowed.test");
        assertThat(internet.drain()).as("by name, so the proxy resolves it")
                .contains("socks " + SOCKS_USER + " allowed.test:443");
        assertThat(tls(domains, OPEN, "open.test")).as("filtering comes before the tunnel").isNull();
        assertThat(internet.drain()).noneMatch(line -> line.startsWith("socks "));

        assertThat(http(wrongPassword, OPEN, "open.test")).as("no direct fallback").isNull();
        assertThat(internet.drain()).contains("socks-denied " + SOCKS_USER);
    }

    @Test
    void rootInTheSandboxsNamespaceCannotUndoThePolicy() throws IOException {
        SandboxNetwork sandbox = sandbox("rooted", new NetworkPolicy(true, List.of("allowed.test"),
                List.of(NetworkPolicy.ALL_TRAFFIC)));
        String ns = sandbox.namespace();
        // Everything root could do inside, with CAP_NET_ADMIN in the namespace (a sandbox does not even have it):
        HostNet.ok("ip", "netns", "exec", ns, "nft", "add table inet mine; add chain inet mine out "
                + "{ type filter hook output priority -300; policy accept; }; add rule inet mine out accept");
        HostNet.ok("ip", "-n", ns, "route", "add", "203.0.113.0/24", "dev", "eth0");
        assertThat(http(sandbox, BLOCKED, "blocked.test")).as("on-link: nobody else is on the link").isNull();
        HostNet.ok("ip", "-n", ns, "route", "del", "203.0.113.0/24", "dev", "eth0");
        HostNet.ok("ip", "-n", ns, "route", "replace", "default", "via", sandbox.gateway().getHostAddress(),
                "dev", "eth0", "src", sandbox.addressText());
        Path resolvConf = Path.of("/etc/netns", ns, "resolv.conf");
        boolean hadNetnsDir = Files.isDirectory(resolvConf.getParent().getParent());
        try {
            Files.createDirectories(resolvConf.getParent());
            Files.writeString(resolvConf, "nameserver " + BLOCKED + "\n"); // ip netns exec mounts it on /etc
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
        try {
            assertThat(http(sandbox, BLOCKED, "blocked.test")).isNull();
            assertThat(http(sandbox, OPEN, "x")).isNull();
            assertThat(dns(sandbox, BLOCKED, "blocked.test")).as("DNS to any server ends at Capsule's")
                    .isEqualTo("NXDOMAIN");
            assertThat(HostNet.run("ip", "netns", "exec", ns, "getent", "hosts", "allowed.test").stdout())
                    .as("through the edited resolv.conf").contains(ALLOWED);
            try (java.net.ServerSocket service = new java.net.ServerSocket(0)) {
                Thread.ofVirtual().start(() -> {
                    try (java.net.Socket socket = service.accept()) {
                        socket.getOutputStream().write("hello from the host".getBytes());
                    } catch (IOException e) {
                        // closed
                    }
                });
                String port = Integer.toString(service.getLocalPort());
                String gateway = sandbox.gateway().getHostAddress();
                assertThat(in(sandbox, "tcp", gateway, port)).as("the host's services").isNull();
                assertThat(HostNet.run(HostNet.PYTHON, client.toString(), "tcp", gateway, port).stdout())
                        .as("control: the host itself reaches it there").isEqualTo("hello from the host\n");
            }
            assertThat(tls(sandbox, BLOCKED, "allowed.test")).isEqualTo("hello from allowed sni=allowed.test");
        } finally {
            HostNet.run("rm", "-r", resolvConf.getParent().toString());
            if (!hadNetnsDir) {
                HostNet.run("rmdir", resolvConf.getParent().getParent().toString());
            }
        }
    }

    @Test
    void aPolicyUpdateTakesEffectOnTheRunningSandbox() {
        SandboxNetwork sandbox = sandbox("updated", NetworkPolicy.OPEN);
        assertThat(http(sandbox, OPEN, "x")).startsWith("hello from open");

        networks.updatePolicy("updated", new NetworkPolicy(true, List.of("allowed.test"),
                List.of(NetworkPolicy.ALL_TRAFFIC)));
        assertThat(http(sandbox, OPEN, "x")).isNull();
        assertThat(dns(sandbox, "9.9.9.9", "open.test")).isEqualTo("NXDOMAIN");
        assertThat(tls(sandbox, ALLOWED, "allowed.test")).isEqualTo("hello from allowed sni=allowed.test");

        networks.updatePolicy("updated", NetworkPolicy.NO_INTERNET);
        assertThat(tls(sandbox, ALLOWED, "allowed.test")).isNull();

        networks.updatePolicy("updated", NetworkPolicy.OPEN);
        assertThat(http(sandbox, OPEN, "x")).startsWith("hello from open");
        assertThat(dns(sandbox, "9.9.9.9", "open.test")).isEqualTo(OPEN);
    }
}
