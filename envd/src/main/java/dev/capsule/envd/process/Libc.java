package dev.capsule.envd.process;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The few libc calls the process service needs and Java lacks: signalling a whole process group, pipes whose read
 * ends can be polled (so output stops when a process exits even if a background child still holds the pipe), and
 * starting a process with posix_spawn and waiting for it through a pidfd (Java's ProcessBuilder execs an extra helper
 * program, jspawnhelper, for every process: about a millisecond on each command's latency). Called through the FFM
 * API; run the JVM with {@code --enable-native-access=ALL-UNNAMED} to silence its warning.
 */
final class Libc {
    static final int SIGKILL = 9;
    static final int SIGTERM = 15;
    static final int ESRCH = 3;
    static final int EINTR = 4;
    static final int EAGAIN = 11;
    static final int ENOMEM = 12;
    static final int ENFILE = 23;
    static final int EMFILE = 24;
    static final int ENOSYS = 38;
    static final int O_RDONLY = 0;
    static final int WNOHANG = 1;
    /** pidfd_open(2)'s system call number: the same on x86_64 and aarch64 (both use the unified table from 424 on). */
    private static final long SYS_PIDFD_OPEN = 434;
    /** Room for glibc's posix_spawn_file_actions_t (80 bytes on 64-bit), with a margin. */
    private static final long FILE_ACTIONS_BYTES = 256;
    static final short POLLIN = 0x1;
    static final short POLLERR = 0x8;
    static final short POLLHUP = 0x10;
    static final short POLLNVAL = 0x20;
    private static final int O_CLOEXEC = 0x80000;

    private static final Linker LINKER = Linker.nativeLinker();
    private static final SymbolLookup LOOKUP = LINKER.defaultLookup();
    private static final StructLayout CAPTURE = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO =
            CAPTURE.varHandle(MemoryLayout.PathElement.groupElement("errno")).withInvokeExactBehavior();
    /** struct pollfd { int fd; short events; short revents; } */
    static final StructLayout POLLFD = MemoryLayout.structLayout(
            ValueLayout.JAVA_INT.withName("fd"), ValueLayout.JAVA_SHORT.withName("events"),
            ValueLayout.JAVA_SHORT.withName("revents"));

    private static final MethodHandle KILL = downcall("kill",
            FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));
    private static final MethodHandle PIPE2 = downcall("pipe2",
            FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_INT));
    private static final MethodHandle POLL = downcall("poll",
            FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG,
                    ValueLayout.JAVA_INT));
    private static final MethodHandle READ = downcall("read",
            FunctionDescriptor.of(ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT, ValueLayout.ADDRESS,
                    ValueLayout.JAVA_LONG));
    private static final MethodHandle WRITE = downcall("write",
            FunctionDescriptor.of(ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT, ValueLayout.ADDRESS,
                    ValueLayout.JAVA_LONG));
    private static final MethodHandle CLOSE = downcall("close",
            FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));
    private static final MethodHandle WAITPID = downcall("waitpid",
            FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.ADDRESS,
                    ValueLayout.JAVA_INT));
    private static final MethodHandle PIDFD_OPEN = LINKER.downcallHandle(
            LOOKUP.find("syscall").orElseThrow(() -> new UnsatisfiedLinkError("libc has no 'syscall'")),
            FunctionDescriptor.of(ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG,
                    ValueLayout.JAVA_LONG),
            Linker.Option.firstVariadicArg(1), Linker.Option.captureCallState("errno"));
    // posix_spawn and its file actions return an error number rather than setting errno.
    private static final MethodHandle SPAWN = LINKER.downcallHandle(find("posix_spawn"),
            FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.ADDRESS,
                    ValueLayout.ADDRESS, ValueLayout.ADDRESS, ValueLayout.ADDRESS, ValueLayout.ADDRESS));
    private static final MethodHandle ACTIONS_INIT = LINKER.downcallHandle(
            find("posix_spawn_file_actions_init"), FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS));
    private static final MethodHandle ACTIONS_DESTROY = LINKER.downcallHandle(
            find("posix_spawn_file_actions_destroy"),
            FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS));
    private static final MethodHandle ACTIONS_DUP2 = LINKER.downcallHandle(
            find("posix_spawn_file_actions_adddup2"), FunctionDescriptor.of(ValueLayout.JAVA_INT,
                    ValueLayout.ADDRESS, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));
    private static final MethodHandle ACTIONS_OPEN = LINKER.downcallHandle(
            find("posix_spawn_file_actions_addopen"), FunctionDescriptor.of(ValueLayout.JAVA_INT,
                    ValueLayout.ADDRESS, ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_INT,
                    ValueLayout.JAVA_INT));

    private Libc() {}

    private static MethodHandle downcall(String name, FunctionDescriptor descriptor) {
        return LINKER.downcallHandle(find(name), descriptor, Linker.Option.captureCallState("errno"));
    }

    private static MemorySegment find(String name) {
        return LOOKUP.find(name).orElseThrow(() -> new UnsatisfiedLinkError("libc has no '" + name + "'"));
    }

    /** A failed libc call, with its errno. */
    static final class ErrnoException extends Exception {
        final int errno;

        ErrnoException(String call, int errno) {
            super(call + " failed with errno " + errno);
            this.errno = errno;
        }

        /**
         * Whether the call failed for want of room rather than for what it was asked: no process slot (EAGAIN: the
         * sandbox's pids limit), no memory, no file descriptor left in the process or the system.
         */
        boolean outOfResources() {
            return errno == EAGAIN || errno == ENOMEM || errno == EMFILE || errno == ENFILE;
        }
    }

    /** kill(2): a negative pid means the process group with that id. */
    static void kill(int pid, int signal) throws ErrnoException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CAPTURE);
            int rc = (int) KILL.invokeExact(state, pid, signal);
            if (rc != 0) {
                throw new ErrnoException("kill(" + pid + ", " + signal + ")", (int) ERRNO.get(state, 0L));
            }
        } catch (ErrnoException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("calling kill failed", t);
        }
    }

    /** pipe2(2) with O_CLOEXEC: {read end, write end}. */
    static int[] pipe() throws ErrnoException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CAPTURE);
            MemorySegment fds = arena.allocate(ValueLayout.JAVA_INT, 2);
            int rc = (int) PIPE2.invokeExact(state, fds, O_CLOEXEC);
            if (rc != 0) {
                throw new ErrnoException("pipe2", (int) ERRNO.get(state, 0L));
            }
            return new int[] {fds.getAtIndex(ValueLayout.JAVA_INT, 0), fds.getAtIndex(ValueLayout.JAVA_INT, 1)};
        } catch (ErrnoException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("calling pipe2 failed", t);
        }
    }

    /** poll(2) over an array of {@link #POLLFD}; returns the number of ready entries, 0 on timeout or EINTR. */
    static int poll(MemorySegment pollfds, int count, int timeoutMs) throws ErrnoException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CAPTURE);
            int rc = (int) POLL.invokeExact(state, pollfds, (long) count, timeoutMs);
            if (rc < 0) {
                int errno = (int) ERRNO.get(state, 0L);
                if (errno == EINTR) {
                    return 0;
                }
                throw new ErrnoException("poll", errno);
            }
            return rc;
        } catch (ErrnoException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("calling poll failed", t);
        }
    }

    /** read(2) into the buffer: bytes read, 0 at end of file. */
    static long read(int fd, MemorySegment buffer) throws ErrnoException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CAPTURE);
            while (true) {
                long n = (long) READ.invokeExact(state, fd, buffer, buffer.byteSize());
                if (n >= 0) {
                    return n;
                }
                int errno = (int) ERRNO.get(state, 0L);
                if (errno != EINTR) {
                    throw new ErrnoException("read", errno);
                }
            }
        } catch (ErrnoException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("calling read failed", t);
        }
    }

    /** Writes one byte, ignoring errors: used to wake a poller. */
    static void writeByte(int fd) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CAPTURE);
            long ignored = (long) WRITE.invokeExact(state, fd, arena.allocate(1), 1L);
        } catch (Throwable ignored) {
            // waking is best effort; the poller also wakes on its timeout
        }
    }

    /**
     * posix_spawn(3) of {@code argv[0]} with exactly {@code environment}: stdin from {@code stdinFd} (or /dev/null
     * when it is -1), stdout and stderr to the given fds. Returns the child's pid. Every other descriptor the child
     * inherits is either close-on-exec or closed by the exec helper it runs. glibc reports a failed exec here.
     */
    static int spawn(List<String> argv, Map<String, String> environment, int stdinFd, int stdoutFd, int stderrFd)
            throws ErrnoException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment actions = arena.allocate(FILE_ACTIONS_BYTES, 16);
            check("posix_spawn_file_actions_init", (int) ACTIONS_INIT.invokeExact(actions));
            try {
                if (stdinFd >= 0) {
                    check("posix_spawn_file_actions_adddup2", (int) ACTIONS_DUP2.invokeExact(actions, stdinFd, 0));
                } else {
                    check("posix_spawn_file_actions_addopen", (int) ACTIONS_OPEN.invokeExact(actions, 0,
                            arena.allocateFrom("/dev/null"), O_RDONLY, 0));
                }
                check("posix_spawn_file_actions_adddup2", (int) ACTIONS_DUP2.invokeExact(actions, stdoutFd, 1));
                check("posix_spawn_file_actions_adddup2", (int) ACTIONS_DUP2.invokeExact(actions, stderrFd, 2));
                List<String> env = new ArrayList<>(environment.size());
                environment.forEach((k, v) -> env.add(k + "=" + v));
                MemorySegment pid = arena.allocate(ValueLayout.JAVA_INT);
                int rc = (int) SPAWN.invokeExact(pid, arena.allocateFrom(argv.getFirst()), actions,
                        MemorySegment.NULL, strings(arena, argv), strings(arena, env));
                check("posix_spawn " + argv.getFirst(), rc);
                return pid.get(ValueLayout.JAVA_INT, 0);
            } finally {
                int ignored = (int) ACTIONS_DESTROY.invokeExact(actions);
            }
        } catch (ErrnoException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("calling posix_spawn failed", t);
        }
    }

    private static void check(String call, int rc) throws ErrnoException {
        if (rc != 0) {
            throw new ErrnoException(call, rc);
        }
    }

    /** A NULL-terminated array of C strings. */
    private static MemorySegment strings(Arena arena, List<String> values) {
        MemorySegment array = arena.allocate(ValueLayout.ADDRESS, values.size() + 1L);
        for (int i = 0; i < values.size(); i++) {
            array.setAtIndex(ValueLayout.ADDRESS, i, arena.allocateFrom(values.get(i)));
        }
        array.setAtIndex(ValueLayout.ADDRESS, values.size(), MemorySegment.NULL);
        return array;
    }

    /** pidfd_open(2): a close-on-exec fd that polls readable once the process exited; -1 if the kernel lacks it. */
    static int pidfdOpen(int pid) throws ErrnoException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CAPTURE);
            long fd = (long) PIDFD_OPEN.invokeExact(state, SYS_PIDFD_OPEN, (long) pid, 0L);
            if (fd < 0) {
                int errno = (int) ERRNO.get(state, 0L);
                if (errno == ENOSYS) {
                    return -1;
                }
                throw new ErrnoException("pidfd_open(" + pid + ")", errno);
            }
            return (int) fd;
        } catch (ErrnoException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("calling pidfd_open failed", t);
        }
    }

    /**
     * waitpid(2) for one child: its exit value in Java's convention (the exit code, or 128+N after death by signal
     * N), or -1 when {@code block} is false and it has not exited yet.
     */
    static int waitpid(int pid, boolean block) throws ErrnoException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CAPTURE);
            MemorySegment status = arena.allocate(ValueLayout.JAVA_INT);
            while (true) {
                int rc = (int) WAITPID.invokeExact(state, pid, status, block ? 0 : WNOHANG);
                if (rc == pid) {
                    int s = status.get(ValueLayout.JAVA_INT, 0);
                    int signal = s & 0x7f;
                    return signal == 0 ? (s >> 8) & 0xff : 128 + signal;
                }
                if (rc == 0) {
                    return -1;
                }
                int errno = (int) ERRNO.get(state, 0L);
                if (errno != EINTR) {
                    throw new ErrnoException("waitpid(" + pid + ")", errno);
                }
            }
        } catch (ErrnoException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("calling waitpid failed", t);
        }
    }

    static void close(int fd) {
        if (fd < 0) {
            return;
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CAPTURE);
            int ignored = (int) CLOSE.invokeExact(state, fd);
        } catch (Throwable ignored) {
            // close errors leave nothing to recover
        }
    }
}
