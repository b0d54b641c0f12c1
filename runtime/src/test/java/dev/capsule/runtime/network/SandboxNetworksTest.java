package dev.capsule.runtime.network;

import dev.capsule.runtime.NetworkPolicy;

import static dev.capsule.runtime.network.HostNet.connectFrom;
import static dev.capsule.runtime.network.HostNet.connectFromHost;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Sandbox networks on the real host: real namespaces, veths and nftables. A stand-in "internet host" lives in
 * a namespace this test makes, on a test-only address (198.18.0.0/30, the benchmarking range), so no traffic
 * leaves the machine. Every test ends with nothing of ours left in {@code ip netns}, {@code ip link} or nft.
 */
class SandboxNetworksTest {

    static final NetworkConfig CONFIG = NetworkConfig.defaults()
            .withName("capsuletest", "cst")
            .withPool(Ipv4Cidr.parse("10.213.0.0/24"));

    static final String INTERNET_NS = "cti-internet";
    static final String INTERNET_LINK = "ctinet";
    static final String INTERNET_HOST_SIDE = "198.18.0.1";
    static final String INTERNET_ADDRESS = "198.18.0.2";
    static final String METADATA = "169.254.169.254";
    static final int PORT = 8080;

    static String forwardingBefore;
    static HostNet.Server internetServer;

    @BeforeAll
    static void makeInternetHost() throws IOException {
        forwardingBefore = Files.readString(Path.of("/proc/sys/net/ipv4/ip_forward")).strip();
        HostNet.ok("ip", "netns", "add", INTERNET_NS);
        HostNet.ok("ip", "link", "add", INTERNET_LINK, "type", "veth", "peer", "name", "eth0", "netns", INTERNET_NS);
        HostNet.ok("ip", "addr", "add", INTERNET_HOST_SIDE + "/30", "dev", INTERNET_LINK);
        HostNet.ok("ip", "link", "set", INTERNET_LINK, "up");
        HostNet.ok("ip", "-n", INTERNET_NS, "addr", "add", INTERNET_ADDRESS + "/30", "dev", "eth0");
        HostNet.ok("ip", "-n", INTERNET_NS, "link", "set", "eth0", "up");
        HostNet.ok("ip", "-n", INTERNET_NS, "link", "set", "lo", "up");
        // The cloud metadata address, routed into the test namespace so a failing rule cannot reach a real one.
        HostNet.ok("ip", "-n", INTERNET_NS, "addr", "add", METADATA + "/32", "dev", "eth0");
        HostNet.ok("ip", "route", "add", METADATA + "/32", "via", INTERNET_ADDRESS, "dev", INTERNET_LINK);
        internetServer = new HostNet.Server(INTERNET_NS, "0.0.0.0", PORT, "internet");
    }

    @AfterAll
    static void removeInternetHost() throws Exception {
        if (internetServer != null) {
            internetServer.close();
        }
        HostNet.run("ip", "link", "del", INTERNET_LINK);
        HostNet.run("ip", "netns", "del", INTERNET_NS);
        assertThat(HostNet.namespaces(INTERNET_NS)).isEmpty();
        assertThat(HostNet.links(INTERNET_LINK)).isEmpty();
        assertThat(Files.readString(Path.of("/proc/sys/net/ipv4/ip_forward")).strip())
                .as("IPv4 forwarding is back to what it was before the tests")
                .isEqualTo(forwardingBefore);
    }

    private final List<AutoCloseable> toClose = new ArrayList<>();

    @AfterEach
    void cleanUp() throws Exception {
        for (AutoCloseable closeable : toClose.reversed()) {
            closeable.close();
        }
        try (SandboxNetworks networks = SandboxNetworks.open(CONFIG)) {
            networks.releaseAll();
        }
        assertNothingLeft();
    }

    static void assertNothingLeft() {
        assertThat(HostNet.namespaces("capsuletest-")).isEmpty();
        assertThat(HostNet.links("cst")).isEmpty();
        assertThat(HostNet.nftTables()).doesNotContain("table inet capsuletest");
    }

    /** An instance closed after the test, so its DNS server and proxy stop. */
    SandboxNetworks open(NetworkConfig config) {
        SandboxNetworks networks = SandboxNetworks.open(config);
        toClose.add(networks);
        return networks;
    }

    HostNet.Server serve(SandboxNetwork sandbox) {
        HostNet.Server server = new HostNet.Server(sandbox.namespace(), "0.0.0.0", PORT, sandbox.sandboxId());
        toClose.add(server);
        return server;
    }

    @Test
    void twoSandboxesGetDistinctAddressesAndReleaseLeavesNothing() {
        SandboxNetworks networks = open(CONFIG);
        SandboxNetwork a = networks.allocate("sbx-a", NetworkPolicy.OPEN);
        SandboxNetwork b = networks.allocate("sbx-b", NetworkPolicy.NO_INTERNET);

        assertThat(a.address()).isNotEqualTo(b.address());
        assertThat(a.hostInterface()).isNotEqualTo(b.hostInterface());
        assertThat(CONFIG.pool().contains(a.address())).isTrue();
        assertThat(CONFIG.pool().contains(b.gateway())).isTrue();
        assertThat(a.hostInterface().length()).isLessThanOrEqualTo(15);
        assertThat(a.namespacePath()).isEqualTo(Path.of("/run/netns/capsuletest-sbx-a")).exists();
        assertThat(HostNet.namespaces("capsuletest-")).containsExactlyInAnyOrder("capsuletest-sbx-a",
                "capsuletest-sbx-b");
        assertThat(HostNet.ok("ip", "-n", a.namespace(), "-o", "-4", "addr", "show", "dev", "eth0"))
                .contains("inet " + a.addressText() + "/30");
        assertThat(HostNet.ok("ip", "-n", a.namespace(), "route", "show", "default"))
                .contains("default via " + a.gateway().getHostAddress() + " dev eth0");
        assertThat(HostNet.ok("ip", "-n", a.namespace(), "-o", "link", "show", "lo")).contains("UP");
        assertThat(HostNet.ok("nft", "list", "table", "inet", "capsuletest"))
                .contains("chain sbx_" + a.hostInterface(), "chain sbx_" + b.hostInterface(),
                        "comment \"sandbox sbx-a\"");
        assertThat(networks.list()).extracting(SandboxNetwork::sandboxId).containsExactly("sbx-a", "sbx-b");

        assertThat(networks.release("sbx-a")).isTrue();
        assertThat(HostNet.namespaces("capsuletest-")).containsExactly("capsuletest-sbx-b");
        assertThat(HostNet.links("cst")).containsExactly(b.hostInterface());
        assertThat(HostNet.ok("nft", "list", "table", "inet", "capsuletest"))
                .doesNotContain("sbx_" + a.hostInterface()).contains("sbx_" + b.hostInterface());

        assertThat(networks.release("sbx-b")).isTrue();
        assertNothingLeft();
        assertThat(networks.release("sbx-b")).as("a second release finds nothing").isFalse();
        assertThat(networks.release("never-allocated")).isFalse();
        assertThat(networks.list()).isEmpty();
    }

    @Test
    void hostReachesEveryPortOfASandboxWithOrWithoutInternet() {
        SandboxNetworks networks = open(CONFIG);
        SandboxNetwork online = networks.allocate("online", NetworkPolicy.OPEN);
        SandboxNetwork offline = networks.allocate("offline", NetworkPolicy.NO_INTERNET);
        serve(online);
        serve(offline);

        assertThat(connectFromHost(online.addressText(), PORT)).isEqualTo("hello from online");
        assertThat(connectFromHost(offline.addressText(), PORT)).isEqualTo("hello from offline");
    }

    @Test
    void internetAccessFollowsThePolicyAndItsUpdates() {
        SandboxNetworks networks = open(CONFIG);
        SandboxNetwork online = networks.allocate("online", NetworkPolicy.OPEN);
        SandboxNetwork offline = networks.allocate("offline", NetworkPolicy.NO_INTERNET);

        assertThat(connectFrom(online.namespace(), INTERNET_ADDRESS, PORT, 3)).isEqualTo("hello from internet");
        assertThat(connectFrom(offline.namespace(), INTERNET_ADDRESS, PORT, 1)).isNull();

        networks.updatePolicy("offline", NetworkPolicy.OPEN);
        networks.updatePolicy("online", NetworkPolicy.NO_INTERNET);
        assertThat(connectFrom(offline.namespace(), INTERNET_ADDRESS, PORT, 3)).isEqualTo("hello from internet");
        assertThat(connectFrom(online.namespace(), INTERNET_ADDRESS, PORT, 1)).isNull();
        assertThat(networks.find("online")).get().extracting(SandboxNetwork::policy)
                .isEqualTo(NetworkPolicy.NO_INTERNET);
    }

    @Test
    void sandboxesCannotReachEachOtherNorTheLinkLocalRange() {
        SandboxNetworks networks = open(CONFIG);
        SandboxNetwork a = networks.allocate("sbx-a", NetworkPolicy.OPEN);
        SandboxNetwork b = networks.allocate("sbx-b", NetworkPolicy.OPEN);
        serve(b);

        assertThat(connectFromHost(b.addressText(), PORT)).as("control: b's server is up").isEqualTo("hello from sbx-b");
        assertThat(connectFrom(a.namespace(), b.addressText(), PORT, 1)).isNull();
        assertThat(connectFrom(a.namespace(), b.gateway().getHostAddress(), PORT, 1)).isNull();
        assertThat(connectFromHost(METADATA, PORT)).as("control: the metadata stand-in is up")
                .isEqualTo("hello from internet");
        assertThat(connectFrom(a.namespace(), METADATA, PORT, 1)).isNull();
    }

    @Test
    void aSandboxTakingAnotherSandboxsAddressGetsNothingOut() throws Exception {
        SandboxNetworks networks = open(CONFIG);
        SandboxNetwork spoofer = networks.allocate("spoofer", NetworkPolicy.OPEN);
        SandboxNetwork victim = networks.allocate("victim", NetworkPolicy.OPEN);
        HostNet.UdpSink sink = new HostNet.UdpSink(INTERNET_NS, 9000);
        toClose.add(sink);
        HostNet.sendUdpFrom(spoofer.namespace(), INTERNET_ADDRESS, 9000, "genuine");
        assertThat(sink.next(5)).as("control: the sandbox's own address gets out").isEqualTo("genuine");

        // Root in the sandbox takes the victim's address; the host must drop what it sends.
        HostNet.ok("ip", "-n", spoofer.namespace(), "addr", "flush", "dev", "eth0");
        HostNet.ok("ip", "-n", spoofer.namespace(), "addr", "add", victim.addressText() + "/24", "dev", "eth0");
        HostNet.ok("ip", "-n", spoofer.namespace(), "route", "add", "default", "via",
                spoofer.gateway().getHostAddress());
        HostNet.sendUdpFrom(spoofer.namespace(), INTERNET_ADDRESS, 9000, "spoofed");
        assertThat(sink.next(1)).isNull();
    }

    @Test
    void hostServicesAreClosedToSandboxesExceptTheAllowedOnes() throws IOException {
        try (ServerSocket allowed = new ServerSocket(0, 16, InetAddress.getByName(INTERNET_HOST_SIDE));
             ServerSocket closed = new ServerSocket(0, 16, InetAddress.getByName(INTERNET_HOST_SIDE))) {
            toClose.add(greeter(allowed, "allowed"));
            toClose.add(greeter(closed, "closed"));
            SandboxNetworks networks = open(
                    CONFIG.withHostServices(List.of(HostService.tcp(allowed.getLocalPort()))));
            SandboxNetwork sandbox = networks.allocate("sbx", NetworkPolicy.NO_INTERNET);
            ServerSocket onGateway = new ServerSocket(0, 16, sandbox.gateway());
            toClose.add(greeter(onGateway, "gateway"));

            assertThat(connectFromHost(INTERNET_HOST_SIDE, closed.getLocalPort())).as("control").isEqualTo("closed");
            assertThat(connectFrom(sandbox.namespace(), INTERNET_HOST_SIDE, allowed.getLocalPort(), 3))
                    .isEqualTo("allowed");
            assertThat(connectFrom(sandbox.namespace(), INTERNET_HOST_SIDE, closed.getLocalPort(), 1)).isNull();
            assertThat(connectFrom(sandbox.namespace(), sandbox.gateway().getHostAddress(),
                    onGateway.getLocalPort(), 1)).isNull();
        }
    }

    /** Answers each connection on {@code server} with {@code greeting} on a virtual thread until closed. */
    static AutoCloseable greeter(ServerSocket server, String greeting) {
        Thread thread = Thread.ofVirtual().start(() -> {
            while (!server.isClosed()) {
                try (Socket socket = server.accept()) {
                    socket.getOutputStream().write((greeting + "\n").getBytes());
                } catch (IOException e) {
                    return;
                }
            }
        });
        return () -> {
            server.close();
            thread.join();
        };
    }

    @Test
    void turningOnForwardingForSandboxesForwardsNothingElse() throws Exception {
        assumeTrue(forwardingBefore.equals("0"), "only meaningful where Capsule is the one enabling forwarding");
        // A second test-made host ("a LAN") that would reach the internet host if the host forwarded for it.
        toClose.add(() -> {
            HostNet.run("ip", "link", "del", "ctlan");
            HostNet.run("ip", "netns", "del", "cti-lan");
            HostNet.run("ip", "-n", INTERNET_NS, "route", "del", "198.18.0.4/30");
        });
        HostNet.ok("ip", "netns", "add", "cti-lan");
        HostNet.ok("ip", "link", "add", "ctlan", "type", "veth", "peer", "name", "eth0", "netns", "cti-lan");
        HostNet.ok("ip", "addr", "add", "198.18.0.5/30", "dev", "ctlan");
        HostNet.ok("ip", "link", "set", "ctlan", "up");
        HostNet.ok("ip", "-n", "cti-lan", "addr", "add", "198.18.0.6/30", "dev", "eth0");
        HostNet.ok("ip", "-n", "cti-lan", "link", "set", "eth0", "up");
        HostNet.ok("ip", "-n", "cti-lan", "route", "add", "default", "via", "198.18.0.5");
        HostNet.ok("ip", "-n", INTERNET_NS, "route", "add", "198.18.0.4/30", "via", INTERNET_HOST_SIDE);

        SandboxNetworks networks = open(CONFIG);
        SandboxNetwork sandbox = networks.allocate("sbx", NetworkPolicy.OPEN);
        assertThat(Files.readString(Path.of("/proc/sys/net/ipv4/ip_forward")).strip()).isEqualTo("1");
        assertThat(connectFrom(sandbox.namespace(), INTERNET_ADDRESS, PORT, 3)).isEqualTo("hello from internet");
        assertThat(connectFrom("cti-lan", INTERNET_ADDRESS, PORT, 1)).isNull();

        networks.release("sbx");
        assertThat(Files.readString(Path.of("/proc/sys/net/ipv4/ip_forward")).strip())
                .as("forwarding is off again with the last sandbox").isEqualTo("0");
    }

    @Test
    void aTableRemovedBehindItsBackIsRestoredByTheNextChange() {
        SandboxNetworks networks = open(CONFIG);
        networks.allocate("first", NetworkPolicy.OPEN);
        HostNet.ok("nft", "delete", "table", "inet", "capsuletest");
        SandboxNetwork second = networks.allocate("second", NetworkPolicy.OPEN);
        assertThat(HostNet.ok("nft", "list", "table", "inet", "capsuletest")).contains("sbx_" + second.hostInterface());
        assertThat(connectFrom(second.namespace(), INTERNET_ADDRESS, PORT, 3)).isEqualTo("hello from internet");
        // The first sandbox's rules went with the table: it stays closed rather than open, and adopt restores it.
        SandboxNetwork first = networks.find("first").orElseThrow();
        assertThat(connectFrom(first.namespace(), INTERNET_ADDRESS, PORT, 1)).isNull();
        networks.adopt(Map.of("first", NetworkPolicy.OPEN, "second", NetworkPolicy.OPEN));
        assertThat(connectFrom(first.namespace(), INTERNET_ADDRESS, PORT, 3)).isEqualTo("hello from internet");
    }

    @Test
    void aRestartedServerAdoptsLiveSandboxesAndRemovesOrphans() throws Exception {
        SandboxNetworks before = open(CONFIG);
        SandboxNetwork live = before.allocate("live", NetworkPolicy.OPEN);
        SandboxNetwork orphan = before.allocate("orphan", NetworkPolicy.OPEN);
        serve(live);
        // Leftovers of a crash half-way through a create: a namespace with no veth, a veth with no sandbox.
        HostNet.ok("ip", "netns", "add", "capsuletest-half");
        HostNet.ok("ip", "link", "add", "cst63", "type", "veth", "peer", "name", "cst63peer");

        SandboxNetworks after = open(CONFIG);
        assertThat(after.unadopted()).containsExactlyInAnyOrder("live", "orphan", "half");
        assertThat(after.list()).isEmpty();

        Adoption adoption = after.adopt(Map.of("live", NetworkPolicy.NO_INTERNET, "ghost", NetworkPolicy.OPEN));

        assertThat(adoption.adopted()).singleElement().satisfies(adopted -> {
            assertThat(adopted.sandboxId()).isEqualTo("live");
            assertThat(adopted.address()).isEqualTo(live.address());
            assertThat(adopted.hostInterface()).isEqualTo(live.hostInterface());
            assertThat(adopted.policy()).isEqualTo(NetworkPolicy.NO_INTERNET);
        });
        assertThat(adoption.removed()).containsExactlyInAnyOrder("orphan", "half");
        assertThat(adoption.missing()).containsExactly("ghost");
        assertThat(HostNet.namespaces("capsuletest-")).containsExactly("capsuletest-live");
        assertThat(HostNet.links("cst")).containsExactly(live.hostInterface());
        assertThat(HostNet.ok("nft", "list", "table", "inet", "capsuletest"))
                .contains("sbx_" + live.hostInterface()).doesNotContain("sbx_" + orphan.hostInterface());

        assertThat(connectFromHost(live.addressText(), PORT)).isEqualTo("hello from live");
        assertThat(connectFrom(live.namespace(), INTERNET_ADDRESS, PORT, 1))
                .as("the adopted policy (no internet) is the one in force").isNull();

        SandboxNetwork fresh = after.allocate("fresh", NetworkPolicy.OPEN);
        assertThat(fresh.address()).isNotEqualTo(live.address());
        assertThat(connectFrom(fresh.namespace(), INTERNET_ADDRESS, PORT, 3)).isEqualTo("hello from internet");

        assertThat(after.release("live")).isTrue();
        assertThat(after.release("fresh")).isTrue();
        assertNothingLeft();
    }

    @Test
    void allocationBeforeAdoptionDoesNotReuseAddressesFoundOnTheHost() {
        SandboxNetworks before = open(CONFIG);
        Set<String> addresses = new HashSet<>();
        for (int i = 0; i < 3; i++) {
            addresses.add(before.allocate("old-" + i, NetworkPolicy.OPEN).addressText());
        }
        SandboxNetworks after = open(CONFIG);
        for (int i = 0; i < 3; i++) {
            assertThat(addresses.add(after.allocate("new-" + i, NetworkPolicy.OPEN).addressText())).isTrue();
        }
        assertThat(after.release("old-1")).as("an unadopted network can be released").isTrue();
        assertThat(HostNet.namespaces("capsuletest-old-1")).isEmpty();
    }

    @Test
    void concurrentAllocationsAndReleasesNeitherCollideNorLeak() throws Exception {
        SandboxNetworks networks = open(CONFIG);
        try (ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<SandboxNetwork>> allocations = new ArrayList<>();
            for (int i = 0; i < 10; i++) {
                String id = "c" + i;
                allocations.add(pool.submit(() -> networks.allocate(id, NetworkPolicy.OPEN)));
            }
            Set<String> addresses = new HashSet<>();
            for (Future<SandboxNetwork> allocation : allocations) {
                assertThat(addresses.add(allocation.get().addressText())).isTrue();
            }
            assertThat(HostNet.namespaces("capsuletest-")).hasSize(10);
            List<Future<Boolean>> releases = new ArrayList<>();
            for (int i = 0; i < 10; i++) {
                String id = "c" + i;
                releases.add(pool.submit(() -> networks.release(id)));
            }
            for (Future<Boolean> release : releases) {
                assertThat(release.get()).isTrue();
            }
        }
        assertNothingLeft();
    }

    @Test
    void badRequestsAreRejectedWithAReason() {
        SandboxNetworks networks = open(CONFIG);
        for (String bad : new String[] {"", "../etc", "a b", "a/b", "-x", "x".repeat(129), "a\"b", "é"}) {
            assertThatThrownBy(() -> networks.allocate(bad, NetworkPolicy.OPEN))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("sandbox id");
        }
        assertThatThrownBy(() -> networks.allocate(null, NetworkPolicy.OPEN))
                .isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> networks.allocate("x", null)).isInstanceOf(IllegalArgumentException.class);
        networks.allocate("twice", NetworkPolicy.OPEN);
        assertThatThrownBy(() -> networks.allocate("twice", NetworkPolicy.OPEN))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("already has a network");
        assertThatThrownBy(() -> networks.updatePolicy("nobody", NetworkPolicy.OPEN))
                .isInstanceOf(java.util.NoSuchElementException.class).hasMessageContaining("nobody");
        assertThat(networks.list()).hasSize(1);
    }

    @Test
    void anExhaustedPoolSaysSo() {
        SandboxNetworks networks = open(CONFIG.withPool(Ipv4Cidr.parse("10.213.1.0/29")));
        networks.allocate("one", NetworkPolicy.OPEN);
        networks.allocate("two", NetworkPolicy.OPEN);
        assertThatThrownBy(() -> networks.allocate("three", NetworkPolicy.OPEN))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("exhausted");
        assertThat(HostNet.namespaces("capsuletest-three")).isEmpty();
    }

    @Test
    void allocateAndReleaseTimes() {
        SandboxNetworks networks = open(CONFIG);
        networks.allocate("warm", NetworkPolicy.OPEN); // keeps the table, as a running server would
        List<Long> allocate = new ArrayList<>();
        List<Long> release = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            long start = System.nanoTime();
            networks.allocate("timed-" + i, NetworkPolicy.OPEN);
            allocate.add((System.nanoTime() - start) / 1_000);
            start = System.nanoTime();
            networks.release("timed-" + i);
            release.add((System.nanoTime() - start) / 1_000);
        }
        long start = System.nanoTime();
        networks.release("warm");
        long last = (System.nanoTime() - start) / 1_000;
        System.out.println("allocate us: " + allocate + "\nrelease us: " + release + "\nlast release us: " + last);
    }

    @Test
    void configRejectsLayoutsThatCannotWork() {
        assertThatThrownBy(() -> CONFIG.withPool(Ipv4Cidr.parse("10.213.0.0/31")))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("/30");
        assertThatThrownBy(() -> CONFIG.withName("capsuletest", "abcdefghij").withPool(Ipv4Cidr.parse("10.0.0.0/8")))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("15");
        assertThatThrownBy(() -> CONFIG.withName("Bad-Name", "cst")).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> Ipv4Cidr.parse("10.213.0.1/24")).hasMessageContaining("host bits");
        assertThatThrownBy(() -> Ipv4Cidr.parse("10.213.0/24")).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> Ipv4Cidr.parse("10.213.0.256/24")).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> CONFIG.withNameservers(List.of())).hasMessageContaining("upstream DNS");
        assertThatThrownBy(() -> CONFIG.withNameservers(List.of("dns.example"))).hasMessageContaining("IP address");
    }

}
