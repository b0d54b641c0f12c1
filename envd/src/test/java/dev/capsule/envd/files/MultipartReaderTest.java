package dev.capsule.envd.files;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class MultipartReaderTest {

    /** Hands out the bytes in random small pieces, as a network would. */
    static InputStream trickle(byte[] data, long seed) {
        Random random = new Random(seed);
        return new ByteArrayInputStream(data) {
            @Override
            public synchronized int read(byte[] b, int off, int len) {
                return super.read(b, off, Math.min(len, 1 + random.nextInt(7)));
            }
        };
    }

    record Read(String name, String filename, String content) {}

    static List<Read> readAll(InputStream in, String boundary) throws IOException {
        MultipartReader reader = new MultipartReader(in, boundary);
        List<Read> parts = new ArrayList<>();
        MultipartReader.Part part;
        while ((part = reader.next()) != null) {
            parts.add(new Read(part.name(), part.filename(),
                    new String(part.body().readAllBytes(), StandardCharsets.UTF_8)));
        }
        return parts;
    }

    @Test
    void readsPartsWhateverTheChunking() throws IOException {
        String body = "preamble to ignore\r\n"
                + "--b0undary\r\n"
                + "Content-Disposition: form-data; name=\"file\"; filename=\"/home/user/dir/a \\\"q\\\".txt\"\r\n"
                + "Content-Type: text/plain\r\n\r\n"
                + "line1\r\n--b0undar not yet\r\n--b0undaryX? still content\r\n"
                + "--b0undary   \r\n"
                + "Content-Disposition: form-data; name=\"field\"\r\n\r\n"
                + "value\r\n"
                + "--b0undary\r\n"
                + "Content-Disposition: form-data; name=\"file\"; filename*=UTF-8''%C3%BC%20x.txt\r\n\r\n"
                + "\r\n"
                + "--b0undary--\r\nepilogue";
        // "\r\n--b0undaryX" inside content is a delimiter by the byte rule, so keep content free of it:
        body = body.replace("\r\n--b0undaryX? still content", " --b0undaryX? still content");
        for (long seed = 0; seed < 20; seed++) {
            List<Read> parts = readAll(trickle(body.getBytes(StandardCharsets.UTF_8), seed), "b0undary");
            assertThat(parts).containsExactly(
                    new Read("file", "/home/user/dir/a \"q\".txt", "line1\r\n--b0undar not yet --b0undaryX? still content"),
                    new Read("field", null, "value"),
                    new Read("file", "ü x.txt", ""));
        }
    }

    @Test
    void findsTheBoundaryInLargeContentFullOfNearMisses() throws IOException {
        String boundary = "----formdata-undici-0123456789";
        Random random = new Random(7);
        java.io.ByteArrayOutputStream content = new java.io.ByteArrayOutputStream();
        String delimiter = "\r\n--" + boundary;
        while (content.size() < 300_000) {
            if (random.nextInt(4) == 0) {
                // a prefix of the delimiter that stops one byte short (or has its last byte changed)
                int n = 1 + random.nextInt(delimiter.length() - 1);
                content.writeBytes(delimiter.substring(0, n).getBytes(StandardCharsets.ISO_8859_1));
                content.write('x');
            } else {
                byte[] noise = new byte[1 + random.nextInt(5000)];
                random.nextBytes(noise);
                content.writeBytes(noise);
            }
        }
        byte[] expected = content.toByteArray();
        java.io.ByteArrayOutputStream body = new java.io.ByteArrayOutputStream();
        body.writeBytes(("--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n")
                .getBytes(StandardCharsets.ISO_8859_1));
        body.writeBytes(expected);
        body.writeBytes(("\r\n--" + boundary + "--\r\n").getBytes(StandardCharsets.ISO_8859_1));
        MultipartReader reader = new MultipartReader(new ByteArrayInputStream(body.toByteArray()), boundary);
        MultipartReader.Part part = reader.next();
        assertThat(part.filename()).isEqualTo("f");
        assertThat(part.body().readAllBytes()).isEqualTo(expected);
        assertThat(reader.next()).isNull();
    }

    @Test
    void skipsUnreadContent() throws IOException {
        String body = "--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n" + "z".repeat(200_000)
                + "\r\n--x\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\nB\r\n--x--";
        MultipartReader reader = new MultipartReader(new ByteArrayInputStream(body.getBytes()), "x");
        assertThat(reader.next().name()).isEqualTo("a");
        MultipartReader.Part b = reader.next();
        assertThat(b.name()).isEqualTo("b");
        assertThat(new String(b.body().readAllBytes())).isEqualTo("B");
        assertThat(reader.next()).isNull();
        assertThat(reader.next()).isNull();
    }

    @Test
    void refusesTruncatedOrMalformedBodies() {
        assertThatThrownBy(() -> readAll(new ByteArrayInputStream(
                "--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nabc".getBytes()), "x"))
                .isInstanceOf(IOException.class).hasMessageContaining("closing boundary");
        assertThatThrownBy(() -> readAll(new ByteArrayInputStream(
                "--x\r\nContent-Disposition: form-data".getBytes()), "x"))
                .isInstanceOf(IOException.class).hasMessageContaining("headers");
        assertThatThrownBy(() -> readAll(new ByteArrayInputStream("--xjunk".getBytes()), "x"))
                .isInstanceOf(IOException.class).hasMessageContaining("CRLF");
        assertThat(catchEmpty("no boundary here")).isEmpty(); // no boundary at all: no parts, as Go's reader sees it
        assertThatThrownBy(() -> readAll(new ByteArrayInputStream(("--x\r\n" + "H: " + "v".repeat(20_000)).getBytes()), "x"))
                .isInstanceOf(IOException.class).hasMessageContaining("larger than");
        assertThat(catchEmpty("")).isEmpty();
    }

    private static List<Read> catchEmpty(String body) {
        try {
            return readAll(new ByteArrayInputStream(body.getBytes()), "x");
        } catch (IOException e) {
            return List.of(new Read("error", null, e.getMessage()));
        }
    }

    @Test
    void boundaryFromContentType() {
        assertThat(MultipartReader.boundaryOf("multipart/form-data; boundary=----WebKitFormBoundaryabc"))
                .isEqualTo("----WebKitFormBoundaryabc");
        assertThat(MultipartReader.boundaryOf("multipart/form-data; charset=utf-8; boundary=\"quoted b\""))
                .isEqualTo("quoted b");
        assertThat(MultipartReader.boundaryOf("multipart/form-data")).isNull();
    }
}
