package dev.capsule.runtime.microvm;

import static org.assertj.core.api.Assertions.assertThat;

import dev.capsule.runtime.host.Mounts;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Random;
import org.awaitility.Awaitility;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Spare copies of a template snapshot's RAM file, on real files: made ahead, taken whole, topped up, swept. */
class RamSparesTest {

    Path dir;
    Path snapshot;
    Path ram;
    RamSpares spares;

    @BeforeEach
    void setUp() throws IOException {
        dir = Files.createTempDirectory("capsule-spares");
        snapshot = Files.createDirectories(dir.resolve("cache/snapshot-base-2x512-abc"));
        ram = snapshot.resolve("memory.ram");
        byte[] bytes = new byte[3 << 20];
        new Random(7).nextBytes(bytes);
        Files.write(ram, bytes);
        spares = new RamSpares(Files.createDirectories(dir.resolve("data/spares")));
    }

    @AfterEach
    void tearDown() {
        spares.close();
        Mounts.deleteTree(dir);
    }

    private long ready() throws IOException {
        try (var files = Files.list(dir.resolve("data/spares/snapshot-base-2x512-abc"))) {
            return files.filter(f -> f.getFileName().toString().endsWith(".ram")).count();
        }
    }

    @Test
    void aTakeWithoutSparesTellsTheCallerToCopyAndMakesThemForTheNextOnes() throws IOException {
        Path first = dir.resolve("first.ram");
        assertThat(spares.take(ram, first)).isFalse();
        assertThat(first).doesNotExist();
        Awaitility.await().atMost(Duration.ofSeconds(60)).until(() -> ready() == RamSpares.COUNT);

        Path second = dir.resolve("second.ram");
        assertThat(spares.take(ram, second)).isTrue();
        assertThat(Files.readAllBytes(second)).isEqualTo(Files.readAllBytes(ram));
        Awaitility.await().atMost(Duration.ofSeconds(60)).until(() -> ready() == RamSpares.COUNT);
    }

    @Test
    void aSweepRemovesHalfWrittenSparesAndThoseOfSnapshotsNoLongerCached() throws IOException {
        Path kept = Files.createDirectories(dir.resolve("data/spares/snapshot-base-2x512-abc"));
        Files.writeString(kept.resolve("a.ram"), "whole");
        Files.writeString(kept.resolve("b.tmp"), "half");
        Path gone = Files.createDirectories(dir.resolve("data/spares/snapshot-base-2x256-old"));
        Files.writeString(gone.resolve("c.ram"), "of a snapshot rebuilt since");

        spares.sweep(key -> Files.isDirectory(dir.resolve("cache").resolve(key)));

        assertThat(kept.resolve("a.ram")).exists();
        assertThat(kept.resolve("b.tmp")).doesNotExist();
        assertThat(gone).doesNotExist();
    }
}
