package dev.capsule.runtime.oci;

import dev.capsule.runtime.ConsoleOutput;
import dev.capsule.runtime.NetworkPolicy;
import dev.capsule.runtime.ResourceUsage;
import dev.capsule.runtime.Resources;
import dev.capsule.runtime.RuntimeFailure;
import dev.capsule.runtime.SandboxInstance;
import dev.capsule.runtime.SandboxSpec;
import dev.capsule.runtime.TestEnvironment;
import dev.capsule.runtime.UnknownTemplate;
import dev.capsule.runtime.cgroup.Cgroups;
import dev.capsule.runtime.host.Command;
import dev.capsule.runtime.host.Mounts;
import dev.capsule.runtime.network.HostNet;
import dev.capsule.runtime.network.Ipv4Cidr;
import dev.capsule.runtime.network.NetworkConfig;
import org.awaitility.Awaitility;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.UUID;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * The oci driver end to end on real runc, nftables and envd: sandboxes from the cached base template with the
 * envd built by this reactor, talked to over HTTP at their own address. A stand-in "internet host" lives in a
 * namespace this test makes (198.18.1.2, the benchmarking range), so no traffic leaves the machine. Every test
 * ends by proving nothing is left: no container, mount, namespace, veth, nftables table, cgroup or file.
 */
public class OciRuntimeTest {

    static final String NETWORK_NAME = "capsuleoci";
    static final String LINK_PREFIX = "cso";
    static final String INTERNET_NS = "coi-internet";
    static final String INTERNET_LINK = "coinet";
    static final String INTERNET_ADDRESS = "198.18.1.2";
    static final int INTERNET_PORT = 8080;

    static HostNet.Server internetServer;

    Path dataDir;
    Path runcRoot;
    OciRuntimeConfig config;
    OciRuntime runtime;
    final List<String> ids = new ArrayList<>();

    @BeforeAll
    static void makeInternetHost() {
        HostNet.ok("ip", "netns", "add", INTERNET_NS);
        HostNet.ok("ip", "link", "add", INTERNET_LINK, "type", "veth", "peer", "name", "eth0", "netns", INTERNET_NS);
        HostNet.ok("ip", "addr", "add", "198.18.1.1/30", "dev", INTERNET_LINK);
        HostNet.ok("ip", "link", "set", INTERNET_LINK, "up");
        HostNet.ok("ip", "-n", INTERNET_NS, "addr", "add", INTERNET_ADDRESS + "/30", "dev", "eth0");
        HostNet.ok("ip", "-n", INTERNET_NS, "link", "set", "eth0", "up");
        HostNet.ok("ip", "-n", INTERNET_NS, "link", "set", "lo", "up");
        internetServer = new HostNet.Server(INTERNET_NS, "0.0.0.0", INTERNET_PORT, "internet");
    }

    @AfterAll
    static void removeInternetHost() throws Exception {
        if (internetServer != null) {
            internetServer.close();
        }
        HostNet.run("ip", "link", "del", INTERNET_LINK);
        HostNet.run("ip", "netns", "del", INTERNET_NS);
        assertThat(HostNet.namespaces(INTERNET_NS)).isEmpty();
    }

    /** A configuration of its own (directories, runc root, network names and pool) so nothing else is touched. */
    public static OciRuntimeConfig testConfig(Path dataDir, Path runcRoot) {
        return testConfig(dataDir, runcRoot, NETWORK_NAME, LINK_PREFIX, "10.214.0.0/24");
    }

    /**
     * As {@link #testConfig(Path, Path)} with a network of its own, for a test class that may run while another
     * runs this one (each network is claimed by one driver process at a time).
     */
    public static OciRuntimeConfig testConfig(Path dataDir, Path runcRoot, String networkName, String linkPrefix,
                                              String pool) {
        NetworkConfig network = NetworkConfig.defaults().withName(networkName, linkPrefix)
                .withPool(Ipv4Cidr.parse(pool));
        return OciRuntimeConfig.defaults().withRunc(runcRoot, RuncRuntime.DEFAULT_CGROUP_PARENT)
                .withDirectories(dataDir, TestEnvironment.cacheDir()).withNetwork(network);
    }

    @BeforeEach
    void setUp() throws IOException {
        dataDir = Files.createTempDirectory("capsule-oci-data");
        runcRoot = Files.createTempDirectory("capsule-oci-runc");
        config = testConfig(dataDir, runcRoot);
        runtime = new OciRuntime(config);
        runtime.prepare();
    }

    @AfterEach
    void removeEverythingAndProveNothingIsLeft() {
        runtime.removeOrphans(Set.of());
        runtime.close();
        assertNothingLeft(config, ids);
        Mounts.deleteTree(dataDir);
        Mounts.deleteTree(runcRoot);
    }

    /**
     * No container in the configuration's runc root, no mount, sandbox file or snapshot layer in its data dir, no
     * loop device on a file in it, no namespace, veth or nftables table of its network, no cgroup of the sandboxes
     * {@code ids}.
     */
    public static void assertNothingLeft(OciRuntimeConfig config, List<String> ids) {
        assertThat(Command.check("runc", "--root", config.runcRoot().toString(), "list", "--quiet").stdout())
                .isBlank();
        assertThat(Mounts.under(config.dataDir())).isEmpty();
        assertThat(config.dataDir().resolve("sandboxes")).satisfiesAnyOf(
                p -> assertThat(p).doesNotExist(), p -> assertThat(p).isEmptyDirectory());
        // snapshot layers: none, and no id naming one
        assertThat(config.dataDir().resolve("layers")).satisfiesAnyOf(p -> assertThat(p).doesNotExist(),
                p -> assertThat(p).isDirectoryNotContaining(entry -> !entry.getFileName().toString().equals("ids")));
        assertThat(config.dataDir().resolve("layers/ids")).satisfiesAnyOf(
                p -> assertThat(p).doesNotExist(), p -> assertThat(p).isEmptyDirectory());
        assertThat(Command.check("losetup", "--list", "--noheadings", "--output", "BACK-FILE").stdout())
                .as("loop devices of sandbox disks").doesNotContain(config.dataDir().toString());
        assertThat(HostNet.namespaces(config.network().name() + "-")).isEmpty();
        assertThat(HostNet.links(config.network().interfacePrefix())).isEmpty();
        assertThat(HostNet.nftTables()).doesNotContain("table inet " + config.network().name());
        for (String id : ids) {
            assertThat(Cgroups.existing(RuncRuntime.DEFAULT_CGROUP_PARENT + "/" + id)).as("cgroups of " + id).isEmpty();
        }
    }

    /** The gateway of a sandbox address: the address before it in its /30. */
    static byte[] gatewayOf(byte[] address) {
        byte[] gateway = address.clone();
        gateway[3]--;
        return gateway;
    }

    static String newId() {
        return UUID.randomUUID().toString().replace("-", "").substring(0, 20);
    }

    SandboxInstance start(NetworkPolicy policy) {
        String id = newId();
        ids.add(id);
        return runtime.start(new SandboxSpec(id, "base", Resources.DEFAULT, policy));
    }

    @Test
    void aStartedSandboxRunsEnvdAtItsAddressAsUserWithItsIdAsHostname() {
        long begin = System.nanoTime();
        SandboxInstance sandbox = start(NetworkPolicy.OPEN);
        System.out.printf("cold start() of a sandbox to envd healthy: %d ms%n", (System.nanoTime() - begin) / 1_000_000);

        EnvdClient envd = new EnvdClient(sandbox);
        assertThat(envd.health()).isEqualTo(204);
        assertThat(sandbox.templateId()).isEqualTo("base");
        assertThat(config.network().pool().contains((java.net.Inet4Address) sandbox.address())).isTrue();
        EnvdClient.Result result = envd.run("id -un; hostname");
        assertThat(result.exitCode()).isZero();
        assertThat(result.stdout()).isEqualTo("user\n" + sandbox.sandboxId() + "\n");
    }

    @Test
    void filesGoUpAndComeBack() {
        EnvdClient envd = new EnvdClient(start(NetworkPolicy.OPEN));
        byte[] content = "hello from the host\n\u00e9\u0000binary".getBytes(StandardCharsets.UTF_8);

        assertThat(envd.upload("/home/user/dir/hello.txt", content)).isEqualTo(200);
        assertThat(envd.download("/home/user/dir/hello.txt")).isEqualTo(content);
        assertThat(envd.run("stat -c %U /home/user/dir/hello.txt").stdout()).isEqualTo("user\n");
    }

    @Test
    void theSandboxSeesOnlyItsOwnProcesses() {
        EnvdClient envd = new EnvdClient(start(NetworkPolicy.OPEN));

        EnvdClient.Result result = envd.run("ps -e -o comm=");
        List<String> processes = result.stdout().lines().map(String::strip).toList();
        // the init, envd's JVM (named after the bundle's loader that runs it), and the bash that ran ps, if bash
        // did not exec ps itself
        assertThat(processes).first().isEqualTo("init");
        assertThat(processes).contains("ps").isSubsetOf("init", "ld-linux-x86-64", "bash", "ps")
                .hasSizeLessThanOrEqualTo(4);
        assertThat(envd.run("test -e /proc/" + ProcessHandle.current().pid() + "/cmdline && cat /proc/"
                + ProcessHandle.current().pid() + "/cmdline").stdout()).doesNotContain("surefire", "junit");
    }

    @Test
    void twoSandboxesCannotReachEachOtherButTheHostReachesBoth() {
        SandboxInstance first = start(NetworkPolicy.OPEN);
        SandboxInstance second = start(NetworkPolicy.OPEN);

        assertThat(new EnvdClient(first).health()).isEqualTo(204);
        assertThat(new EnvdClient(second).health()).isEqualTo(204);
        String probe = "curl -s -o /dev/null -m 2 http://%s:49983/health; echo exit=$?";
        assertThat(new EnvdClient(first).run(probe.formatted(second.address().getHostAddress())).stdout())
                .startsWith("exit=").isNotEqualTo("exit=0\n");
        assertThat(new EnvdClient(second).run(probe.formatted(first.address().getHostAddress())).stdout())
                .startsWith("exit=").isNotEqualTo("exit=0\n");
        // a sandbox reaches its own envd, so the probe itself works
        assertThat(new EnvdClient(first).run(probe.formatted("127.0.0.1")).stdout()).isEqualTo("exit=0\n");
    }

    static final String INTERNET_PROBE = "timeout 3 bash -c 'exec 3<>/dev/tcp/" + INTERNET_ADDRESS + "/"
            + INTERNET_PORT + " && head -1 <&3' 2>/dev/null; echo exit=$?";

    @Test
    void internetAccessFollowsThePolicyAndItsUpdates() {
        SandboxInstance online = start(NetworkPolicy.OPEN);
        SandboxInstance offline = start(NetworkPolicy.NO_INTERNET);

        assertThat(new EnvdClient(online).run(INTERNET_PROBE).stdout()).isEqualTo("hello from internet\nexit=0\n");
        assertThat(new EnvdClient(offline).run(INTERNET_PROBE).stdout()).doesNotContain("hello").isNotEqualTo("exit=0\n");
        assertThat(new EnvdClient(offline).health()).as("the host still reaches it").isEqualTo(204);

        runtime.applyNetworkPolicy(offline.sandboxId(), NetworkPolicy.OPEN);
        runtime.applyNetworkPolicy(online.sandboxId(), NetworkPolicy.NO_INTERNET);
        assertThat(new EnvdClient(offline).run(INTERNET_PROBE).stdout()).isEqualTo("hello from internet\nexit=0\n");
        assertThat(new EnvdClient(online).run(INTERNET_PROBE).stdout()).doesNotContain("hello");

        assertThatThrownBy(() -> runtime.applyNetworkPolicy("nosuchsandbox", NetworkPolicy.OPEN))
                .isInstanceOf(RuntimeFailure.class).hasMessageContaining("nosuchsandbox");
    }

    @Test
    void aNewInstanceFindsRunningSandboxesAndRemovesOrphans() throws IOException {
        SandboxInstance kept = start(NetworkPolicy.NO_INTERNET);
        SandboxInstance orphan = start(NetworkPolicy.OPEN);
        Files.createDirectories(dataDir.resolve("sandboxes/halfmade")); // what a crash mid-start leaves

        // a server restart: a new driver instance on the same configuration
        OciRuntime restarted = new OciRuntime(config);
        runtime = restarted;
        assertThat(restarted.discover()).containsExactlyInAnyOrder(kept, orphan);

        assertThat(restarted.removeOrphans(Set.of(kept.sandboxId(), "notonhost")))
                .containsExactlyInAnyOrder(orphan.sandboxId(), "halfmade");
        assertThat(restarted.discover()).containsExactly(kept);
        EnvdClient envd = new EnvdClient(kept);
        assertThat(envd.health()).isEqualTo(204);
        // the adopted network kept its recorded policy, and the new instance manages it
        assertThat(envd.run(INTERNET_PROBE).stdout()).doesNotContain("hello");
        restarted.applyNetworkPolicy(kept.sandboxId(), NetworkPolicy.OPEN);
        assertThat(envd.run(INTERNET_PROBE).stdout()).isEqualTo("hello from internet\nexit=0\n");

        restarted.destroy(kept.sandboxId());
        restarted.destroy(kept.sandboxId()); // idempotent
        assertThat(restarted.discover()).isEmpty();
    }

    @Test
    void pauseFreezesProcessesWithTheirMemoryAndResumeContinuesThem() throws Exception {
        SandboxInstance sandbox = start(NetworkPolicy.OPEN);
        String id = sandbox.sandboxId();
        EnvdClient envd = new EnvdClient(sandbox);
        Path upper = dataDir.resolve("sandboxes/" + id + "/disk/upper/home/user");
        // a counter kept only in the shell's memory, written out on each tick
        envd.run("setsid bash -c 'i=0; while true; do i=$((i+1)); echo $i > /home/user/count.tmp;"
                + " mv /home/user/count.tmp /home/user/count; sleep 0.02; done' >/dev/null 2>&1 < /dev/null &");
        assertThat(envd.upload("/home/user/before-pause.txt", "kept".getBytes(StandardCharsets.UTF_8))).isEqualTo(200);
        Awaitility.await().until(() -> count(upper) > 5);

        runtime.pause(id, true);
        runtime.pause(id, true); // pausing a paused sandbox does nothing
        assertThat(Files.readString(upper.resolve("before-pause.txt"))).as("on disk while paused").isEqualTo("kept");
        String cgroup = RuncRuntime.DEFAULT_CGROUP_PARENT + "/" + id;
        if (Cgroups.detect() != Cgroups.Mode.V2) {
            assertThat(Cgroups.read(cgroup, "freezer.state")).hasValueSatisfying(v -> assertThat(v).contains("FROZEN"));
        }
        long paused = count(upper);
        Thread.sleep(300); // long enough for about 15 ticks, had the loop not been frozen
        assertThat(count(upper)).as("the counter does not advance while paused").isEqualTo(paused);
        // a restarted driver sees it as paused
        OciRuntime restarted = new OciRuntime(config.withDirectories(dataDir, TestEnvironment.cacheDir()));
        try {
            assertThat(restarted.discover()).extracting(SandboxInstance::paused).containsExactly(true);
        } finally {
            restarted.close();
        }

        runtime.resume(id);
        runtime.resume(id); // resuming a running sandbox does nothing
        Awaitility.await().until(() -> count(upper) > paused);
        assertThat(count(upper)).as("continues from its count, not from zero").isGreaterThan(paused);
        assertThat(new String(envd.download("/home/user/before-pause.txt"), StandardCharsets.UTF_8)).isEqualTo("kept");
        assertThat(runtime.discover()).extracting(SandboxInstance::paused).containsExactly(false);

        // a paused sandbox can be destroyed; the after-each check proves nothing is left
        runtime.pause(id, true);
        runtime.destroy(id);
        assertThat(runtime.discover()).isEmpty();
        assertThatThrownBy(() -> runtime.resume(id)).isInstanceOf(RuntimeFailure.class).hasMessageContaining(id);
        assertThatThrownBy(() -> runtime.pause(id, true)).isInstanceOf(RuntimeFailure.class).hasMessageContaining(id);
    }

    private static long count(Path home) {
        try {
            String text = Files.readString(home.resolve("count")).strip();
            return text.isEmpty() ? 0 : Long.parseLong(text);
        } catch (IOException | NumberFormatException e) {
            return 0;
        }
    }

    @Test
    void usageComesFromTheCgroupAndTheUpperDirAndIsEmptyWhilePaused() {
        SandboxInstance sandbox = start(NetworkPolicy.OPEN);
        String id = sandbox.sandboxId();
        EnvdClient envd = new EnvdClient(sandbox);
        ResourceUsage first = runtime.usage(id).orElseThrow();
        assertThat(first.cpuCount()).isEqualTo(Resources.DEFAULT.cpuCount());
        assertThat(first.memTotal()).isEqualTo(Resources.DEFAULT.memoryMB() * 1024L * 1024L);
        assertThat(first.memUsed()).isPositive().isLessThan(first.memTotal());
        assertThat(first.diskTotal()).isPositive();

        // a second of busy CPU, 20 MB written to its files, 200 MB held by a process
        envd.run("timeout 1 sh -c 'while :; do :; done'; head -c 20000000 /dev/zero > /home/user/blob;"
                + " nohup python3 -c 'import time; x = bytearray(200 * 1024 * 1024); time.sleep(60)' >/dev/null 2>&1 &");
        Awaitility.await().atMost(java.time.Duration.ofSeconds(30)).untilAsserted(() -> {
            ResourceUsage now = runtime.usage(id).orElseThrow();
            assertThat(now.cpuUsageNanos() - first.cpuUsageNanos()).isGreaterThan(800_000_000L);
            assertThat(now.diskUsed() - first.diskUsed()).isGreaterThanOrEqualTo(20_000_000L);
            assertThat(now.memUsed() - first.memUsed()).isGreaterThan(190L * 1024 * 1024);
        });

        runtime.pause(id, true);
        assertThat(runtime.usage(id)).isEmpty();
        runtime.resume(id);
        assertThat(runtime.usage(id)).isPresent();
        runtime.destroy(id);
        assertThat(runtime.usage(id)).isEmpty();
    }

    @Test
    void theConsoleIsReadInWholeLinesFromAnOffset() {
        SandboxInstance sandbox = start(NetworkPolicy.OPEN);
        ConsoleOutput all = runtime.console(sandbox.sandboxId(), 0, 64 * 1024).orElseThrow();
        assertThat(all.lines()).anyMatch(line -> line.startsWith("envd listening on"));
        assertThat(all.next()).isPositive();
        assertThat(runtime.console(sandbox.sandboxId(), all.next(), 64 * 1024).orElseThrow().lines()).isEmpty();
        // a small read stops at a line's end, and the next read carries on from there
        ConsoleOutput head = runtime.console(sandbox.sandboxId(), 0, 8).orElseThrow();
        assertThat(head.lines()).hasSize(1);
        assertThat(head.next()).isPositive().isLessThanOrEqualTo(8);
        runtime.destroy(sandbox.sandboxId());
        assertThat(runtime.console(sandbox.sandboxId(), 0, 1024)).isEmpty();
    }

    @Test
    void anUnknownTemplateFailsClearlyAndTakesNothing() {
        String id = newId();
        assertThatThrownBy(() -> runtime.start(new SandboxSpec(id, "nosuchtemplate", Resources.DEFAULT,
                NetworkPolicy.OPEN)))
                .isInstanceOf(UnknownTemplate.class)
                .hasMessageContaining("'nosuchtemplate' does not exist")
                .satisfies(e -> assertThat(((UnknownTemplate) e).templateId()).isEqualTo("nosuchtemplate"));
        assertThat(runtime.discover()).isEmpty();
        assertThat(dataDir.resolve("sandboxes/" + id)).doesNotExist();
    }

    @Test
    void badRequestsFailWithAReasonAndLeaveTheExistingSandboxAlone() {
        SandboxInstance sandbox = start(NetworkPolicy.OPEN);

        assertThatThrownBy(() -> runtime.start(new SandboxSpec(sandbox.sandboxId(), "base", Resources.DEFAULT,
                NetworkPolicy.OPEN)))
                .isInstanceOf(RuntimeFailure.class).hasMessageContaining("already exists");
        assertThatThrownBy(() -> runtime.start(new SandboxSpec("Bad/Id", "base", Resources.DEFAULT,
                NetworkPolicy.OPEN)))
                .isInstanceOf(RuntimeFailure.class).hasMessageContaining("sandbox id");
        assertThatThrownBy(() -> runtime.destroy("../etc")).isInstanceOf(RuntimeFailure.class);

        assertThat(new EnvdClient(sandbox).health()).isEqualTo(204);
        assertThat(runtime.discover()).containsExactly(sandbox);
    }

    @Test
    void limitsFromResourcesReachTheCgroup() throws java.net.UnknownHostException {
        String id = newId();
        ids.add(id);
        SandboxInstance sandbox = runtime.start(new SandboxSpec(id, "base", new Resources(1, 256, 512),
                NetworkPolicy.OPEN));

        String cgroup = RuncRuntime.DEFAULT_CGROUP_PARENT + "/" + sandbox.sandboxId();
        boolean v2 = Cgroups.detect() == Cgroups.Mode.V2;
        assertThat(Cgroups.read(cgroup, v2 ? "memory.max" : "memory.limit_in_bytes"))
                .contains(String.valueOf(256L * 1024 * 1024));
        assertThat(Cgroups.read(cgroup, "pids.max")).contains(String.valueOf(config.pidsMax()));
        if (!v2) {
            assertThat(Cgroups.read(cgroup, "cpu.cfs_quota_us")).contains("100000");
        }
        assertThat(new EnvdClient(sandbox).run("cat /etc/resolv.conf").stdout())
                .as("the sandbox's resolver is Capsule's, at its gateway").isEqualTo("nameserver "
                        + java.net.InetAddress.getByAddress(gatewayOf(sandbox.address().getAddress())).getHostAddress()
                        + "\n");
    }

    @Test
    void aSandboxCannotWritePastItsDiskSizeAndKeepsRunning() throws IOException {
        String id = newId();
        ids.add(id);
        SandboxInstance sandbox = runtime.start(new SandboxSpec(id, "base", new Resources(1, 256, 64),
                NetworkPolicy.OPEN));
        EnvdClient envd = new EnvdClient(sandbox);

        long totalMB = Long.parseLong(envd.run("df -m --output=size / | tail -1").stdout().strip());
        assertThat(totalMB).as("df inside shows about the disk size").isBetween(48L, 64L);
        EnvdClient.Result filling = envd.run("dd if=/dev/zero of=/home/user/big bs=1M count=100 2>&1");
        assertThat(filling.exitCode()).isNotZero();
        assertThat(filling.stdout()).contains("No space left on device");

        assertThat(envd.health()).isEqualTo(204);
        assertThat(envd.run("rm /home/user/big && echo fine > /home/user/small && cat /home/user/small").stdout())
                .isEqualTo("fine\n");
        Path disk = dataDir.resolve("sandboxes/" + id + "/disk.img");
        assertThat(Files.size(disk)).as("the host holds a file of the disk size").isEqualTo(64L << 20);

        String tooSmall = newId();
        assertThatThrownBy(() -> runtime.start(new SandboxSpec(tooSmall, "base", new Resources(1, 256, 8),
                NetworkPolicy.OPEN))).isInstanceOf(RuntimeFailure.class).hasMessageContaining("diskSizeMB must be at least 16");
        assertThat(dataDir.resolve("sandboxes/" + tooSmall)).doesNotExist();
    }

    @Test
    void envdThatCannotStartFailsTheStartWithItsConsoleAndLeavesNothing() throws IOException {
        // A separate cache: the template is shared by a symlink, the bundle with a broken "envd" is built apart.
        Path cache = Files.createTempDirectory("capsule-oci-cache");
        try {
            Files.createSymbolicLink(cache.resolve("templates"), TestEnvironment.cacheDir().resolve("templates"));
            Path notAJar = Files.writeString(cache.resolve("broken-envd.jar"), "not a jar");
            OciRuntime broken = new OciRuntime(config.withDirectories(dataDir, cache)
                    .withEnvd(notAJar, config.execHelper()));
            String id = newId();
            ids.add(id);
            assertThatThrownBy(() -> broken.start(new SandboxSpec(id, "base", Resources.DEFAULT, NetworkPolicy.OPEN)))
                    .isInstanceOf(RuntimeFailure.class)
                    .hasMessageContaining("exited before answering /health")
                    .hasMessageContaining("Invalid or corrupt jarfile");
            assertNothingLeft(config, ids);
        } finally {
            Mounts.deleteTree(cache);
        }
    }
}
