package dev.capsule.runtime.microvm;

import dev.capsule.runtime.NetworkPolicy;
import dev.capsule.runtime.Resources;
import dev.capsule.runtime.Resumed;
import dev.capsule.runtime.RuntimeFailure;
import dev.capsule.runtime.SandboxInstance;
import dev.capsule.runtime.SandboxSpec;
import dev.capsule.runtime.SnapshotLayer;
import dev.capsule.runtime.TestEnvironment;
import dev.capsule.runtime.UnknownTemplate;
import dev.capsule.runtime.host.Mounts;
import dev.capsule.runtime.network.HostNet;
import dev.capsule.runtime.network.Ipv4Cidr;
import dev.capsule.runtime.network.NetworkConfig;
import dev.capsule.runtime.oci.EnvdClient;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.UUID;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * The microvm driver end to end: real QEMU (TCG here: slow, so each test keeps its VM count small), the Debian
 * cloud kernel from the template cache, the base template and envd built by this reactor, talked to over HTTP at
 * each sandbox's address. The first run on a machine builds the base template's snapshot (a boot of a minute or
 * two); later runs restore it. Every test ends by proving nothing is left: no QEMU, namespace, veth, nftables table
 * or file. Each test's driver hands out the same addresses again, so each also shows that a killed VM leaves no
 * connection in the tests' shared HTTP client pool that a later VM at its address would reset.
 */
class MicroVmRuntimeTest {

    static final String NETWORK_NAME = "capsulemvm";
    static final String LINK_PREFIX = "csm";

    Path dataDir;
    MicroVmConfig config;
    MicroVmRuntime runtime;
    final List<String> ids = new ArrayList<>();

    static MicroVmConfig testConfig(Path dataDir) {
        NetworkConfig network = NetworkConfig.defaults().withName(NETWORK_NAME, LINK_PREFIX)
                .withPool(Ipv4Cidr.parse("10.215.0.0/24"));
        return MicroVmConfig.defaults().withDirectories(dataDir, TestEnvironment.cacheDir()).withNetwork(network);
    }

    @BeforeEach
    void setUp() throws IOException {
        dataDir = Files.createTempDirectory("cmvm");
        config = testConfig(dataDir);
        runtime = new MicroVmRuntime(config);
        runtime.prepare();
    }

    @AfterEach
    void removeEverythingAndProveNothingIsLeft() {
        runtime.removeOrphans(Set.of());
        runtime.close();
        assertThat(dataDir.resolve("microvm/sandboxes")).isEmptyDirectory();
        assertThat(dataDir.resolve("microvm/snapshots")).isEmptyDirectory();
        assertThat(HostNet.namespaces(NETWORK_NAME + "-")).isEmpty();
        assertThat(HostNet.links(LINK_PREFIX)).isEmpty();
        assertThat(HostNet.nftTables()).doesNotContain("table inet " + NETWORK_NAME);
        assertThat(ProcessHandle.allProcesses().filter(p -> p.info().commandLine().orElse("")
                .contains(dataDir.toString()))).as("QEMU processes of this test").isEmpty();
        Mounts.deleteTree(dataDir);
    }

    static String newId() {
        return UUID.randomUUID().toString().replace("-", "").substring(0, 20);
    }

    SandboxInstance start(NetworkPolicy policy) {
        return start("base", policy);
    }

    SandboxInstance start(String template, NetworkPolicy policy) {
        String id = newId();
        ids.add(id);
        long begin = System.nanoTime();
        SandboxInstance sandbox = runtime.start(new SandboxSpec(id, template, null, policy));
        System.out.printf("start() of a microVM sandbox from %s to envd healthy: %d ms%n", template,
                (System.nanoTime() - begin) / 1_000_000);
        return sandbox;
    }

    @Test
    void aSandboxRestoredFromTheTemplateSnapshotRunsCommandsAsUserAndIsGoneAfterDestroy() {
        SandboxInstance sandbox = start(NetworkPolicy.OPEN);

        EnvdClient envd = new EnvdClient(sandbox);
        assertThat(envd.health()).isEqualTo(204);
        assertThat(sandbox.templateId()).isEqualTo("base");
        assertThat(config.network().pool().contains((java.net.Inet4Address) sandbox.address())).isTrue();
        EnvdClient.Result result = envd.run("id -un; hostname; cat /etc/hostname; ip -4 -o addr show eth0");
        assertThat(result.exitCode()).isZero();
        assertThat(result.stdout()).startsWith("user\n" + sandbox.sandboxId() + "\n" + sandbox.sandboxId() + "\n")
                .contains("inet " + sandbox.address().getHostAddress() + "/30");
        byte[] content = "hello from the host\n\u00e9\u0000binary".getBytes(StandardCharsets.UTF_8);
        assertThat(envd.upload("/home/user/dir/hello.txt", content)).isEqualTo(200);
        assertThat(envd.download("/home/user/dir/hello.txt")).isEqualTo(content);
        assertThat(runtime.usage(sandbox.sandboxId())).hasValueSatisfying(usage -> {
            assertThat(usage.cpuCount()).isEqualTo(Resources.DEFAULT.cpuCount());
            assertThat(usage.memTotal()).isEqualTo(Resources.DEFAULT.memoryMB() * 1024L * 1024);
            assertThat(usage.memUsed()).isPositive();
            assertThat(usage.cpuUsageNanos()).isPositive();
        });
        assertThat(runtime.discover()).extracting(SandboxInstance::sandboxId).containsExactly(sandbox.sandboxId());

        // a restarted server finds it running, at its address, and keeps it
        runtime.close();
        runtime = new MicroVmRuntime(config);
        assertThat(runtime.discover()).singleElement().satisfies(found -> {
            assertThat(found.state()).isEqualTo(SandboxInstance.State.RUNNING);
            assertThat(found.address()).isEqualTo(sandbox.address());
        });
        assertThat(runtime.removeOrphans(Set.of(sandbox.sandboxId()))).isEmpty();
        assertThat(envd.health()).isEqualTo(204);

        runtime.destroy(sandbox.sandboxId());
        assertThat(runtime.discover()).isEmpty();
        assertThat(HostNet.namespaces(NETWORK_NAME + "-")).isEmpty();
        assertThat(dataDir.resolve("microvm/sandboxes")).isEmptyDirectory();
        runtime.destroy(sandbox.sandboxId()); // idempotent
    }

    @Test
    void anUnknownTemplateIsRefusedAndLeavesNothing() {
        assertThatThrownBy(() -> start("no-such-template", NetworkPolicy.OPEN)).isInstanceOf(UnknownTemplate.class)
                .hasMessageContaining("no-such-template");
        assertThat(runtime.discover()).isEmpty();
    }

    @Test
    void clonesOfOneSnapshotDrawDifferentRandomNumbersKnowTheTimeAndReachNeitherEachOtherNorTheHost()
            throws IOException {
        List<SandboxInstance> clones = List.of(start(NetworkPolicy.OPEN), start(NetworkPolicy.OPEN),
                start(NetworkPolicy.OPEN));

        Set<String> randoms = new HashSet<>();
        for (SandboxInstance clone : clones) {
            long before = System.currentTimeMillis();
            EnvdClient.Result result = new EnvdClient(clone).run(
                    "od -An -N16 -tx1 /dev/urandom | tr -d ' \\n'; echo; date +%s%3N; python3 -c "
                            + "'import os; print(os.urandom(8).hex())'");
            long after = System.currentTimeMillis();
            List<String> lines = result.stdout().lines().toList();
            assertThat(lines).hasSize(3);
            randoms.add(lines.get(0));
            randoms.add(lines.get(2));
            // the guest's clock is the host's, though the snapshot was taken long ago (generous for TCG's pace)
            assertThat(Long.parseLong(lines.get(1))).isBetween(before - 2000, after + 2000);
        }
        assertThat(randoms).as("six random draws of three clones").hasSize(6);

        String probe = "curl -s -o /dev/null -m 3 http://%s:49983/health; echo exit=$?";
        EnvdClient first = new EnvdClient(clones.get(0));
        assertThat(first.run(probe.formatted(clones.get(1).address().getHostAddress())).stdout())
                .startsWith("exit=").isNotEqualTo("exit=0\n");
        assertThat(first.run(probe.formatted(clones.get(0).address().getHostAddress())).stdout())
                .as("its own envd, so the probe works").isEqualTo("exit=0\n");

        // a service on the host, on all its addresses: the guest's gateway is one of them
        try (ServerSocket host = new ServerSocket(0)) {
            Thread.ofVirtual().start(() -> {
                while (!host.isClosed()) {
                    try (Socket client = host.accept()) {
                        client.getOutputStream().write("hello from the host\n".getBytes(StandardCharsets.UTF_8));
                    } catch (IOException e) {
                        // closed at the end of the test
                    }
                }
            });
            byte[] address = clones.get(0).address().getAddress();
            address[3]--; // the gateway: the host's end of the sandbox's /30
            String gateway = java.net.InetAddress.getByAddress(address).getHostAddress();
            assertThat(first.run("timeout 3 bash -c 'exec 3<>/dev/tcp/" + gateway + "/" + host.getLocalPort()
                    + " && head -1 <&3' 2>/dev/null; echo exit=$?").stdout()).doesNotContain("hello")
                    .isNotEqualTo("exit=0\n");
        }
    }

    @Test
    void pausedWithMemoryAProcessAndItsMemorySurviveADriverRestartAndTheLossOfItsNetwork() {
        SandboxInstance sandbox = start(NetworkPolicy.NO_INTERNET);
        EnvdClient envd = new EnvdClient(sandbox);
        String pid = envd.run("nohup sleep 100000 >/dev/null 2>&1 & echo $!; echo kept-in-ram > /dev/shm/marker")
                .stdout().strip();

        long begin = System.nanoTime();
        runtime.pause(sandbox.sandboxId(), true);
        System.out.printf("pause(keepMemory) of a microVM: %d ms%n", (System.nanoTime() - begin) / 1_000_000);
        Path saved = dataDir.resolve("microvm/sandboxes/" + sandbox.sandboxId());
        assertThat(saved.resolve("memory.ram")).as("the RAM file is the memory").isRegularFile();
        assertThat(saved.resolve("state")).as("the device state is saved next to it").isRegularFile();
        assertThat(runtime.usage(sandbox.sandboxId())).as("no process while paused").isEmpty();
        runtime.pause(sandbox.sandboxId(), true); // pausing a frozen sandbox does nothing

        runtime.close();
        runtime = new MicroVmRuntime(config);
        assertThat(runtime.discover()).singleElement().satisfies(found -> {
            assertThat(found.state()).isEqualTo(SandboxInstance.State.FROZEN);
            assertThat(found.address()).isEqualTo(sandbox.address());
        });
        begin = System.nanoTime();
        Resumed resumed = runtime.resume(sandbox.sandboxId());
        System.out.printf("resume() of a microVM paused with memory: %d ms%n", (System.nanoTime() - begin) / 1_000_000);

        assertThat(resumed.memoryKept()).isTrue();
        assertThat(resumed.instance().address()).isEqualTo(sandbox.address());
        EnvdClient.Result after = new EnvdClient(resumed.instance()).run("kill -0 " + pid + " && cat /dev/shm/marker");
        assertThat(after.stdout()).isEqualTo("kept-in-ram\n");
        assertThat(runtime.resume(sandbox.sandboxId()).memoryKept()).as("resuming a running one").isTrue();

        // a host reboot takes the namespaces and veths; the paused VM's files are all it needs
        runtime.pause(sandbox.sandboxId(), true);
        runtime.close();
        HostNet.links(LINK_PREFIX).forEach(link -> HostNet.ok("ip", "link", "del", link));
        HostNet.namespaces(NETWORK_NAME + "-").forEach(ns -> HostNet.ok("ip", "netns", "del", ns));
        runtime = new MicroVmRuntime(config);
        SandboxInstance found = runtime.discover().getFirst();
        assertThat(found.state()).isEqualTo(SandboxInstance.State.FROZEN);
        Resumed afterReboot = runtime.resume(sandbox.sandboxId());
        assertThat(afterReboot.memoryKept()).isTrue();
        assertThat(afterReboot.instance().address()).isEqualTo(found.address());
        assertThat(new EnvdClient(afterReboot.instance()).run("kill -0 " + pid + " && cat /dev/shm/marker; hostname")
                .stdout()).isEqualTo("kept-in-ram\n" + sandbox.sandboxId() + "\n");
    }

    @Test
    void theRamFilesPagesGivenBackToTheHostComeBackIntactWhenTheGuestTouchesThem() throws Exception {
        SandboxInstance sandbox = start(NetworkPolicy.NO_INTERNET);
        EnvdClient envd = new EnvdClient(sandbox);
        String sum = envd.run("head -c 16777216 /dev/urandom > /dev/shm/blob && sha256sum < /dev/shm/blob").stdout();
        Path dir = dataDir.resolve("microvm/sandboxes/" + sandbox.sandboxId());
        Path ram = dir.resolve("memory.ram");
        long pid = Qemu.running(new VmDirectory(dir)).orElseThrow();
        MicroVmRuntime.force(ram); // the pages the guest wrote are clean now, so they can go

        long before = residentKib(pid, ram);
        long[] mapping = RamReclaim.mapping(pid, ram);
        assertThat(RamReclaim.pageOut(pid, ram, running -> running == pid)).isEqualTo(mapping[1] - mapping[0]);
        long after = residentKib(pid, ram);
        System.out.printf("QEMU's mapping of the RAM file: %d KiB resident before the page-out, %d KiB after%n",
                before, after);

        assertThat(before - after).as("KiB of the RAM file given back (the blob alone is 16 MiB)")
                .isGreaterThan(32 * 1024);
        assertThat(envd.run("sha256sum < /dev/shm/blob").stdout()).as("the blob read back from the file")
                .isEqualTo(sum);
        assertThatThrownBy(() -> RamReclaim.pageOut(pid, ram, running -> false))
                .isInstanceOfSatisfying(RamReclaim.Failure.class, failure -> assertThat(failure.gone).isTrue());

        // work brings pages back; once the VM is quiet, the driver's idle check gives them back by itself (the check
        // compares CPU use between two looks, so it is looked at until it counts as idle, within a deadline)
        envd.run("for i in 1 2 3 4; do cat /dev/shm/blob > /dev/null; done");
        long busy = residentKib(pid, ram);
        List<String> reclaimed = List.of();
        long deadline = System.nanoTime() + Duration.ofSeconds(90).toNanos();
        while (!reclaimed.contains(sandbox.sandboxId()) && System.nanoTime() < deadline) {
            Thread.sleep(2_000);
            reclaimed = runtime.reclaimIdle();
        }
        assertThat(reclaimed).as("an idle check counted the quiet VM as idle").contains(sandbox.sandboxId());
        long quiet = residentKib(pid, ram);
        System.out.printf("after work: %d KiB resident; after the idle check: %d KiB%n", busy, quiet);
        assertThat(busy - quiet).as("KiB the idle check gave back (the blob alone is 16 MiB)").isGreaterThan(8 * 1024);
        assertThat(envd.run("sha256sum < /dev/shm/blob").stdout()).isEqualTo(sum);
    }

    /** The resident KiB of {@code pid}'s mapping of {@code file}. */
    static long residentKib(long pid, Path file) throws IOException {
        String start = Long.toHexString(RamReclaim.mapping(pid, file)[0]);
        boolean inMapping = false;
        for (String line : Files.readAllLines(Path.of("/proc", String.valueOf(pid), "smaps"))) {
            if (line.matches("^[0-9a-f]+-[0-9a-f]+ .*")) {
                inMapping = line.startsWith(start + "-");
            } else if (inMapping && line.startsWith("Rss:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", ""));
            }
        }
        throw new IllegalStateException("no mapping of " + file + " in process " + pid);
    }

    @Test
    void pausedWithoutMemoryOnlyTheDiskIsKeptAndResumeBootsItAgain() {
        SandboxInstance sandbox = start(NetworkPolicy.OPEN);
        EnvdClient envd = new EnvdClient(sandbox);
        envd.run("echo on-disk > /home/user/kept.txt; echo in-ram > /dev/shm/lost");

        runtime.pause(sandbox.sandboxId(), false);
        assertThat(runtime.discover()).singleElement().satisfies(found -> {
            assertThat(found.state()).isEqualTo(SandboxInstance.State.STOPPED);
            assertThat(found.address()).isNull();
        });
        assertThat(HostNet.namespaces(NETWORK_NAME + "-")).as("its network is released").isEmpty();
        assertThatThrownBy(() -> runtime.pause(sandbox.sandboxId(), true)).isInstanceOf(RuntimeFailure.class);

        Resumed resumed = runtime.resume(sandbox.sandboxId());
        assertThat(resumed.memoryKept()).isFalse();
        EnvdClient.Result after = new EnvdClient(resumed.instance()).run(
                "cat /home/user/kept.txt; test -e /dev/shm/lost && echo still-there; hostname");
        assertThat(after.stdout()).isEqualTo("on-disk\n" + sandbox.sandboxId() + "\n");
    }

    @Test
    void aSnapshotStartsManySandboxesWithItsFilesAndMemoryAndOutlivesItsDeletionWhileUsed() {
        SandboxInstance origin = start(NetworkPolicy.OPEN);
        new EnvdClient(origin).run("echo from-origin > /home/user/state.txt; echo ram > /dev/shm/state");

        SnapshotLayer layer = runtime.snapshot(origin.sandboxId(), "snap-" + newId().substring(0, 8));
        assertThat(layer.memoryKept()).isTrue();
        assertThat(layer.sizeBytes()).isPositive();
        assertThat(new EnvdClient(origin).health()).as("the origin runs on").isEqualTo(204);
        assertThatThrownBy(() -> runtime.snapshot(origin.sandboxId(), layer.snapshotId()))
                .isInstanceOf(RuntimeFailure.class).hasMessageContaining("taken");

        SandboxInstance first = start(layer.snapshotId(), NetworkPolicy.OPEN);
        SandboxInstance second = start(layer.snapshotId(), NetworkPolicy.OPEN);
        for (SandboxInstance clone : List.of(first, second)) {
            assertThat(clone.templateId()).isEqualTo(layer.snapshotId());
            assertThat(new EnvdClient(clone).run("cat /home/user/state.txt /dev/shm/state; hostname").stdout())
                    .isEqualTo("from-origin\nram\n" + clone.sandboxId() + "\n");
        }

        runtime.deleteSnapshot(layer.snapshotId());
        assertThatThrownBy(() -> start(layer.snapshotId(), NetworkPolicy.OPEN)).isInstanceOf(UnknownTemplate.class);
        assertThat(new EnvdClient(first).run("cat /home/user/state.txt").stdout()).isEqualTo("from-origin\n");
        runtime.destroy(first.sandboxId());
        runtime.destroy(second.sandboxId());
        assertThat(dataDir.resolve("microvm/snapshots")).as("its files go with the last sandbox on it")
                .isEmptyDirectory();
    }
}
