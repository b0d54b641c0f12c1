package dev.capsule.envd;

import dev.capsule.envd.users.UserResolver;
import dev.capsule.envd.users.Users;

import java.io.IOException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.function.BiFunction;
import java.util.stream.Stream;

/**
 * A real envd on a free loopback port with fixture users: {@code user} (uid 1000, home {@code <tmp>/home/user}),
 * {@code other} (uid 1001) and {@code root}. Close it to stop the server and delete the temp dir.
 */
public final class EnvdFixture implements AutoCloseable {
    public final Path dir;
    public final Path home;
    public final EnvdState state;
    public final UserResolver users;
    public final EnvdServer server;
    public final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();

    public EnvdFixture() throws IOException {
        this(List.of());
    }

    public EnvdFixture(List<RpcService> services) throws IOException {
        this((users, state) -> services);
    }

    /** With services made for the fixture's users and state, e.g. {@code Envd::services} for envd's real ones. */
    public EnvdFixture(BiFunction<UserResolver, EnvdState, List<RpcService>> services) throws IOException {
        dir = Files.createTempDirectory("envd-test");
        home = dir.resolve("home/user");
        Files.createDirectories(home);
        Files.createDirectories(dir.resolve("home/other"));
        Files.setAttribute(home, "unix:uid", 1000);
        Files.setAttribute(home, "unix:gid", 1000);
        Path passwd = dir.resolve("passwd");
        Path group = dir.resolve("group");
        Files.writeString(passwd, "root:x:0:0:root:/root:/bin/bash\n"
                + "user:x:1000:1000::" + home + ":/bin/bash\n"
                + "other:x:1001:1001::" + dir.resolve("home/other") + ":/bin/sh\n");
        Files.writeString(group, "root:x:0:\nuser:x:1000:\nother:x:1001:\n");
        state = new EnvdState(EnvdState.DEFAULT_USER);
        users = new UserResolver(new Users(passwd, group), state);
        server = EnvdServer.start("127.0.0.1", 0, state, users, services.apply(users, state));
    }

    public URI uri(String pathAndQuery) {
        return URI.create("http://127.0.0.1:" + server.port() + pathAndQuery);
    }

    public static String q(String s) {
        return URLEncoder.encode(s, StandardCharsets.UTF_8);
    }

    public HttpResponse<String> send(HttpRequest.Builder request) throws IOException, InterruptedException {
        return http.send(request.build(), HttpResponse.BodyHandlers.ofString());
    }

    public HttpResponse<byte[]> sendBytes(HttpRequest.Builder request) throws IOException, InterruptedException {
        return http.send(request.build(), HttpResponse.BodyHandlers.ofByteArray());
    }

    public HttpResponse<String> get(String pathAndQuery) throws IOException, InterruptedException {
        return send(HttpRequest.newBuilder(uri(pathAndQuery)).GET());
    }

    @Override
    public void close() throws IOException {
        server.close();
        http.close();
        try (Stream<Path> files = Files.walk(dir)) {
            for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }
}
