package dev.capsule.runtime.oci;

import dev.capsule.runtime.host.Command;
import dev.capsule.runtime.host.Mounts;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The CRIU self-test on this host's real criu, and on stand-in criu programs that fail or hang the way real ones do
 * on some hosts (OCI-NOTES.md), to prove a hanging step is killed and the probe cleans up after itself.
 */
@Timeout(120)
class CriuProbeTest {

    Path fakes;

    @BeforeEach
    void setUp() throws IOException {
        fakes = Files.createTempDirectory("capsule-fake-criu");
    }

    @AfterEach
    void tearDown() {
        Mounts.deleteTree(fakes);
    }

    @Test
    void theProbeOnThisHostSaysWhatCriuDidAndThatPausedSandboxesStayFrozen() {
        CriuProbe.Result result = CriuProbe.onThisHost();

        assertThat(result.reason()).endsWith("paused sandboxes keep their memory in RAM under a frozen cgroup");
        Optional<Path> criu = CriuProbe.findOnPath("criu");
        if (criu.isEmpty()) {
            assertThat(result.passed()).isFalse();
            assertThat(result.reason()).startsWith("CRIU is not installed");
            return;
        }
        Command.Result check = Command.run(List.of(criu.get().toString(), "check"), 30);
        if (!check.ok()) {
            // this project's build machines: criu 3.17 fails its check on this kernel
            assertThat(result.passed()).isFalse();
            assertThat(result.reason()).startsWith("CRIU " + result.version() + " is installed but failed its "
                            + "self-test on this host (criu check exited with " + check.exitCode() + ": ")
                    .contains(CriuProbe.firstError(check.stdout() + check.stderr()));
            assertThat(result.version()).isNotBlank();
        } else if (result.passed()) {
            assertThat(result.reason()).contains("passed its self-test", "does not hibernate sandboxes");
        } else {
            assertThat(result.reason()).contains("failed its self-test on this host (criu dump", "criu restore");
        }
    }

    @Test
    void aDumpThatHangsIsKilledAtTheTimeoutAndNothingIsLeft() throws Exception {
        Path criu = fake("""
                case "$1" in
                  --version) echo "Version: 4.1.1" ;;
                  check) echo "Looks good." ;;
                  dump) exec sleep 1717 ;;
                  *) exit 3 ;;
                esac
                """);
        List<Path> before = probeDirs();

        CriuProbe.Result result = new CriuProbe(criu, Duration.ofSeconds(1)).run();

        assertThat(result.passed()).isFalse();
        assertThat(result.version()).isEqualTo("4.1.1");
        assertThat(result.reason()).startsWith("CRIU 4.1.1 is installed but failed its self-test on this host "
                + "(criu dump did not finish within 1 s and was killed)");
        assertNothingLeft(before);
    }

    @Test
    void aFailedRestoreIsReportedWithCriusErrorAndNothingIsLeft() throws Exception {
        // dumps by killing the process, as criu does, then fails the restore with an error in its log file
        Path criu = fake("""
                case "$1" in
                  --version) echo "Version: 3.17.1" ;;
                  check) echo "Looks good." ;;
                  dump) kill -9 "$3"; : > dump.log ;;
                  restore) echo "Error (criu/cr-restore.c:2400): Can't fork for 12345: File exists" > restore.log; exit 1 ;;
                esac
                """);
        List<Path> before = probeDirs();

        CriuProbe.Result result = new CriuProbe(criu, Duration.ofSeconds(10)).run();

        assertThat(result.passed()).isFalse();
        assertThat(result.reason()).startsWith("CRIU 3.17.1 is installed but failed its self-test on this host "
                + "(criu restore exited with 1: Can't fork for 12345: File exists)");
        assertNothingLeft(before);
    }

    private Path fake(String body) throws IOException {
        Path script = fakes.resolve("criu");
        Files.writeString(script, "#!/bin/sh\n" + body);
        Files.setPosixFilePermissions(script, PosixFilePermissions.fromString("rwx------"));
        return script;
    }

    /** No process of the probe (the throwaway sleep, a hanging criu) runs on, and its temp dir is gone. */
    private static void assertNothingLeft(List<Path> probeDirsBefore) throws IOException {
        assertThat(ProcessHandle.current().descendants().filter(ProcessHandle::isAlive)
                .map(p -> p.info().commandLine().orElse(""))).noneMatch(line -> line.contains("sleep"));
        assertThat(probeDirs()).containsExactlyInAnyOrderElementsOf(probeDirsBefore);
    }

    private static List<Path> probeDirs() throws IOException {
        try (Stream<Path> entries = Files.list(Path.of(System.getProperty("java.io.tmpdir")))) {
            return entries.filter(p -> p.getFileName().toString().startsWith("capsule-criu-probe")).toList();
        }
    }
}
