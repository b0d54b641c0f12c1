package dev.capsule.runtime.pool;

import dev.capsule.runtime.NetworkPolicy;
import dev.capsule.runtime.Resources;
import dev.capsule.runtime.SandboxIds;
import dev.capsule.runtime.SandboxInstance;
import dev.capsule.runtime.SandboxSpec;
import dev.capsule.runtime.host.Mounts;
import dev.capsule.runtime.oci.EnvdClient;
import dev.capsule.runtime.oci.OciRuntime;
import dev.capsule.runtime.oci.OciRuntimeTest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Set;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

/**
 * The warm pool on the real oci driver: it fills, a take hands out a healthy sandbox at once, and it refills;
 * closing it destroys its idle sandboxes. Prints (never asserts) cold start() against a warm take.
 */
class WarmPoolTest {

    Path dataDir;
    Path runcRoot;
    OciRuntime runtime;
    WarmPool pool;
    final List<String> ids = new ArrayList<>();

    @BeforeEach
    void setUp() throws IOException {
        dataDir = Files.createTempDirectory("capsule-pool-data");
        runcRoot = Files.createTempDirectory("capsule-pool-runc");
        runtime = new OciRuntime(OciRuntimeTest.testConfig(dataDir, runcRoot));
        runtime.prepare();
    }

    @AfterEach
    void removeEverythingAndProveNothingIsLeft() {
        if (pool != null) {
            pool.close();
        }
        runtime.discover().forEach(sandbox -> ids.add(sandbox.sandboxId()));
        runtime.removeOrphans(Set.of());
        runtime.close();
        OciRuntimeTest.assertNothingLeft(runtime.config(), ids);
        Mounts.deleteTree(dataDir);
        Mounts.deleteTree(runcRoot);
    }

    @Test
    void thePoolFillsHandsOutHealthySandboxesAndRefills() {
        // cold starts first, for comparison, with the pool's kind of id
        pool = new WarmPool(runtime, List.of(WarmPool.Target.base(0)));
        List<Long> cold = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            long begin = System.nanoTime();
            SandboxInstance sandbox = runtime.start(new SandboxSpec(SandboxIds.newId(), "base", Resources.DEFAULT,
                    NetworkPolicy.OPEN));
            cold.add((System.nanoTime() - begin) / 1_000);
            runtime.destroy(sandbox.sandboxId());
        }
        assertThat(pool.take("base")).as("size 0 disables the pool").isEmpty();
        assertThat(pool.misses()).isEqualTo(1);
        pool.close();

        pool = new WarmPool(runtime, List.of(WarmPool.Target.base(2)));
        List<Long> warm = new ArrayList<>();
        List<SandboxInstance> taken = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            await().atMost(Duration.ofMinutes(3)).pollInterval(Duration.ofMillis(50)).until(() -> pool.idle("base") == 2);
            long begin = System.nanoTime();
            Optional<SandboxInstance> sandbox = pool.take("base");
            warm.add((System.nanoTime() - begin) / 1_000);
            assertThat(sandbox).isPresent();
            taken.add(sandbox.get());
        }
        System.out.printf("cold start() to envd healthy, us: %s%nwarm pool take(), us: %s%n", cold, warm);

        for (SandboxInstance sandbox : taken) {
            assertThat(sandbox.sandboxId()).matches("[a-z0-9]{20}");
            assertThat(sandbox.templateId()).isEqualTo("base");
            EnvdClient envd = new EnvdClient(sandbox);
            assertThat(envd.health()).isEqualTo(204);
            assertThat(envd.run("id -un; hostname").stdout()).isEqualTo("user\n" + sandbox.sandboxId() + "\n");
        }
        assertThat(pool.hits()).isEqualTo(3);
        assertThat(pool.take("nosuchtemplate")).isEmpty();
        assertThat(pool.misses()).isEqualTo(1);
        assertThat(pool.startFailures()).isZero();
        assertThat(pool.warmupFailures()).as("every pooled envd ran its warm-up command").isZero();
        await().atMost(Duration.ofMinutes(3)).until(() -> pool.idle("base") == 2);

        // pool sandboxes are the driver's like any other; closing the pool destroys only its idle ones
        assertThat(runtime.discover()).hasSize(5).containsAll(taken);
        pool.close();
        assertThat(runtime.discover()).containsExactlyInAnyOrderElementsOf(taken);
        assertThat(pool.take("base")).isEmpty();
        taken.forEach(sandbox -> ids.add(sandbox.sandboxId()));
    }

    @Test
    void closingWhileFillingLeavesNothing() {
        pool = new WarmPool(runtime, List.of(WarmPool.Target.base(2)));
        await().atMost(Duration.ofMinutes(3)).until(() -> pool.idle("base") >= 1);
        pool.close();
        pool.close(); // idempotent
        assertThat(runtime.discover()).isEmpty();
    }

    @Test
    void badTargetsAreRefused() {
        assertThatThrownBy(() -> WarmPool.Target.base(-1)).hasMessageContaining(">= 0");
        assertThatThrownBy(() -> new WarmPool(runtime, List.of(WarmPool.Target.base(1), WarmPool.Target.base(2))))
                .hasMessageContaining("twice");
        assertThatThrownBy(() -> new WarmPool.Target(" ", 1, Resources.DEFAULT)).hasMessageContaining("template id");
    }
}
