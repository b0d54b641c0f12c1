package dev.capsule.envd.process;

import com.google.protobuf.ByteString;
import com.pty4j.PtyProcess;
import com.pty4j.PtyProcessBuilder;
import com.pty4j.WinSize;
import dev.capsule.connect.Code;
import dev.capsule.connect.ConnectException;
import dev.capsule.envd.rpc.process.ProcessConfig;
import dev.capsule.envd.rpc.process.ProcessEvent;
import dev.capsule.envd.rpc.process.ProcessInfo;

import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Consumer;

/**
 * One process started through the Process service: its launch (pipes or a PTY), its output reader, the thread that
 * waits for its exit, its stdin, and the signals envd sent it. The command runs through the exec helper, which makes
 * it a session leader, so its pid is also its process group id and a signal to the group reaches its children.
 */
final class ManagedProcess {
    private static final int CHUNK_BYTES = 32 * 1024;
    /** After exit, output still in the pipes is read up to this much; more would come from a background child. */
    private static final long DRAIN_AFTER_EXIT_BYTES = 4L * 1024 * 1024;
    /** How long the end waits for a PTY's reader once the process exited (pty4j breaks the read on exit). */
    private static final Duration PTY_READER_GRACE = Duration.ofSeconds(2);

    private final ProcessConfig config;
    private final String tag;
    private final int pid;
    private final PtyProcess pty;
    private final OutputHub output;
    private final Object stdinLock = new Object();
    private OutputStream stdin;
    private final Set<Integer> signalsSent = ConcurrentHashMap.newKeySet();
    private final CompletableFuture<ProcessEvent.EndEvent> exit = new CompletableFuture<>();
    /**
     * Pipe mode: read ends of stdout and stderr, and what tells the reader the process exited: a pidfd, or (on
     * kernels before 5.3) a pipe that a waiter thread writes to.
     */
    private final int stdoutFd;
    private final int stderrFd;
    private final int pidfd;
    private final int[] wake;
    /** Pipe mode without a pidfd: the exit value the waiter thread got. */
    private volatile int waitedExitValue;

    private ManagedProcess(ProcessConfig config, String tag, int pid, PtyProcess pty, OutputStream stdin,
                           int stdoutFd, int stderrFd, int pidfd, int[] wake, OutputHub output) {
        this.config = config;
        this.tag = tag;
        this.pty = pty;
        this.pid = pid;
        this.stdin = stdin;
        this.stdoutFd = stdoutFd;
        this.stderrFd = stderrFd;
        this.pidfd = pidfd;
        this.wake = wake;
        this.output = output;
    }

    /** What to run, as what, where. {@code command} is the full helper command line; {@code ptySize} null = pipes. */
    record Launch(ProcessConfig config, String tag, List<String> command, Map<String, String> environment,
                  String cwd, boolean stdin, WinSize ptySize) {}

    /**
     * Spawns the process; its output is not read until {@link #run} so that a first subscriber misses nothing.
     */
    static ManagedProcess spawn(Launch launch, OutputHub output) throws IOException {
        return launch.ptySize() != null ? spawnPty(launch, output) : spawnPipes(launch, output);
    }

    private static ManagedProcess spawnPty(Launch launch, OutputHub output) throws IOException {
        PtyProcess pty = new PtyProcessBuilder(launch.command().toArray(String[]::new))
                .setEnvironment(launch.environment())
                .setDirectory(launch.cwd())
                .setConsole(false)
                .setRedirectErrorStream(true)
                .setInitialColumns(launch.ptySize().getColumns())
                .setInitialRows(launch.ptySize().getRows())
                .start();
        return new ManagedProcess(launch.config(), launch.tag(), Math.toIntExact(pty.pid()), pty,
                pty.getOutputStream(), -1, -1, -1, null, output);
    }

    /*
     * The process is started with posix_spawn on pipes envd makes itself, not with ProcessBuilder: Java's pipe
     * streams cannot be polled, so a background child that keeps the pipe open (`sleep 100 &`) would keep a reader
     * blocked and the stream from ending (with poll(2) the reader drains what the process wrote and stops when it
     * exits, as E2B's envd does), and ProcessBuilder execs its jspawnhelper before the command, about a millisecond
     * on every command. The exec helper closes every descriptor above 2 that the child inherited.
     */
    private static ManagedProcess spawnPipes(Launch launch, OutputHub output) throws IOException {
        int[] in = null;
        int[] out = null;
        int[] err = null;
        int[] wake = null;
        FileOutputStream stdin = null;
        int pid = -1;
        try {
            out = Libc.pipe();
            err = Libc.pipe();
            if (launch.stdin()) {
                in = Libc.pipe();
                // A stream Java can write from a virtual thread: the pipe's write end, opened again by path.
                stdin = new FileOutputStream("/proc/self/fd/" + in[1]);
                Libc.close(in[1]);
                in[1] = -1;
            }
            pid = Libc.spawn(launch.command(), launch.environment(), in == null ? -1 : in[0], out[1], err[1]);
            Libc.close(out[1]);
            Libc.close(err[1]);
            if (in != null) {
                Libc.close(in[0]);
            }
            int pidfd = Libc.pidfdOpen(pid);
            if (pidfd < 0) {
                wake = Libc.pipe();
            }
            return new ManagedProcess(launch.config(), launch.tag(), pid, null, stdin, out[0], err[0], pidfd, wake,
                    output);
        } catch (Libc.ErrnoException e) {
            closeAll(in, out, err, wake);
            closeQuietly(stdin);
            if (pid > 0) {
                // Cannot watch it: stop it rather than leave an unreaped process nobody follows.
                try {
                    Libc.kill(pid, Libc.SIGKILL);
                    Libc.waitpid(pid, true);
                } catch (Libc.ErrnoException ignored) {
                    // already gone
                }
            }
            throw new IOException("cannot start " + launch.command().getFirst() + ": " + e.getMessage(), e);
        } catch (IOException | RuntimeException e) {
            closeAll(in, out, err, wake);
            closeQuietly(stdin);
            throw e;
        }
    }

    private static void closeAll(int[]... pipes) {
        for (int[] p : pipes) {
            if (p != null) {
                Libc.close(p[0]);
                Libc.close(p[1]);
            }
        }
    }

    private static void closeQuietly(OutputStream stream) {
        if (stream != null) {
            try {
                stream.close();
            } catch (IOException ignored) {
                // nothing was written to it
            }
        }
    }

    /**
     * Starts reading output and waiting for the exit; {@code onExit} runs once, before the end event goes out. In pipe
     * mode one thread does both: it polls the output pipes and the pidfd, so the end follows the exit directly.
     */
    void run(Consumer<ManagedProcess> onExit) {
        if (pty == null) {
            if (pidfd < 0) {
                Thread.ofPlatform().daemon().name("envd-process-" + pid + "-wait").stackSize(64 * 1024)
                        .start(this::awaitExitWithoutPidfd);
            }
            Thread.ofPlatform().daemon().name("envd-process-" + pid + "-output")
                    .start(() -> {
                        int exitValue = readPipes();
                        end(exitValue, onExit);
                    });
            return;
        }
        Thread reader = Thread.ofPlatform().daemon().name("envd-process-" + pid + "-output").start(this::readPty);
        Thread.ofVirtual().name("envd-process-" + pid + "-wait").start(() -> awaitPtyExit(reader, onExit));
    }

    /** Old kernels: a blocking waitpid, then the wake pipe tells the reader. */
    private void awaitExitWithoutPidfd() {
        int exitValue;
        try {
            exitValue = Libc.waitpid(pid, true);
        } catch (Libc.ErrnoException e) {
            System.err.println("envd: waiting for process " + pid + " failed: " + e.getMessage());
            exitValue = -1;
        }
        waitedExitValue = exitValue;
        Libc.writeByte(wake[1]);
    }

    private void awaitPtyExit(Thread reader, Consumer<ManagedProcess> onExit) {
        int exitValue;
        try {
            exitValue = pty.waitFor();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return;
        }
        try {
            reader.join(PTY_READER_GRACE);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        end(exitValue, onExit);
    }

    private void end(int exitValue, Consumer<ManagedProcess> onExit) {
        closeStdinQuietly();
        ProcessEvent.EndEvent end = ExitStatus.endEvent(exitValue, signalsSent);
        try {
            onExit.accept(this);
        } finally {
            exit.complete(end);
            output.finish(ProcessEvent.newBuilder().setEnd(end).build());
        }
    }

    /** Publishes the output until the process exited and its pipes are drained; returns its exit value. */
    private int readPipes() {
        int exitValue = -1;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment pollfds = arena.allocate(Libc.POLLFD, 3);
            MemorySegment buffer = arena.allocate(CHUNK_BYTES);
            int[] fds = {stdoutFd, stderrFd, pidfd >= 0 ? pidfd : wake[0]};
            boolean exited = false;
            long drained = 0;
            while (fds[0] >= 0 || fds[1] >= 0) {
                for (int i = 0; i < 3; i++) {
                    MemorySegment entry = pollfds.asSlice(i * Libc.POLLFD.byteSize(), Libc.POLLFD.byteSize());
                    entry.set(ValueLayout.JAVA_INT, 0, fds[i]);
                    entry.set(ValueLayout.JAVA_SHORT, 4, Libc.POLLIN);
                    entry.set(ValueLayout.JAVA_SHORT, 6, (short) 0);
                }
                int ready = Libc.poll(pollfds, 3, exited ? 0 : -1);
                if (ready == 0 && exited) {
                    break;
                }
                if (fds[2] >= 0 && revents(pollfds, 2) != 0) {
                    exited = true;
                    fds[2] = -1;
                    exitValue = pidfd >= 0 ? Libc.waitpid(pid, true) : waitedExitValue;
                }
                for (int i = 0; i < 2; i++) {
                    if (fds[i] < 0 || revents(pollfds, i) == 0) {
                        continue;
                    }
                    long n = Libc.read(fds[i], buffer);
                    if (n <= 0) {
                        Libc.close(fds[i]);
                        fds[i] = -1;
                        continue;
                    }
                    ByteString bytes = ByteString.copyFrom(buffer.asSlice(0, n).asByteBuffer());
                    ProcessEvent.DataEvent.Builder data = ProcessEvent.DataEvent.newBuilder();
                    output.publish(ProcessEvent.newBuilder()
                            .setData(i == 0 ? data.setStdout(bytes) : data.setStderr(bytes)).build());
                    if (exited && (drained += n) > DRAIN_AFTER_EXIT_BYTES) {
                        break;
                    }
                }
                if (exited && drained > DRAIN_AFTER_EXIT_BYTES) {
                    break;
                }
            }
            Libc.close(fds[0]);
            Libc.close(fds[1]);
            if (!exited) {
                // Both pipes closed before the exit was seen (the process closed them itself): wait for it.
                exitValue = pidfd >= 0 ? Libc.waitpid(pid, true) : awaitWake();
            }
        } catch (Libc.ErrnoException e) {
            Libc.close(stdoutFd);
            Libc.close(stderrFd);
            System.err.println("envd: reading the output of process " + pid + " failed: " + e.getMessage());
        } finally {
            Libc.close(pidfd);
            if (wake != null) {
                Libc.close(wake[0]);
                Libc.close(wake[1]);
            }
        }
        return exitValue;
    }

    /** Old kernels: blocks until the waiter thread saw the exit; its exit value. */
    private int awaitWake() throws Libc.ErrnoException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment pollfd = arena.allocate(Libc.POLLFD);
            pollfd.set(ValueLayout.JAVA_INT, 0, wake[0]);
            pollfd.set(ValueLayout.JAVA_SHORT, 4, Libc.POLLIN);
            while (Libc.poll(pollfd, 1, -1) == 0) {
                // interrupted: poll again
            }
        }
        return waitedExitValue;
    }

    private static short revents(MemorySegment pollfds, int index) {
        return pollfds.get(ValueLayout.JAVA_SHORT, index * Libc.POLLFD.byteSize() + 6);
    }

    private void readPty() {
        byte[] buffer = new byte[CHUNK_BYTES / 2];
        try (InputStream in = pty.getInputStream()) {
            int n;
            while ((n = in.read(buffer)) >= 0) {
                if (n > 0) {
                    output.publish(ProcessEvent.newBuilder().setData(ProcessEvent.DataEvent.newBuilder()
                            .setPty(ByteString.copyFrom(buffer, 0, n))).build());
                }
            }
        } catch (IOException e) {
            // the PTY was closed when the process exited: that is the end of its output
        }
    }

    // ---- what the RPCs do to a running process ----

    int pid() {
        return pid;
    }

    String tag() {
        return tag;
    }

    boolean isPty() {
        return pty != null;
    }

    OutputHub output() {
        return output;
    }

    CompletableFuture<ProcessEvent.EndEvent> exit() {
        return exit;
    }

    ProcessInfo info() {
        ProcessInfo.Builder info = ProcessInfo.newBuilder().setConfig(config).setPid(pid);
        if (tag != null) {
            info.setTag(tag);
        }
        return info.build();
    }

    /**
     * Sends a signal to the process's whole group (its pid: the helper made it a session leader). Falls back to the
     * process alone should it have left its group. Remembered so that a 128+N exit reads as death by that signal.
     */
    void signal(int signal) {
        signalsSent.add(signal);
        try {
            Libc.kill(-pid, signal);
        } catch (Libc.ErrnoException groupGone) {
            try {
                Libc.kill(pid, signal);
            } catch (Libc.ErrnoException alreadyGone) {
                // it exited meanwhile: nothing left to signal
            }
        }
    }

    void writeStdin(byte[] data) {
        if (pty != null) {
            throw new ConnectException(Code.INVALID_ARGUMENT, "process " + pid + " runs in a PTY: send its input as "
                    + "'pty' input, not 'stdin'");
        }
        synchronized (stdinLock) {
            if (stdin == null) {
                throw new ConnectException(Code.FAILED_PRECONDITION, "process " + pid + " has no open stdin: it "
                        + "was started with stdin disabled or its stdin was closed; start it with stdin enabled");
            }
            try {
                stdin.write(data);
                stdin.flush();
            } catch (IOException e) {
                throw new ConnectException(Code.FAILED_PRECONDITION, "cannot write to the stdin of process " + pid
                        + ": " + e.getMessage() + " (it may have closed its stdin or exited)");
            }
        }
    }

    void writePty(byte[] data) {
        if (pty == null) {
            throw new ConnectException(Code.INVALID_ARGUMENT, "process " + pid + " does not run in a PTY: send "
                    + "its input as 'stdin' input, not 'pty'");
        }
        synchronized (stdinLock) {
            try {
                stdin.write(data);
                stdin.flush();
            } catch (IOException e) {
                throw new ConnectException(Code.FAILED_PRECONDITION, "cannot write to the PTY of process " + pid
                        + ": " + e.getMessage() + " (it may have exited)");
            }
        }
    }

    void closeStdin() {
        if (pty != null) {
            throw new ConnectException(Code.INVALID_ARGUMENT, "process " + pid + " runs in a PTY, which has no "
                    + "stdin to close: send Ctrl+D (0x04) as pty input to signal end of input");
        }
        closeStdinQuietly();
    }

    private void closeStdinQuietly() {
        synchronized (stdinLock) {
            if (stdin != null && pty == null) {
                try {
                    stdin.close();
                } catch (IOException e) {
                    // the process already closed its end
                }
                stdin = null;
            }
        }
    }

    void resize(int cols, int rows) {
        if (pty == null) {
            throw new ConnectException(Code.INVALID_ARGUMENT, "process " + pid + " does not run in a PTY, so it "
                    + "has no terminal size to update");
        }
        try {
            pty.setWinSize(new WinSize(cols, rows));
        } catch (RuntimeException e) {
            throw new ConnectException(Code.INTERNAL, "cannot resize the PTY of process " + pid + " to " + cols
                    + "x" + rows + ": " + e.getMessage());
        }
    }
}
