package dev.capsule.envd.files;

import dev.capsule.envd.EnvdFixture;
import dev.capsule.envd.auth.Signatures;
import dev.capsule.envd.filesystem.Metadata;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.zip.GZIPInputStream;
import java.util.zip.GZIPOutputStream;

import static dev.capsule.envd.EnvdFixture.q;
import static org.assertj.core.api.Assertions.assertThat;

class FilesEndpointTest {
    EnvdFixture envd;

    @BeforeEach
    void start() throws Exception {
        envd = new EnvdFixture();
    }

    @AfterEach
    void stop() throws Exception {
        envd.close();
    }

    // ------------------------------------------------------------------ helpers

    static final String BOUNDARY = "----capsuleBoundary7MA4YWxkTrZu0gW";

    /** A multipart/form-data body; each entry is {fieldName, filename (or null), content}. */
    static byte[] multipart(Object[]... parts) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (Object[] p : parts) {
            out.writeBytes(("--" + BOUNDARY + "\r\nContent-Disposition: form-data; name=\"" + p[0] + "\""
                    + (p[1] != null ? "; filename=\"" + p[1] + "\"" : "") + "\r\n"
                    + "Content-Type: application/octet-stream\r\n\r\n").getBytes(StandardCharsets.UTF_8));
            out.writeBytes(p[2] instanceof byte[] b ? b : p[2].toString().getBytes(StandardCharsets.UTF_8));
            out.writeBytes("\r\n".getBytes(StandardCharsets.UTF_8));
        }
        out.writeBytes(("--" + BOUNDARY + "--\r\n").getBytes(StandardCharsets.UTF_8));
        return out.toByteArray();
    }

    static Object[] part(String name, String filename, Object content) {
        return new Object[] {name, filename, content};
    }

    static byte[] gzip(byte[] data) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (GZIPOutputStream gz = new GZIPOutputStream(out)) {
            gz.write(data);
        }
        return out.toByteArray();
    }

    static byte[] gunzip(byte[] data) throws IOException {
        try (GZIPInputStream in = new GZIPInputStream(new ByteArrayInputStream(data))) {
            return in.readAllBytes();
        }
    }

    HttpResponse<String> uploadRaw(String query, byte[] body, String... headers) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(envd.uri("/files" + query))
                .header("Content-Type", "application/octet-stream")
                .POST(HttpRequest.BodyPublishers.ofByteArray(body));
        if (headers.length > 0) {
            b.headers(headers);
        }
        return envd.send(b);
    }

    HttpResponse<String> uploadMultipart(String query, byte[] body, String... headers) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(envd.uri("/files" + query))
                .header("Content-Type", "multipart/form-data; boundary=" + BOUNDARY)
                .POST(HttpRequest.BodyPublishers.ofByteArray(body));
        if (headers.length > 0) {
            b.headers(headers);
        }
        return envd.send(b);
    }

    HttpResponse<byte[]> download(String query, String... headers) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(envd.uri("/files" + query)).GET();
        if (headers.length > 0) {
            b.headers(headers);
        }
        return envd.sendBytes(b);
    }

    static JsonObject error(HttpResponse<?> r) {
        Object body = r.body();
        return new JsonObject(body instanceof byte[] b ? new String(b, StandardCharsets.UTF_8) : body.toString());
    }

    static int uid(Path p) throws IOException {
        return (Integer) Files.getAttribute(p, "unix:uid");
    }

    // ------------------------------------------------------------------ uploads

    @Test
    void rawUploadWritesTheFileAndDescribesIt() throws Exception {
        Path target = envd.home.resolve("hello.txt");
        HttpResponse<String> r = uploadRaw("?path=" + q(target.toString()), "hi there".getBytes());
        assertThat(r.statusCode()).isEqualTo(200);
        assertThat(new JsonArray(r.body())).containsExactly(
                new JsonObject().put("path", target.toString()).put("name", "hello.txt").put("type", "file"));
        assertThat(Files.readString(target)).isEqualTo("hi there");
    }

    @Test
    void uploadsBelongToTheRequestingUserWithTheirNewDirectories() throws Exception {
        Path defaultUserFile = envd.home.resolve("a/b/c.txt");
        assertThat(uploadRaw("?path=" + q(defaultUserFile.toString()), "x".getBytes()).statusCode()).isEqualTo(200);
        assertThat(uid(defaultUserFile)).isEqualTo(1000);
        assertThat(uid(envd.home.resolve("a"))).isEqualTo(1000);
        assertThat(uid(envd.home.resolve("a/b"))).isEqualTo(1000);
        assertThat((Integer) Files.getAttribute(defaultUserFile, "unix:gid")).isEqualTo(1000);

        Path otherFile = envd.dir.resolve("shared/o.txt");
        assertThat(uploadRaw("?username=other&path=" + q(otherFile.toString()), "y".getBytes()).statusCode())
                .isEqualTo(200);
        assertThat(uid(otherFile)).isEqualTo(1001);
        assertThat(uid(otherFile.getParent())).isEqualTo(1001);

        // overwriting hands the file to the new writer
        assertThat(uploadRaw("?username=root&path=" + q(otherFile.toString()), "z".getBytes()).statusCode())
                .isEqualTo(200);
        assertThat(uid(otherFile)).isZero();
        assertThat(Files.readString(otherFile)).isEqualTo("z");
    }

    @Test
    void relativePathsResolveAgainstTheHome() throws Exception {
        HttpResponse<String> r = uploadRaw("?path=rel/x.txt", "rel".getBytes());
        assertThat(r.statusCode()).isEqualTo(200);
        assertThat(new JsonArray(r.body()).getJsonObject(0).getString("path"))
                .isEqualTo(envd.home.resolve("rel/x.txt").toString());
        assertThat(new String(download("?path=" + q("~/rel/x.txt")).body())).isEqualTo("rel");
    }

    @Test
    void overwriteReplacesContentAndMetadata() throws Exception {
        Path target = envd.home.resolve("m.txt");
        HttpResponse<String> first = uploadRaw("?path=" + q(target.toString()), "long content".getBytes(),
                "X-Metadata-Author", "mish", "x-metadata-Purpose", "upload", "X-Metadata-", "dropped");
        assertThat(first.statusCode()).isEqualTo(200);
        assertThat(Metadata.read(target)).isEqualTo(Map.of("author", "mish", "purpose", "upload"));
        assertThat(new JsonArray(first.body()).getJsonObject(0).getJsonObject("metadata").getMap())
                .isEqualTo(Map.of("author", "mish", "purpose", "upload"));

        HttpResponse<String> second = uploadRaw("?path=" + q(target.toString()), "short".getBytes(),
                "X-Metadata-Author", "other");
        assertThat(second.statusCode()).isEqualTo(200);
        assertThat(Files.readString(target)).isEqualTo("short");
        assertThat(Metadata.read(target)).isEqualTo(Map.of("author", "other"));

        uploadRaw("?path=" + q(target.toString()), "none".getBytes());
        assertThat(Metadata.read(target)).isEmpty();
    }

    @Test
    void multipartWithPathWritesTheOneFile() throws Exception {
        Path target = envd.home.resolve("single.bin");
        byte[] content = new byte[200_000];
        new java.util.Random(1).nextBytes(content);
        HttpResponse<String> r = uploadMultipart("?path=" + q(target.toString()),
                multipart(part("other", null, "ignored field"), part("file", "whatever.bin", content)));
        assertThat(r.statusCode()).isEqualTo(200);
        assertThat(new JsonArray(r.body()).size()).isEqualTo(1);
        assertThat(Files.readAllBytes(target)).isEqualTo(content);
    }

    @Test
    void multipartWithoutPathTakesEachFilenameAsItsTarget() throws Exception {
        Path a = envd.home.resolve("dir1/a.txt");
        Path b = envd.dir.resolve("elsewhere/deep/b.txt");
        HttpResponse<String> r = uploadMultipart("?username=user", multipart(
                part("file", a.toString(), "content a"),
                part("file", b.toString(), "content b\r\n--not-a-boundary\r\n"),
                part("file", "relative/c.txt", "")));
        assertThat(r.statusCode()).isEqualTo(200);
        JsonArray entries = new JsonArray(r.body());
        assertThat(entries).containsExactly(
                new JsonObject().put("path", a.toString()).put("name", "a.txt").put("type", "file"),
                new JsonObject().put("path", b.toString()).put("name", "b.txt").put("type", "file"),
                new JsonObject().put("path", envd.home.resolve("relative/c.txt").toString()).put("name", "c.txt")
                        .put("type", "file"));
        assertThat(Files.readString(a)).isEqualTo("content a");
        assertThat(Files.readString(b)).isEqualTo("content b\r\n--not-a-boundary\r\n");
        assertThat(Files.size(envd.home.resolve("relative/c.txt"))).isZero();
        assertThat(uid(b)).isEqualTo(1000);
    }

    @Test
    void multipartRejectsTwoFilesForOnePathAndPartsWithoutFilename() throws Exception {
        Path a = envd.home.resolve("dup.txt");
        HttpResponse<String> dup = uploadMultipart("", multipart(part("file", a.toString(), "1"),
                part("file", a.toString(), "2")));
        assertThat(dup.statusCode()).isEqualTo(400);
        assertThat(error(dup).getString("message")).contains("cannot upload multiple files to the same path");
        assertThat(Files.readString(a)).isEqualTo("1");

        HttpResponse<String> unnamed = uploadMultipart("", multipart(part("file", null, "x")));
        assertThat(unnamed.statusCode()).isEqualTo(400);
        assertThat(error(unnamed).getInteger("code")).isEqualTo(400);
    }

    @Test
    void truncatedMultipartIsABadRequest() throws Exception {
        byte[] full = multipart(part("file", envd.home.resolve("t.txt").toString(), "abcdef"));
        byte[] cut = java.util.Arrays.copyOf(full, full.length - 20);
        HttpResponse<String> r = uploadMultipart("", cut);
        assertThat(r.statusCode()).isEqualTo(400);
        assertThat(error(r).getString("message")).contains("closing boundary");
    }

    @Test
    void gzipUploadsAreDecompressed() throws Exception {
        Path raw = envd.home.resolve("gz-raw.txt");
        HttpResponse<String> r1 = uploadRaw("?path=" + q(raw.toString()), gzip("raw gz".getBytes()),
                "Content-Encoding", "gzip");
        assertThat(r1.statusCode()).isEqualTo(200);
        assertThat(Files.readString(raw)).isEqualTo("raw gz");

        Path multi = envd.home.resolve("gz-multi.txt");
        HttpResponse<String> r2 = uploadMultipart("", gzip(multipart(part("file", multi.toString(), "multi gz"))),
                "Content-Encoding", "gzip");
        assertThat(r2.statusCode()).isEqualTo(200);
        assertThat(Files.readString(multi)).isEqualTo("multi gz");

        HttpResponse<String> bad = uploadRaw("?path=" + q(raw.toString()), "not gzip at all".getBytes(),
                "Content-Encoding", "gzip");
        assertThat(bad.statusCode()).isEqualTo(400);
        assertThat(error(bad).getString("message")).contains("decompressing");

        HttpResponse<String> br = uploadRaw("?path=" + q(raw.toString()), "x".getBytes(), "Content-Encoding", "br");
        assertThat(br.statusCode()).isEqualTo(400);
        assertThat(error(br).getString("message")).contains("unsupported Content-Encoding");
    }

    @Test
    void uploadErrors() throws Exception {
        HttpResponse<String> noPath = uploadRaw("", "x".getBytes());
        assertThat(noPath.statusCode()).isEqualTo(400);
        assertThat(error(noPath).getString("message")).isEqualTo("path query parameter is required for raw body upload");

        HttpResponse<String> dir = uploadRaw("?path=" + q(envd.home.toString()), "x".getBytes());
        assertThat(dir.statusCode()).isEqualTo(400);
        assertThat(error(dir).getString("message")).contains("is a directory");

        Files.writeString(envd.home.resolve("plain"), "file");
        HttpResponse<String> underFile = uploadRaw("?path=" + q(envd.home.resolve("plain/x").toString()), "x".getBytes());
        assertThat(underFile.statusCode()).isEqualTo(400);

        HttpResponse<String> badUser = uploadRaw("?username=nobody&path=/tmp/x", "x".getBytes());
        assertThat(badUser.statusCode()).isEqualTo(401);
        assertThat(error(badUser).getInteger("code")).isEqualTo(401);
        assertThat(error(badUser).getString("message")).contains("nobody");

        HttpResponse<String> text = envd.send(HttpRequest.newBuilder(envd.uri("/files?path=/tmp/x"))
                .header("Content-Type", "text/plain").POST(HttpRequest.BodyPublishers.ofString("x")));
        assertThat(text.statusCode()).isEqualTo(400);
        assertThat(error(text).getString("message")).contains("unsupported content type");

        HttpResponse<String> noBoundary = envd.send(HttpRequest.newBuilder(envd.uri("/files"))
                .header("Content-Type", "multipart/form-data").POST(HttpRequest.BodyPublishers.ofString("x")));
        assertThat(noBoundary.statusCode()).isEqualTo(400);
    }

    // ------------------------------------------------------------------ downloads

    @Test
    void downloadReturnsTheBytesWithHeaders() throws Exception {
        Path file = envd.home.resolve("dl ü.bin");
        byte[] content = new byte[300_000];
        new java.util.Random(2).nextBytes(content);
        Files.write(file, content);
        HttpResponse<byte[]> r = download("?path=" + q(file.toString()));
        assertThat(r.statusCode()).isEqualTo(200);
        assertThat(r.body()).isEqualTo(content);
        assertThat(r.headers().firstValue("Content-Type")).hasValue("application/octet-stream");
        assertThat(r.headers().firstValue("Content-Length")).hasValue("300000");
        assertThat(r.headers().firstValue("Content-Disposition"))
                .hasValue("inline; filename=\"dl _.bin\"; filename*=UTF-8''dl%20%C3%BC.bin");
        assertThat(r.headers().firstValue("Content-Encoding")).isEmpty();

        Path empty = envd.home.resolve("empty");
        Files.createFile(empty);
        HttpResponse<byte[]> e = download("?path=" + q(empty.toString()));
        assertThat(e.statusCode()).isEqualTo(200);
        assertThat(e.headers().firstValue("Content-Length")).hasValue("0");
        assertThat(e.body()).isEmpty();
    }

    @Test
    void downloadGzipWhenAccepted() throws Exception {
        Path file = envd.home.resolve("text.txt");
        String text = "compress me ".repeat(10_000);
        Files.writeString(file, text);
        HttpResponse<byte[]> r = download("?path=" + q(file.toString()), "Accept-Encoding", "br;q=1.0, gzip;q=0.8");
        assertThat(r.statusCode()).isEqualTo(200);
        assertThat(r.headers().firstValue("Content-Encoding")).hasValue("gzip");
        assertThat(r.headers().firstValue("Vary")).hasValue("Accept-Encoding");
        assertThat(r.body().length).isLessThan(text.length() / 10);
        assertThat(new String(gunzip(r.body()))).isEqualTo(text);

        HttpResponse<byte[]> identity = download("?path=" + q(file.toString()), "Accept-Encoding", "br");
        assertThat(identity.headers().firstValue("Content-Encoding")).isEmpty();
        assertThat(new String(identity.body())).isEqualTo(text);

        HttpResponse<byte[]> star = download("?path=" + q(file.toString()), "Accept-Encoding", "*, identity;q=0");
        assertThat(star.headers().firstValue("Content-Encoding")).hasValue("gzip");
    }

    @Test
    void downloadWithNoAcceptableEncodingIs406() throws Exception {
        Path file = envd.home.resolve("text.txt");
        Files.writeString(file, "x");
        for (String accept : new String[] {"br, identity;q=0", "gzip;q=0, identity;q=0", "*;q=0"}) {
            HttpResponse<byte[]> r = download("?path=" + q(file.toString()), "Accept-Encoding", accept);
            assertThat(r.statusCode()).as(accept).isEqualTo(406);
            assertThat(error(r).getInteger("code")).isEqualTo(406);
        }
    }

    @Test
    void downloadErrors() throws Exception {
        HttpResponse<byte[]> missing = download("?path=/x");
        assertThat(missing.statusCode()).isEqualTo(404);
        assertThat(new String(missing.body()))
                .isEqualTo("{\"code\":404,\"message\":\"path '/x' does not exist\"}");

        HttpResponse<byte[]> dir = download("?path=" + q(envd.home.toString()));
        assertThat(dir.statusCode()).isEqualTo(400);
        assertThat(error(dir).getString("message")).isEqualTo("path '" + envd.home + "' is a directory");

        HttpResponse<byte[]> noPath = download("");
        assertThat(noPath.statusCode()).isEqualTo(400); // the home directory

        HttpResponse<byte[]> badUser = download("?username=ghost&path=/etc/hostname");
        assertThat(badUser.statusCode()).isEqualTo(401);
        assertThat(error(badUser).getInteger("code")).isEqualTo(401);

        HttpResponse<byte[]> nul = download("?path=%00");
        assertThat(nul.statusCode()).isEqualTo(400);
    }

    // ------------------------------------------------------------------ auth and signatures

    @Test
    void filesAcceptTheTokenHeaderOrAValidSignature() throws Exception {
        Path file = envd.home.resolve("secret.txt");
        Files.writeString(file, "s3cret");
        String path = file.toString();
        envd.state.setAccessToken("tok");

        assertThat(download("?path=" + q(path), "X-Access-Token", "tok").statusCode()).isEqualTo(200);
        HttpResponse<byte[]> wrongHeader = download("?path=" + q(path), "X-Access-Token", "bad");
        assertThat(wrongHeader.statusCode()).isEqualTo(401);
        assertThat(error(wrongHeader).getString("message")).isEqualTo("access token present in header but does not match");

        HttpResponse<byte[]> none = download("?path=" + q(path));
        assertThat(none.statusCode()).isEqualTo(401);
        assertThat(error(none).getString("message")).isEqualTo("missing signature query parameter");

        String sig = Signatures.sign(path, Signatures.Operation.READ, null, "tok", null);
        assertThat(new String(download("?path=" + q(path) + "&signature=" + q(sig)).body())).isEqualTo("s3cret");

        long future = System.currentTimeMillis() / 1000 + 600;
        String timed = Signatures.sign(path, Signatures.Operation.READ, "user", "tok", future);
        assertThat(download("?path=" + q(path) + "&username=user&signature=" + q(timed)
                + "&signature_expiration=" + future).statusCode()).isEqualTo(200);

        long past = System.currentTimeMillis() / 1000 - 5;
        String expired = Signatures.sign(path, Signatures.Operation.READ, null, "tok", past);
        HttpResponse<byte[]> exp = download("?path=" + q(path) + "&signature=" + q(expired) + "&signature_expiration=" + past);
        assertThat(exp.statusCode()).isEqualTo(401);
        assertThat(error(exp).getString("message")).isEqualTo("signature is already expired");

        // tampering: another path, another user, a moved expiry, a write signature used to read
        for (String query : new String[] {
                "?path=" + q(path + "x") + "&signature=" + q(sig),
                "?path=" + q(path) + "&username=root&signature=" + q(sig),
                "?path=" + q(path) + "&username=user&signature=" + q(timed) + "&signature_expiration=" + (future + 1),
                "?path=" + q(path) + "&signature=" + q(Signatures.sign(path, Signatures.Operation.WRITE, null, "tok", null)),
                "?path=" + q(path) + "&signature=" + q(Signatures.sign(path, Signatures.Operation.READ, null, "other", null))}) {
            HttpResponse<byte[]> r = download(query);
            assertThat(r.statusCode()).as(query).isEqualTo(401);
            assertThat(error(r).getString("message")).isEqualTo("invalid signature");
        }

        String writeSig = Signatures.sign(path, Signatures.Operation.WRITE, null, "tok", null);
        assertThat(uploadRaw("?path=" + q(path) + "&signature=" + q(writeSig), "new".getBytes()).statusCode())
                .isEqualTo(200);
        assertThat(uploadRaw("?path=" + q(path) + "&signature=" + q(sig), "evil".getBytes()).statusCode())
                .isEqualTo(401);
        assertThat(uploadRaw("?path=" + q(path), "evil".getBytes()).statusCode()).isEqualTo(401);
        assertThat(Files.readString(file)).isEqualTo("new");
    }

    @Test
    void signatureMatchesTheSdkFormula() throws Exception {
        // sha256("/home/user/a.txt:read::tok") in standard base64 without padding, computed independently
        String material = "/home/user/a.txt:read::tok";
        byte[] digest = java.security.MessageDigest.getInstance("SHA-256").digest(material.getBytes(StandardCharsets.UTF_8));
        String expected = "v1_" + java.util.Base64.getEncoder().encodeToString(digest).replace("=", "");
        assertThat(Signatures.sign("/home/user/a.txt", Signatures.Operation.READ, null, "tok", null)).isEqualTo(expected);
        assertThat(Signatures.sign("/a", Signatures.Operation.WRITE, "user", "tok", 1700000000L))
                .isEqualTo("v1_" + java.util.Base64.getEncoder().withoutPadding().encodeToString(
                        java.security.MessageDigest.getInstance("SHA-256")
                                .digest("/a:write:user:tok:1700000000".getBytes(StandardCharsets.UTF_8))));
    }
}
