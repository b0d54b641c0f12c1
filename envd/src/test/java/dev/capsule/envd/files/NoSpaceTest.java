package dev.capsule.envd.files;

import dev.capsule.envd.EnvdFixture;
import io.vertx.core.json.JsonObject;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import static dev.capsule.envd.EnvdFixture.q;
import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** A full disk answers 507: the upload goes to a 1 MiB tmpfs this test mounts (we run as root) and unmounts. */
class NoSpaceTest {
    EnvdFixture envd;
    Path mount;
    boolean mounted;

    @BeforeEach
    void mountTinyTmpfs() throws Exception {
        envd = new EnvdFixture();
        mount = Files.createDirectory(envd.dir.resolve("tiny"));
        Process p = new ProcessBuilder("mount", "-t", "tmpfs", "-o", "size=1m", "capsule-test", mount.toString())
                .redirectErrorStream(true).start();
        assumeTrue(p.waitFor(30, TimeUnit.SECONDS) && p.exitValue() == 0,
                "cannot mount a tmpfs (needs root): " + new String(p.getInputStream().readAllBytes()));
        mounted = true;
    }

    @AfterEach
    void unmount() throws Exception {
        try {
            if (mounted) {
                Process p = new ProcessBuilder("umount", mount.toString()).inheritIO().start();
                assertThat(p.waitFor(30, TimeUnit.SECONDS)).isTrue();
                assertThat(p.exitValue()).isZero();
            }
        } finally {
            envd.close();
        }
    }

    @Test
    void uploadBeyondTheFreeSpaceIs507AndLeavesNoPartialFile() throws Exception {
        Path target = mount.resolve("big.bin");
        HttpResponse<String> r = envd.send(HttpRequest.newBuilder(envd.uri("/files?username=root&path=" + q(target.toString())))
                .header("Content-Type", "application/octet-stream")
                .POST(HttpRequest.BodyPublishers.ofByteArray(new byte[3 * 1024 * 1024])));
        assertThat(r.statusCode()).isEqualTo(507);
        JsonObject error = new JsonObject(r.body());
        assertThat(error.getInteger("code")).isEqualTo(507);
        assertThat(error.getString("message")).contains("not enough disk space available");
        assertThat(target).doesNotExist();

        // the server is still fine and the space is usable again
        HttpResponse<String> small = envd.send(HttpRequest.newBuilder(envd.uri("/files?username=root&path=" + q(target.toString())))
                .header("Content-Type", "application/octet-stream")
                .POST(HttpRequest.BodyPublishers.ofByteArray(new byte[1000])));
        assertThat(small.statusCode()).isEqualTo(200);
        assertThat(Files.size(target)).isEqualTo(1000);
    }
}
