package dev.capsule.envd.filesystem;

import dev.capsule.connect.Code;
import dev.capsule.connect.ConnectException;
import dev.capsule.envd.rpc.filesystem.FilesystemEvent;
import dev.capsule.envd.users.Users;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

/** DirectoryWatch on its own: unread events are bounded, and close frees everything. */
class DirectoryWatchTest {
    private final Path tmp;

    DirectoryWatchTest() throws Exception {
        tmp = Files.createTempDirectory("capsule-watch").toRealPath();
    }

    @AfterEach
    void cleanUp() throws Exception {
        FsHarness.deleteTree(tmp);
    }

    @Test
    void tooManyUnreadEventsFailTheWatchInsteadOfGrowingWithoutBound() throws Exception {
        long before = FsHarness.inotifyFds();
        DirectoryWatch watch = DirectoryWatch.start(tmp, false, false, new Users(), 10);
        try {
            for (int i = 0; i < 30; i++) {
                Files.writeString(tmp.resolve("f" + i), "x");
            }
            List<FilesystemEvent> taken = new ArrayList<>();
            await().atMost(FsHarness.PATIENCE).untilAsserted(() ->
                    assertThatThrownBy(() -> taken.addAll(watch.drain()))
                            .isInstanceOfSatisfying(ConnectException.class,
                                    e -> assertThat(e.code()).isEqualTo(Code.RESOURCE_EXHAUSTED)));
            assertThat(taken.size()).isLessThanOrEqualTo(10);
            await().atMost(FsHarness.PATIENCE).until(() -> FsHarness.inotifyFds() == before);
        } finally {
            watch.close();
        }
        assertThat(FsHarness.inotifyFds()).isEqualTo(before);
    }

    @Test
    void awaitReturnsEventsThenNullOnceClosed() throws Exception {
        DirectoryWatch watch = DirectoryWatch.start(tmp, true, false, new Users());
        Files.createDirectory(tmp.resolve("d"));
        List<FilesystemEvent> events = watch.await(FsHarness.PATIENCE);
        assertThat(events).extracting(FilesystemEvent::getName).containsExactly("d");
        assertThat(watch.await(Duration.ofMillis(1))).isEmpty();
        watch.close();
        watch.close();
        assertThat(watch.await(FsHarness.PATIENCE)).isNull();
    }
}
