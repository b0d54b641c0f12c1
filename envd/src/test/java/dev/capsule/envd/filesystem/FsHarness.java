package dev.capsule.envd.filesystem;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.capsule.connect.ConnectRouter;
import dev.capsule.envd.EnvdState;
import dev.capsule.envd.users.UserResolver;
import dev.capsule.envd.users.Users;
import io.vertx.core.Vertx;
import io.vertx.core.http.HttpServer;

import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

/**
 * A real HTTP server (Vert.x on a free loopback port) serving only a {@link FilesystemService}, with fixture users in
 * a temp dir: {@code user} (uid 1000, the default user) and {@code other} (uid 1001), and {@code root} whose home is
 * the temp dir. The client is the JDK's HttpClient speaking Connect JSON over HTTP/1.1, as the E2B SDKs do.
 */
final class FsHarness implements AutoCloseable {
    static final ObjectMapper JSON = new ObjectMapper();
    static final Duration PATIENCE = Duration.ofSeconds(20);

    final Path tmp;
    final Path home;
    final Path otherHome;
    final Users users;
    final EnvdState state;
    final FilesystemService service;
    private final Vertx vertx;
    private final HttpServer server;
    private final ConnectRouter router;
    private final HttpClient client;
    final int port;

    FsHarness() throws Exception {
        tmp = Files.createTempDirectory("capsule-fs-test").toRealPath();
        home = Files.createDirectories(tmp.resolve("home/user"));
        otherHome = Files.createDirectories(tmp.resolve("home/other"));
        chown(home, 1000, 1000);
        chown(otherHome, 1001, 1001);
        Path passwd = Files.writeString(tmp.resolve("passwd"), String.join("\n",
                "root:x:0:0:root:" + tmp + ":/bin/bash",
                "user:x:1000:1000::" + home + ":/bin/bash",
                "other:x:1001:1001::" + otherHome + ":/bin/bash", ""));
        Path group = Files.writeString(tmp.resolve("group"), String.join("\n",
                "root:x:0:", "user:x:1000:", "other:x:1001:", ""));
        users = new Users(passwd, group);
        state = new EnvdState(EnvdState.DEFAULT_USER);
        service = new FilesystemService(new UserResolver(users, state), state);
        ConnectRouter.Builder builder = ConnectRouter.builder();
        service.register(builder);
        router = builder.build();
        vertx = Vertx.vertx();
        server = vertx.createHttpServer().requestHandler(router).listen(0, "127.0.0.1")
                .toCompletionStage().toCompletableFuture().get(30, TimeUnit.SECONDS);
        port = server.actualPort();
        client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
    }

    static void chown(Path path, int uid, int gid) throws IOException {
        Files.setAttribute(path, "unix:uid", uid, LinkOption.NOFOLLOW_LINKS);
        Files.setAttribute(path, "unix:gid", gid, LinkOption.NOFOLLOW_LINKS);
    }

    static int uid(Path path) throws IOException {
        return (Integer) Files.getAttribute(path, "unix:uid", LinkOption.NOFOLLOW_LINKS);
    }

    static String basic(String user) {
        return "Basic " + Base64.getEncoder().encodeToString((user + ":").getBytes(StandardCharsets.UTF_8));
    }

    /** A unary call as the default user. */
    Reply call(String method, String json) throws Exception {
        return call(method, json, null);
    }

    /** A unary call as {@code user} (null: no Authorization header, the default user). */
    Reply call(String method, String json, String user) throws Exception {
        HttpRequest.Builder request = HttpRequest.newBuilder(uri(method))
                .header("Content-Type", "application/json")
                .header("Connect-Protocol-Version", "1")
                .POST(HttpRequest.BodyPublishers.ofString(json));
        if (user != null) {
            request.header("Authorization", basic(user));
        }
        HttpResponse<String> response = client.send(request.build(), HttpResponse.BodyHandlers.ofString());
        return new Reply(response.statusCode(), JSON.readTree(response.body()));
    }

    /** Opens a server stream; its envelopes are read in the background. */
    Stream stream(String method, String json, Map<String, String> headers) throws Exception {
        byte[] payload = json.getBytes(StandardCharsets.UTF_8);
        ByteBuffer envelope = ByteBuffer.allocate(5 + payload.length).put((byte) 0).putInt(payload.length).put(payload);
        HttpRequest.Builder request = HttpRequest.newBuilder(uri(method))
                .header("Content-Type", "application/connect+json")
                .header("Connect-Protocol-Version", "1")
                .POST(HttpRequest.BodyPublishers.ofByteArray(envelope.array()));
        headers.forEach(request::header);
        HttpResponse<InputStream> response = client.send(request.build(), HttpResponse.BodyHandlers.ofInputStream());
        return new Stream(response.statusCode(), response.body());
    }

    private URI uri(String method) {
        return URI.create("http://127.0.0.1:" + port + "/" + FilesystemService.SERVICE + "/" + method);
    }

    /** Open inotify instances of this JVM (each watch holds exactly one). */
    static long inotifyFds() throws IOException {
        long count = 0;
        try (var fds = Files.list(Path.of("/proc/self/fd"))) {
            for (Path fd : (Iterable<Path>) fds::iterator) {
                try {
                    if (Files.readSymbolicLink(fd).toString().equals("anon_inode:inotify")) {
                        count++;
                    }
                } catch (IOException e) {
                    // closed while we looked
                }
            }
        }
        return count;
    }

    @Override
    public void close() throws Exception {
        service.close();
        server.close().toCompletionStage().toCompletableFuture().get(30, TimeUnit.SECONDS);
        router.close();
        vertx.close().toCompletionStage().toCompletableFuture().get(30, TimeUnit.SECONDS);
        client.close();
        deleteTree(tmp);
    }

    static void deleteTree(Path root) throws IOException {
        if (!Files.exists(root, LinkOption.NOFOLLOW_LINKS)) {
            return;
        }
        Files.walkFileTree(root, new SimpleFileVisitor<>() {
            @Override
            public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
                Files.delete(file);
                return FileVisitResult.CONTINUE;
            }

            @Override
            public FileVisitResult postVisitDirectory(Path dir, IOException e) throws IOException {
                Files.delete(dir);
                return FileVisitResult.CONTINUE;
            }
        });
    }

    record Reply(int status, JsonNode body) {
        String code() {
            return body.path("code").asText();
        }
    }

    /** One server stream: envelopes as JSON, the end-of-stream message flagged. */
    static final class Stream implements AutoCloseable {
        final int status;
        private final InputStream body;
        private final BlockingQueue<Message> messages = new LinkedBlockingQueue<>();
        private final Thread reader;

        Stream(int status, InputStream body) {
            this.status = status;
            this.body = body;
            this.reader = Thread.ofVirtual().start(this::read);
        }

        private void read() {
            try (DataInputStream in = new DataInputStream(body)) {
                while (true) {
                    int flags = in.readUnsignedByte();
                    int length = in.readInt();
                    byte[] payload = in.readNBytes(length);
                    messages.add(new Message((flags & 0x02) != 0, JSON.readTree(payload)));
                    if ((flags & 0x02) != 0) {
                        return;
                    }
                }
            } catch (EOFException e) {
                messages.add(new Message(true, null));
            } catch (IOException e) {
                messages.add(new Message(true, null));
            }
        }

        /** The next message, waiting as long as the test is patient. */
        Message next() throws InterruptedException {
            Message m = messages.poll(PATIENCE.toMillis(), TimeUnit.MILLISECONDS);
            if (m == null) {
                throw new AssertionError("no stream message arrived");
            }
            return m;
        }

        /** The next message that is not a keepalive. */
        Message nextIgnoringKeepalives() throws InterruptedException {
            while (true) {
                Message m = next();
                if (m.end() || !m.json().has("keepalive")) {
                    return m;
                }
            }
        }

        /** Filesystem events ({@code {name,type,entry?}}) until one matches {@code last}, which is included. */
        List<JsonNode> eventsUntil(Predicate<JsonNode> last) throws InterruptedException {
            List<JsonNode> events = new ArrayList<>();
            while (true) {
                Message m = nextIgnoringKeepalives();
                if (m.end()) {
                    throw new AssertionError("the stream ended before the expected event: " + m.json()
                            + "; events so far: " + events);
                }
                JsonNode event = m.json().get("filesystem");
                if (event == null) {
                    throw new AssertionError("unexpected stream message " + m.json());
                }
                events.add(event);
                if (last.test(event)) {
                    return events;
                }
            }
        }

        /** Messages already received and not taken. */
        List<Message> drainReceived() {
            List<Message> out = new ArrayList<>();
            messages.drainTo(out);
            return out;
        }

        @Override
        public void close() throws Exception {
            body.close();
            reader.join(PATIENCE);
        }
    }

    record Message(boolean end, JsonNode json) {}

    static Predicate<JsonNode> is(String type, String name) {
        return e -> e.path("name").asText().equals(name) && e.path("type").asText().equals("EVENT_TYPE_" + type);
    }

    /** Events as "TYPE name" strings, for exact comparisons. */
    static List<String> brief(List<JsonNode> events) {
        return events.stream()
                .map(e -> e.path("type").asText().replace("EVENT_TYPE_", "") + " " + e.path("name").asText())
                .toList();
    }
}
