package dev.capsule.runtime.oci;

import dev.capsule.runtime.NetworkPolicy;
import dev.capsule.runtime.Resources;
import dev.capsule.runtime.Resumed;
import dev.capsule.runtime.RuntimeFailure;
import dev.capsule.runtime.SandboxInstance;
import dev.capsule.runtime.SandboxSpec;
import dev.capsule.runtime.cgroup.Cgroups;
import dev.capsule.runtime.host.Command;
import dev.capsule.runtime.host.Mounts;
import dev.capsule.runtime.network.HostNet;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * Sandboxes that keep only their files, on real runc: paused without memory, after their init died, and after a
 * host reboot (simulated from here: runc's state, the overlay mounts and the network namespaces go, the data dir
 * stays, a new driver instance opens). Each is listed as stopped and cold-booted by resume with its files, its
 * network policy and none of its old processes. A network of its own (name, veth prefix, pool, stand-in internet
 * host at 198.18.5.2) so it can run beside {@link OciRuntimeTest}. Every test ends by proving nothing is left.
 */
class OciPersistenceTest {

    static final String NETWORK_NAME = "capsulepst";
    static final String LINK_PREFIX = "csp";
    static final String INTERNET_NS = "cpt-internet";
    static final String INTERNET_LINK = "cptnet";
    static final String INTERNET_PROBE = "timeout 3 bash -c 'exec 3<>/dev/tcp/198.18.5.2/8080 && head -1 <&3'"
            + " 2>/dev/null; echo exit=$?";
    /** A process that runs until its sandbox's processes end; cold boots must not bring it back. */
    static final String LONG_PROCESS = "setsid sleep 4242 >/dev/null 2>&1 < /dev/null &";
    static final String COUNT_LONG_PROCESS = "ps -e -o args= | grep -c '^[s]leep 4242'; true";

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
        HostNet.ok("ip", "addr", "add", "198.18.5.1/30", "dev", INTERNET_LINK);
        HostNet.ok("ip", "link", "set", INTERNET_LINK, "up");
        HostNet.ok("ip", "-n", INTERNET_NS, "addr", "add", "198.18.5.2/30", "dev", "eth0");
        HostNet.ok("ip", "-n", INTERNET_NS, "link", "set", "eth0", "up");
        HostNet.ok("ip", "-n", INTERNET_NS, "link", "set", "lo", "up");
        internetServer = new HostNet.Server(INTERNET_NS, "0.0.0.0", 8080, "internet");
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

    @BeforeEach
    void setUp() throws IOException {
        dataDir = Files.createTempDirectory("capsule-pst-data");
        runcRoot = Files.createTempDirectory("capsule-pst-runc");
        config = OciRuntimeTest.testConfig(dataDir, runcRoot, NETWORK_NAME, LINK_PREFIX, "10.214.8.0/24");
        runtime = new OciRuntime(config);
        runtime.prepare();
    }

    @AfterEach
    void removeEverythingAndProveNothingIsLeft() {
        runtime.removeOrphans(Set.of());
        runtime.close();
        OciRuntimeTest.assertNothingLeft(config, ids);
        Mounts.deleteTree(dataDir);
        Mounts.deleteTree(runcRoot);
    }

    SandboxInstance start(NetworkPolicy policy) {
        String id = OciRuntimeTest.newId();
        ids.add(id);
        return runtime.start(new SandboxSpec(id, "base", new Resources(1, 256, 512), policy));
    }

    @Test
    void pauseWithoutMemoryKeepsOnlyTheFilesAndResumeColdBootsThemWithTheRecordedPolicy() {
        SandboxInstance sandbox = start(NetworkPolicy.NO_INTERNET);
        String id = sandbox.sandboxId();
        EnvdClient envd = new EnvdClient(sandbox);
        assertThat(envd.upload("/home/user/kept.txt", "kept".getBytes(StandardCharsets.UTF_8))).isEqualTo(200);
        envd.run(LONG_PROCESS);
        assertThat(envd.run(COUNT_LONG_PROCESS).stdout()).isEqualTo("1\n");

        long begin = System.nanoTime();
        runtime.pause(id, false);
        System.out.printf("pause without memory: %d ms%n", (System.nanoTime() - begin) / 1_000_000);

        assertOnlyFilesKept(id);
        SandboxInstance stopped = new SandboxInstance(id, "base", null, sandbox.startedAt(),
                SandboxInstance.State.STOPPED);
        assertThat(runtime.discover()).containsExactly(stopped);
        runtime.pause(id, true); // pausing a stopped sandbox does nothing, with or without memory
        runtime.pause(id, false);
        assertThat(runtime.discover()).containsExactly(stopped);
        // a stopped sandbox has no network: its new policy is recorded for the cold boot
        runtime.applyNetworkPolicy(id, NetworkPolicy.OPEN);

        begin = System.nanoTime();
        Resumed resumed = runtime.resume(id);
        System.out.printf("cold resume to envd healthy: %d ms%n", (System.nanoTime() - begin) / 1_000_000);

        assertThat(resumed.memoryKept()).isFalse();
        assertThat(resumed.instance().state()).isEqualTo(SandboxInstance.State.RUNNING);
        assertThat(resumed.instance().startedAt()).isEqualTo(sandbox.startedAt());
        EnvdClient again = new EnvdClient(resumed.instance());
        assertThat(new String(again.download("/home/user/kept.txt"), StandardCharsets.UTF_8)).isEqualTo("kept");
        assertThat(again.run(COUNT_LONG_PROCESS).stdout()).as("processes do not survive a stop").isEqualTo("0\n");
        assertThat(again.run("id -un; hostname").stdout()).isEqualTo("user\n" + id + "\n");
        assertThat(again.run(INTERNET_PROBE).stdout()).isEqualTo("hello from internet\nexit=0\n");
        assertThat(Cgroups.read(RuncRuntime.DEFAULT_CGROUP_PARENT + "/" + id, Cgroups.detect() == Cgroups.Mode.V2
                ? "memory.max" : "memory.limit_in_bytes")).as("the same limits").contains(String.valueOf(256L << 20));
        assertThat(runtime.discover()).containsExactly(resumed.instance());
        assertThat(runtime.resume(id)).as("resuming a running sandbox does nothing")
                .isEqualTo(new Resumed(resumed.instance(), true));

        // frozen, then stopped, then cold-booted again; its writes of the second run are kept too
        assertThat(again.upload("/home/user/second.txt", "2".getBytes(StandardCharsets.UTF_8))).isEqualTo(200);
        runtime.pause(id, true);
        assertThat(runtime.discover()).extracting(SandboxInstance::state).containsExactly(SandboxInstance.State.FROZEN);
        runtime.pause(id, false);
        assertOnlyFilesKept(id);
        EnvdClient third = new EnvdClient(runtime.resume(id).instance());
        assertThat(third.run("cat /home/user/kept.txt /home/user/second.txt").stdout()).isEqualTo("kept2");

        runtime.pause(id, false);
        runtime.destroy(id); // a stopped sandbox is destroyed like any other; the after-each check proves it
        assertThat(runtime.discover()).isEmpty();
        assertThatThrownBy(() -> runtime.resume(id)).isInstanceOf(RuntimeFailure.class)
                .hasMessageContaining(id + " does not exist");
        assertThatThrownBy(() -> runtime.pause(id, false)).isInstanceOf(RuntimeFailure.class)
                .hasMessageContaining(id + " does not exist");
    }

    @Test
    void afterAHostRebootANewDriverListsSandboxesAsStoppedKeepsTheKnownOnesAndColdBootsThem() throws IOException {
        SandboxInstance kept = start(NetworkPolicy.NO_INTERNET);
        SandboxInstance unknown = start(NetworkPolicy.OPEN);
        EnvdClient envd = new EnvdClient(kept);
        assertThat(envd.upload("/home/user/before-reboot.txt", "survives".getBytes(StandardCharsets.UTF_8)))
                .isEqualTo(200);
        envd.run(LONG_PROCESS);
        runtime.pause(unknown.sandboxId(), true); // frozen sandboxes lose their memory in a reboot too
        Files.createDirectories(dataDir.resolve("sandboxes/halfmade")); // what a crash mid-start leaves

        // the reboot: runc's state (/run), the mounts and the network namespaces vanish; the data dir stays
        for (SandboxInstance sandbox : List.of(kept, unknown)) {
            Command.check("runc", "--root", runcRoot.toString(), "delete", "--force", sandbox.sandboxId());
            Command.check("umount", dataDir.resolve("sandboxes/" + sandbox.sandboxId() + "/rootfs").toString());
            Command.check("umount", dataDir.resolve("sandboxes/" + sandbox.sandboxId() + "/disk").toString());
            Command.check("ip", "netns", "del", NETWORK_NAME + "-" + sandbox.sandboxId());
        }
        // the kernel releases a loop device after its file system is unmounted, asynchronously (a reboot: not at all)
        org.awaitility.Awaitility.await().atMost(Duration.ofSeconds(60)).until(() -> !Command.check("losetup",
                "--list", "--noheadings", "--output", "BACK-FILE").stdout().contains(dataDir.toString()));
        runtime.close();
        runtime = new OciRuntime(config);

        assertThat(runtime.discover()).extracting(SandboxInstance::sandboxId, SandboxInstance::state,
                SandboxInstance::address).containsExactlyInAnyOrder(
                org.assertj.core.groups.Tuple.tuple(kept.sandboxId(), SandboxInstance.State.STOPPED, null),
                org.assertj.core.groups.Tuple.tuple(unknown.sandboxId(), SandboxInstance.State.STOPPED, null));
        assertThat(runtime.removeOrphans(Set.of(kept.sandboxId())))
                .containsExactlyInAnyOrder(unknown.sandboxId(), "halfmade");
        assertThat(runtime.discover()).extracting(SandboxInstance::sandboxId).containsExactly(kept.sandboxId());
        assertOnlyFilesKept(kept.sandboxId());

        Resumed resumed = runtime.resume(kept.sandboxId());

        assertThat(resumed.memoryKept()).isFalse();
        EnvdClient after = new EnvdClient(resumed.instance());
        assertThat(after.run("cat /home/user/before-reboot.txt").stdout()).isEqualTo("survives");
        assertThat(after.run(COUNT_LONG_PROCESS).stdout()).isEqualTo("0\n");
        assertThat(after.run(INTERNET_PROBE).stdout()).as("the recorded policy").doesNotContain("hello");
        assertThat(runtime.discover()).containsExactly(resumed.instance());
    }

    @Test
    void aSandboxWhoseInitDiedIsStoppedAndAColdBootBringsItBack() throws Exception {
        SandboxInstance sandbox = start(NetworkPolicy.OPEN);
        String id = sandbox.sandboxId();
        assertThat(new EnvdClient(sandbox).upload("/home/user/f", "x".getBytes(StandardCharsets.UTF_8)))
                .isEqualTo(200);
        Command.check("runc", "--root", runcRoot.toString(), "kill", id, "KILL");
        org.awaitility.Awaitility.await().atMost(Duration.ofSeconds(30)).until(() -> Command.check("runc", "--root",
                runcRoot.toString(), "state", id).stdout().contains("\"stopped\""));

        assertThat(runtime.discover()).extracting(SandboxInstance::state).containsExactly(SandboxInstance.State.STOPPED);
        // a restarted driver releases what the dead container still holds (container, cgroup, mount, network)
        runtime.close();
        runtime = new OciRuntime(config);
        assertOnlyFilesKept(id);
        assertThat(runtime.discover()).extracting(SandboxInstance::state).containsExactly(SandboxInstance.State.STOPPED);

        Resumed resumed = runtime.resume(id);
        assertThat(resumed.memoryKept()).isFalse();
        assertThat(new EnvdClient(resumed.instance()).run("cat /home/user/f").stdout()).isEqualTo("x");

        // the same without a restart: resume itself clears the dead container and its network first
        Command.check("runc", "--root", runcRoot.toString(), "kill", id, "KILL");
        org.awaitility.Awaitility.await().atMost(Duration.ofSeconds(30)).until(() -> Command.check("runc", "--root",
                runcRoot.toString(), "state", id).stdout().contains("\"stopped\""));
        assertThat(new EnvdClient(runtime.resume(id).instance()).run("cat /home/user/f").stdout()).isEqualTo("x");
    }

    @Test
    void aColdBootThatFailsLeavesTheSandboxStoppedWithNothingTaken() {
        SandboxInstance sandbox = start(NetworkPolicy.OPEN);
        String id = sandbox.sandboxId();
        runtime.pause(id, false);

        // envd cannot answer within a millisecond: the boot fails after runc ran the container
        OciRuntime impatient = new OciRuntime(config.withStartTimeout(Duration.ofMillis(1)));
        try {
            assertThatThrownBy(() -> impatient.resume(id)).isInstanceOf(RuntimeFailure.class)
                    .hasMessageContaining("did not answer /health");
            assertOnlyFilesKept(id);
            assertThat(impatient.discover()).extracting(SandboxInstance::state)
                    .containsExactly(SandboxInstance.State.STOPPED);
        } finally {
            impatient.close();
        }

        assertThat(runtime.resume(id).memoryKept()).isFalse();
        assertThat(runtime.discover()).extracting(SandboxInstance::state).containsExactly(SandboxInstance.State.RUNNING);
    }

    @Test
    void aProcessThatCopiedTheHostsMountsDoesNotKeepAStoppedSandboxsDisk() throws Exception {
        SandboxInstance sandbox = start(NetworkPolicy.OPEN);
        String id = sandbox.sandboxId();
        // what ip netns exec, runc and services with a private /tmp do: a copy of the host's mounts, slave to them
        Process copy = new ProcessBuilder("unshare", "--mount", "--propagation", "slave", "sleep", "300").start();
        try {
            Path mountinfo = Path.of("/proc", String.valueOf(copy.pid()), "mountinfo");
            org.awaitility.Awaitility.await().atMost(Duration.ofSeconds(30))
                    .until(() -> Files.readString(mountinfo).contains(id + "/disk"));

            runtime.pause(id, false);

            assertOnlyFilesKept(id);
            assertThat(Files.readString(mountinfo)).as("unmounted in the copy too").doesNotContain(id);
        } finally {
            copy.destroyForcibly().waitFor();
        }
        assertThat(runtime.resume(id).memoryKept()).isFalse();
    }

    /** The sandbox is stopped: no container, mount, loop device, cgroup, namespace or veth of it, only its files. */
    private void assertOnlyFilesKept(String id) {
        assertThat(Command.check("runc", "--root", runcRoot.toString(), "list", "--quiet").stdout())
                .doesNotContain(id);
        assertThat(Mounts.under(dataDir.resolve("sandboxes/" + id))).isEmpty();
        assertThat(Cgroups.existing(RuncRuntime.DEFAULT_CGROUP_PARENT + "/" + id)).isEmpty();
        assertThat(HostNet.namespaces(NETWORK_NAME + "-" + id)).isEmpty();
        assertThat(HostNet.links(LINK_PREFIX)).isEmpty();
        assertThat(dataDir.resolve("sandboxes/" + id + "/sandbox.json")).isRegularFile();
        assertThat(dataDir.resolve("sandboxes/" + id + "/disk.img")).isRegularFile();
        assertThat(Command.check("losetup", "--list", "--noheadings", "--output", "BACK-FILE").stdout())
                .doesNotContain(dataDir.resolve("sandboxes/" + id).toString());
    }
}
