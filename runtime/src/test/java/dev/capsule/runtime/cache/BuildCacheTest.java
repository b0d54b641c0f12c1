package dev.capsule.runtime.cache;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class BuildCacheTest {

    @TempDir
    Path dir;

    @Test
    void concurrentBuildersBuildOnceAndAllSeeTheCompleteEntry() throws Exception {
        BuildCache cache = new BuildCache(dir);
        AtomicInteger builds = new AtomicInteger();
        try (var executor = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<Path>> results = new ArrayList<>();
            for (int i = 0; i < 16; i++) {
                results.add(executor.submit(() -> cache.ensure("thing-1", target -> {
                    builds.incrementAndGet();
                    Files.writeString(target.resolve("a"), "first");
                    Files.writeString(target.resolve("b"), "second");
                })));
            }
            for (Future<Path> result : results) {
                Path entry = result.get();
                assertThat(entry.resolve("a")).hasContent("first");
                assertThat(entry.resolve("b")).hasContent("second");
            }
        }
        assertThat(builds).hasValue(1);
        assertThat(temporaryDirectories()).isEmpty();
    }

    @Test
    void aFailedBuildLeavesNoEntryAndTheNextBuilderSucceeds() throws IOException {
        BuildCache cache = new BuildCache(dir);

        assertThatThrownBy(() -> cache.ensure("thing-2", target -> {
            Files.writeString(target.resolve("half"), "done");
            throw new IOException("mirror unreachable");
        })).hasMessageContaining("mirror unreachable");
        assertThat(cache.contains("thing-2")).isFalse();
        assertThat(temporaryDirectories()).isEmpty();

        Path entry = cache.ensure("thing-2", target -> Files.writeString(target.resolve("ok"), "yes"));
        assertThat(entry.resolve("ok")).hasContent("yes");
        assertThat(entry.resolve("half")).doesNotExist();
    }

    @Test
    void aBuildAbandonedByACrashedProcessIsDeletedByTheNextBuilder() throws IOException {
        Path abandoned = Files.createDirectories(dir.resolve(".tmp-thing-3-dead/rootfs"));
        Files.writeString(abandoned.resolve("partial"), "x");

        Path entry = new BuildCache(dir).ensure("thing-3", target -> Files.writeString(target.resolve("ok"), "yes"));

        assertThat(entry.resolve("ok")).exists();
        assertThat(temporaryDirectories()).isEmpty();
    }

    @Test
    void keysThatCouldEscapeTheCacheAreRefused() {
        BuildCache cache = new BuildCache(dir);
        assertThatThrownBy(() -> cache.ensure("../etc", target -> { }))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("../etc");
    }

    private List<Path> temporaryDirectories() throws IOException {
        try (Stream<Path> files = Files.list(dir)) {
            return files.filter(p -> p.getFileName().toString().startsWith(".tmp-")).toList();
        }
    }
}
