package dev.capsule.envd.filesystem;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static dev.capsule.envd.filesystem.FsHarness.brief;
import static dev.capsule.envd.filesystem.FsHarness.is;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/** WatchDir streams and polling watchers over real HTTP, seeing real inotify events. */
class WatchTest {
    private static FsHarness fs;
    private Path dir;

    @BeforeAll
    static void start() throws Exception {
        fs = new FsHarness();
    }

    @AfterAll
    static void stop() throws Exception {
        fs.close();
    }

    @BeforeEach
    void freshDirectory(TestInfo info) throws Exception {
        dir = Files.createDirectories(fs.home.resolve(info.getTestMethod().orElseThrow().getName()));
    }

    private static String q(Object path) {
        return FsHarness.JSON.getNodeFactory().textNode(path.toString()).toString();
    }

    private FsHarness.Stream watch(String json) throws Exception {
        return fs.stream("WatchDir", json, Map.of());
    }

    private static void expectStart(FsHarness.Stream stream) throws Exception {
        assertThat(stream.status).isEqualTo(200);
        FsHarness.Message first = stream.next();
        assertThat(first.end()).as("first message: %s", first.json()).isFalse();
        assertThat(first.json().toString()).isEqualTo("{\"start\":{}}");
    }

    @Test
    void watchDirStreamsStartThenExactEvents() throws Exception {
        try (FsHarness.Stream stream = watch("{\"path\":" + q(dir) + "}")) {
            expectStart(stream);

            Files.writeString(dir.resolve("a.txt"), "hello");
            Files.setPosixFilePermissions(dir.resolve("a.txt"), PosixFilePermissions.fromString("rwx------"));
            Files.move(dir.resolve("a.txt"), dir.resolve("b.txt"));
            Files.delete(dir.resolve("b.txt"));
            Files.createDirectory(dir.resolve("sub"));
            Files.writeString(dir.resolve("sub/not-seen.txt"), "not recursive");
            Files.delete(dir.resolve("sub/not-seen.txt"));
            Files.delete(dir.resolve("sub"));

            List<JsonNode> events = stream.eventsUntil(is("REMOVE", "sub"));
            assertThat(brief(events)).containsExactly("CREATE a.txt", "WRITE a.txt", "CHMOD a.txt",
                    "RENAME a.txt", "CREATE b.txt", "REMOVE b.txt", "CREATE sub", "REMOVE sub");
            assertThat(events).allSatisfy(e -> assertThat(e.has("entry")).isFalse());
        }
    }

    @Test
    void recursiveWatchSeesEverythingInSubdirectoriesCreatedLater() throws Exception {
        try (FsHarness.Stream stream = watch("{\"path\":" + q(dir) + ",\"recursive\":true}")) {
            expectStart(stream);

            Files.createDirectory(dir.resolve("sub"));
            stream.eventsUntil(is("CREATE", "sub"));
            Files.writeString(dir.resolve("sub/f.txt"), "data");
            Files.setPosixFilePermissions(dir.resolve("sub/f.txt"), PosixFilePermissions.fromString("rw-rw-rw-"));
            Files.move(dir.resolve("sub/f.txt"), dir.resolve("sub/g.txt"));
            Files.delete(dir.resolve("sub/g.txt"));
            List<JsonNode> events = stream.eventsUntil(is("REMOVE", "sub/g.txt"));
            assertThat(brief(events)).containsExactly("CREATE sub/f.txt", "WRITE sub/f.txt", "CHMOD sub/f.txt",
                    "RENAME sub/f.txt", "CREATE sub/g.txt", "REMOVE sub/g.txt");

            Files.createDirectory(dir.resolve("sub/deeper"));
            stream.eventsUntil(is("CREATE", "sub/deeper"));
            Files.writeString(dir.resolve("sub/deeper/x"), "x");
            assertThat(brief(stream.eventsUntil(is("WRITE", "sub/deeper/x"))))
                    .containsExactly("CREATE sub/deeper/x", "WRITE sub/deeper/x");
        }
    }

    @Test
    void recursiveWatchFollowsDirectoriesMovedInRenamedAndMovedOut() throws Exception {
        Path outside = Files.createDirectories(fs.tmp.resolve("outside-" + System.nanoTime()));
        try (FsHarness.Stream stream = watch("{\"path\":" + q(dir) + ",\"recursive\":true}")) {
            expectStart(stream);

            // A whole tree moved in at once: its directories get watched before its CREATE is sent.
            Files.createDirectories(outside.resolve("tree/a/b"));
            Files.move(outside.resolve("tree"), dir.resolve("tree"));
            stream.eventsUntil(is("CREATE", "tree"));
            Files.writeString(dir.resolve("tree/a/b/deep.txt"), "d");
            assertThat(brief(stream.eventsUntil(is("WRITE", "tree/a/b/deep.txt"))))
                    .containsExactly("CREATE tree/a/b/deep.txt", "WRITE tree/a/b/deep.txt");

            // Renamed within the tree: events below it carry the new name.
            Files.move(dir.resolve("tree"), dir.resolve("renamed"));
            assertThat(brief(stream.eventsUntil(is("CREATE", "renamed"))))
                    .containsExactly("RENAME tree", "CREATE renamed");
            Files.delete(dir.resolve("renamed/a/b/deep.txt"));
            assertThat(brief(stream.eventsUntil(is("REMOVE", "renamed/a/b/deep.txt"))))
                    .containsExactly("REMOVE renamed/a/b/deep.txt");

            // Moved out of the tree: no longer watched.
            Files.move(dir.resolve("renamed"), outside.resolve("gone"));
            Files.writeString(outside.resolve("gone/a/b/unseen.txt"), "u");
            Files.writeString(dir.resolve("marker"), "");
            assertThat(brief(stream.eventsUntil(is("CREATE", "marker"))))
                    .containsExactly("RENAME renamed", "CREATE marker");
        } finally {
            FsHarness.deleteTree(outside);
        }
    }

    @Test
    void recursiveWatchDoesNotFollowSymlinkedDirectories() throws Exception {
        Path outside = Files.createDirectories(fs.tmp.resolve("linked-" + System.nanoTime()));
        Files.createSymbolicLink(dir.resolve("link"), outside);
        try (FsHarness.Stream stream = watch("{\"path\":" + q(dir) + ",\"recursive\":true}")) {
            expectStart(stream);
            Files.writeString(outside.resolve("unseen"), "u");
            Files.writeString(dir.resolve("marker"), "");
            assertThat(brief(stream.eventsUntil(is("CREATE", "marker")))).containsExactly("CREATE marker");
        } finally {
            FsHarness.deleteTree(outside);
        }
    }

    @Test
    void includeEntryAttachesEntriesExceptToRemovalsAndRenames() throws Exception {
        try (FsHarness.Stream stream = watch("{\"path\":" + q(dir) + ",\"includeEntry\":true}")) {
            expectStart(stream);
            Files.writeString(dir.resolve("file.txt"), "hello");
            Files.move(dir.resolve("file.txt"), dir.resolve("moved.txt"));
            Files.delete(dir.resolve("moved.txt"));
            List<JsonNode> events = stream.eventsUntil(is("REMOVE", "moved.txt"));
            for (JsonNode e : events) {
                String type = e.get("type").asText();
                if (type.equals("EVENT_TYPE_REMOVE") || type.equals("EVENT_TYPE_RENAME")) {
                    assertThat(e.has("entry")).as(e.toString()).isFalse();
                }
            }
            JsonNode create = events.getFirst();
            assertThat(create.get("type").asText()).isEqualTo("EVENT_TYPE_CREATE");
            if (create.has("entry")) { // present unless the file was already renamed when the event was read
                assertThat(create.at("/entry/name").asText()).isEqualTo("file.txt");
                assertThat(create.at("/entry/path").asText()).isEqualTo(dir.resolve("file.txt").toString());
                assertThat(create.at("/entry/type").asText()).isEqualTo("FILE_TYPE_FILE");
            }
        }
        try (FsHarness.Stream stream = watch("{\"path\":" + q(dir) + ",\"include_entry\":true}")) {
            expectStart(stream);
            Files.createDirectory(dir.resolve("stays"));
            JsonNode create = stream.eventsUntil(is("CREATE", "stays")).getLast();
            assertThat(create.at("/entry/type").asText()).isEqualTo("FILE_TYPE_DIRECTORY");
            assertThat(create.at("/entry/owner").asText()).isEqualTo("root");
        }
    }

    @Test
    void watchedDirectoryItselfRemovedIsReportedAsDot() throws Exception {
        Path target = Files.createDirectory(dir.resolve("target"));
        try (FsHarness.Stream stream = watch("{\"path\":" + q(target) + "}")) {
            expectStart(stream);
            Files.delete(target);
            assertThat(brief(stream.eventsUntil(is("REMOVE", ".")))).containsExactly("REMOVE .");
        }
    }

    @Test
    void keepalivesFlowAtTheRequestedInterval() throws Exception {
        try (FsHarness.Stream stream = fs.stream("WatchDir", "{\"path\":" + q(dir) + "}",
                Map.of("Keepalive-Ping-Interval", "1"))) {
            expectStart(stream);
            assertThat(stream.next().json().toString()).isEqualTo("{\"keepalive\":{}}");
            assertThat(stream.next().json().toString()).isEqualTo("{\"keepalive\":{}}");
        }
        assertThat(FilesystemService.keepaliveInterval(null)).isEqualTo(FilesystemService.DEFAULT_KEEPALIVE);
        assertThat(FilesystemService.keepaliveInterval("abc")).isEqualTo(FilesystemService.DEFAULT_KEEPALIVE);
        assertThat(FilesystemService.keepaliveInterval("-5")).isEqualTo(FilesystemService.DEFAULT_KEEPALIVE);
        assertThat(FilesystemService.keepaliveInterval("50")).hasSeconds(50);
    }

    @Test
    void aPassedDeadlineEndsTheStreamAndTheWatch() throws Exception {
        await().atMost(FsHarness.PATIENCE).until(() -> fs.service.openWatches() == 0);
        long before = FsHarness.inotifyFds();
        try (FsHarness.Stream stream = fs.stream("WatchDir", "{\"path\":" + q(dir) + "}",
                Map.of("Connect-Timeout-Ms", "300"))) {
            expectStart(stream);
            FsHarness.Message end = stream.nextIgnoringKeepalives();
            assertThat(end.end()).isTrue();
            assertThat(end.json().at("/error/code").asText()).isEqualTo("deadline_exceeded");
        }
        await().atMost(FsHarness.PATIENCE).until(() -> fs.service.openWatches() == 0);
        await().atMost(FsHarness.PATIENCE).until(() -> FsHarness.inotifyFds() == before);
    }

    @Test
    void watchDirErrorsEndTheStream() throws Exception {
        Files.writeString(dir.resolve("file"), "");
        record Case(String json, String user, String code) {}
        for (Case c : List.of(
                new Case("{\"path\":" + q(dir.resolve("missing")) + "}", "user", "not_found"),
                new Case("{\"path\":" + q(dir.resolve("file")) + "}", "user", "invalid_argument"),
                new Case("{\"path\":" + q(dir) + "}", "mallory", "unauthenticated"),
                new Case("{\"path\":" + q(dir) + ",\"recursive\":\"yes please\"}", "user", "invalid_argument"))) {
            try (FsHarness.Stream stream = fs.stream("WatchDir", c.json(),
                    Map.of("Authorization", FsHarness.basic(c.user())))) {
                assertThat(stream.status).isEqualTo(200);
                FsHarness.Message end = stream.next();
                assertThat(end.end()).as(c.json()).isTrue();
                assertThat(end.json().at("/error/code").asText()).as(c.json()).isEqualTo(c.code());
            }
        }
    }

    @Test
    void networkMountsAreRecognisedByMagicNumber() throws Exception {
        assertThat(NetworkMounts.kind(0x6969)).isEqualTo("nfs");
        assertThat(NetworkMounts.kind(0xFF534D42L)).isEqualTo("cifs");
        assertThat(NetworkMounts.kind(0xFFFFFFFFFF534D42L)).as("sign-extended f_type").isEqualTo("cifs");
        assertThat(NetworkMounts.kind(0xFE534D42L)).isEqualTo("smb2");
        assertThat(NetworkMounts.kind(0x517B)).isEqualTo("smb");
        assertThat(NetworkMounts.kind(0x65735546)).isEqualTo("fuse");
        assertThat(NetworkMounts.kind(0xEF53)).as("ext4").isNull();
        assertThat(NetworkMounts.kind(0x01021994)).as("tmpfs").isNull();
        assertThat(NetworkMounts.networkFileSystem(dir)).isNull();
        assertThat(NetworkMounts.networkFileSystem(Path.of("/proc"))).isNull();
        try (FsHarness.Stream stream = watch("{\"path\":" + q(dir) + ",\"allowNetworkMounts\":true}")) {
            expectStart(stream);
        }
    }

    @Test
    void disconnectingEndsTheWatchAndFreesItsInotifyInstance() throws Exception {
        await().atMost(FsHarness.PATIENCE).until(() -> fs.service.openWatches() == 0);
        long before = FsHarness.inotifyFds();
        List<FsHarness.Stream> streams = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            FsHarness.Stream stream = watch("{\"path\":" + q(dir) + ",\"recursive\":" + (i % 2 == 0) + "}");
            expectStart(stream);
            streams.add(stream);
        }
        assertThat(FsHarness.inotifyFds()).isEqualTo(before + 3);
        assertThat(fs.service.openWatches()).isEqualTo(3);

        for (FsHarness.Stream stream : streams) {
            stream.close();
        }
        await().atMost(FsHarness.PATIENCE).until(() -> fs.service.openWatches() == 0);
        await().atMost(FsHarness.PATIENCE).until(() -> FsHarness.inotifyFds() == before);
    }

    @Test
    void pollingWatcherAccumulatesEventsBetweenPolls() throws Exception {
        long before = FsHarness.inotifyFds();
        FsHarness.Reply created = fs.call("CreateWatcher", "{\"path\":" + q(dir) + ",\"recursive\":true}");
        assertThat(created.status()).isEqualTo(200);
        String id = created.body().get("watcherId").asText();
        assertThat(id).startsWith("w");
        assertThat(FsHarness.inotifyFds()).isEqualTo(before + 1);

        Files.createDirectory(dir.resolve("sub"));
        Files.writeString(dir.resolve("top.txt"), "1");
        List<String> seen = new ArrayList<>();
        await().atMost(FsHarness.PATIENCE).until(() -> {
            fs.call("GetWatcherEvents", "{\"watcherId\":\"" + id + "\"}").body().path("events")
                    .forEach(e -> seen.add(e.get("type").asText().replace("EVENT_TYPE_", "") + " "
                            + e.get("name").asText()));
            return seen.contains("WRITE top.txt");
        });
        assertThat(seen).containsExactly("CREATE sub", "CREATE top.txt", "WRITE top.txt");
        FsHarness.Reply empty = fs.call("GetWatcherEvents", "{\"watcher_id\":\"" + id + "\"}");
        assertThat(empty.status()).isEqualTo(200);
        assertThat(empty.body().path("events").isEmpty()).as("events are handed out once").isTrue();

        Files.writeString(dir.resolve("sub/inner"), "");
        Files.delete(dir.resolve("sub/inner"));
        List<String> later = new ArrayList<>();
        await().atMost(FsHarness.PATIENCE).until(() -> {
            fs.call("GetWatcherEvents", "{\"watcherId\":\"" + id + "\"}").body().path("events")
                    .forEach(e -> later.add(e.get("type").asText().replace("EVENT_TYPE_", "") + " "
                            + e.get("name").asText()));
            return later.contains("REMOVE sub/inner");
        });
        assertThat(later).containsExactly("CREATE sub/inner", "REMOVE sub/inner");

        assertThat(fs.call("RemoveWatcher", "{\"watcherId\":\"" + id + "\"}").status()).isEqualTo(200);
        assertThat(FsHarness.inotifyFds()).as("RemoveWatcher frees the instance at once").isEqualTo(before);
        FsHarness.Reply gone = fs.call("GetWatcherEvents", "{\"watcherId\":\"" + id + "\"}");
        assertThat(gone.status()).isEqualTo(404);
        assertThat(gone.code()).isEqualTo("not_found");
        FsHarness.Reply removeAgain = fs.call("RemoveWatcher", "{\"watcherId\":\"" + id + "\"}");
        assertThat(removeAgain.status()).isEqualTo(404);
        assertThat(removeAgain.code()).isEqualTo("not_found");
    }

    @Test
    void createWatcherErrors() throws Exception {
        Files.writeString(dir.resolve("file"), "");
        FsHarness.Reply missing = fs.call("CreateWatcher", "{\"path\":" + q(dir.resolve("missing")) + "}");
        assertThat(missing.status()).isEqualTo(404);
        assertThat(missing.code()).isEqualTo("not_found");
        FsHarness.Reply notDir = fs.call("CreateWatcher", "{\"path\":" + q(dir.resolve("file")) + "}");
        assertThat(notDir.status()).isEqualTo(400);
        assertThat(notDir.code()).isEqualTo("invalid_argument");
        FsHarness.Reply unknown = fs.call("GetWatcherEvents", "{\"watcherId\":\"w-no-such\"}");
        assertThat(unknown.status()).isEqualTo(404);
        assertThat(unknown.code()).isEqualTo("not_found");
    }

    @Test
    void closingTheServiceEndsStreamsAndPollingWatchers() throws Exception {
        long before = FsHarness.inotifyFds();
        try (FsHarness other = new FsHarness()) {
            String id = other.call("CreateWatcher", "{\"path\":" + q(other.home) + "}").body()
                    .get("watcherId").asText();
            try (FsHarness.Stream stream = other.stream("WatchDir", "{\"path\":" + q(other.home) + "}", Map.of())) {
                expectStart(stream);
                assertThat(FsHarness.inotifyFds()).isEqualTo(before + 2);

                other.service.close();

                FsHarness.Message end = stream.nextIgnoringKeepalives();
                assertThat(end.end()).isTrue();
                assertThat(end.json().at("/error/code").asText()).isEqualTo("unavailable");
                assertThat(other.call("GetWatcherEvents", "{\"watcherId\":\"" + id + "\"}").code())
                        .isEqualTo("not_found");
                assertThat(FsHarness.inotifyFds()).isEqualTo(before);
            }
        }
    }
}
