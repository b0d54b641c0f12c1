package dev.capsule.envd.files;

import io.vertx.core.json.JsonArray;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import java.util.zip.CRC32;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Uploads and downloads stream: a 1 GiB file goes through an envd whose heap is capped at 128 MiB. The server runs
 * as its own JVM (the test's classpath, {@code dev.capsule.envd.Envd} main), so the cap applies to it alone.
 */
class LargeTransferTest {
    static final long SIZE = 1024L * 1024 * 1024;

    Process envd;
    int port;
    Path dir;
    final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();

    @BeforeEach
    void startEnvdWithSmallHeap() throws Exception {
        dir = Files.createTempDirectory("envd-large");
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        String classpath = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
        envd = new ProcessBuilder(java, "-Xmx128m", "-XX:+UseSerialGC", "-cp", classpath,
                "dev.capsule.envd.Envd", "--host", "127.0.0.1", "--port", "0", "--default-user", "root")
                .redirectError(ProcessBuilder.Redirect.INHERIT)
                .start();
        BufferedReader out = new BufferedReader(new InputStreamReader(envd.getInputStream(), StandardCharsets.UTF_8));
        String line = out.readLine();
        assertThat(line).as("envd's ready line").isNotNull();
        Matcher m = Pattern.compile("envd listening on .*:(\\d+)").matcher(line);
        assertThat(m.find()).as(line).isTrue();
        port = Integer.parseInt(m.group(1));
    }

    @AfterEach
    void stop() throws Exception {
        http.close();
        if (envd != null) {
            envd.destroy();
            if (!envd.waitFor(20, TimeUnit.SECONDS)) {
                envd.destroyForcibly().waitFor(20, TimeUnit.SECONDS);
            }
        }
        try (Stream<Path> files = Files.walk(dir)) {
            for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }

    /** SIZE bytes of a repeating, position-dependent pattern, generated on the fly. */
    static final class Pattern1G extends InputStream {
        long position;
        final CRC32 crc = new CRC32();

        @Override
        public int read() {
            byte[] b = new byte[1];
            return read(b, 0, 1) < 0 ? -1 : b[0] & 0xff;
        }

        @Override
        public int read(byte[] b, int off, int len) {
            if (position >= SIZE) {
                return -1;
            }
            int n = (int) Math.min(len, SIZE - position);
            for (int i = 0; i < n; i++) {
                long p = position + i;
                b[off + i] = (byte) (p * 31 + (p >>> 13));
            }
            crc.update(b, off, n);
            position += n;
            return n;
        }
    }

    @Test
    void oneGibibyteUpAndDownWithA128MibHeap() throws Exception {
        Path target = dir.resolve("big.bin");
        Pattern1G source = new Pattern1G();
        HttpResponse<String> up = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port
                        + "/files?path=" + URLEncoder.encode(target.toString(), StandardCharsets.UTF_8)))
                .header("Content-Type", "application/octet-stream")
                .POST(HttpRequest.BodyPublishers.fromPublisher(
                        HttpRequest.BodyPublishers.ofInputStream(() -> source), SIZE))
                .build(), HttpResponse.BodyHandlers.ofString());
        assertThat(up.statusCode()).as(up.body()).isEqualTo(200);
        assertThat(new JsonArray(up.body()).getJsonObject(0).getString("path")).isEqualTo(target.toString());
        assertThat(Files.size(target)).isEqualTo(SIZE);

        HttpResponse<InputStream> down = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port
                        + "/files?path=" + URLEncoder.encode(target.toString(), StandardCharsets.UTF_8))).build(),
                HttpResponse.BodyHandlers.ofInputStream());
        assertThat(down.statusCode()).isEqualTo(200);
        assertThat(down.headers().firstValueAsLong("Content-Length")).hasValue(SIZE);
        CRC32 received = new CRC32();
        long total = 0;
        try (InputStream in = down.body()) {
            byte[] buf = new byte[1 << 16];
            int n;
            while ((n = in.read(buf)) > 0) {
                received.update(buf, 0, n);
                total += n;
            }
        }
        assertThat(total).isEqualTo(SIZE);
        assertThat(received.getValue()).isEqualTo(source.crc.getValue());
        assertThat(envd.isAlive()).as("envd survived").isTrue();
    }

    @Test
    void multipartUploadStreamsToo() throws Exception {
        Path target = dir.resolve("multi.bin");
        String boundary = "capsule-large-boundary";
        byte[] head = ("--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\""
                + target + "\"\r\n\r\n").getBytes(StandardCharsets.UTF_8);
        byte[] tail = ("\r\n--" + boundary + "--\r\n").getBytes(StandardCharsets.UTF_8);
        Pattern1G source = new Pattern1G();
        InputStream body = new java.io.SequenceInputStream(java.util.Collections.enumeration(java.util.List.of(
                new java.io.ByteArrayInputStream(head), source, new java.io.ByteArrayInputStream(tail))));
        HttpResponse<String> up = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/files"))
                .header("Content-Type", "multipart/form-data; boundary=" + boundary)
                .POST(HttpRequest.BodyPublishers.fromPublisher(HttpRequest.BodyPublishers.ofInputStream(() -> body),
                        head.length + SIZE + tail.length))
                .build(), HttpResponse.BodyHandlers.ofString());
        assertThat(up.statusCode()).as(up.body()).isEqualTo(200);
        assertThat(Files.size(target)).isEqualTo(SIZE);
        CRC32 written = new CRC32();
        try (InputStream in = Files.newInputStream(target)) {
            byte[] buf = new byte[1 << 16];
            int n;
            while ((n = in.read(buf)) > 0) {
                written.update(buf, 0, n);
            }
        }
        assertThat(written.getValue()).isEqualTo(source.crc.getValue());
    }

    static void drain(InputStream in) throws IOException {
        in.transferTo(java.io.OutputStream.nullOutputStream());
    }
}
