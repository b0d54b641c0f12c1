package dev.capsule.envd.filesystem;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;

/**
 * The few Linux system calls the file watcher needs (inotify, eventfd, poll, read, write, close, statfs), bound
 * through the FFM API. Each call returns the raw result; a negative result means failure and {@link #errno()} holds
 * the errno of the calling thread's last failed call. These calls block the carrier of a virtual thread, so callers
 * run them on platform threads (or only the non-blocking ones on virtual threads).
 */
final class Linux {
    static final int IN_MODIFY = 0x2;
    static final int IN_ATTRIB = 0x4;
    static final int IN_MOVED_FROM = 0x40;
    static final int IN_MOVED_TO = 0x80;
    static final int IN_CREATE = 0x100;
    static final int IN_DELETE = 0x200;
    static final int IN_DELETE_SELF = 0x400;
    static final int IN_MOVE_SELF = 0x800;
    static final int IN_Q_OVERFLOW = 0x4000;
    static final int IN_IGNORED = 0x8000;
    static final int IN_ONLYDIR = 0x01000000;
    static final int IN_DONT_FOLLOW = 0x02000000;
    static final int IN_ISDIR = 0x40000000;

    static final int O_NONBLOCK = 0x800;
    static final int O_CLOEXEC = 0x80000;

    static final short POLLIN = 0x1;

    static final int EINTR = 4;
    static final int ENOENT = 2;
    static final int EAGAIN = 11;
    static final int EACCES = 13;
    static final int ENOTDIR = 20;
    static final int EMFILE = 24;
    static final int ENOSPC = 28;
    static final int ELOOP = 40;

    private static final Linker LINKER = Linker.nativeLinker();
    private static final StructLayout CAPTURE_LAYOUT = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO =
            CAPTURE_LAYOUT.varHandle(MemoryLayout.PathElement.groupElement("errno"));
    private static final ThreadLocal<MemorySegment> CAPTURE =
            ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(CAPTURE_LAYOUT));

    private static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT;
    private static final ValueLayout.OfLong LONG = ValueLayout.JAVA_LONG;
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT;
    private static final ValueLayout PTR = ValueLayout.ADDRESS;

    private static final MethodHandle INOTIFY_INIT1 = bind("inotify_init1", FunctionDescriptor.of(INT, INT));
    private static final MethodHandle INOTIFY_ADD_WATCH =
            bind("inotify_add_watch", FunctionDescriptor.of(INT, INT, PTR, INT));
    private static final MethodHandle INOTIFY_RM_WATCH =
            bind("inotify_rm_watch", FunctionDescriptor.of(INT, INT, INT));
    private static final MethodHandle EVENTFD = bind("eventfd", FunctionDescriptor.of(INT, INT, INT));
    private static final MethodHandle READ = bind("read", FunctionDescriptor.of(LONG, INT, PTR, LONG));
    private static final MethodHandle WRITE = bind("write", FunctionDescriptor.of(LONG, INT, PTR, LONG));
    private static final MethodHandle POLL = bind("poll", FunctionDescriptor.of(INT, PTR, LONG, INT));
    private static final MethodHandle CLOSE = bind("close", FunctionDescriptor.of(INT, INT));
    private static final MethodHandle STATFS = bind("statfs", FunctionDescriptor.of(INT, PTR, PTR));

    /** struct pollfd: int fd; short events; short revents. */
    static final StructLayout POLLFD = MemoryLayout.structLayout(
            INT.withName("fd"), SHORT.withName("events"), SHORT.withName("revents"));
    /** struct inotify_event header: int wd; uint32 mask; uint32 cookie; uint32 len; then len name bytes. */
    static final int INOTIFY_EVENT_HEADER = 16;
    /** sizeof(struct statfs) on 64-bit Linux is 120; f_type (a long) comes first on x86_64 and aarch64. */
    private static final long STATFS_SIZE = 256;

    private Linux() {}

    private static MethodHandle bind(String name, FunctionDescriptor descriptor) {
        MemorySegment symbol = LINKER.defaultLookup().find(name)
                .orElseThrow(() -> new UnsatisfiedLinkError("libc has no " + name));
        return LINKER.downcallHandle(symbol, descriptor, Linker.Option.captureCallState("errno"));
    }

    /** The errno of the calling thread's last call made through this class. */
    static int errno() {
        return (int) ERRNO.get(CAPTURE.get(), 0L);
    }

    static int inotifyInit(int flags) {
        try {
            return (int) INOTIFY_INIT1.invokeExact(CAPTURE.get(), flags);
        } catch (Throwable e) {
            throw new AssertionError(e);
        }
    }

    static int inotifyAddWatch(int fd, String path, int mask) {
        try (Arena arena = Arena.ofConfined()) {
            return (int) INOTIFY_ADD_WATCH.invokeExact(CAPTURE.get(), fd, arena.allocateFrom(path), mask);
        } catch (Throwable e) {
            throw new AssertionError(e);
        }
    }

    static int inotifyRmWatch(int fd, int wd) {
        try {
            return (int) INOTIFY_RM_WATCH.invokeExact(CAPTURE.get(), fd, wd);
        } catch (Throwable e) {
            throw new AssertionError(e);
        }
    }

    static int eventfd(int initval, int flags) {
        try {
            return (int) EVENTFD.invokeExact(CAPTURE.get(), initval, flags);
        } catch (Throwable e) {
            throw new AssertionError(e);
        }
    }

    static long read(int fd, MemorySegment buffer, long count) {
        try {
            return (long) READ.invokeExact(CAPTURE.get(), fd, buffer, count);
        } catch (Throwable e) {
            throw new AssertionError(e);
        }
    }

    static long write(int fd, MemorySegment buffer, long count) {
        try {
            return (long) WRITE.invokeExact(CAPTURE.get(), fd, buffer, count);
        } catch (Throwable e) {
            throw new AssertionError(e);
        }
    }

    static int poll(MemorySegment fds, long count, int timeoutMillis) {
        try {
            return (int) POLL.invokeExact(CAPTURE.get(), fds, count, timeoutMillis);
        } catch (Throwable e) {
            throw new AssertionError(e);
        }
    }

    static int close(int fd) {
        try {
            return (int) CLOSE.invokeExact(CAPTURE.get(), fd);
        } catch (Throwable e) {
            throw new AssertionError(e);
        }
    }

    /** The file system magic number (statfs f_type) of the file system holding {@code path}, or -errno. */
    static long fileSystemType(String path) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(STATFS_SIZE, 8);
            int result = (int) STATFS.invokeExact(CAPTURE.get(), arena.allocateFrom(path), buf);
            if (result != 0) {
                return -errno();
            }
            return buf.get(LONG, 0);
        } catch (Throwable e) {
            throw new AssertionError(e);
        }
    }

    /** A readable name for an errno value, for error messages. */
    static String describe(int errno) {
        return switch (errno) {
            case ENOENT -> "no such file or directory";
            case EACCES -> "permission denied";
            case ENOTDIR -> "not a directory";
            case EMFILE -> "too many inotify instances (fs.inotify.max_user_instances reached)";
            case ENOSPC -> "too many inotify watches (fs.inotify.max_user_watches reached)";
            case ELOOP -> "too many levels of symbolic links";
            default -> "errno " + errno;
        };
    }
}
