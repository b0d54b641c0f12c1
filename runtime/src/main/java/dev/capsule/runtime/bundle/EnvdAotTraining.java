package dev.capsule.runtime.bundle;

import dev.capsule.runtime.host.Mounts;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Records the Java AOT cache envd starts with inside sandboxes ({@link RuntimeBundle#ENVD_AOT_CACHE}): envd from
 * the bundle then answers {@code /health} about three times sooner (measured 0.6–0.7 s → 0.22 s on 2 cores), which
 * is the cold part of every create that the warm pool does not hide (snapshots, resume by cold boot, pool misses).
 *
 * <p>The JVM accepts a cache only for the same runtime image, the same jar at the same path and compatible flags, so
 * the training run uses the bundle's own loader, runtime and jar at their sandbox paths: it runs in a private mount
 * namespace where a tmpfs covers {@code /opt} and the bundle is bind-mounted (writable) at {@value
 * RuntimeBundle#MOUNT_POINT}; the host's mounts are untouched. envd gets a representative first minute of work
 * (health, envs, metrics, file transfers, the process and filesystem RPCs), then SIGTERM, and the JVM writes the cache
 * as it exits.
 */
final class EnvdAotTraining {

    private static final System.Logger LOG = System.getLogger(EnvdAotTraining.class.getName());
    private static final Pattern LISTENING = Pattern.compile("envd listening on .*:(\\d+)");
    private static final Duration START_TIMEOUT = Duration.ofSeconds(60);

    private EnvdAotTraining() {
    }

    /**
     * Trains envd of the bundle being built in {@code bundleRoot} and leaves {@code envd.aot} there, or nothing when
     * the training fails (the bundle works without it, envd just starts slower; the reason is logged).
     */
    static void record(Path bundleRoot) {
        Path cache = bundleRoot.resolve(RuntimeBundle.ENVD_AOT_CACHE.substring(RuntimeBundle.MOUNT_POINT.length() + 1));
        try {
            train(bundleRoot);
            if (!Files.isRegularFile(cache) || Files.size(cache) == 0) {
                throw new IOException("the JVM wrote no cache");
            }
            LOG.log(System.Logger.Level.INFO, "recorded envd's AOT cache " + cache + " (" + Files.size(cache) / 1024
                    + " KiB)");
        } catch (IOException | RuntimeException e) {
            try {
                Files.deleteIfExists(cache);
            } catch (IOException ignored) {
                // the bundle is usable either way: the JVM ignores an unusable cache
            }
            LOG.log(System.Logger.Level.WARNING, "could not record envd's AOT cache in " + bundleRoot
                    + "; sandboxes' envd will start without it (slower): " + e.getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while recording envd's AOT cache", e);
        }
    }

    private static void train(Path bundleRoot) throws IOException, InterruptedException {
        Path work = Files.createTempDirectory("capsule-envd-aot");
        Process envd = null;
        try {
            List<String> command = new ArrayList<>(List.of("unshare", "--mount", "--propagation", "private", "sh",
                    "-c", "mount -t tmpfs capsule-aot /opt && mkdir /opt/capsule && mount --bind \"$0\" "
                            + RuntimeBundle.MOUNT_POINT + " && exec \"$@\"",
                    bundleRoot.toAbsolutePath().toString()));
            List<String> jvm = new ArrayList<>(RuntimeBundle.ENVD_JVM_OPTIONS);
            jvm.add("-XX:AOTCacheOutput=" + RuntimeBundle.ENVD_AOT_CACHE);
            command.addAll(RuntimeBundle.envdCommandWithOptions(jvm,
                    List.of("--host", "127.0.0.1", "--port", "0", "--default-user", "root")));
            Path log = work.resolve("envd.log");
            // exec all the way down: the pid is the JVM's, so SIGTERM reaches it and it writes the cache on exit
            envd = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile())
                    .redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile())).start();
            int port = awaitPort(envd, log);
            exercise(URI.create("http://127.0.0.1:" + port), Files.createDirectories(work.resolve("files")));
            envd.destroy();
            if (!envd.waitFor(60, TimeUnit.SECONDS)) {
                throw new IOException("envd did not exit within 60 s of SIGTERM");
            }
        } finally {
            if (envd != null && envd.isAlive()) {
                envd.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            }
            Mounts.deleteTree(work);
        }
    }

    private static int awaitPort(Process envd, Path log) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + START_TIMEOUT.toNanos();
        while (System.nanoTime() < deadline) {
            Matcher m = LISTENING.matcher(Files.readString(log));
            if (m.find()) {
                return Integer.parseInt(m.group(1));
            }
            if (!envd.isAlive()) {
                throw new IOException("envd exited (" + envd.exitValue() + ") before listening: " + Files.readString(log));
            }
            Thread.sleep(20);
        }
        throw new IOException("envd did not listen within " + START_TIMEOUT.toSeconds() + " s: " + Files.readString(log));
    }

    /** What a sandbox's first minute asks of envd, a few rounds so the hot paths are the ones recorded. */
    private static void exercise(URI envd, Path files) throws IOException, InterruptedException {
        try (HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(Duration.ofSeconds(5)).build()) {
            byte[] upload = new byte[256 * 1024];
            new java.util.Random(1).nextBytes(upload);
            String dir = files.toString();
            for (int round = 0; round < 10; round++) {
                get(http, envd, "/health", null);
                get(http, envd, "/envs", null);
                get(http, envd, "/metrics", null);
                send(http, envd, "/files?path=" + dir + "/raw-" + round, "application/octet-stream", upload);
                send(http, envd, "/files?path=" + dir + "/multi-" + round, "multipart/form-data; boundary=capsule",
                        multipart(upload));
                get(http, envd, "/files?path=" + dir + "/raw-" + round, null);
                get(http, envd, "/files?path=" + dir + "/multi-" + round, "gzip");
                get(http, envd, "/files?path=" + dir + "/missing", null);
                stream(http, envd, "process.Process/Start",
                        "{\"process\":{\"cmd\":\"/bin/sh\",\"args\":[\"-c\",\"echo hi; echo err >&2\"]}}");
                stream(http, envd, "process.Process/Start",
                        "{\"process\":{\"cmd\":\"/bin/sh\",\"args\":[\"-c\",\"exit 3\"],\"cwd\":\"" + dir + "\"}}");
                unary(http, envd, "process.Process/List", "{}");
                unary(http, envd, "filesystem.Filesystem/MakeDir", "{\"path\":\"" + dir + "/d-" + round + "/a\"}");
                unary(http, envd, "filesystem.Filesystem/Stat", "{\"path\":\"" + dir + "/raw-" + round + "\"}");
                unary(http, envd, "filesystem.Filesystem/ListDir", "{\"path\":\"" + dir + "\",\"depth\":2}");
                unary(http, envd, "filesystem.Filesystem/Move", "{\"source\":\"" + dir + "/d-" + round
                        + "\",\"destination\":\"" + dir + "/m-" + round + "\"}");
                unary(http, envd, "filesystem.Filesystem/Remove", "{\"path\":\"" + dir + "/m-" + round + "\"}");
                unary(http, envd, "filesystem.Filesystem/Stat", "{\"path\":\"" + dir + "/missing\"}");
            }
        }
    }

    private static void get(HttpClient http, URI envd, String path, String encoding)
            throws IOException, InterruptedException {
        HttpRequest.Builder request = HttpRequest.newBuilder(envd.resolve(path)).timeout(Duration.ofSeconds(30));
        if (encoding != null) request.header("Accept-Encoding", encoding);
        http.send(request.build(), HttpResponse.BodyHandlers.discarding());
    }

    private static void send(HttpClient http, URI envd, String path, String contentType, byte[] body)
            throws IOException, InterruptedException {
        http.send(HttpRequest.newBuilder(envd.resolve(path)).timeout(Duration.ofSeconds(30))
                .header("Content-Type", contentType).POST(HttpRequest.BodyPublishers.ofByteArray(body)).build(),
                HttpResponse.BodyHandlers.discarding());
    }

    private static void unary(HttpClient http, URI envd, String procedure, String json)
            throws IOException, InterruptedException {
        send(http, envd, "/" + procedure, "application/json", json.getBytes(StandardCharsets.UTF_8));
    }

    /** A server-streaming Connect call: one enveloped JSON message (flags 0, 4-byte big-endian length). */
    private static void stream(HttpClient http, URI envd, String procedure, String json)
            throws IOException, InterruptedException {
        byte[] message = json.getBytes(StandardCharsets.UTF_8);
        ByteBuffer envelope = ByteBuffer.allocate(5 + message.length).put((byte) 0).putInt(message.length).put(message);
        send(http, envd, "/" + procedure, "application/connect+json", envelope.array());
    }

    private static byte[] multipart(byte[] content) {
        byte[] head = ("--capsule\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n"
                + "Content-Type: application/octet-stream\r\n\r\n").getBytes(StandardCharsets.US_ASCII);
        byte[] tail = "\r\n--capsule--\r\n".getBytes(StandardCharsets.US_ASCII);
        return ByteBuffer.allocate(head.length + content.length + tail.length).put(head).put(content).put(tail).array();
    }
}
