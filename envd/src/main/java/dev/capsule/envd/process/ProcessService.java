package dev.capsule.envd.process;

import com.google.protobuf.Message;
import com.pty4j.WinSize;
import dev.capsule.connect.CallContext;
import dev.capsule.connect.Code;
import dev.capsule.connect.ConnectException;
import dev.capsule.connect.ConnectRouter;
import dev.capsule.connect.StreamReceiver;
import dev.capsule.connect.StreamSender;
import dev.capsule.envd.EnvdState;
import dev.capsule.envd.RpcService;
import dev.capsule.envd.rpc.process.CloseStdinRequest;
import dev.capsule.envd.rpc.process.CloseStdinResponse;
import dev.capsule.envd.rpc.process.ConnectRequest;
import dev.capsule.envd.rpc.process.ConnectResponse;
import dev.capsule.envd.rpc.process.ListRequest;
import dev.capsule.envd.rpc.process.ListResponse;
import dev.capsule.envd.rpc.process.ProcessConfig;
import dev.capsule.envd.rpc.process.ProcessEvent;
import dev.capsule.envd.rpc.process.ProcessInput;
import dev.capsule.envd.rpc.process.ProcessSelector;
import dev.capsule.envd.rpc.process.SendInputRequest;
import dev.capsule.envd.rpc.process.SendInputResponse;
import dev.capsule.envd.rpc.process.SendSignalRequest;
import dev.capsule.envd.rpc.process.SendSignalResponse;
import dev.capsule.envd.rpc.process.StartRequest;
import dev.capsule.envd.rpc.process.StartResponse;
import dev.capsule.envd.rpc.process.StreamInputRequest;
import dev.capsule.envd.rpc.process.StreamInputResponse;
import dev.capsule.envd.rpc.process.UpdateRequest;
import dev.capsule.envd.rpc.process.UpdateResponse;
import dev.capsule.envd.users.User;
import dev.capsule.envd.users.UserResolver;

import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import java.util.stream.Collectors;

/**
 * envd's {@code process.Process} service: starts commands as the requested user (pipes or a PTY), streams their
 * output to the Start call and to any Connect calls, and takes input, signals and resizes for them by pid or tag.
 *
 * <p>Commands run through the {@code capsule-exec} helper (see {@code src/main/c/capsule-exec.c}), which gives each
 * its own session and process group and drops to the user's uid, gid and groups; Java cannot do either for a child.
 * The helper is found at the {@value #EXEC_HELPER_PROPERTY} system property, else as {@code capsule-exec} next to the
 * jar (or classes directory) this class was loaded from, which is where the Maven build puts it.
 */
public final class ProcessService implements RpcService {
    public static final String SERVICE = "process.Process";
    /** System property naming the exec helper binary. */
    public static final String EXEC_HELPER_PROPERTY = "capsule.envd.execHelper";
    static final String EXEC_HELPER_NAME = "capsule-exec";
    private static final Duration DEFAULT_KEEPALIVE = Duration.ofSeconds(90);
    private static final Duration SLOW_SUBSCRIBER_LIMIT = Duration.ofSeconds(60);
    private static final String DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

    private final UserResolver users;
    private final EnvdState state;
    private final Path execHelper;
    private final Map<Integer, ManagedProcess> processes = new ConcurrentHashMap<>();
    private final ScheduledExecutorService deadlines = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "envd-process-deadlines");
        t.setDaemon(true);
        return t;
    });

    public ProcessService(UserResolver users, EnvdState state) {
        this(users, state, defaultExecHelper());
    }

    /** With an explicit exec helper binary (tests, or a bundle that keeps it elsewhere). */
    public ProcessService(UserResolver users, EnvdState state, Path execHelper) {
        this.users = users;
        this.state = state;
        this.execHelper = execHelper;
    }

    /** The {@value #EXEC_HELPER_PROPERTY} property, else {@code capsule-exec} beside envd's jar or classes. */
    public static Path defaultExecHelper() {
        String configured = System.getProperty(EXEC_HELPER_PROPERTY);
        if (configured != null && !configured.isBlank()) {
            return Path.of(configured);
        }
        try {
            Path source = Path.of(ProcessService.class.getProtectionDomain().getCodeSource().getLocation().toURI());
            Path dir = source.getParent();
            return dir == null ? Path.of(EXEC_HELPER_NAME) : dir.resolve(EXEC_HELPER_NAME);
        } catch (URISyntaxException | RuntimeException e) {
            return Path.of(EXEC_HELPER_NAME);
        }
    }

    @Override
    public void register(ConnectRouter.Builder router) {
        router.serverStream(SERVICE, "Start", StartRequest.getDefaultInstance(), this::start)
                .serverStream(SERVICE, "Connect", ConnectRequest.getDefaultInstance(), this::connect)
                .unary(SERVICE, "List", ListRequest.getDefaultInstance(), this::list)
                .unary(SERVICE, "SendInput", SendInputRequest.getDefaultInstance(), this::sendInput)
                .unary(SERVICE, "CloseStdin", CloseStdinRequest.getDefaultInstance(), this::closeStdin)
                .unary(SERVICE, "SendSignal", SendSignalRequest.getDefaultInstance(), this::sendSignal)
                .unary(SERVICE, "Update", UpdateRequest.getDefaultInstance(), this::update)
                .clientStream(SERVICE, "StreamInput", StreamInputRequest.getDefaultInstance(), this::streamInput);
    }

    /** Stops the deadline timer; started processes keep running (and are no longer killed at their deadline). */
    @Override
    public void close() {
        deadlines.shutdownNow();
    }

    // ---- Start / Connect ----

    private void start(StartRequest request, CallContext context, StreamSender<StartResponse> out) {
        User user = users.fromAuthorization(context.header("Authorization"));
        ProcessConfig config = request.getProcess();
        if (config.getCmd().isEmpty()) {
            throw new ConnectException(Code.INVALID_ARGUMENT, "process.cmd is empty: name the command to run, e.g. "
                    + "{\"process\":{\"cmd\":\"/bin/bash\",\"args\":[\"-l\",\"-c\",\"echo hi\"]}}");
        }
        if (!Files.isExecutable(execHelper)) {
            throw new ConnectException(Code.INTERNAL, "envd cannot start processes: its exec helper '" + execHelper
                    + "' is missing or not executable; build envd with Maven (it compiles src/main/c/capsule-exec.c) "
                    + "or point -D" + EXEC_HELPER_PROPERTY + " at the binary");
        }
        requireCStrings(config);
        Path cwd;
        Map<String, String> environment = environment(config, user);
        try {
            cwd = workingDirectory(config, user);
            requireCommand(config, environment.get("PATH"), cwd);
        } catch (InvalidPathException e) {
            throw new ConnectException(Code.INVALID_ARGUMENT, "error starting process '" + commandLine(config)
                    + "': the command or cwd is not a valid path (" + e.getReason() + ")");
        }

        WinSize ptySize = null;
        if (request.hasPty()) {
            int cols = request.getPty().getSize().getCols();
            int rows = request.getPty().getSize().getRows();
            ptySize = new WinSize(cols > 0 ? cols : 80, rows > 0 ? rows : 24);
        }
        List<String> command = new ArrayList<>(List.of(execHelper.toString(), Integer.toString(user.uid()),
                Integer.toString(user.gid()),
                user.groups().stream().map(String::valueOf).collect(Collectors.joining(",")), cwd.toString(), "--",
                config.getCmd()));
        command.addAll(config.getArgsList());
        ManagedProcess.Launch launch = new ManagedProcess.Launch(config, request.hasTag() ? request.getTag() : null,
                command, environment, cwd.toString(), !request.hasStdin() || request.getStdin(), ptySize);

        ManagedProcess process;
        try {
            process = ManagedProcess.spawn(launch, new OutputHub(SLOW_SUBSCRIBER_LIMIT));
        } catch (IOException | RuntimeException e) {
            throw spawnFailure(config, cwd, e);
        }
        // Subscribe before the output is read, so that the starting client sees all of it.
        OutputHub.Subscription subscription = process.output().subscribe();
        processes.put(process.pid(), process);
        // E2B documents Connect-Timeout-Ms: 0 as "no limit" for the process.
        boolean unlimited = "0".equals(String.valueOf(context.header("Connect-Timeout-Ms")).trim());
        ScheduledFuture<?> deadline = unlimited ? null
                : context.deadline().map(d -> killAt(process, d)).orElse(null);
        process.run(p -> {
            processes.remove(p.pid(), p);
            if (deadline != null) {
                deadline.cancel(false);
            }
        });
        follow(process, subscription, context, out, event -> StartResponse.newBuilder().setEvent(event).build());
    }

    /**
     * Why a process did not start, as the SDK should see it: {@link Code#RESOURCE_EXHAUSTED} (the SDK's
     * {@code RateLimitError}) when the sandbox has no room for it — its pids limit reached, memory or file descriptors
     * exhausted — else {@link Code#INVALID_ARGUMENT}, E2B's code for a command that cannot start.
     */
    static ConnectException spawnFailure(ProcessConfig config, Path cwd, Exception e) {
        if (e.getCause() instanceof Libc.ErrnoException errno && errno.outOfResources()) {
            return new ConnectException(Code.RESOURCE_EXHAUSTED, "cannot start '" + commandLine(config) + "': the"
                    + " sandbox has no room for another process (" + e.getMessage() + "; its limit on processes,"
                    + " memory or open files is reached); end some processes and retry");
        }
        return new ConnectException(Code.INVALID_ARGUMENT, "error starting process '" + commandLine(config)
                + "' in '" + cwd + "': " + e.getMessage());
    }

    /*
     * Connect-Timeout-Ms bounds the process's life, not just the call (E2B semantics): at the deadline the whole
     * process group is killed, even if the client went away before. A client that merely disconnects leaves the
     * process running.
     */
    private ScheduledFuture<?> killAt(ManagedProcess process, Instant deadline) {
        long delay = Math.max(0, Duration.between(Instant.now(), deadline).toMillis());
        return deadlines.schedule(() -> {
            if (!process.exit().isDone()) {
                process.signal(Libc.SIGKILL);
            }
        }, delay, TimeUnit.MILLISECONDS);
    }

    private void connect(ConnectRequest request, CallContext context, StreamSender<ConnectResponse> out) {
        ManagedProcess process = find(request.getProcess());
        follow(process, process.output().subscribe(), context, out,
                event -> ConnectResponse.newBuilder().setEvent(event).build());
    }

    /** Sends start, then the output as it comes (keepalives in quiet periods), then the end event. */
    private <O extends Message> void follow(ManagedProcess process, OutputHub.Subscription subscription,
                                            CallContext context, StreamSender<O> out,
                                            Function<ProcessEvent, O> wrap) {
        context.onCancel(subscription::close);
        try (subscription) {
            out.send(wrap.apply(ProcessEvent.newBuilder()
                    .setStart(ProcessEvent.StartEvent.newBuilder().setPid(process.pid())).build()));
            Duration keepalive = keepaliveInterval(context);
            ProcessEvent keepaliveEvent = ProcessEvent.newBuilder()
                    .setKeepalive(ProcessEvent.KeepAlive.getDefaultInstance()).build();
            while (true) {
                ProcessEvent event = subscription.next(keepalive);
                out.send(wrap.apply(event != null ? event : keepaliveEvent));
                if (event != null && event.hasEnd()) {
                    return;
                }
            }
        }
    }

    private static Duration keepaliveInterval(CallContext context) {
        String header = context.header("Keepalive-Ping-Interval");
        if (header != null) {
            try {
                long seconds = Long.parseLong(header.trim());
                if (seconds > 0) {
                    return Duration.ofSeconds(seconds);
                }
            } catch (NumberFormatException e) {
                // a malformed interval falls back to the default, as E2B's envd does
            }
        }
        return DEFAULT_KEEPALIVE;
    }

    // ---- unary calls ----

    private ListResponse list(ListRequest request, CallContext context) {
        ListResponse.Builder response = ListResponse.newBuilder();
        processes.values().stream()
                .filter(p -> !p.exit().isDone())
                .sorted(Comparator.comparingInt(ManagedProcess::pid))
                .forEach(p -> response.addProcesses(p.info()));
        return response.build();
    }

    private SendInputResponse sendInput(SendInputRequest request, CallContext context) {
        write(find(request.getProcess()), request.getInput());
        return SendInputResponse.getDefaultInstance();
    }

    private CloseStdinResponse closeStdin(CloseStdinRequest request, CallContext context) {
        find(request.getProcess()).closeStdin();
        return CloseStdinResponse.getDefaultInstance();
    }

    private SendSignalResponse sendSignal(SendSignalRequest request, CallContext context) {
        ManagedProcess process = find(request.getProcess());
        int signal = switch (request.getSignal()) {
            case SIGNAL_SIGKILL -> Libc.SIGKILL;
            case SIGNAL_SIGTERM -> Libc.SIGTERM;
            default -> throw new ConnectException(Code.INVALID_ARGUMENT, "invalid signal " + request.getSignal()
                    + ": send SIGNAL_SIGTERM or SIGNAL_SIGKILL");
        };
        process.signal(signal);
        return SendSignalResponse.getDefaultInstance();
    }

    private UpdateResponse update(UpdateRequest request, CallContext context) {
        ManagedProcess process = find(request.getProcess());
        if (request.hasPty()) {
            int cols = request.getPty().getSize().getCols();
            int rows = request.getPty().getSize().getRows();
            if (cols <= 0 || rows <= 0 || cols > 65535 || rows > 65535) {
                throw new ConnectException(Code.INVALID_ARGUMENT, "invalid PTY size " + cols + "x" + rows
                        + ": cols and rows must be between 1 and 65535");
            }
            process.resize(cols, rows);
        }
        return UpdateResponse.getDefaultInstance();
    }

    private StreamInputResponse streamInput(StreamReceiver<StreamInputRequest> in, CallContext context) {
        ManagedProcess process = null;
        StreamInputRequest message;
        while ((message = in.receive()) != null) {
            switch (message.getEventCase()) {
                case START -> process = find(message.getStart().getProcess());
                case DATA -> {
                    if (process == null) {
                        throw new ConnectException(Code.INVALID_ARGUMENT, "StreamInput got data before a start "
                                + "event: send {\"start\":{\"process\":{\"pid\":N}}} first");
                    }
                    write(process, message.getData().getInput());
                }
                case KEEPALIVE -> { }
                case EVENT_NOT_SET -> throw new ConnectException(Code.INVALID_ARGUMENT,
                        "StreamInput message has no event: send start, data or keepalive");
            }
        }
        return StreamInputResponse.getDefaultInstance();
    }

    private static void write(ManagedProcess process, ProcessInput input) {
        switch (input.getInputCase()) {
            case STDIN -> process.writeStdin(input.getStdin().toByteArray());
            case PTY -> process.writePty(input.getPty().toByteArray());
            case INPUT_NOT_SET -> throw new ConnectException(Code.INVALID_ARGUMENT,
                    "input is empty: send {\"stdin\":\"<base64>\"} or {\"pty\":\"<base64>\"}");
        }
    }

    private ManagedProcess find(ProcessSelector selector) {
        ManagedProcess found = switch (selector.getSelectorCase()) {
            case PID -> {
                ManagedProcess p = processes.get(selector.getPid());
                if (p == null) {
                    throw new ConnectException(Code.NOT_FOUND, "process with pid " + Integer.toUnsignedString(
                            selector.getPid()) + " not found: it may have exited; List shows running processes");
                }
                yield p;
            }
            case TAG -> processes.values().stream()
                    .filter(p -> selector.getTag().equals(p.tag()))
                    .findFirst()
                    .orElseThrow(() -> new ConnectException(Code.NOT_FOUND, "process with tag '"
                            + selector.getTag() + "' not found: it may have exited; List shows running processes"));
            case SELECTOR_NOT_SET -> throw new ConnectException(Code.INVALID_ARGUMENT,
                    "no process selected: send {\"process\":{\"pid\":N}} or {\"process\":{\"tag\":\"...\"}}");
        };
        return found;
    }

    // ---- how a process is set up ----

    private Path workingDirectory(ProcessConfig config, User user) {
        String requested = config.hasCwd() && !config.getCwd().isEmpty() ? config.getCwd() : state.defaultWorkdir();
        Path cwd = requested == null ? user.home() : user.resolve(requested);
        if (!Files.isDirectory(cwd)) {
            throw new ConnectException(Code.INVALID_ARGUMENT, "cwd '" + cwd + "' does not exist or is not a "
                    + "directory: create it first or start the process in an existing directory");
        }
        return cwd;
    }

    /** PATH, HOME, USER, LOGNAME, SHELL for the user; then the sandbox's env vars; then the request's, which win. */
    private Map<String, String> environment(ProcessConfig config, User user) {
        Map<String, String> env = new LinkedHashMap<>();
        String path = System.getenv("PATH");
        env.put("PATH", path == null || path.isEmpty() ? DEFAULT_PATH : path);
        env.put("HOME", user.home().toString());
        env.put("USER", user.name());
        env.put("LOGNAME", user.name());
        env.put("SHELL", user.shell());
        env.putAll(state.envVars());
        env.putAll(config.getEnvsMap());
        return env;
    }

    /**
     * Refuses a NUL character in what becomes C strings for execve — command, arguments, cwd, env names and values —
     * which could not carry it (Go's exec, under E2B's envd, refuses it likewise).
     */
    private static void requireCStrings(ProcessConfig config) {
        List<String> parts = new ArrayList<>(config.getArgsList());
        parts.add(config.getCmd());
        parts.add(config.getCwd());
        config.getEnvsMap().forEach((k, v) -> {
            parts.add(k);
            parts.add(v);
        });
        if (parts.stream().anyMatch(p -> p.indexOf('\0') >= 0)) {
            throw new ConnectException(Code.INVALID_ARGUMENT, "the command, an argument, the cwd or an env var"
                    + " contains a NUL character, which a process cannot be given; remove it");
        }
    }

    /**
     * Refuses a command that cannot be found, as E2B's envd does (Go looks it up before starting), rather than
     * streaming the helper's exit 127. Looked up on the process's own PATH; relative names against its cwd.
     */
    private static void requireCommand(ProcessConfig config, String path, Path cwd) {
        String cmd = config.getCmd();
        if (cmd.contains("/")) {
            if (!Files.exists(cwd.resolve(cmd))) {
                throw new ConnectException(Code.INVALID_ARGUMENT, "error starting process '" + commandLine(config)
                        + "': " + cmd + " does not exist");
            }
            return;
        }
        for (String dir : (path == null ? "" : path).split(":", -1)) {
            Path candidate = cwd.resolve(dir.isEmpty() ? "." : dir).resolve(cmd);
            if (Files.isRegularFile(candidate)) {
                return;
            }
        }
        throw new ConnectException(Code.INVALID_ARGUMENT, "error starting process '" + commandLine(config) + "': "
                + "executable file '" + cmd + "' not found in $PATH (" + path + "); give its full path or fix PATH");
    }

    private static String commandLine(ProcessConfig config) {
        List<String> words = new ArrayList<>();
        words.add(config.getCmd());
        words.addAll(config.getArgsList());
        return String.join(" ", words);
    }
}
