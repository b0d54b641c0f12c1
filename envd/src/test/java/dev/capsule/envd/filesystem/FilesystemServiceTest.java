package dev.capsule.envd.filesystem;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.nio.file.attribute.UserDefinedFileAttributeView;
import java.util.ArrayList;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/** Stat, MakeDir, Move, ListDir and Remove over real HTTP, as the default user {@code user} unless stated. */
class FilesystemServiceTest {
    private static FsHarness fs;
    private Path dir;
    private String rel;

    @BeforeAll
    static void start() throws Exception {
        fs = new FsHarness();
    }

    @AfterAll
    static void stop() throws Exception {
        fs.close();
    }

    /** Each test works in its own directory under the user's home; {@code rel} is its home-relative name. */
    @BeforeEach
    void freshDirectory(org.junit.jupiter.api.TestInfo info) throws Exception {
        rel = info.getTestMethod().orElseThrow().getName();
        dir = Files.createDirectories(fs.home.resolve(rel));
        FsHarness.chown(dir, 1000, 1000);
    }

    private Path file(String name, String content) throws Exception {
        Path p = dir.resolve(name);
        Files.createDirectories(p.getParent());
        Files.writeString(p, content);
        Files.setPosixFilePermissions(p, PosixFilePermissions.fromString("rw-r--r--"));
        FsHarness.chown(p, 1000, 1000);
        return p;
    }

    private static String q(Object path) {
        return FsHarness.JSON.getNodeFactory().textNode(path.toString()).toString();
    }

    // ---- Stat ----

    @Test
    void statReportsEveryFieldOfAFileWithMetadata() throws Exception {
        Path a = file("a.txt", "hello");
        UserDefinedFileAttributeView xattrs = Files.getFileAttributeView(a, UserDefinedFileAttributeView.class);
        xattrs.write("e2b.owner-team", ByteBuffer.wrap("infra".getBytes(StandardCharsets.UTF_8)));
        xattrs.write("other.key", ByteBuffer.wrap("hidden".getBytes(StandardCharsets.UTF_8)));

        FsHarness.Reply reply = fs.call("Stat", "{\"path\":" + q(rel + "/a.txt") + "}");

        assertThat(reply.status()).isEqualTo(200);
        JsonNode entry = reply.body().get("entry");
        assertThat(entry.get("name").asText()).isEqualTo("a.txt");
        assertThat(entry.get("type").asText()).isEqualTo("FILE_TYPE_FILE");
        assertThat(entry.get("path").asText()).isEqualTo(a.toString());
        assertThat(entry.get("size").isTextual()).as("int64 travels as a JSON string").isTrue();
        assertThat(entry.get("size").asText()).isEqualTo("5");
        assertThat(entry.get("mode").asInt()).isEqualTo(0644);
        assertThat(entry.get("permissions").asText()).isEqualTo("-rw-r--r--");
        assertThat(entry.get("owner").asText()).isEqualTo("user");
        assertThat(entry.get("group").asText()).isEqualTo("user");
        assertThat(entry.get("modifiedTime").asText())
                .isEqualTo(Files.getLastModifiedTime(a).toInstant().toString());
        assertThat(entry.has("symlinkTarget")).isFalse();
        assertThat(entry.get("metadata").properties()).hasSize(1);
        assertThat(entry.get("metadata").get("owner-team").asText()).isEqualTo("infra");
    }

    @Test
    void statOfADirectoryAndOfOwnershipByOtherUsers() throws Exception {
        Path sub = Files.createDirectory(dir.resolve("sub"));
        Files.setPosixFilePermissions(sub, PosixFilePermissions.fromString("rwxr-xr-x"));
        FsHarness.chown(sub, 1001, 1001);
        Path unknown = file("unknown-owner", "");
        FsHarness.chown(unknown, 4242, 4343);

        JsonNode entry = fs.call("Stat", "{\"path\":" + q(sub) + "}").body().get("entry");
        assertThat(entry.get("type").asText()).isEqualTo("FILE_TYPE_DIRECTORY");
        assertThat(entry.get("permissions").asText()).isEqualTo("drwxr-xr-x");
        assertThat(entry.get("mode").asInt()).isEqualTo(0755);
        assertThat(entry.get("owner").asText()).isEqualTo("other");
        assertThat(entry.get("group").asText()).isEqualTo("other");

        JsonNode numeric = fs.call("Stat", "{\"path\":" + q(unknown) + "}").body().get("entry");
        assertThat(numeric.get("owner").asText()).isEqualTo("4242");
        assertThat(numeric.get("group").asText()).isEqualTo("4343");
        assertThat(numeric.has("size")).as("proto3 JSON omits zero values").isFalse();
    }

    @Test
    void statOfMissingPathsIsNotFound() throws Exception {
        file("a.txt", "x");
        for (String path : List.of(rel + "/missing", rel + "/a.txt/below-a-file", "/no/such/dir/at/all")) {
            FsHarness.Reply reply = fs.call("Stat", "{\"path\":" + q(path) + "}");
            assertThat(reply.status()).as(path).isEqualTo(404);
            assertThat(reply.code()).isEqualTo("not_found");
            assertThat(reply.body().get("message").asText()).contains("not found");
        }
    }

    @Test
    void statOfSymlinksToAFileToADirectoryAndDangling() throws Exception {
        Path target = file("target.txt", "0123456789");
        Files.setPosixFilePermissions(target, PosixFilePermissions.fromString("rw-------"));
        Path targetDir = Files.createDirectory(dir.resolve("target-dir"));
        Files.createSymbolicLink(dir.resolve("to-file"), Path.of("target.txt"));
        Files.createSymbolicLink(dir.resolve("to-dir"), targetDir);
        Files.createSymbolicLink(dir.resolve("dangling"), Path.of("nowhere/else"));
        Files.createSymbolicLink(dir.resolve("loop"), dir.resolve("loop"));

        JsonNode toFile = fs.call("Stat", "{\"path\":" + q(rel + "/to-file") + "}").body().get("entry");
        assertThat(toFile.get("type").asText()).isEqualTo("FILE_TYPE_FILE");
        assertThat(toFile.get("path").asText()).isEqualTo(dir.resolve("to-file").toString());
        assertThat(toFile.get("permissions").asText()).isEqualTo("Lrwxrwxrwx");
        assertThat(toFile.get("mode").asInt()).as("the target's permission bits").isEqualTo(0600);
        assertThat(toFile.get("symlinkTarget").asText()).isEqualTo(target.toString());
        assertThat(toFile.get("size").asText()).as("the link's own size").isEqualTo("10");

        JsonNode toDir = fs.call("Stat", "{\"path\":" + q(rel + "/to-dir") + "}").body().get("entry");
        assertThat(toDir.get("type").asText()).isEqualTo("FILE_TYPE_DIRECTORY");
        assertThat(toDir.get("symlinkTarget").asText()).isEqualTo(targetDir.toString());

        JsonNode dangling = fs.call("Stat", "{\"path\":" + q(rel + "/dangling") + "}").body().get("entry");
        assertThat(dangling.has("type")).as("FILE_TYPE_UNSPECIFIED is the zero value").isFalse();
        assertThat(dangling.has("mode")).isFalse();
        assertThat(dangling.get("permissions").asText()).isEqualTo("Lrwxrwxrwx");
        assertThat(dangling.get("symlinkTarget").asText()).isEqualTo(dir.resolve("nowhere/else").toString());

        JsonNode loop = fs.call("Stat", "{\"path\":" + q(rel + "/loop") + "}").body().get("entry");
        assertThat(loop.has("type")).isFalse();
        assertThat(loop.get("name").asText()).isEqualTo("loop");
    }

    @Test
    void pathsAreNormalisedAndRelativeOnesStartAtTheUsersHome() throws Exception {
        Path a = file("a.txt", "x");
        for (String path : List.of(rel + "/a.txt", "~/" + rel + "/a.txt", rel + "/nested/../a.txt",
                "./" + rel + "/./a.txt", fs.home + "/../user/" + rel + "/a.txt")) {
            FsHarness.Reply reply = fs.call("Stat", "{\"path\":" + q(path) + "}");
            assertThat(reply.status()).as(path).isEqualTo(200);
            assertThat(reply.body().at("/entry/path").asText()).as(path).isEqualTo(a.toString());
        }
        Path otherFile = Files.writeString(fs.otherHome.resolve("mine.txt"), "o");
        try {
            FsHarness.Reply asOther = fs.call("Stat", "{\"path\":\"mine.txt\"}", "other");
            assertThat(asOther.body().at("/entry/path").asText()).isEqualTo(otherFile.toString());
            FsHarness.Reply home = fs.call("Stat", "{}");
            assertThat(home.body().at("/entry/path").asText()).as("an empty path is the home")
                    .isEqualTo(fs.home.toString());
        } finally {
            Files.delete(otherFile);
        }
    }

    @Test
    void unknownUsersAreUnauthenticated() throws Exception {
        for (String method : List.of("Stat", "MakeDir", "Move", "ListDir", "Remove", "CreateWatcher",
                "GetWatcherEvents", "RemoveWatcher")) {
            FsHarness.Reply reply = fs.call(method, "{\"path\":\"x\"}", "mallory");
            assertThat(reply.status()).as(method).isEqualTo(401);
            assertThat(reply.code()).isEqualTo("unauthenticated");
            assertThat(reply.body().get("message").asText()).contains("mallory");
        }
        assertThat(Files.exists(fs.home.resolve("x"))).isFalse();
    }

    @Test
    void malformedRequestsAreInvalidArguments() throws Exception {
        for (String body : List.of("{\"path\":", "[1,2]", "{\"path\":{\"nested\":true}}", "{\"depth\":-1}",
                "not json at all")) {
            FsHarness.Reply reply = fs.call("ListDir", body);
            assertThat(reply.status()).as(body).isEqualTo(400);
            assertThat(reply.code()).isEqualTo("invalid_argument");
        }
        FsHarness.Reply nul = fs.call("Stat", "{\"path\":\"bad\\u0000name\"}");
        assertThat(nul.status()).isEqualTo(400);
        assertThat(nul.code()).isEqualTo("invalid_argument");
        FsHarness.Reply unknownFields = fs.call("Stat", "{\"path\":" + q(rel) + ",\"future_field\":1}");
        assertThat(unknownFields.status()).as("unknown fields are ignored").isEqualTo(200);
    }

    // ---- MakeDir ----

    @Test
    void makeDirCreatesParentsOwnedByTheRequestingUser() throws Exception {
        FsHarness.Reply reply = fs.call("MakeDir", "{\"path\":" + q(rel + "/x/y/z") + "}");

        assertThat(reply.status()).isEqualTo(200);
        JsonNode entry = reply.body().get("entry");
        assertThat(entry.get("name").asText()).isEqualTo("z");
        assertThat(entry.get("type").asText()).isEqualTo("FILE_TYPE_DIRECTORY");
        assertThat(entry.get("path").asText()).isEqualTo(dir.resolve("x/y/z").toString());
        assertThat(entry.get("owner").asText()).isEqualTo("user");
        for (String p : List.of("x", "x/y", "x/y/z")) {
            assertThat(Files.isDirectory(dir.resolve(p))).isTrue();
            assertThat(FsHarness.uid(dir.resolve(p))).as(p).isEqualTo(1000);
        }

        FsHarness.Reply asRoot = fs.call("MakeDir", "{\"path\":" + q(dir.resolve("by-root")) + "}", "root");
        assertThat(asRoot.status()).isEqualTo(200);
        assertThat(FsHarness.uid(dir.resolve("by-root"))).isEqualTo(0);
    }

    @Test
    void makeDirRefusesExistingPaths() throws Exception {
        file("a.txt", "x");
        Files.createDirectory(dir.resolve("exists"));

        FsHarness.Reply again = fs.call("MakeDir", "{\"path\":" + q(rel + "/exists") + "}");
        assertThat(again.status()).isEqualTo(409);
        assertThat(again.code()).isEqualTo("already_exists");

        FsHarness.Reply onFile = fs.call("MakeDir", "{\"path\":" + q(rel + "/a.txt") + "}");
        assertThat(onFile.status()).isEqualTo(400);
        assertThat(onFile.code()).isEqualTo("invalid_argument");

        FsHarness.Reply belowFile = fs.call("MakeDir", "{\"path\":" + q(rel + "/a.txt/sub") + "}");
        assertThat(belowFile.status()).isEqualTo(400);
        assertThat(belowFile.code()).isEqualTo("invalid_argument");
        assertThat(belowFile.body().get("message").asText()).contains("a.txt");
    }

    // ---- Move ----

    @Test
    void moveRenamesAndCreatesTheDestinationsParents() throws Exception {
        file("a.txt", "content");

        FsHarness.Reply reply = fs.call("Move",
                "{\"source\":" + q(rel + "/a.txt") + ",\"destination\":" + q(rel + "/deep/er/b.txt") + "}");

        assertThat(reply.status()).isEqualTo(200);
        JsonNode entry = reply.body().get("entry");
        assertThat(entry.get("path").asText()).isEqualTo(dir.resolve("deep/er/b.txt").toString());
        assertThat(entry.get("name").asText()).isEqualTo("b.txt");
        assertThat(entry.get("size").asText()).isEqualTo("7");
        assertThat(Files.exists(dir.resolve("a.txt"))).isFalse();
        assertThat(Files.readString(dir.resolve("deep/er/b.txt"))).isEqualTo("content");
        assertThat(FsHarness.uid(dir.resolve("deep"))).isEqualTo(1000);
        assertThat(FsHarness.uid(dir.resolve("deep/er"))).isEqualTo(1000);

        file("tree/inner/f", "f");
        FsHarness.Reply moveDir = fs.call("Move",
                "{\"source\":" + q(rel + "/tree") + ",\"destination\":" + q(rel + "/tree2") + "}");
        assertThat(moveDir.body().at("/entry/type").asText()).isEqualTo("FILE_TYPE_DIRECTORY");
        assertThat(Files.readString(dir.resolve("tree2/inner/f"))).isEqualTo("f");

        file("over-src", "new");
        file("over-dst", "old");
        fs.call("Move", "{\"source\":" + q(rel + "/over-src") + ",\"destination\":" + q(rel + "/over-dst") + "}");
        assertThat(Files.readString(dir.resolve("over-dst"))).as("replaces like rename(2)").isEqualTo("new");
    }

    @Test
    void moveOfAMissingSourceIsNotFound() throws Exception {
        FsHarness.Reply reply = fs.call("Move",
                "{\"source\":" + q(rel + "/missing") + ",\"destination\":" + q(rel + "/new/place") + "}");
        assertThat(reply.status()).isEqualTo(404);
        assertThat(reply.code()).isEqualTo("not_found");
        assertThat(reply.body().get("message").asText()).contains("missing");
    }

    // ---- ListDir ----

    private void tree() throws Exception {
        Files.createDirectories(dir.resolve("test-dir/sub-dir-1"));
        Files.createDirectories(dir.resolve("test-dir/sub-dir-2"));
        file("test-dir/sub-dir-1/file.txt", "Hello, World!");
    }

    private static List<String> paths(FsHarness.Reply reply) {
        List<String> out = new ArrayList<>();
        reply.body().path("entries").forEach(e -> out.add(e.get("path").asText()));
        return out;
    }

    @Test
    void listDirDepthZeroAndOneListOnlyTheDirectory() throws Exception {
        tree();
        for (String depth : List.of("", ",\"depth\":0", ",\"depth\":1")) {
            FsHarness.Reply reply = fs.call("ListDir", "{\"path\":" + q(rel) + depth + "}");
            assertThat(paths(reply)).as(depth).containsExactly(dir.resolve("test-dir").toString());
        }
    }

    @Test
    void listDirDepthTwoAndThreeDescend() throws Exception {
        tree();
        FsHarness.Reply two = fs.call("ListDir", "{\"path\":" + q(rel) + ",\"depth\":2}");
        assertThat(paths(two)).containsExactly(dir.resolve("test-dir").toString(),
                dir.resolve("test-dir/sub-dir-1").toString(), dir.resolve("test-dir/sub-dir-2").toString());

        FsHarness.Reply three = fs.call("ListDir", "{\"path\":" + q(rel) + ",\"depth\":3}");
        assertThat(paths(three)).containsExactly(dir.resolve("test-dir").toString(),
                dir.resolve("test-dir/sub-dir-1").toString(), dir.resolve("test-dir/sub-dir-1/file.txt").toString(),
                dir.resolve("test-dir/sub-dir-2").toString());
        JsonNode file = three.body().get("entries").get(2);
        assertThat(file.get("name").asText()).isEqualTo("file.txt");
        assertThat(file.get("type").asText()).isEqualTo("FILE_TYPE_FILE");
        assertThat(file.get("size").asText()).isEqualTo("13");
        assertThat(file.get("permissions").asText()).isEqualTo("-rw-r--r--");
        assertThat(file.get("owner").asText()).isEqualTo("user");
        assertThat(file.has("modifiedTime")).isTrue();
    }

    @Test
    void listDirDoesNotFollowSymlinkedDirectoriesButListsThroughASymlinkedRoot() throws Exception {
        file("real-dir/file.txt", "hello via symlink");
        file("real-file.txt", "plain");
        Files.createSymbolicLink(dir.resolve("link-dir"), dir.resolve("real-dir"));
        Files.createSymbolicLink(dir.resolve("link-file"), dir.resolve("real-file.txt"));
        Files.createSymbolicLink(dir.resolve("cyclic"), dir.resolve("cyclic"));

        FsHarness.Reply all = fs.call("ListDir", "{\"path\":" + q(rel) + ",\"depth\":3}");
        assertThat(paths(all)).containsExactly(dir.resolve("cyclic").toString(), dir.resolve("link-dir").toString(),
                dir.resolve("link-file").toString(), dir.resolve("real-dir").toString(),
                dir.resolve("real-dir/file.txt").toString(), dir.resolve("real-file.txt").toString());
        JsonNode linkDir = all.body().get("entries").get(1);
        assertThat(linkDir.get("type").asText()).isEqualTo("FILE_TYPE_DIRECTORY");
        assertThat(linkDir.get("symlinkTarget").asText()).isEqualTo(dir.resolve("real-dir").toString());

        FsHarness.Reply viaLink = fs.call("ListDir", "{\"path\":" + q(rel + "/link-dir") + "}");
        assertThat(paths(viaLink)).containsExactly(dir.resolve("link-dir/file.txt").toString());

        FsHarness.Reply onLinkToFile = fs.call("ListDir", "{\"path\":" + q(rel + "/link-file") + "}");
        assertThat(onLinkToFile.status()).isEqualTo(400);
        assertThat(onLinkToFile.code()).isEqualTo("invalid_argument");
        assertThat(onLinkToFile.body().get("message").asText()).contains("not a directory");

        FsHarness.Reply onCycle = fs.call("ListDir", "{\"path\":" + q(rel + "/cyclic") + "}");
        assertThat(onCycle.status()).isEqualTo(400);
        assertThat(onCycle.code()).isEqualTo("failed_precondition");
        assertThat(onCycle.body().get("message").asText()).contains("cyclic symlink");
    }

    @Test
    void listDirOfMissingPathsAndFilesFails() throws Exception {
        file("a.txt", "x");
        FsHarness.Reply missing = fs.call("ListDir", "{\"path\":\"/non-existing-path\",\"depth\":1}");
        assertThat(missing.status()).isEqualTo(404);
        assertThat(missing.code()).isEqualTo("not_found");

        FsHarness.Reply onFile = fs.call("ListDir", "{\"path\":" + q(rel + "/a.txt") + "}");
        assertThat(onFile.status()).isEqualTo(400);
        assertThat(onFile.code()).isEqualTo("invalid_argument");

        FsHarness.Reply empty = fs.call("ListDir", "{\"path\":" + q(rel + "/..") + ",\"depth\":1}");
        assertThat(paths(empty)).contains(dir.toString());
    }

    @Test
    void listDirShowsMetadata() throws Exception {
        Path a = file("a.txt", "x");
        Metadata.write(a, java.util.Map.of("k", "v"));
        FsHarness.Reply reply = fs.call("ListDir", "{\"path\":" + q(rel) + "}");
        assertThat(reply.body().at("/entries/0/metadata/k").asText()).isEqualTo("v");
    }

    // ---- Remove ----

    @Test
    void removeDeletesFilesTreesAndLinksButNotLinkTargets() throws Exception {
        file("a.txt", "x");
        file("tree/a/b/c.txt", "x");
        file("kept/inside.txt", "x");
        Files.createSymbolicLink(dir.resolve("link"), dir.resolve("kept"));

        for (String p : List.of("a.txt", "tree", "link")) {
            FsHarness.Reply reply = fs.call("Remove", "{\"path\":" + q(rel + "/" + p) + "}");
            assertThat(reply.status()).as(p).isEqualTo(200);
            assertThat(Files.exists(dir.resolve(p), java.nio.file.LinkOption.NOFOLLOW_LINKS)).as(p).isFalse();
        }
        assertThat(Files.exists(dir.resolve("kept/inside.txt"))).isTrue();
    }

    @Test
    void removeOfAMissingPathSucceedsLikeE2b() throws Exception {
        FsHarness.Reply reply = fs.call("Remove", "{\"path\":" + q(rel + "/never-was") + "}");
        assertThat(reply.status()).isEqualTo(200);
        assertThat(reply.body().properties()).isEmpty();
    }
}
