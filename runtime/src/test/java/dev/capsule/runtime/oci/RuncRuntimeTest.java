package dev.capsule.runtime.oci;

import dev.capsule.runtime.TestEnvironment;
import dev.capsule.runtime.bundle.RuntimeBundle;
import dev.capsule.runtime.cgroup.Cgroups;
import dev.capsule.runtime.host.Command;
import dev.capsule.runtime.host.Mounts;
import dev.capsule.runtime.template.Template;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

/**
 * Sandboxes on real runc from the base template and the runtime bundle. Every test ends by proving that nothing
 * is left: no runc container, no mount, no cgroup, no files.
 */
class RuncRuntimeTest {

    private Path dataDir;
    private Path runcRoot;
    private RuncRuntime runtime;
    private final List<String> ids = new ArrayList<>();
    private final List<String> namespaces = new ArrayList<>();
    private Template template;
    private RuntimeBundle bundle;

    @BeforeEach
    void setUp() throws IOException {
        template = TestEnvironment.baseTemplate();
        bundle = TestEnvironment.bundle();
        dataDir = Files.createTempDirectory("capsule-data");
        runcRoot = Files.createTempDirectory("capsule-runc");
        runtime = new RuncRuntime(dataDir, runcRoot, "runc", RuncRuntime.DEFAULT_CGROUP_PARENT);
    }

    @AfterEach
    void deleteEverythingAndProveNothingIsLeft() {
        for (String id : runtime.list()) {
            runtime.delete(id);
        }
        assertThat(runtime.list()).isEmpty();
        assertThat(Command.check("runc", "--root", runcRoot.toString(), "list", "--quiet").stdout()).isBlank();
        assertThat(Mounts.under(dataDir)).isEmpty();
        for (String id : ids) {
            assertThat(Cgroups.existing(runtime.cgroupsPath(id))).as("cgroups of " + id).isEmpty();
        }
        assertThat(dataDir.resolve("sandboxes")).satisfiesAnyOf(
                p -> assertThat(p).doesNotExist(), p -> assertThat(p).isEmptyDirectory());
        for (String namespace : namespaces) {
            Command.check("ip", "netns", "delete", namespace);
        }
        Mounts.deleteTree(dataDir);
        Mounts.deleteTree(runcRoot);
    }

    private String newId() {
        String id = "t" + UUID.randomUUID().toString().substring(0, 8);
        ids.add(id);
        return id;
    }

    private Sandbox startShell(String script) {
        return runtime.start(ContainerSpec.of(newId(), template, bundle, List.of("/bin/sh", "-c", script)));
    }

    private static String awaitLog(Sandbox sandbox, String expected) {
        Path log = sandbox.directory().log();
        await().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(20))
                .until(() -> Files.readString(log).contains(expected));
        return readLog(sandbox);
    }

    private static String readLog(Sandbox sandbox) {
        try {
            return Files.readString(sandbox.directory().log());
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    @Test
    void aJavaProgramFromTheBundleRunsInTheBaseTemplateAndItsChildrenSeeNothingOfTheBundle() {
        long start = System.nanoTime();
        Sandbox sandbox = runtime.start(ContainerSpec.of(newId(), template, bundle, RuntimeBundle.javaCommand(
                List.of("-jar", RuntimeBundle.ENVD_JAR, "run", "/bin/sh", "-c",
                        "echo hello from $(hostname); cat /proc/self/maps | grep -c /opt/capsule; env | grep -c LD_; true"))));

        String log = awaitLog(sandbox, "exit=0");
        System.out.printf("start to exit of the java program: %d ms%n", (System.nanoTime() - start) / 1_000_000);
        assertThat(log).contains("hello from " + sandbox.id());
        // the child (a template shell) maps nothing from /opt/capsule and inherited no loader variables
        assertThat(log.lines().filter(line -> line.equals("0")).count()).isEqualTo(2);
    }

    @Test
    void theSandboxSeesOnlyItsOwnProcesses() {
        Sandbox sandbox = startShell("ps -e -o pid=,comm=; echo end-of-ps; sleep 1000");

        String log = awaitLog(sandbox, "end-of-ps");
        List<String> processes = log.lines().takeWhile(line -> !line.equals("end-of-ps")).map(String::strip).toList();
        // PID 1 is the init; the shell and ps are its only descendants; the host's processes are absent
        assertThat(processes).hasSize(3);
        assertThat(processes.getFirst()).isEqualTo("1 init");
        assertThat(processes).extracting(line -> line.split("\\s+")[1]).containsExactly("init", "sh", "ps");
    }

    @Test
    void theSandboxCannotSeeHostFilesOrAnotherSandboxsFiles() throws IOException {
        Path hostSecret = Files.createTempFile("capsule-host-secret", ".txt");
        try {
            Sandbox first = startShell("echo first-secret > /root/secret; echo written; sleep 1000");
            awaitLog(first, "written");
            Sandbox second = startShell("test -e " + hostSecret + " && echo host-visible; test -e /work && echo work-visible;"
                    + " ls /root; cat /root/secret 2>&1; echo checked; sleep 1000");

            String log = awaitLog(second, "checked");
            assertThat(log).doesNotContain("host-visible", "work-visible", "first-secret");
            assertThat(first.directory().upper().resolve("root/secret")).hasContent("first-secret");
            assertThat(second.directory().upper().resolve("root/secret")).doesNotExist();
        } finally {
            Files.delete(hostSecret);
        }
    }

    @Test
    void writesGoToTheSandboxsUpperDirAndLeaveTheTemplateUnchanged() {
        Sandbox sandbox = startShell("echo changed > /etc/motd; rm /etc/debian_version; mkdir /home/user/work;"
                + " echo done; sleep 1000");

        awaitLog(sandbox, "done");
        Path upper = sandbox.directory().upper();
        assertThat(upper.resolve("etc/motd")).hasContent("changed");
        assertThat(upper.resolve("home/user/work")).isDirectory();
        assertThat(template.rootfs().resolve("etc/motd")).content().doesNotContain("changed");
        assertThat(template.rootfs().resolve("etc/debian_version")).exists();
        assertThat(template.rootfs().resolve("home/user/work")).doesNotExist();
    }

    @Test
    void theMemoryLimitKillsTheProcessInsideTheSandbox() {
        ContainerSpec spec = ContainerSpec.of(newId(), template, bundle, List.of("/bin/sh", "-c",
                "python3 -c 'b = bytearray(512 * 1024 * 1024); print(\"allocated\")'; echo python-exit=$?; sleep 1000"))
                .withLimits(new ResourceLimits(1, 128, 256, 64));
        Sandbox sandbox = runtime.start(spec);

        String log = awaitLog(sandbox, "python-exit=");
        assertThat(log).contains("python-exit=137").doesNotContain("allocated");
        assertThat(runtime.state(sandbox.id()).orElseThrow().status()).isEqualTo(ContainerState.Status.RUNNING);
        String limit = Cgroups.read(sandbox.cgroupsPath(), Cgroups.detect() == Cgroups.Mode.V2 ? "memory.max"
                : "memory.limit_in_bytes").orElseThrow();
        assertThat(limit).isEqualTo(String.valueOf(128L * 1024 * 1024));
    }

    @Test
    void thePidsLimitHoldsAgainstAForkBomb() {
        int pidsMax = 64;
        ContainerSpec spec = ContainerSpec.of(newId(), template, bundle, List.of("/bin/sh", "-c",
                "echo bombing; python3 -c 'import os, time\nwhile True:\n    try: os.fork()\n"
                        + "    except OSError: time.sleep(0.05)'"))
                .withLimits(new ResourceLimits(1, 256, pidsMax, 64));
        Sandbox sandbox = runtime.start(spec);
        awaitLog(sandbox, "bombing");

        await().atMost(Duration.ofSeconds(60)).until(() -> pidsEventsMax(sandbox) > 0);
        long current = Long.parseLong(Cgroups.read(sandbox.cgroupsPath(), "pids.current").orElseThrow());
        assertThat(current).isLessThanOrEqualTo(pidsMax);
        assertThat(Cgroups.read(sandbox.cgroupsPath(), "pids.max")).contains(String.valueOf(pidsMax));
        // the host can still start processes
        assertThat(Command.check("true").ok()).isTrue();
        runtime.delete(sandbox.id());
        assertThat(Cgroups.existing(sandbox.cgroupsPath())).isEmpty();
    }

    private static long pidsEventsMax(Sandbox sandbox) {
        return Cgroups.read(sandbox.cgroupsPath(), "pids.events").orElse("max 0").lines()
                .filter(line -> line.startsWith("max ")).mapToLong(line -> Long.parseLong(line.substring(4).strip()))
                .findFirst().orElse(0);
    }

    @Test
    void pauseFreezesTheSandboxAndResumeThawsIt() {
        Sandbox sandbox = startShell("while true; do date +%s%N > /tmp/tick; sleep 0.05; done");
        Path tick = sandbox.directory().upper().resolve("tmp/tick");
        await().atMost(Duration.ofSeconds(30)).until(() -> Files.exists(tick));

        runtime.pause(sandbox.id());
        assertThat(runtime.state(sandbox.id()).orElseThrow().status()).isEqualTo(ContainerState.Status.PAUSED);
        String frozen = readQuietly(tick);
        await().during(Duration.ofMillis(300)).atMost(Duration.ofSeconds(5)).until(() -> readQuietly(tick).equals(frozen));

        runtime.resume(sandbox.id());
        assertThat(runtime.state(sandbox.id()).orElseThrow().status()).isEqualTo(ContainerState.Status.RUNNING);
        await().atMost(Duration.ofSeconds(30)).until(() -> !readQuietly(tick).equals(frozen));
    }

    private static String readQuietly(Path file) {
        try {
            return Files.readString(file);
        } catch (IOException e) {
            return "";
        }
    }

    @Test
    void aSandboxJoinsTheNetworkNamespaceItIsGiven() {
        String namespace = "capsule-rt-" + UUID.randomUUID().toString().substring(0, 8);
        Command.check("ip", "netns", "add", namespace);
        namespaces.add(namespace);
        // mark the namespace: its loopback gets an MTU no fresh namespace has
        Command.check("ip", "netns", "exec", namespace, "ip", "link", "set", "lo", "mtu", "12345");

        Sandbox sandbox = runtime.start(ContainerSpec.of(newId(), template, bundle,
                List.of("/bin/sh", "-c", "ip -o link; echo listed; sleep 1000")).withNetworkNamespace(Path.of("/run/netns", namespace)));

        String log = awaitLog(sandbox, "listed");
        assertThat(log).contains("mtu 12345").doesNotContain("eth0");
    }

    @Test
    void theSandboxHasDockersCapabilitiesAndSeccompYetSudoWorksForUser() {
        Sandbox sandbox = startShell("grep -E '^(Seccomp|CapBnd|NoNewPrivs):' /proc/self/status;"
                + " unshare --user true 2>/dev/null && echo made-user-namespace;"
                + " mount -t tmpfs none /mnt 2>/dev/null && echo mounted;"
                + " su user -s /bin/sh -c 'id -u; sudo -n id -u; sudo -n whoami'; echo checked; sleep 1000");

        String log = awaitLog(sandbox, "checked");
        assertThat(log).contains("Seccomp:\t2", "NoNewPrivs:\t0", "CapBnd:\t00000000a80425fb")
                .doesNotContain("made-user-namespace", "mounted");
        assertThat(log).contains("1000\n0\nroot\n");
    }

    @Test
    void theHostnameHostsAndResolvConfAreTheSandboxsOwn() {
        Sandbox sandbox = startShell("hostname; cat /etc/hosts /etc/resolv.conf; echo shown; sleep 1000");

        String log = awaitLog(sandbox, "shown");
        assertThat(log).startsWith(sandbox.id() + "\n").contains("127.0.1.1\t" + sandbox.id(), "nameserver 1.1.1.1");
    }

    @Test
    void killStopsTheSandboxAndDeleteRemovesIt() {
        Sandbox sandbox = startShell("sleep 1000");

        runtime.kill(sandbox.id(), "KILL");
        await().atMost(Duration.ofSeconds(30)).until(() ->
                runtime.state(sandbox.id()).orElseThrow().status() == ContainerState.Status.STOPPED);
        runtime.delete(sandbox.id());

        assertThat(runtime.state(sandbox.id())).isEmpty();
        assertThat(sandbox.directory().dir()).doesNotExist();
        runtime.delete(sandbox.id()); // idempotent
    }

    @Test
    void aTakenIdIsRefusedAndABadCommandLeavesNothingBehind() {
        Sandbox sandbox = startShell("sleep 1000");
        assertThatThrownBy(() -> runtime.start(ContainerSpec.of(sandbox.id(), template, bundle, List.of("/bin/true"))))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("already exists");
        assertThat(runtime.state(sandbox.id()).orElseThrow().status()).isEqualTo(ContainerState.Status.RUNNING);

        String id = newId();
        // init starts, then cannot exec the missing program: the container starts and exits
        assertThatThrownBy(() -> runtime.start(ContainerSpec.of(id, template, bundle, List.of("/no/such/program"))
                .withNetworkNamespace(Path.of("/run/netns/no-such-namespace"))))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining(id);
        assertThat(runtime.list()).containsExactly(sandbox.id());
    }
}
