package dev.capsule.envd.fuzz;

import static org.assertj.core.api.Assertions.assertThat;

import dev.capsule.envd.EnvdFixture;
import dev.capsule.envd.filesystem.FilesystemService;
import dev.capsule.envd.process.ProcessService;
import io.vertx.core.json.JsonObject;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Requests the fuzz run (EnvdFuzzTest) found answered with internal / 500, each pinned down: now 4xx. */
class EnvdHostileInputTest {

    EnvdFixture envd;

    @BeforeEach
    void start() throws Exception {
        envd = new EnvdFixture((users, state) -> List.of(new ProcessService(users, state), new FilesystemService(users, state)));
    }

    @AfterEach
    void stop() throws Exception {
        envd.close();
    }

    HttpResponse<String> unary(String method, String json) throws Exception {
        return envd.send(HttpRequest.newBuilder(envd.uri("/filesystem.Filesystem/" + method))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(json)));
    }

    /** The end-stream error code of a Start call (empty when it ended without one); {@code cmd} is JSON text. */
    String startError(String cmd) throws Exception {
        byte[] json = ("{\"process\":{\"cmd\":" + cmd + "}}").getBytes(StandardCharsets.UTF_8);
        byte[] body = ByteBuffer.allocate(5 + json.length).put((byte) 0).putInt(json.length).put(json).array();
        HttpResponse<byte[]> r = envd.sendBytes(HttpRequest.newBuilder(envd.uri("/process.Process/Start"))
                .header("Content-Type", "application/connect+json").POST(HttpRequest.BodyPublishers.ofByteArray(body)));
        byte[] b = r.body();
        int pos = 0;
        while (pos + 5 <= b.length) {
            int length = ByteBuffer.wrap(b, pos + 1, 4).getInt();
            if ((b[pos] & 0x02) != 0) {
                JsonObject end = new JsonObject(new String(Arrays.copyOfRange(b, pos + 5, pos + 5 + length), StandardCharsets.UTF_8));
                return end.getJsonObject("error", new JsonObject()).getString("code", "");
            }
            pos += 5 + length;
        }
        return "";
    }

    @Test
    void aNameLongerThanTheFileSystemAllowsIsInvalid() throws Exception {
        String tooLong = envd.home.resolve("a".repeat(300)).toString();
        var stat = unary("Stat", new JsonObject().put("path", tooLong).encode());
        assertThat(stat.statusCode()).as(stat.body()).isEqualTo(400);
        assertThat(new JsonObject(stat.body()).getString("code")).isEqualTo("invalid_argument");
        var download = envd.get("/files?path=" + EnvdFixture.q(tooLong));
        assertThat(download.statusCode()).as(download.body()).isEqualTo(400);
        assertThat(new JsonObject(download.body()).getString("message")).contains("File name too long");
    }

    @Test
    void movingOntoANonEmptyDirectoryIsAFailedPrecondition() throws Exception {
        Files.createDirectories(envd.home.resolve("src"));
        Files.createDirectories(envd.home.resolve("dst/full"));
        var move = unary("Move", new JsonObject().put("source", envd.home.resolve("src").toString())
                .put("destination", envd.home.resolve("dst").toString()).encode());
        assertThat(move.statusCode()).as(move.body()).isEqualTo(400);
        assertThat(new JsonObject(move.body()).getString("code")).isEqualTo("failed_precondition");
    }

    @Test
    void commandsWithNulOrUnpairedSurrogatesAreInvalid() throws Exception {
        assertThat(startError("\"/bin/echo\\u0000x\"")).isEqualTo("invalid_argument");
        assertThat(startError("\"no-such-\\ud800\"")).isEqualTo("invalid_argument");
        assertThat(startError("\"/bin/true\"")).isEmpty();
    }
}
