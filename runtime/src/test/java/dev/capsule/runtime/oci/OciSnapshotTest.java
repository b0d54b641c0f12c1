package dev.capsule.runtime.oci;

import dev.capsule.runtime.NetworkPolicy;
import dev.capsule.runtime.Resources;
import dev.capsule.runtime.RuntimeFailure;
import dev.capsule.runtime.SandboxInstance;
import dev.capsule.runtime.SandboxSpec;
import dev.capsule.runtime.SnapshotLayer;
import dev.capsule.runtime.UnknownTemplate;
import dev.capsule.runtime.host.Mounts;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * Snapshots on real runc and overlayfs: a sandbox's files stored as a read-only layer, sandboxes started from it
 * (each with its own writable layer), snapshots of those (a chain of layers), and deleting snapshots while
 * sandboxes still use them. A network of its own, so it can run beside the other driver tests. Every test deletes
 * its snapshots and ends by proving nothing is left, snapshot layers included.
 */
class OciSnapshotTest {

    Path dataDir;
    Path runcRoot;
    OciRuntimeConfig config;
    OciRuntime runtime;
    final List<String> ids = new ArrayList<>();
    final List<String> snapshots = new ArrayList<>();

    @BeforeEach
    void setUp() throws IOException {
        dataDir = Files.createTempDirectory("capsule-snap-data");
        runcRoot = Files.createTempDirectory("capsule-snap-runc");
        config = OciRuntimeTest.testConfig(dataDir, runcRoot, "capsulesnp", "csn", "10.214.9.0/24");
        runtime = new OciRuntime(config);
        runtime.prepare();
    }

    @AfterEach
    void removeEverythingAndProveNothingIsLeft() {
        snapshots.forEach(runtime::deleteSnapshot);
        runtime.removeOrphans(Set.of());
        runtime.close();
        OciRuntimeTest.assertNothingLeft(config, ids);
        Mounts.deleteTree(dataDir);
        Mounts.deleteTree(runcRoot);
    }

    SandboxInstance start(String templateId) {
        String id = OciRuntimeTest.newId();
        ids.add(id);
        return runtime.start(new SandboxSpec(id, templateId, null, NetworkPolicy.OPEN));
    }

    SnapshotLayer snapshot(SandboxInstance sandbox, String snapshotId) {
        snapshots.add(snapshotId);
        return runtime.snapshot(sandbox.sandboxId(), snapshotId);
    }

    static String run(SandboxInstance sandbox, String script) {
        EnvdClient.Result result = new EnvdClient(sandbox).run(script);
        assertThat(result.exitCode()).as(script + ": " + result.stderr()).isZero();
        return result.stdout();
    }

    /** What the tests look at of a sandbox's files: written, deleted, replaced, linked, owned, with an xattr. */
    static final String LOOK = "cat /home/user/snap.txt; echo; test -e /etc/debian_version && echo template-file;"
            + " ls /usr/share/doc/git; readlink /home/user/link; stat -c '%U %a %h' /home/user/snap.txt;"
            + " python3 -c \"import os; print(os.getxattr('/home/user/snap.txt', 'user.origin').decode())\"";
    static final String AS_SNAPSHOTTED = "from source\nonly\nsnap.txt\nuser 640 2\nsource\n";

    @Test
    void sandboxesFromASnapshotSeeItsFilesAndEachIsIndependentWhileTheSourceKeepsRunning() throws IOException {
        SandboxInstance source = start("base");
        run(source, "printf 'from source' > /home/user/snap.txt && chmod 640 /home/user/snap.txt"
                + " && ln -s snap.txt /home/user/link && ln /home/user/snap.txt /home/user/hard"
                + " && python3 -c \"import os; os.setxattr('/home/user/snap.txt', 'user.origin', b'source')\""
                // a template file deleted (a whiteout) and a template directory replaced (an opaque directory)
                + " && sudo rm /etc/debian_version && sudo rm -r /usr/share/doc/git && sudo mkdir /usr/share/doc/git"
                + " && sudo touch /usr/share/doc/git/only");
        run(source, OciPersistenceTest.LONG_PROCESS);
        assertThat(run(source, LOOK)).isEqualTo(AS_SNAPSHOTTED);

        long begin = System.nanoTime();
        SnapshotLayer layer = snapshot(source, "my-snap:default");
        System.out.printf("snapshot of a running sandbox (%d bytes changed): %d ms%n", layer.sizeBytes(),
                (System.nanoTime() - begin) / 1_000_000);

        assertThat(layer.snapshotId()).isEqualTo("my-snap:default");
        assertThat(layer.sizeBytes()).isPositive();
        assertThat(layer.memoryKept()).isFalse();
        // the source was thawed and keeps running, its processes with it
        assertThat(runtime.discover()).extracting(SandboxInstance::state)
                .containsExactly(SandboxInstance.State.RUNNING);
        assertThat(run(source, OciPersistenceTest.COUNT_LONG_PROCESS)).isEqualTo("1\n");

        List<SandboxInstance> copies = List.of(start("my-snap:default"), start("my-snap:default"),
                start("my-snap:default"));
        for (SandboxInstance copy : copies) {
            assertThat(copy.templateId()).isEqualTo("my-snap:default");
            assertThat(run(copy, LOOK)).isEqualTo(AS_SNAPSHOTTED);
            assertThat(run(copy, OciPersistenceTest.COUNT_LONG_PROCESS)).isEqualTo("0\n");
            assertThat(run(copy, "cat /home/user/hard")).isEqualTo("from source");
        }
        // each writes in its own layer: nobody else sees it, the source included
        run(copies.get(0), "echo mine > /home/user/mine.txt && echo changed > /home/user/snap.txt");
        run(source, "echo later > /home/user/later.txt");
        for (SandboxInstance other : List.of(copies.get(1), copies.get(2), source)) {
            assertThat(run(other, "test -e /home/user/mine.txt || echo absent")).isEqualTo("absent\n");
        }
        for (SandboxInstance copy : copies) {
            assertThat(run(copy, "test -e /home/user/later.txt || echo absent")).isEqualTo("absent\n");
        }
        assertThat(run(copies.get(1), "cat /home/user/snap.txt")).isEqualTo("from source");
        assertThat(run(source, "cat /home/user/snap.txt")).isEqualTo("from source");
        assertThat(runtime.discover()).filteredOn(s -> s.templateId().equals("my-snap:default")).hasSize(3);

        // a taken id changes nothing, and the source is not left frozen
        List<Path> layersBefore = layerDirs();
        assertThatThrownBy(() -> runtime.snapshot(source.sandboxId(), "my-snap:default"))
                .isInstanceOf(RuntimeFailure.class).hasMessageContaining("'my-snap:default' is taken");
        assertThat(layerDirs()).isEqualTo(layersBefore);
        assertThat(runtime.discover()).extracting(SandboxInstance::state).containsOnly(SandboxInstance.State.RUNNING);
        assertThatThrownBy(() -> runtime.snapshot("nosuchsandbox", "other")).isInstanceOf(RuntimeFailure.class)
                .hasMessageContaining("nosuchsandbox does not exist");
        assertThatThrownBy(() -> runtime.snapshot(source.sandboxId(), "base")).isInstanceOf(RuntimeFailure.class)
                .hasMessageContaining("template's name");
        assertThat(layerDirs()).isEqualTo(layersBefore);
    }

    @Test
    void aSnapshotOfASandboxFromASnapshotStacksAndDeletedLayersGoWithTheirLastUser() throws IOException {
        SandboxInstance source = start("base");
        run(source, "echo a > /home/user/a.txt");
        snapshot(source, "abc/def:default");
        SandboxInstance child = start("abc/def:default");
        // b written, a (from the layer below) deleted: a whiteout over a snapshot layer
        run(child, "echo b > /home/user/b.txt && rm /home/user/a.txt");
        snapshot(child, "abc/def:v2");
        SandboxInstance grandchild = start("abc/def:v2");
        assertThat(run(grandchild, "cat /home/user/b.txt; test -e /home/user/a.txt || echo no-a;"
                + " test -e /etc/debian_version && echo template")).isEqualTo("b\nno-a\ntemplate\n");
        assertThat(layerDirs()).hasSize(2);

        // deleted while in use: the id is gone at once, the sandboxes keep working, even through a cold boot
        runtime.deleteSnapshot("abc/def:default");
        runtime.deleteSnapshot("abc/def:default"); // unknown now: nothing happens
        runtime.deleteSnapshot("never-was");
        assertThatThrownBy(() -> start("abc/def:default")).isInstanceOf(UnknownTemplate.class)
                .hasMessageContaining("'abc/def:default' does not exist");
        runtime.pause(child.sandboxId(), false);
        SandboxInstance childAgain = runtime.resume(child.sandboxId()).instance();
        assertThat(run(childAgain, "cat /home/user/b.txt")).isEqualTo("b\n");
        assertThat(layerDirs()).hasSize(2);

        // the id can be taken again: a new layer, while the old one still serves its sandboxes
        snapshot(source, "abc/def:default");
        assertThat(layerDirs()).hasSize(3);
        assertThat(run(start("abc/def:default"), "cat /home/user/a.txt")).isEqualTo("a\n");

        runtime.destroy(child.sandboxId());
        assertThat(layerDirs()).as("the first layer is below abc/def:v2").hasSize(3);
        runtime.deleteSnapshot("abc/def:v2");
        assertThat(layerDirs()).as("abc/def:v2 still serves its sandbox").hasSize(3);
        runtime.destroy(grandchild.sandboxId());
        assertThat(layerDirs()).as("its last user gone, the chain goes").hasSize(1);
    }

    @Test
    void aFrozenOrStoppedSandboxIsSnapshottedAsItIsAndStaysSo() {
        SandboxInstance source = start("base");
        run(source, "echo frozen > /home/user/f.txt");
        runtime.pause(source.sandboxId(), true);
        snapshot(source, "while-frozen");
        assertThat(runtime.discover()).extracting(SandboxInstance::state).containsExactly(SandboxInstance.State.FROZEN);

        runtime.pause(source.sandboxId(), false);
        snapshot(source, "while-stopped");
        assertThat(runtime.discover()).extracting(SandboxInstance::state)
                .containsExactly(SandboxInstance.State.STOPPED);

        assertThat(run(start("while-frozen"), "cat /home/user/f.txt")).isEqualTo("frozen\n");
        assertThat(run(start("while-stopped"), "cat /home/user/f.txt")).isEqualTo("frozen\n");
    }

    @Test
    void whatAnInterruptedSnapshotLeftIsRemovedAtStart() throws IOException {
        Path layers = dataDir.resolve("layers");
        Files.createDirectories(layers.resolve(".tmp-0123456789ab-00000000/fs"));
        Files.createDirectories(layers.resolve("ids"));
        Files.createSymbolicLink(layers.resolve("ids/" + "0".repeat(64)), Path.of("../0123456789ab-00000000"));
        Files.createDirectories(layers.resolve("0123456789ab-11111111/fs")); // complete, but no id names it

        runtime.close();
        runtime = new OciRuntime(config);

        assertThat(layers.resolve("ids")).isEmptyDirectory();
        assertThat(layerDirs()).isEmpty();
    }

    /** The layer directories in the store (not the ids). */
    private List<Path> layerDirs() throws IOException {
        Path layers = dataDir.resolve("layers");
        if (!Files.isDirectory(layers)) {
            return List.of();
        }
        try (Stream<Path> entries = Files.list(layers)) {
            return entries.filter(p -> !p.getFileName().toString().equals("ids")).sorted().toList();
        }
    }
}
