package dev.capsule.envd.fuzz;

import static org.assertj.core.api.Assertions.assertThat;

import dev.capsule.envd.EnvdFixture;
import dev.capsule.envd.filesystem.FilesystemService;
import dev.capsule.envd.process.ProcessService;
import io.vertx.core.json.JsonObject;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Hostile input against a real envd (process and filesystem services, /files, /init, /envs, /metrics) with an access
 * token set: malformed Connect bodies and envelopes, wrong types, oversized bodies and headers, path tricks ({@code
 * ..}, absolute paths, NUL, unicode, long names, symlinks pointing out of the home and to the host's root), hostile
 * env maps, commands and PTY sizes, random methods and paths, missing and wrong tokens and users. Every answer must be
 * a 4xx or a 2xx (or a deliberate 503 with a message); never a 500, a hang or a crash; afterwards envd is healthy,
 * runs no process of the fuzz, holds no watcher and no more file descriptors than before.
 *
 * <p>envd runs as root on this host, so the fuzz only writes, moves and removes where its fixture lives: a
 * destructive request whose path (as envd resolves it for the request's user) leaves the fixture's homes or its decoy
 * directory, or passes the link to the host's root, is sent as a Stat instead. Reads go anywhere but to files of
 * unbounded size. Fixed seed and counts; the counts go to target/fuzz/envd.md (docs/SECURITY.md).
 */
class EnvdFuzzTest {

    static final long SEED = Long.getLong("capsule.fuzz.seed", 20_250_605L);
    /** Rounds per category (a round may send two requests); oversized bodies get a fifth of that. */
    static final int ROUNDS = Integer.getInteger("capsule.fuzz.rounds", 150);
    static final Duration TIMEOUT = Duration.ofSeconds(10);
    static final String TOKEN = "fuzz-token-0123456789abcdef";
    static final String HOST_ROOT = "host-root";
    /**
     * The calls that get arbitrary bodies: none of them writes, removes, starts or walks anything (a body that
     * happened to parse as {@code {}} would make Remove delete the user's home, which for root is the host's /root).
     * MakeDir, Move, Remove, ListDir, watches and Start get bodies from {@link #filesystem} and {@link #processes},
     * whose paths and commands are vetted.
     */
    static final List<String> RPC = List.of("/filesystem.Filesystem/Stat", "/filesystem.Filesystem/GetWatcherEvents",
            "/filesystem.Filesystem/RemoveWatcher", "/process.Process/List", "/process.Process/SendInput",
            "/process.Process/SendSignal", "/process.Process/Update", "/process.Process/CloseStdin");
    /** Streams that get broken envelopes: Connect and StreamInput only find envd's own processes. */
    static final List<String> STREAMS = List.of("/process.Process/Connect", "/process.Process/StreamInput");
    static final List<String> READABLE = List.of("/", "/etc/passwd", "/etc", "/proc/self/status", "/proc/self/fd",
            "/dev/null", "/dev/zero", "/tmp", "/root", "/nonexistent", "/sys/kernel", "/etc/shadow", "/proc/1/root");
    static final Pattern WATCHER_ID = Pattern.compile("\"watcherId\":\"([^\"]+)\"");

    EnvdFixture envd;
    Hostile h;
    FuzzReport report;
    Path home;
    Path outside;
    final Set<String> watchers = ConcurrentHashMap.newKeySet();
    String current;

    @BeforeEach
    void start() throws Exception {
        envd = new EnvdFixture((users, state) -> List.of(new ProcessService(users, state), new FilesystemService(users, state)));
        envd.state.setAccessToken(TOKEN);
        home = envd.home;
        outside = Files.createDirectories(envd.dir.resolve("outside"));
        Files.writeString(outside.resolve("decoy.txt"), "decoy");
        Files.writeString(home.resolve("f0"), "zero");
        Files.createDirectories(home.resolve("d1/d2"));
        Files.createSymbolicLink(home.resolve("out-link"), outside);       // leaves the home, stays in the fixture
        Files.createSymbolicLink(home.resolve(HOST_ROOT), Path.of("/"));   // the host: read through it only
        Files.createSymbolicLink(home.resolve("loop"), home.resolve("loop"));
        h = new Hostile(SEED);
        report = new FuzzReport("envd", EnvdFuzzTest::acceptable);
    }

    @AfterEach
    void stop() throws Exception {
        envd.close();
    }

    /**
     * A 1xx-4xx, or a 2xx whose stream (Connect streams carry their error in the last envelope, under a 200) did not
     * end in {@code internal}, {@code unknown} or {@code data_loss}; or a deliberate 503 with a message.
     */
    static boolean acceptable(String method, RawHttp.Response r) {
        if (r.status() >= 200 && r.status() < 300) return !streamFailedInternally(r);
        if (r.status() >= 100 && r.status() < 500) return true;
        if (r.status() == 503) {
            try {
                return !new JsonObject(r.text()).getString("message", "").isBlank();
            } catch (RuntimeException e) {
                return false;
            }
        }
        return false;
    }

    /**
     * Whether a Connect stream's end-stream envelope carries a server-side error code. One is deliberate: a message
     * flagged compressed on a stream that negotiated no compression is {@code internal}, as the Connect and gRPC
     * protocols prescribe (connect-go does the same); the connect module's own test pins it.
     */
    static boolean streamFailedInternally(RawHttp.Response r) {
        String type = r.header("content-type");
        if (type == null || !type.startsWith("application/connect+")) return false;
        ByteBuffer b = ByteBuffer.wrap(r.body());
        while (b.remaining() >= 5) {
            int flags = b.get() & 0xff;
            int length = b.getInt();
            if (length < 0 || length > b.remaining()) return true; // a torn stream is a failure too
            byte[] payload = new byte[length];
            b.get(payload);
            if ((flags & 0x02) != 0) {
                JsonObject end = new JsonObject(new String(payload, StandardCharsets.UTF_8));
                String code = end.getJsonObject("error", new JsonObject()).getString("code", "");
                String message = end.getJsonObject("error", new JsonObject()).getString("message", "");
                if (code.equals("internal") && message.contains("compressed message without Connect-Content-Encoding")) {
                    return false;
                }
                return code.equals("internal") || code.equals("unknown") || code.equals("data_loss");
            }
        }
        return false;
    }

    @Test
    void hostileRequestsGetNoServerErrorAndLeaveNothingBehind() throws Exception {
        long fdsBefore = openDescriptors();
        category("malformed JSON bodies", () -> rpc(h.pick(RPC), h.brokenJson(), "application/json", true));
        category("wrong types", () -> rpc(h.pick(RPC), Hostile.json(wrongTypes()).getBytes(StandardCharsets.UTF_8),
                "application/json", true));
        category("malformed stream envelopes", this::brokenEnvelope);
        category("filesystem path tricks", this::filesystem);
        category("/files path tricks", this::files);
        category("processes: hostile commands, envs, PTYs", this::processes);
        category("oversized bodies and headers", ROUNDS / 5, this::oversized);
        category("auth: missing and wrong tokens and users", this::auth);
        category("/init and plain endpoints", this::plain);
        category("random methods and paths", () -> send(h.pick(Hostile.METHODS), h.target(allPaths()), headers(true),
                h.chance(0.5) ? null : h.brokenJson()));

        // healthy; no process, watcher or descriptor of the fuzz left; the decoy still there
        assertThat(send("GET", "/health", List.of(), null).status()).isEqualTo(204);
        for (String id : watchers) {
            rpcQuietly("/filesystem.Filesystem/RemoveWatcher", "{\"watcherId\":\"" + id + "\"}");
        }
        long deadline = System.nanoTime() + Duration.ofSeconds(15).toNanos();
        String processes;
        do {
            processes = rpcQuietly("/process.Process/List", "{}").text();
        } while (!processes.equals("{}") && System.nanoTime() < deadline && sleep());
        assertThat(processes).as("processes the fuzz started").isEqualTo("{}");
        assertThat(openDescriptors()).as("envd's open descriptors").isLessThanOrEqualTo(fdsBefore + 8);
        assertThat(Files.readString(outside.resolve("decoy.txt"), StandardCharsets.UTF_8)).isNotNull();

        Path written = report.write(Path.of("target", "fuzz"), "envd.md", SEED,
                "./mvnw -q -B -o -pl envd -am test -Dtest=EnvdFuzzTest -Dsurefire.failIfNoSpecifiedTests=false");
        System.out.println(report.markdown(SEED, "see " + written));
        assertThat(report.failures()).as("responses that break the rule").isEmpty();
    }

    // ---- categories ----

    private Map<String, Object> wrongTypes() {
        var body = new LinkedHashMap<String, Object>();
        for (String f : List.of("path", "source", "destination", "depth", "recursive", "watcherId", "process", "input",
                "signal", "pty", "tag", "stdin", "includeEntry", "include_entry")) {
            if (h.chance(0.4)) body.put(f, h.value(2));
        }
        return body;
    }

    private void brokenEnvelope() throws IOException {
        byte[] payload = h.chance(0.5) ? h.brokenJson() : Hostile.json(h.value(2)).getBytes(StandardCharsets.UTF_8);
        var out = new ByteArrayOutputStream();
        switch (h.between(0, 5)) {
            case 0 -> out.writeBytes(h.randomBytes(h.between(0, 9)));                       // shorter than a prefix
            case 1 -> out.writeBytes(envelope(h.pick(0, 1, 2, 0x80, 0xff), Integer.MAX_VALUE, payload)); // lies
            case 2 -> out.writeBytes(envelope(0, payload.length + h.between(1, 100), payload)); // truncated
            case 3 -> {                                                                      // two messages
                out.writeBytes(envelope(0, payload.length, payload));
                out.writeBytes(envelope(0, payload.length, payload));
            }
            default -> out.writeBytes(envelope(h.pick(1, 3), payload.length, payload));     // compressed flag, none
        }
        var headers = headers(true);
        headers.add(new String[] {"Content-Type", h.pick("application/connect+json", "application/connect+proto",
                "application/json", "text/plain", "")});
        headers.add(new String[] {"Connect-Timeout-Ms", h.pick("500", "0", "-1", "abc", "99999999999999")});
        send("POST", h.pick(STREAMS), headers, out.toByteArray());
    }

    private void filesystem() throws IOException {
        String user = h.pick("user", "user", "root", "other");
        String method = h.pick("Stat", "ListDir", "MakeDir", "Move", "Remove", "WatchDir", "CreateWatcher", "GetWatcherEvents");
        var body = new LinkedHashMap<String, Object>();
        switch (method) {
            case "Stat" -> body.put("path", path(user, true));
            case "ListDir" -> {
                String p = path(user, true);
                body.put("path", p);
                body.put("depth", inFixture(user, p) ? h.pick(0, 1, 3, 100, 4294967295L) : h.pick(0, 1));
            }
            case "MakeDir", "Remove" -> body.put("path", path(user, false));
            case "Move" -> {
                body.put("source", path(user, false));
                body.put("destination", path(user, false));
            }
            case "GetWatcherEvents" -> body.put("watcherId", watchers.isEmpty() || h.chance(0.5) ? h.string(3) : h.pick(List.copyOf(watchers)));
            default -> { // watches: recursive ones only inside the fixture
                String p = path(user, true);
                body.put("path", p);
                body.put("recursive", inFixture(user, p) && h.chance(0.5));
                body.put("includeEntry", h.chance(0.5));
            }
        }
        if (!safe(user, body)) {
            method = "Stat";
            body = new LinkedHashMap<>(Map.of("path", home.toString()));
        }
        byte[] json = Hostile.json(body).getBytes(StandardCharsets.UTF_8);
        if (method.equals("WatchDir")) {
            var headers = authHeaders(user);
            headers.add(new String[] {"Content-Type", "application/connect+json"});
            headers.add(new String[] {"Connect-Timeout-Ms", "300"});
            send("POST", "/filesystem.Filesystem/WatchDir", headers, envelope(0, json.length, json));
            return;
        }
        var headers = authHeaders(user);
        headers.add(new String[] {"Content-Type", "application/json"});
        RawHttp.Response r = send("POST", "/filesystem.Filesystem/" + method, headers, json);
        Matcher m = WATCHER_ID.matcher(r.text());
        if (method.equals("CreateWatcher") && m.find()) watchers.add(m.group(1));
    }

    private void files() throws IOException {
        String user = h.pick("user", "root", "other", "nobody", "");
        boolean upload = h.chance(0.5);
        String path = path(user.isEmpty() ? "user" : user, !upload);
        if (upload && !safeToWrite(user.isEmpty() ? "user" : user, path)) upload = false;
        var q = new StringBuilder("/files?path=").append(enc(path));
        if (!user.isEmpty()) q.append("&username=").append(enc(user));
        var headers = h.chance(0.8) ? headers(true) : new ArrayList<String[]>(); // without a token: needs a signature
        if (headers.isEmpty() && h.chance(0.7)) {
            q.append("&signature=").append(enc(h.pick("v1_", "", h.string(3), "v1_" + "A".repeat(43))));
            if (h.chance(0.5)) q.append("&signature_expiration=").append(enc(h.pick("0", "-1", "x", "99999999999999999999", "1")));
        }
        if (h.chance(0.3)) headers.add(new String[] {"Accept-Encoding", h.pick("gzip", "br", "identity;q=0", "*;q=0", h.string(2))});
        if (!upload) {
            send(h.pick("GET", "GET", "HEAD"), Hostile.escapeForRequestLine(q.toString()), headers, null);
            return;
        }
        for (int i = h.between(0, 4); i > 0; i--) {
            headers.add(new String[] {"X-Metadata-" + h.pick("a", "k" + i, h.string(2), "x".repeat(300)), h.string(3)});
        }
        byte[] body;
        if (h.chance(0.5)) {
            headers.add(new String[] {"Content-Type", "application/octet-stream"});
            if (h.chance(0.2)) headers.add(new String[] {"Content-Encoding", h.pick("gzip", "deflate", "zz")});
            body = h.randomBytes(h.between(0, 4096));
        } else {
            String boundary = h.pick("b0undary", "", "x".repeat(200), "\"q\"");
            headers.add(new String[] {"Content-Type", "multipart/form-data; boundary=" + boundary});
            String filename = h.chance(0.5) ? path : h.string(3); // without ?path, the filename is the target
            if (!safeToWrite(user.isEmpty() ? "user" : user, filename)) filename = "f" + h.between(0, 5);
            body = multipart(boundary, h.pick("file", "other", ""), filename);
        }
        send("POST", Hostile.escapeForRequestLine(h.chance(0.8) ? q.toString() : "/files"), headers, body);
    }

    private void processes() throws IOException {
        String user = h.pick("user", "root", "other", "nobody");
        // commands that change nothing; a random name gets a prefix no real command has
        String cmd = h.pick("/bin/true", "/bin/echo", "/bin/echo", "/bin/sleep", "/no/such/command", "", "echo", "true",
                "capsule-fuzz-no-such-" + h.string(3), "/bin/cat", home.toString(), "/etc/passwd");
        var process = new LinkedHashMap<String, Object>();
        process.put("cmd", cmd);
        var args = new ArrayList<Object>();
        if (cmd.endsWith("sleep")) args.add(h.pick("0", "0.1", "x", "-1"));
        else if (!cmd.endsWith("cat")) for (int i = h.between(0, 6); i > 0; i--) args.add(h.chance(0.9) ? h.string() : h.value(1));
        process.put("args", args);
        if (h.chance(0.5)) process.put("envs", h.chance(0.8) ? h.stringMap(h.pick(1, 10, 200), 300) : h.value(2));
        if (h.chance(0.4)) process.put("cwd", h.pick(home.toString(), "/", "..", "/nonexistent", h.string(3),
                home.resolve("f0").toString(), home.resolve(HOST_ROOT).toString(), "~"));
        var body = new LinkedHashMap<String, Object>();
        body.put("process", process);
        if (h.chance(0.3)) body.put("pty", Map.of("size", Map.of("cols", h.pick(0, 1, 80, 65535, 4294967295L, -1),
                "rows", h.pick(0, 1, 24, 65535, 4294967295L))));
        if (h.chance(0.3)) body.put("tag", h.string());
        body.put("stdin", cmd.endsWith("cat") ? h.chance(0.1) : false);
        byte[] json = Hostile.json(body).getBytes(StandardCharsets.UTF_8);
        var headers = authHeaders(user);
        headers.add(new String[] {"Content-Type", "application/connect+json"});
        // the deadline bounds the process's life: nothing the fuzz starts outlives two seconds
        headers.add(new String[] {"Connect-Timeout-Ms", "2000"});
        if (h.chance(0.3)) headers.add(new String[] {"Keepalive-Ping-Interval", h.pick("1", "0", "-5", "x")});
        send("POST", "/process.Process/Start", headers, envelope(0, json.length, json));
        if (h.chance(0.3)) { // and poke at processes by pid or tag
            var selector = h.chance(0.5) ? Map.<String, Object>of("pid", h.pick(0, 1, -1, 4294967295L, h.between(2, 99999)))
                    : Map.<String, Object>of("tag", h.string(2));
            String method = h.pick("SendSignal", "SendInput", "Update", "CloseStdin", "Connect");
            var call = new LinkedHashMap<String, Object>(Map.of("process", selector));
            if (method.equals("SendSignal")) call.put("signal", h.pick("SIGNAL_SIGKILL", "SIGNAL_SIGTERM", "SIGNAL_UNSPECIFIED", 9, "SIGSTOP"));
            if (method.equals("SendInput")) call.put("input", Map.of(h.pick("stdin", "pty"), h.pick("aGkK", "!!", "")));
            byte[] c = Hostile.json(call).getBytes(StandardCharsets.UTF_8);
            if (method.equals("Connect")) {
                var sh = headers(true);
                sh.add(new String[] {"Content-Type", "application/connect+json"});
                sh.add(new String[] {"Connect-Timeout-Ms", "300"});
                send("POST", "/process.Process/Connect", sh, envelope(0, c.length, c));
            } else {
                rpc("/process.Process/" + method, c, "application/json", true);
            }
        }
    }

    private void oversized() throws IOException {
        var headers = headers(true);
        switch (h.between(0, 5)) {
            case 0 -> { // a unary body far past any message size
                headers.add(new String[] {"Content-Type", "application/json"});
                byte[] body = ("{\"path\":\"" + "a".repeat(h.between(256 * 1024, 2 * 1024 * 1024)) + "\"}").getBytes(StandardCharsets.UTF_8);
                send("POST", "/filesystem.Filesystem/Stat", headers, body);
            }
            case 1 -> headers.add(new String[] {"X-Big", "v".repeat(h.between(60 * 1024, 200 * 1024))});
            case 2 -> {
                for (int i = h.between(100, 3000); i > 0; i--) headers.add(new String[] {"X-H" + i, "v"});
            }
            case 3 -> { // an announced body that never comes
                headers.add(new String[] {"Content-Type", "application/json"});
                headers.add(new String[] {"Content-Length", h.pick("99999999999", "-1", "1e9")});
                exchange("POST", h.pick(RPC), headers, "{}".getBytes(StandardCharsets.UTF_8), false);
                return;
            }
            default -> {
                send("GET", "/files?path=" + "a".repeat(h.between(64 * 1024, 300 * 1024)), headers, null);
                return;
            }
        }
        send("GET", "/envs", headers, null);
    }

    private void auth() throws IOException {
        var headers = new ArrayList<String[]>();
        if (h.chance(0.5)) headers.add(new String[] {"X-Access-Token", h.pick(TOKEN + "x", "", TOKEN.toUpperCase(), h.string(2), TOKEN + "\u0000")});
        if (h.chance(0.5)) headers.add(new String[] {"Authorization", h.pick("Basic " + b64(h.string(2) + ":"), "Basic !!!",
                "Bearer x", "Basic " + b64("root:pw"), "Basic " + b64("nobody:"), "Basic", h.string(3))});
        if (h.chance(0.5)) headers.add(new String[] {"X-Access-Token", TOKEN}); // a right token with a bad user
        headers.add(new String[] {"Content-Type", "application/json"});
        String path = h.pick(RPC);
        send("POST", path, headers, path.endsWith("List") ? "{}".getBytes(StandardCharsets.UTF_8)
                : Hostile.json(Map.of("path", home.resolve("auth-probe").toString(), "watcherId", "x"))
                        .getBytes(StandardCharsets.UTF_8));
    }

    private void plain() throws IOException {
        switch (h.between(0, 4)) {
            case 0 -> { // /init may never be changed by the fuzz: no token or a wrong one
                var headers = new ArrayList<String[]>();
                if (h.chance(0.5)) headers.add(new String[] {"X-Access-Token", h.string(2)});
                headers.add(new String[] {"Content-Type", "application/json"});
                var body = new LinkedHashMap<String, Object>();
                for (String f : List.of("envVars", "accessToken", "defaultUser", "defaultWorkdir", "timestamp")) {
                    if (h.chance(0.5)) body.put(f, h.value(2));
                }
                send("POST", "/init", headers, h.chance(0.3) ? h.brokenJson() : Hostile.json(body).getBytes(StandardCharsets.UTF_8));
            }
            case 1 -> send(h.pick("GET", "POST", "PUT"), h.pick("/envs", "/metrics", "/health", "/init"), headers(h.chance(0.8)), null);
            case 2 -> send("OPTIONS", h.pick(allPaths()), List.<String[]>of(new String[] {"Origin", h.string(2)},
                    new String[] {"Access-Control-Request-Method", h.pick(Hostile.METHODS)},
                    new String[] {"Access-Control-Request-Headers", h.string(3)}), null);
            default -> send("GET", "/metrics", headers(true), null);
        }
    }

    // ---- paths: hostile, and never destructive outside the fixture ----

    /** A hostile path; for writes, one under the user's home in the fixture or its decoy, with tricks. */
    private String path(String user, boolean read) {
        if (read && h.chance(0.3)) return h.pick(READABLE) + (h.chance(0.3) ? h.pick("/..", "/../..", "/./", "//") : "");
        String base = h.pick(home.toString(), "~", "", "f0", "d1", "out-link", outside.toString(), read ? HOST_ROOT : "d1/d2",
                read ? HOST_ROOT + "/etc" : "out-link/x", "loop");
        String p = h.path(base);
        return read || safeToWrite(user, p) ? p : home.resolve("w" + h.between(0, 5)).toString();
    }

    /** Where envd puts {@code path} for {@code user}: its rules (User.resolve), with the fixture's homes; null: invalid. */
    private Path resolved(String user, String path) {
        Path userHome = switch (user) {
            case "root" -> Path.of("/root");
            case "other" -> envd.dir.resolve("home/other");
            default -> home;
        };
        try {
            if (path == null || path.isEmpty() || path.equals("~")) return userHome;
            if (path.startsWith("~/")) return userHome.resolve(path.substring(2)).normalize();
            Path p = Path.of(path);
            return (p.isAbsolute() ? p : userHome.resolve(p)).normalize();
        } catch (InvalidPathException e) {
            return null;
        }
    }

    private boolean inFixture(String user, String path) {
        Path p = resolved(user, path);
        return p == null || p.startsWith(envd.dir) && !passesHostRoot(p);
    }

    /** Strictly inside a home of the fixture or its decoy, never through the link to the host's root. */
    private boolean safeToWrite(String user, String path) {
        Path p = resolved(user, path);
        if (p == null) return true; // envd refuses it (NUL): safe to send
        if (passesHostRoot(p)) return false;
        for (Path root : List.of(home, envd.dir.resolve("home/other"), outside)) {
            if (p.startsWith(root) && !p.equals(root)) return true;
        }
        return false;
    }

    private static boolean passesHostRoot(Path p) {
        for (Path part : p) if (part.toString().equals(HOST_ROOT)) return true;
        return false;
    }

    private boolean safe(String user, Map<String, Object> body) {
        for (String f : List.of("source", "destination")) {
            if (body.get(f) instanceof String p && !safeToWrite(user, p)) return false;
        }
        return true;
    }

    // ---- plumbing ----

    interface Step {
        void run() throws IOException;
    }

    private void category(String name, Step step) throws IOException {
        category(name, ROUNDS, step);
    }

    private void category(String name, int rounds, Step step) throws IOException {
        current = name;
        long started = System.nanoTime();
        for (int i = 0; i < rounds; i++) step.run();
        System.out.printf("%s: %d rounds in %d ms%n", name, rounds, (System.nanoTime() - started) / 1_000_000);
        current = null;
        assertThat(send("GET", "/health", List.of(), null).status()).as("healthy after " + name).isEqualTo(204);
    }

    /** Targets for random methods: the calls of {@link #RPC}, plain endpoints, and no destructive call. */
    private List<String> allPaths() {
        var all = new ArrayList<>(RPC);
        all.addAll(List.of("/files", "/health", "/envs", "/metrics", "/init", "/", "/process.Process/Nope"));
        return all;
    }

    private ArrayList<String[]> headers(boolean token) {
        var headers = new ArrayList<String[]>();
        headers.add(new String[] {"Host", "127.0.0.1"});
        if (token) headers.add(new String[] {"X-Access-Token", TOKEN});
        return headers;
    }

    private ArrayList<String[]> authHeaders(String user) {
        var headers = headers(true);
        headers.add(new String[] {"Authorization", "Basic " + b64(user + ":")});
        return headers;
    }

    private void rpc(String path, byte[] body, String contentType, boolean token) throws IOException {
        var headers = headers(token);
        headers.add(new String[] {"Content-Type", contentType});
        headers.add(new String[] {"Authorization", "Basic " + b64(h.pick("user", "root", "other"))});
        send("POST", path, headers, body);
    }

    private RawHttp.Response rpcQuietly(String path, String json) throws IOException {
        var headers = headers(true);
        headers.add(new String[] {"Content-Type", "application/json"});
        return RawHttp.exchange("127.0.0.1", envd.server.port(),
                RawHttp.request("POST", path, headers, json.getBytes(StandardCharsets.UTF_8), true), TIMEOUT);
    }

    private RawHttp.Response send(String method, String target, List<String[]> headers, byte[] body) throws IOException {
        return exchange(method, target, headers, body, true);
    }

    private RawHttp.Response exchange(String method, String target, List<String[]> headers, byte[] body,
                                      boolean contentLength) throws IOException {
        var all = new ArrayList<>(headers);
        if (all.stream().noneMatch(x -> x[0].equals("Host"))) all.addFirst(new String[] {"Host", "127.0.0.1"});
        RawHttp.Response r = RawHttp.exchange("127.0.0.1", envd.server.port(),
                RawHttp.request(method, target, all, body, contentLength), TIMEOUT);
        if (current != null) {
            report.record(current, method, method + " " + target + " (" + (body == null ? 0 : body.length) + " bytes)", r);
        }
        return r;
    }

    static byte[] envelope(int flags, int length, byte[] payload) {
        return ByteBuffer.allocate(5 + payload.length).put((byte) flags).putInt(length).put(payload).array();
    }

    private static byte[] multipart(String boundary, String field, String filename) {
        var out = new ByteArrayOutputStream();
        out.writeBytes(("--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + field + "\"; filename=\""
                + filename + "\"\r\nContent-Type: application/octet-stream\r\n\r\nhello\r\n--" + boundary + "--\r\n")
                .getBytes(StandardCharsets.UTF_8));
        return out.toByteArray();
    }

    static String b64(String s) {
        return Base64.getEncoder().encodeToString(s.getBytes(StandardCharsets.UTF_8));
    }

    static String enc(String s) {
        return java.net.URLEncoder.encode(s, StandardCharsets.UTF_8).replace("+", "%20");
    }

    private static long openDescriptors() throws IOException {
        try (Stream<Path> fds = Files.list(Path.of("/proc/self/fd"))) {
            return fds.count();
        }
    }

    private static boolean sleep() {
        try {
            Thread.sleep(200);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        return true;
    }
}
