package dev.capsule.envd.process;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.capsule.connect.ConnectRouter;
import dev.capsule.envd.EnvdState;
import dev.capsule.envd.users.UserResolver;
import dev.capsule.envd.users.Users;
import io.vertx.core.Vertx;
import io.vertx.core.http.HttpServer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/** The Process service over real HTTP, with real processes, as real users. */
class ProcessServiceTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Duration WAIT = Duration.ofSeconds(30);

    @TempDir
    Path tmp;
    private Path userHome;
    private Vertx vertx;
    private HttpServer server;
    private ConnectRouter router;
    private ProcessService service;
    private EnvdState state;
    private HttpClient http;
    private String base;
    private final List<Long> pids = new ArrayList<>();
    private final List<Stream> streams = new ArrayList<>();

    @BeforeEach
    void setUp() throws Exception {
        Files.setPosixFilePermissions(tmp, PosixFilePermissions.fromString("rwxr-xr-x"));
        userHome = Files.createDirectories(tmp.resolve("home/user"));
        Files.setPosixFilePermissions(tmp.resolve("home"), PosixFilePermissions.fromString("rwxr-xr-x"));
        Files.setAttribute(userHome, "unix:uid", 1000);
        Files.setAttribute(userHome, "unix:gid", 1000);
        Path rootHome = Files.createDirectories(tmp.resolve("roothome"));
        Path passwd = Files.writeString(tmp.resolve("passwd"), """
                root:x:0:0:root:%s:/bin/bash
                user:x:1000:1000::%s:/bin/bash
                """.formatted(rootHome, userHome));
        Path group = Files.writeString(tmp.resolve("group"), """
                root:x:0:
                user:x:1000:
                devs:x:2000:user
                """);
        state = new EnvdState("root");
        service = new ProcessService(new UserResolver(new Users(passwd, group), state), state);
        ConnectRouter.Builder builder = ConnectRouter.builder();
        service.register(builder);
        router = builder.build();
        vertx = Vertx.vertx();
        server = vertx.createHttpServer().requestHandler(router).listen(0).toCompletionStage()
                .toCompletableFuture().get(10, TimeUnit.SECONDS);
        base = "http://127.0.0.1:" + server.actualPort();
        http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
    }

    @AfterEach
    void tearDown() throws Exception {
        for (Stream s : streams) {
            s.close();
        }
        for (long pid : pids) {
            ProcessHandle.of(pid).ifPresent(p -> {
                p.descendants().forEach(ProcessHandle::destroyForcibly);
                p.destroyForcibly();
            });
        }
        service.close();
        router.close();
        server.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
        vertx.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
        http.close();
    }

    // ---- pipes ----

    @Test
    void runsACommandAndStreamsItsOutputAndExit() throws Exception {
        Stream s = start(process("/bin/echo", "hello", "world"), null);
        Result r = s.untilEnd();
        assertThat(r.stdout()).isEqualTo("hello world\n");
        assertThat(r.end().path("exitCode").asInt()).isZero();
        assertThat(r.end().path("exited").asBoolean()).isTrue();
        assertThat(r.end().path("status").asText()).isEqualTo("exit status 0");
        assertThat(r.end().has("error")).isFalse();
        assertThat(r.error()).isNull();
    }

    @Test
    void reportsANonZeroExitAsGoDoes() throws Exception {
        Result r = start(process("/bin/sh", "-c", "echo oops >&2; exit 1"), null).untilEnd();
        assertThat(r.stderr()).isEqualTo("oops\n");
        assertThat(r.stdout()).isEmpty();
        assertThat(r.end().path("exitCode").asInt()).isEqualTo(1);
        assertThat(r.end().path("exited").asBoolean()).isTrue();
        assertThat(r.end().path("status").asText()).isEqualTo("exit status 1");
        assertThat(r.end().path("error").asText()).isEqualTo("exit status 1");
    }

    @Test
    void requestEnvsWinOverSandboxEnvsWhichWinOverTheUsersDefaults() throws Exception {
        state.setEnvVars(Map.of("FROM_STATE", "state", "SHARED", "state", "HOME", "/nope"));
        ObjectNode p = process("/bin/sh", "-c", "echo $FROM_STATE $SHARED $ONLY_REQUEST; echo $USER $LOGNAME $SHELL");
        p.putObject("envs").put("SHARED", "request").put("ONLY_REQUEST", "req");
        Result r = start(p, null).untilEnd();
        assertThat(r.stdout()).isEqualTo("state request req\nroot root /bin/bash\n");

        Result home = start(process("/bin/sh", "-c", "echo $HOME; echo $PATH"), null).untilEnd();
        assertThat(home.stdout()).startsWith("/nope\n").doesNotContain("\n\n");
    }

    @Test
    void runsInTheRequestedOrDefaultWorkingDirectory() throws Exception {
        Path dir = Files.createDirectories(tmp.resolve("work dir"));
        ObjectNode p = process("/bin/pwd");
        p.put("cwd", dir.toString());
        assertThat(start(p, null).untilEnd().stdout()).isEqualTo(dir + "\n");

        // relative to the user's home
        Files.createDirectories(userHome.resolve("project"));
        ObjectNode relative = process("/bin/pwd");
        relative.put("cwd", "project");
        assertThat(start(relative, "user").untilEnd().stdout()).isEqualTo(userHome.resolve("project") + "\n");

        // no cwd: the sandbox's default workdir, else the home
        assertThat(start(process("/bin/pwd"), "user").untilEnd().stdout()).isEqualTo(userHome + "\n");
        state.setDefaultWorkdir(dir.toString());
        assertThat(start(process("/bin/pwd"), "user").untilEnd().stdout()).isEqualTo(dir + "\n");
    }

    @Test
    void refusesAMissingWorkingDirectory() throws Exception {
        ObjectNode p = process("/bin/pwd");
        p.put("cwd", tmp.resolve("missing").toString());
        Result r = start(p, null).untilEnd();
        assertThat(r.events()).isEmpty();
        assertThat(r.error().path("code").asText()).isEqualTo("invalid_argument");
        assertThat(r.error().path("message").asText()).contains("missing").contains("does not exist");
    }

    @Test
    void refusesUnknownUsersMissingCommandsAndEmptyRequests() throws Exception {
        Result unknown = start(process("/bin/true"), "nobody-here").untilEnd();
        assertThat(unknown.error().path("code").asText()).isEqualTo("unauthenticated");
        assertThat(unknown.error().path("message").asText()).contains("nobody-here");

        Result missing = start(process("no-such-command-xyz"), null).untilEnd();
        assertThat(missing.error().path("code").asText()).isEqualTo("invalid_argument");
        assertThat(missing.error().path("message").asText()).contains("no-such-command-xyz");

        Result empty = start(JSON.createObjectNode(), null).untilEnd();
        assertThat(empty.error().path("code").asText()).isEqualTo("invalid_argument");
    }

    @Test
    void runsAsTheRequestedNonRootUserWithItsGroups() throws Exception {
        ObjectNode p = process("/bin/sh", "-c", "id -u; id -g; id -G; echo $HOME $USER; touch created; pwd");
        Result r = start(p, "user").untilEnd();
        assertThat(r.stdout()).isEqualTo("1000\n1000\n1000 2000\n" + userHome + " user\n" + userHome + "\n");
        assertThat(r.end().path("exitCode").asInt()).isZero();
        assertThat(Files.getAttribute(userHome.resolve("created"), "unix:uid")).isEqualTo(1000);
        assertThat(Files.getAttribute(userHome.resolve("created"), "unix:gid")).isEqualTo(1000);

        // and really cannot do what root can
        Result denied = start(process("/bin/sh", "-c", "touch /root-only-" + ProcessHandle.current().pid()),
                "user").untilEnd();
        assertThat(denied.end().path("exitCode").asInt()).isNotZero();
        assertThat(denied.stderr()).contains("Permission denied");
    }

    @Test
    void eachProcessLeadsItsOwnSessionAndGroup() throws Exception {
        Result r = start(process("/bin/sh", "-c", "echo $$; ps -o pid=,pgid=,sid= -p $$ 2>/dev/null || "
                + "cut -d' ' -f5,6 /proc/$$/stat"), null).untilEnd();
        String pid = r.stdout().lines().findFirst().orElseThrow();
        assertThat(r.startPid()).isEqualTo(Long.parseLong(pid));
        List<String> ids = List.of(r.stdout().lines().skip(1).findFirst().orElseThrow().trim().split("\\s+"));
        assertThat(ids).endsWith(pid, pid);
    }

    @Test
    void stdinCanBeFedClosedOrLeftOut() throws Exception {
        ObjectNode req = JSON.createObjectNode();
        req.set("process", process("/bin/cat"));
        Stream s = stream("Start", req, null, Map.of());
        long pid = s.startPid();
        assertThat(unary("SendInput", Map.of("process", Map.of("pid", pid),
                "input", Map.of("stdin", b64("line one\n")))).status()).isEqualTo(200);
        s.awaitStdout("line one\n");
        assertThat(unary("CloseStdin", Map.of("process", Map.of("pid", pid))).status()).isEqualTo(200);
        Result r = s.untilEnd();
        assertThat(r.end().path("status").asText()).isEqualTo("exit status 0");

        // stdin:false -> cat sees end of input at once
        req.put("stdin", false);
        Result noStdin = stream("Start", req, null, Map.of()).untilEnd();
        assertThat(noStdin.end().path("exitCode").asInt()).isZero();
    }

    @Test
    void aCommandGetsOnlyStdinStdoutAndStderrFromEnvd() throws Exception {
        // A second process with open stdin first: its pipe must not leak into the next one.
        ObjectNode cat = JSON.createObjectNode();
        cat.set("process", process("/bin/cat"));
        Stream other = stream("Start", cat, null, Map.of());
        long otherPid = other.startPid();
        // The shell's own fds: what /proc/$$/fd lists, apart from the one ls opens to read it (not the shell's).
        Result r = start(process("/bin/sh", "-c", "ls /proc/$$/fd"), null).untilEnd();
        assertThat(r.stdout().lines().toList()).containsExactlyInAnyOrder("0", "1", "2");

        // Had the earlier command's stdin pipe leaked into this one's, cat would never see end of input.
        assertThat(unary("CloseStdin", Map.of("process", Map.of("pid", otherPid))).status()).isEqualTo(200);
        assertThat(other.untilEnd().end().path("status").asText()).isEqualTo("exit status 0");
    }

    @Test
    void streamInputFeedsStdin() throws Exception {
        ObjectNode req = JSON.createObjectNode();
        req.set("process", process("/bin/cat"));
        req.put("tag", "streamed");
        Stream s = stream("Start", req, null, Map.of());
        s.startPid();
        byte[] body = concat(envelope(Map.of("start", Map.of("process", Map.of("tag", "streamed")))),
                envelope(Map.of("keepalive", Map.of())),
                envelope(Map.of("data", Map.of("input", Map.of("stdin", b64("via stream\n"))))));
        HttpResponse<byte[]> response = http.send(HttpRequest.newBuilder(URI.create(base
                        + "/process.Process/StreamInput"))
                .header("Content-Type", "application/connect+json")
                .POST(HttpRequest.BodyPublishers.ofByteArray(body)).build(), HttpResponse.BodyHandlers.ofByteArray());
        assertThat(response.statusCode()).isEqualTo(200);
        assertThat(new String(response.body(), StandardCharsets.UTF_8)).doesNotContain("error");
        s.awaitStdout("via stream\n");
        unary("CloseStdin", Map.of("process", Map.of("tag", "streamed")));
        assertThat(s.untilEnd().end().path("exitCode").asInt()).isZero();
    }

    @Test
    void backgroundProcessIsListedAndFollowedByTwoConnectedClients() throws Exception {
        ObjectNode req = JSON.createObjectNode();
        ObjectNode p = process("/bin/cat");
        p.putObject("envs").put("X", "1");
        p.put("cwd", tmp.toString());
        req.set("process", p);
        req.put("tag", "bg-cat");
        Stream owner = stream("Start", req, null, Map.of());
        long pid = owner.startPid();

        Stream byPid = stream("Connect", Map.of("process", Map.of("pid", pid)), null, Map.of());
        Stream byTag = stream("Connect", Map.of("process", Map.of("tag", "bg-cat")), null, Map.of());
        assertThat(byPid.startPid()).isEqualTo(pid);
        assertThat(byTag.startPid()).isEqualTo(pid);

        JsonNode listed = listed(pid);
        assertThat(listed.path("tag").asText()).isEqualTo("bg-cat");
        assertThat(listed.path("config").path("cmd").asText()).isEqualTo("/bin/cat");
        assertThat(listed.path("config").path("envs").path("X").asText()).isEqualTo("1");
        assertThat(listed.path("config").path("cwd").asText()).isEqualTo(tmp.toString());

        unary("SendInput", Map.of("process", Map.of("pid", pid), "input", Map.of("stdin", b64("to all\n"))));
        owner.awaitStdout("to all\n");
        byPid.awaitStdout("to all\n");
        byTag.awaitStdout("to all\n");

        unary("CloseStdin", Map.of("process", Map.of("pid", pid)));
        for (Stream s : List.of(owner, byPid, byTag)) {
            assertThat(s.untilEnd().end().path("status").asText()).isEqualTo("exit status 0");
        }
        await().atMost(WAIT).until(() -> listed(pid) == null);
        assertThat(stream("Connect", Map.of("process", Map.of("pid", pid)), null, Map.of()).untilEnd().error()
                .path("code").asText()).isEqualTo("not_found");
    }

    @Test
    void sigkillKillsTheWholeGroupAndReadsAsGoSignalDeath() throws Exception {
        Stream s = start(process("/bin/sh", "-c", "sleep 1000 & echo $!; wait"), null);
        long pid = s.startPid();
        long child = Long.parseLong(s.awaitStdoutLine().trim());
        pids.add(child);
        assertThat(alive(child)).isTrue();

        assertThat(unary("SendSignal", Map.of("process", Map.of("pid", pid), "signal", "SIGNAL_SIGKILL")).status())
                .isEqualTo(200);
        Result r = s.untilEnd();
        assertThat(r.end().path("status").asText()).isEqualTo("signal: killed");
        assertThat(r.end().path("exitCode").asInt()).isEqualTo(-1);
        assertThat(r.end().path("exited").asBoolean()).isFalse();
        await().atMost(WAIT).until(() -> !alive(child));
    }

    @Test
    void sigtermReadsAsTerminated() throws Exception {
        Stream s = start(process("/bin/sleep", "1000"), null);
        long pid = s.startPid();
        unary("SendSignal", Map.of("process", Map.of("pid", pid), "signal", "SIGNAL_SIGTERM"));
        assertThat(s.untilEnd().end().path("status").asText()).isEqualTo("signal: terminated");
    }

    @Test
    void aCommandThatExitsWith137ItselfIsNotReportedAsKilled() throws Exception {
        Result r = start(process("/bin/sh", "-c", "exit 137"), null).untilEnd();
        assertThat(r.end().path("status").asText()).isEqualTo("exit status 137");
        assertThat(r.end().path("exited").asBoolean()).isTrue();
    }

    @Test
    void theStreamEndsWhenTheProcessExitsEvenIfABackgroundChildKeepsItsOutputOpen() throws Exception {
        Stream s = start(process("/bin/sh", "-c", "sleep 1000 & echo $!"), null);
        long child = Long.parseLong(s.awaitStdoutLine().trim());
        pids.add(child);
        assertThat(s.untilEnd().end().path("status").asText()).isEqualTo("exit status 0");
        assertThat(alive(child)).isTrue();
    }

    @Test
    void theDeadlineKillsTheProcessGroup() throws Exception {
        Stream s = stream("Start", Map.of("process", Map.of("cmd", "/bin/sh",
                "args", List.of("-c", "sleep 1000 & echo $!; wait"))), null, Map.of("Connect-Timeout-Ms", "3000"));
        long pid = s.startPid();
        Stream watcher = stream("Connect", Map.of("process", Map.of("pid", pid)), null, Map.of());
        watcher.startPid();
        long child = Long.parseLong(s.awaitStdoutLine().trim());
        pids.add(child);
        Result owner = s.untilEnd();
        assertThat(owner.error().path("code").asText()).isEqualTo("deadline_exceeded");
        assertThat(watcher.untilEnd().end().path("status").asText()).isEqualTo("signal: killed");
        await().atMost(WAIT).until(() -> !alive(child));
    }

    @Test
    void aClientThatDisconnectsLeavesTheProcessRunning() throws Exception {
        Stream s = start(process("/bin/cat"), null);
        long pid = s.startPid();
        s.close();
        // give the server time to notice the disconnect, then prove the process still works
        Thread.sleep(500);
        assertThat(listed(pid)).isNotNull();
        Stream again = stream("Connect", Map.of("process", Map.of("pid", pid)), null, Map.of());
        again.startPid();
        unary("SendInput", Map.of("process", Map.of("pid", pid), "input", Map.of("stdin", b64("still here\n"))));
        again.awaitStdout("still here\n");
        unary("SendSignal", Map.of("process", Map.of("pid", pid), "signal", "SIGNAL_SIGKILL"));
        assertThat(again.untilEnd().end().path("status").asText()).isEqualTo("signal: killed");
    }

    @Test
    void keepalivesFlowWhenTheProcessIsQuiet() throws Exception {
        Stream s = stream("Start", Map.of("process", Map.of("cmd", "/bin/sleep", "args", List.of("1000"))), null,
                Map.of("Keepalive-Ping-Interval", "1"));
        long pid = s.startPid();
        JsonNode event = s.next();
        assertThat(event.path("event").has("keepalive")).isTrue();
        unary("SendSignal", Map.of("process", Map.of("pid", pid), "signal", "SIGNAL_SIGKILL"));
        s.untilEnd();
    }

    @Test
    void rejectsBadInputsWithPreciseCodes() throws Exception {
        Map<String, Object> nobody = Map.of("pid", 999_999_999);
        assertThat(unary("SendInput", Map.of("process", nobody, "input", Map.of("stdin", b64("x")))).code())
                .isEqualTo("not_found");
        assertThat(unary("SendSignal", Map.of("process", nobody, "signal", "SIGNAL_SIGKILL")).code())
                .isEqualTo("not_found");
        assertThat(unary("CloseStdin", Map.of("process", Map.of("tag", "nope"))).code()).isEqualTo("not_found");
        assertThat(unary("Update", Map.of("process", nobody)).code()).isEqualTo("not_found");
        assertThat(unary("SendInput", Map.of("input", Map.of("stdin", b64("x")))).code())
                .isEqualTo("invalid_argument");

        Stream s = start(process("/bin/cat"), null);
        long pid = s.startPid();
        Map<String, Object> cat = Map.of("pid", pid);
        assertThat(unary("SendInput", Map.of("process", cat, "input", Map.of("pty", b64("x")))).code())
                .isEqualTo("invalid_argument");
        assertThat(unary("Update", Map.of("process", cat, "pty", Map.of("size", Map.of("cols", 10, "rows", 10))))
                .code()).isEqualTo("invalid_argument");
        assertThat(unary("SendSignal", Map.of("process", cat, "signal", "SIGNAL_UNSPECIFIED")).code())
                .isEqualTo("invalid_argument");
        unary("CloseStdin", Map.of("process", cat));
        assertThat(unary("SendInput", Map.of("process", cat, "input", Map.of("stdin", b64("x")))).code())
                .isIn("failed_precondition", "not_found");
        s.untilEnd();
    }

    // ---- PTY ----

    @Test
    void ptyShellTakesInputResizesAndDies() throws Exception {
        ObjectNode p = process("/bin/bash", "--norc", "--noprofile", "-i");
        p.putObject("envs").put("TERM", "xterm-256color").put("PS1", "$ ");
        ObjectNode req = JSON.createObjectNode();
        req.set("process", p);
        req.putObject("pty").putObject("size").put("cols", 80).put("rows", 24);
        Stream s = stream("Start", req, "user", Map.of());
        long pid = s.startPid();
        Map<String, Object> sel = Map.of("pid", pid);

        assertThat(unary("SendInput", Map.of("process", sel, "input", Map.of("pty", b64("stty size\n"))))
                .status()).isEqualTo(200);
        s.awaitPty("24 80");
        assertThat(unary("Update", Map.of("process", sel, "pty", Map.of("size", Map.of("cols", 100, "rows", 40))))
                .status()).isEqualTo(200);
        unary("SendInput", Map.of("process", sel, "input", Map.of("pty", b64("stty size; echo $((6*7)); id -u\n"))));
        s.awaitPty("40 100");
        s.awaitPty("42");
        s.awaitPty("1000");

        assertThat(unary("SendInput", Map.of("process", sel, "input", Map.of("stdin", b64("x")))).code())
                .isEqualTo("invalid_argument");
        assertThat(unary("CloseStdin", Map.of("process", sel)).code()).isEqualTo("invalid_argument");

        unary("SendSignal", Map.of("process", sel, "signal", "SIGNAL_SIGKILL"));
        Result r = s.untilEnd();
        assertThat(r.end().path("status").asText()).isEqualTo("signal: killed");
        await().atMost(WAIT).until(() -> listed(pid) == null);
    }

    @Test
    void ptyCommandOutputAndExitCodeArrive() throws Exception {
        ObjectNode req = JSON.createObjectNode();
        req.set("process", process("/bin/sh", "-c", "echo from-pty; exit 3"));
        req.putObject("pty").putObject("size").put("cols", 80).put("rows", 24);
        Result r = stream("Start", req, null, Map.of()).untilEnd();
        assertThat(r.pty()).contains("from-pty");
        assertThat(r.end().path("status").asText()).isEqualTo("exit status 3");
    }

    // ---- client plumbing ----

    private static ObjectNode process(String cmd, String... args) {
        ObjectNode p = JSON.createObjectNode().put("cmd", cmd);
        for (String a : args) {
            p.withArray("args").add(a);
        }
        return p;
    }

    private Stream start(ObjectNode process, String user) throws Exception {
        ObjectNode req = JSON.createObjectNode();
        req.set("process", process);
        return stream("Start", req, user, Map.of());
    }

    private Stream stream(String method, Object request, String user, Map<String, String> headers)
            throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(base + "/process.Process/" + method))
                .header("Content-Type", "application/connect+json")
                .header("Connect-Protocol-Version", "1")
                .POST(HttpRequest.BodyPublishers.ofByteArray(envelope(request)));
        if (user != null) {
            b.header("Authorization", basic(user));
        }
        headers.forEach(b::header);
        HttpResponse<InputStream> response = http.send(b.build(), HttpResponse.BodyHandlers.ofInputStream());
        assertThat(response.statusCode()).isEqualTo(200);
        Stream s = new Stream(response.body());
        streams.add(s);
        return s;
    }

    private record Reply(int status, JsonNode body) {
        String code() {
            return body.path("code").asText();
        }
    }

    private Reply unary(String method, Object request) throws Exception {
        HttpResponse<String> response = http.send(HttpRequest.newBuilder(URI.create(base + "/process.Process/"
                        + method))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofByteArray(JSON.writeValueAsBytes(request))).build(),
                HttpResponse.BodyHandlers.ofString());
        return new Reply(response.statusCode(), JSON.readTree(response.body()));
    }

    private JsonNode listed(long pid) throws Exception {
        Reply r = unary("List", Map.of());
        assertThat(r.status()).isEqualTo(200);
        for (JsonNode p : r.body().path("processes")) {
            if (p.path("pid").asLong() == pid) {
                return p;
            }
        }
        return null;
    }

    private static boolean alive(long pid) {
        try {
            String stat = Files.readString(Path.of("/proc/" + pid + "/stat"));
            return stat.charAt(stat.lastIndexOf(')') + 2) != 'Z';
        } catch (IOException e) {
            return false;
        }
    }

    private static String basic(String user) {
        return "Basic " + Base64.getEncoder().encodeToString((user + ":").getBytes(StandardCharsets.UTF_8));
    }

    private static String b64(String s) {
        return Base64.getEncoder().encodeToString(s.getBytes(StandardCharsets.UTF_8));
    }

    private static byte[] envelope(Object message) throws IOException {
        byte[] json = JSON.writeValueAsBytes(message);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(0);
        out.write(json.length >>> 24);
        out.write(json.length >>> 16);
        out.write(json.length >>> 8);
        out.write(json.length);
        out.write(json);
        return out.toByteArray();
    }

    private static byte[] concat(byte[]... parts) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (byte[] p : parts) {
            out.writeBytes(p);
        }
        return out.toByteArray();
    }

    /** What a stream carried: its events before the end, the end event, and the end-of-stream error if any. */
    private record Result(long startPid, List<JsonNode> events, JsonNode end, JsonNode error) {
        String stdout() {
            return collect("stdout");
        }

        String stderr() {
            return collect("stderr");
        }

        String pty() {
            return collect("pty");
        }

        private String collect(String kind) {
            StringBuilder b = new StringBuilder();
            for (JsonNode e : events) {
                JsonNode data = e.path("event").path("data");
                if (data.has(kind)) {
                    b.append(new String(Base64.getDecoder().decode(data.get(kind).asText()), StandardCharsets.UTF_8));
                }
            }
            return b.toString();
        }
    }

    /** A server stream read envelope by envelope, on the test thread. */
    private static final class Stream implements AutoCloseable {
        private final DataInputStream in;
        private final List<JsonNode> events = new ArrayList<>();
        private final StringBuilder seen = new StringBuilder();
        private long startPid = -1;
        private int consumedLines;

        Stream(InputStream in) {
            this.in = new DataInputStream(in);
        }

        /** The next message, or null at end of stream (after which {@link #error} is set). */
        private JsonNode error;
        private boolean ended;

        JsonNode next() throws IOException {
            if (ended) {
                return null;
            }
            int flags;
            try {
                flags = in.readUnsignedByte();
            } catch (EOFException e) {
                ended = true;
                return null;
            }
            int length = in.readInt();
            byte[] payload = in.readNBytes(length);
            JsonNode node = JSON.readTree(payload);
            if ((flags & 0x02) != 0) {
                ended = true;
                error = node.has("error") ? node.get("error") : null;
                return null;
            }
            JsonNode event = node.path("event");
            if (event.has("start")) {
                startPid = event.path("start").path("pid").asLong();
            } else {
                events.add(node);
                for (String kind : List.of("stdout", "stderr", "pty")) {
                    if (event.path("data").has(kind)) {
                        seen.append(new String(Base64.getDecoder().decode(event.path("data").get(kind).asText()),
                                StandardCharsets.UTF_8));
                    }
                }
            }
            return node;
        }

        long startPid() throws IOException {
            JsonNode first = next();
            assertThat(first).as("first message").isNotNull();
            assertThat(first.path("event").has("start")).as("first event is start: " + first).isTrue();
            return startPid;
        }

        void awaitStdout(String text) throws IOException {
            awaitSeen(text);
        }

        void awaitPty(String text) throws IOException {
            awaitSeen(text);
        }

        private void awaitSeen(String text) throws IOException {
            while (seen.indexOf(text) < 0) {
                if (next() == null) {
                    throw new AssertionError("stream ended without '" + text + "'; saw: " + seen);
                }
            }
        }

        String awaitStdoutLine() throws IOException {
            while (seen.toString().lines().count() <= consumedLines || !seen.toString().contains("\n")) {
                if (next() == null) {
                    throw new AssertionError("stream ended without a line; saw: " + seen);
                }
            }
            return seen.toString().lines().skip(consumedLines++).findFirst().orElseThrow();
        }

        Result untilEnd() throws IOException {
            JsonNode end = null;
            JsonNode node;
            while ((node = next()) != null) {
                if (node.path("event").has("end")) {
                    end = node.path("event").path("end");
                    events.remove(node);
                }
            }
            if (startPid < 0 && end == null && error == null) {
                throw new AssertionError("stream carried nothing");
            }
            List<JsonNode> data = events.stream().filter(e -> e.path("event").has("data")).toList();
            return new Result(startPid, data, end, error);
        }

        @Override
        public void close() {
            try {
                in.close();
            } catch (IOException ignored) {
                // already closed
            }
        }
    }
}
