package dev.capsule.server.testing;

import dev.capsule.runtime.Resources;
import dev.capsule.server.CapsuleServer;
import dev.capsule.server.config.Config;
import dev.capsule.server.config.ConfigLoader;
import dev.capsule.server.store.SandboxRecord;
import dev.capsule.server.store.SandboxState;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.List;
import java.util.Map;

/** A real CapsuleServer on a free loopback port with a SQLite store in a temp dir, and an HTTP client for it. */
public final class TestServer implements AutoCloseable {

    public final CapsuleServer server;
    public final String apiKey;
    public final RecordingRuntime runtime;
    public final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();

    public TestServer(Path dataDir, RecordingRuntime runtime, String... extraArgs) {
        this(dataDir, runtime, runtime, extraArgs);
    }

    /** A server on {@code seam} (e.g. several drivers behind {@link dev.capsule.runtime.Drivers}); {@code runtime} is its default one. */
    public TestServer(Path dataDir, dev.capsule.runtime.SandboxRuntime seam, RecordingRuntime runtime, String... extraArgs) {
        this.runtime = runtime;
        var args = new java.util.ArrayList<>(List.of("--host", "127.0.0.1", "--port", "0", "--data-dir", dataDir.toString(),
                "--max-timeout", "3600", "--warm-pool-size", "0"));
        args.addAll(List.of(extraArgs));
        Config config = ConfigLoader.load(args, Map.of("CAPSULE_CONFIG", emptyConfig(dataDir)));
        this.server = CapsuleServer.start(config, seam);
        try {
            this.apiKey = Files.readString(config.apiKeyFile()).strip();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static String emptyConfig(Path dir) {
        try {
            Path f = dir.resolveSibling(dir.getFileName() + ".conf");
            Files.writeString(f, "");
            return f.toString();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public String url(String path) {
        return "http://127.0.0.1:" + server.port() + path;
    }

    public HttpRequest.Builder request(String path) {
        return HttpRequest.newBuilder(URI.create(url(path))).header("X-API-Key", apiKey);
    }

    public HttpResponse<String> send(HttpRequest request) {
        try {
            return http.send(request, HttpResponse.BodyHandlers.ofString());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    public HttpResponse<String> get(String path) {
        return send(request(path).GET().build());
    }

    public HttpResponse<String> post(String path, String json) {
        return send(request(path).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(json)).build());
    }

    public HttpResponse<String> delete(String path) {
        return send(request(path).DELETE().build());
    }

    /** Inserts a sandbox row directly, as if created earlier, reachable at {@code address}. */
    public SandboxRecord insertSandbox(String id, SandboxState state, Instant startedAt, Map<String, String> metadata, String address) {
        var rec = new SandboxRecord(id, "base", "base", state, startedAt, Instant.now().plusSeconds(600),
                new Resources(2, 512, 4096), metadata, Map.of(), "token-" + id, true, null,
                SandboxRecord.Lifecycle.KILL, address, "oci");
        server.store().insertSandbox(rec);
        return rec;
    }

    @Override
    public void close() {
        server.close();
    }
}
