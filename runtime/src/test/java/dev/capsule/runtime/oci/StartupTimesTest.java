package dev.capsule.runtime.oci;

import dev.capsule.runtime.TestEnvironment;
import dev.capsule.runtime.bundle.RuntimeBundle;
import dev.capsule.runtime.host.Mounts;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * Prints how long a cold sandbox takes: start() (overlay mount, config, {@code runc run -d}) and start() to the
 * first line printed by a Java program from the bundle. Reports, never asserts, durations; the benchmark proper
 * belongs in bench/.
 */
class StartupTimesTest {

    @Test
    void printColdStartTimes() throws Exception {
        Path dataDir = Files.createTempDirectory("capsule-data");
        Path runcRoot = Files.createTempDirectory("capsule-runc");
        RuncRuntime runtime = new RuncRuntime(dataDir, runcRoot, "runc", RuncRuntime.DEFAULT_CGROUP_PARENT);
        try {
            for (int i = 0; i < 6; i++) {
                String id = "startup-" + i;
                long begin = System.nanoTime();
                Sandbox sandbox = runtime.start(ContainerSpec.of(id, TestEnvironment.baseTemplate(), TestEnvironment.bundle(),
                        RuntimeBundle.javaCommand(List.of("-jar", RuntimeBundle.ENVD_JAR, "hello"))));
                long started = System.nanoTime();
                await().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(2))
                        .until(() -> Files.readString(sandbox.directory().log()).contains("hello from java"));
                long output = System.nanoTime();
                runtime.delete(id);
                long deleted = System.nanoTime();
                System.out.printf("run %d: start() %d ms, start() to first output %d ms, delete %d ms%n", i,
                        (started - begin) / 1_000_000, (output - begin) / 1_000_000, (deleted - output) / 1_000_000);
            }
        } finally {
            runtime.list().forEach(runtime::delete);
            assertThat(runtime.list()).isEmpty();
            Mounts.deleteTree(dataDir);
            Mounts.deleteTree(runcRoot);
        }
    }
}
