package dev.capsule.envd.filesystem;

import dev.capsule.connect.Code;
import dev.capsule.connect.ConnectException;
import dev.capsule.envd.rpc.filesystem.EventType;
import dev.capsule.envd.rpc.filesystem.FilesystemEvent;
import dev.capsule.envd.users.Users;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Watches one directory (and, when recursive, every directory below it, including ones created later) with Linux
 * inotify, turning kernel events into E2B's {@link FilesystemEvent}s the way Go's fsnotify (which E2B's envd uses)
 * maps them: IN_CREATE/IN_MOVED_TO -> CREATE, IN_MODIFY -> WRITE, IN_DELETE/IN_DELETE_SELF -> REMOVE,
 * IN_MOVED_FROM/IN_MOVE_SELF -> RENAME, IN_ATTRIB -> CHMOD. Event names are relative to the watched directory
 * ({@code .} for the directory itself).
 *
 * <p>WRITE comes from IN_MODIFY only, as in E2B: one WRITE per write(2)/truncate; IN_CLOSE_WRITE is not used, since it
 * would add a WRITE for every file merely opened for writing (e.g. {@code touch}) and so change the event streams
 * E2B clients see.
 *
 * <p>Each watch owns one inotify fd, one eventfd (to wake its reader) and one platform thread that blocks in poll(2);
 * FFM calls pin virtual threads, so blocking ones stay off them. Events wait in a bounded buffer until taken with
 * {@link #await} (streams) or {@link #drain} (polling watchers). {@link #close} stops the thread and frees the fds.
 */
final class DirectoryWatch implements AutoCloseable {
    /** More unread events than this and the watch fails rather than grow without bound. */
    static final int MAX_PENDING = 65_536;

    private static final int EVENTS = Linux.IN_CREATE | Linux.IN_MOVED_TO | Linux.IN_MOVED_FROM | Linux.IN_MODIFY
            | Linux.IN_ATTRIB | Linux.IN_DELETE | Linux.IN_DELETE_SELF | Linux.IN_MOVE_SELF;
    /** Below the root: directories only, and a symlink to a directory is never followed. */
    private static final int SUBDIR_FLAGS = EVENTS | Linux.IN_ONLYDIR | Linux.IN_DONT_FOLLOW;
    private static final AtomicLong THREADS = new AtomicLong();

    private final Path root;
    private final int maxPending;
    private final boolean recursive;
    private final boolean includeEntry;
    private final Users users;
    private final int inotifyFd;
    private final int wakeFd;
    private final Thread reader;

    // Reader-thread state (set up before the thread starts, then touched only by it).
    private final Map<Integer, Path> pathByWd = new HashMap<>();
    private final Set<Integer> movedWithinTree = new HashSet<>();
    private int rootWd;

    private final ReentrantLock lock = new ReentrantLock();
    private final Condition changed = lock.newCondition();
    private final ArrayDeque<FilesystemEvent> pending = new ArrayDeque<>();
    private ConnectException failure;
    private boolean closed;
    private boolean fdsOpen = true;

    private DirectoryWatch(Path root, boolean recursive, boolean includeEntry, Users users, int maxPending,
                           int inotifyFd, int wakeFd) {
        this.root = root;
        this.maxPending = maxPending;
        this.recursive = recursive;
        this.includeEntry = includeEntry;
        this.users = users;
        this.inotifyFd = inotifyFd;
        this.wakeFd = wakeFd;
        this.reader = Thread.ofPlatform().daemon().name("envd-watch-" + THREADS.incrementAndGet())
                .unstarted(this::run);
    }

    /**
     * Starts watching {@code root}, an existing directory. Every watch is in place when this returns, so changes
     * made afterwards are seen.
     *
     * @throws ConnectException RESOURCE_EXHAUSTED when the kernel's inotify limits are reached, NOT_FOUND when the
     *                          directory vanished, INTERNAL otherwise
     */
    static DirectoryWatch start(Path root, boolean recursive, boolean includeEntry, Users users) {
        return start(root, recursive, includeEntry, users, MAX_PENDING);
    }

    /** As {@link #start(Path, boolean, boolean, Users)}, failing once more than {@code maxPending} events wait. */
    static DirectoryWatch start(Path root, boolean recursive, boolean includeEntry, Users users, int maxPending) {
        int inotifyFd = Linux.inotifyInit(Linux.O_NONBLOCK | Linux.O_CLOEXEC);
        if (inotifyFd < 0) {
            throw failure("cannot create an inotify instance", Linux.errno());
        }
        int wakeFd = Linux.eventfd(0, Linux.O_NONBLOCK | Linux.O_CLOEXEC);
        if (wakeFd < 0) {
            int errno = Linux.errno();
            Linux.close(inotifyFd);
            throw failure("cannot create an eventfd", errno);
        }
        DirectoryWatch watch = new DirectoryWatch(root, recursive, includeEntry, users, maxPending, inotifyFd,
                wakeFd);
        try {
            watch.rootWd = watch.addWatch(root, EVENTS, true);
            if (recursive) {
                watch.watchSubdirectories(root);
            }
        } catch (ConnectException e) {
            Linux.close(wakeFd);
            Linux.close(inotifyFd);
            throw e;
        }
        watch.reader.start();
        return watch;
    }

    Path root() {
        return root;
    }

    /**
     * Waits up to {@code timeout} for events and takes all that are pending. Returns an empty list when none came in
     * time, and null once the watch is closed.
     *
     * @throws ConnectException when the watch failed (after its last events were taken)
     */
    List<FilesystemEvent> await(Duration timeout) throws InterruptedException {
        long nanos = timeout.toNanos();
        lock.lock();
        try {
            while (pending.isEmpty() && failure == null && !closed && nanos > 0) {
                nanos = changed.awaitNanos(nanos);
            }
            if (!pending.isEmpty()) {
                return takeAll();
            }
            if (failure != null) {
                throw failure;
            }
            return closed ? null : List.of();
        } finally {
            lock.unlock();
        }
    }

    /**
     * Takes every pending event without waiting.
     *
     * @throws ConnectException when the watch failed and no events are left to take
     */
    List<FilesystemEvent> drain() {
        lock.lock();
        try {
            if (pending.isEmpty() && failure != null) {
                throw failure;
            }
            return takeAll();
        } finally {
            lock.unlock();
        }
    }

    /** Stops watching and frees the inotify fd, the eventfd and the reader thread; idempotent. */
    @Override
    public void close() {
        lock.lock();
        try {
            if (!closed) {
                closed = true;
                changed.signalAll();
                if (fdsOpen) {
                    wake();
                }
            }
        } finally {
            lock.unlock();
        }
        if (Thread.currentThread() != reader && reader.isAlive()) {
            try {
                reader.join(Duration.ofSeconds(10));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    private List<FilesystemEvent> takeAll() {
        List<FilesystemEvent> events = new ArrayList<>(pending);
        pending.clear();
        return events;
    }

    private void wake() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment one = arena.allocate(ValueLayout.JAVA_LONG);
            one.set(ValueLayout.JAVA_LONG, 0, 1L);
            Linux.write(wakeFd, one, 8);
        }
    }

    // ---- reader thread ----

    private void run() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment fds = arena.allocate(Linux.POLLFD, 2);
            fds.set(ValueLayout.JAVA_INT, 0, inotifyFd);
            fds.set(ValueLayout.JAVA_SHORT, 4, Linux.POLLIN);
            fds.set(ValueLayout.JAVA_INT, 8, wakeFd);
            fds.set(ValueLayout.JAVA_SHORT, 12, Linux.POLLIN);
            MemorySegment buffer = arena.allocate(64 * 1024, 8);
            while (!isClosed()) {
                fds.set(ValueLayout.JAVA_SHORT, 6, (short) 0);
                fds.set(ValueLayout.JAVA_SHORT, 14, (short) 0);
                int ready = Linux.poll(fds, 2, -1);
                if (ready < 0) {
                    int errno = Linux.errno();
                    if (errno == Linux.EINTR) {
                        continue;
                    }
                    fail(failure("waiting for file system events failed", errno));
                    break;
                }
                if (fds.get(ValueLayout.JAVA_SHORT, 14) != 0) {
                    break;
                }
                if (fds.get(ValueLayout.JAVA_SHORT, 6) != 0 && !readEvents(buffer)) {
                    break;
                }
            }
        } catch (RuntimeException | Error e) {
            fail(new ConnectException(Code.INTERNAL, "the file watcher of " + root + " broke: " + e, e));
        } finally {
            lock.lock();
            try {
                fdsOpen = false;
                Linux.close(wakeFd);
                Linux.close(inotifyFd);
            } finally {
                lock.unlock();
            }
        }
    }

    private boolean isClosed() {
        lock.lock();
        try {
            return closed || failure != null;
        } finally {
            lock.unlock();
        }
    }

    /** Reads every queued event; false when the watch must stop. */
    private boolean readEvents(MemorySegment buffer) {
        while (true) {
            long n = Linux.read(inotifyFd, buffer, buffer.byteSize());
            if (n < 0) {
                int errno = Linux.errno();
                if (errno == Linux.EAGAIN) {
                    return true;
                }
                if (errno == Linux.EINTR) {
                    continue;
                }
                fail(failure("reading file system events failed", errno));
                return false;
            }
            List<FilesystemEvent> batch = new ArrayList<>();
            long offset = 0;
            while (offset + Linux.INOTIFY_EVENT_HEADER <= n) {
                int wd = buffer.get(ValueLayout.JAVA_INT, offset);
                int mask = buffer.get(ValueLayout.JAVA_INT, offset + 4);
                int nameLength = buffer.get(ValueLayout.JAVA_INT, offset + 12);
                String name = nameLength == 0 ? "" : name(buffer, offset + Linux.INOTIFY_EVENT_HEADER, nameLength);
                offset += Linux.INOTIFY_EVENT_HEADER + nameLength;
                if ((mask & Linux.IN_Q_OVERFLOW) != 0) {
                    publish(batch);
                    fail(new ConnectException(Code.INTERNAL, "too many file system events under " + root
                            + ": the kernel's inotify queue overflowed and events were lost; watch again"));
                    return false;
                }
                handle(wd, mask, name, batch);
            }
            if (!publish(batch)) {
                return false;
            }
        }
    }

    private static String name(MemorySegment buffer, long offset, int length) {
        byte[] bytes = buffer.asSlice(offset, length).toArray(ValueLayout.JAVA_BYTE);
        int end = 0;
        while (end < bytes.length && bytes[end] != 0) {
            end++;
        }
        return new String(bytes, 0, end, StandardCharsets.UTF_8);
    }

    private void handle(int wd, int mask, String name, List<FilesystemEvent> out) {
        Path dir = pathByWd.get(wd);
        if (dir == null) {
            return; // a watch removed while its events were queued
        }
        Path path = name.isEmpty() ? dir : dir.resolve(name);
        if ((mask & Linux.IN_IGNORED) != 0) {
            pathByWd.remove(wd);
            movedWithinTree.remove(wd);
            return;
        }
        if ((mask & Linux.IN_DELETE_SELF) != 0 && wd != rootWd) {
            return; // the parent's watch already reported the removal
        }
        if ((mask & Linux.IN_MOVE_SELF) != 0 && wd != rootWd) {
            // The parent reported the rename. A directory that left the tree must not be watched any more.
            if (!movedWithinTree.remove(wd)) {
                unwatchTree(dir);
            }
            return;
        }
        boolean isDir = (mask & Linux.IN_ISDIR) != 0;
        if (recursive && isDir && (mask & (Linux.IN_CREATE | Linux.IN_MOVED_TO)) != 0) {
            watchNewDirectory(path);
        }
        if ((mask & (Linux.IN_CREATE | Linux.IN_MOVED_TO)) != 0) {
            out.add(event(path, EventType.EVENT_TYPE_CREATE));
        }
        if ((mask & (Linux.IN_MOVED_FROM | Linux.IN_MOVE_SELF)) != 0) {
            out.add(event(path, EventType.EVENT_TYPE_RENAME));
        }
        if ((mask & Linux.IN_ATTRIB) != 0) {
            out.add(event(path, EventType.EVENT_TYPE_CHMOD));
        }
        if ((mask & Linux.IN_MODIFY) != 0) {
            out.add(event(path, EventType.EVENT_TYPE_WRITE));
        }
        if ((mask & (Linux.IN_DELETE | Linux.IN_DELETE_SELF)) != 0) {
            out.add(event(path, EventType.EVENT_TYPE_REMOVE));
        }
    }

    private FilesystemEvent event(Path path, EventType type) {
        Path relative = root.relativize(path);
        FilesystemEvent.Builder event = FilesystemEvent.newBuilder()
                .setName(relative.toString().isEmpty() ? "." : relative.toString())
                .setType(type);
        // A removed or renamed-away path must never carry an entry: something new may already sit at that path.
        if (includeEntry && type != EventType.EVENT_TYPE_REMOVE && type != EventType.EVENT_TYPE_RENAME) {
            try {
                event.setEntry(Entries.of(path, users));
            } catch (IOException e) {
                // gone again before we looked: the event goes out without an entry
            }
        }
        return event.build();
    }

    /** Queues events for the reader of this watch; false when the buffer overflowed. */
    private boolean publish(List<FilesystemEvent> batch) {
        if (batch.isEmpty()) {
            return true;
        }
        lock.lock();
        try {
            if (closed) {
                return false;
            }
            if (pending.size() + batch.size() > maxPending) {
                failure = new ConnectException(Code.RESOURCE_EXHAUSTED, "more than " + maxPending
                        + " file system events under " + root + " were left unread, so events were lost;"
                        + " read events sooner, or watch again");
                changed.signalAll();
                return false;
            }
            pending.addAll(batch);
            changed.signalAll();
            return true;
        } finally {
            lock.unlock();
        }
    }

    private void fail(ConnectException e) {
        lock.lock();
        try {
            if (failure == null && !closed) {
                failure = e;
            }
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /**
     * Watches a directory that appeared in the tree (created or moved in) and any directories already inside it
     * (e.g. from {@code mkdir -p}). A directory renamed within the tree keeps its watch (inotify hands back the same
     * descriptor), so its recorded path and those of its subdirectories are updated instead.
     */
    private void watchNewDirectory(Path dir) {
        try {
            addWatch(dir, SUBDIR_FLAGS, false);
            watchSubdirectories(dir);
        } catch (ConnectException e) {
            if (e.code() != Code.NOT_FOUND) {
                fail(e);
            }
        }
    }

    private void watchSubdirectories(Path dir) {
        try (DirectoryStream<Path> children = Files.newDirectoryStream(dir)) {
            for (Path child : children) {
                if (Files.isDirectory(child, LinkOption.NOFOLLOW_LINKS)) {
                    try {
                        addWatch(child, SUBDIR_FLAGS, false);
                    } catch (ConnectException e) {
                        if (e.code() == Code.NOT_FOUND) {
                            continue; // removed meanwhile
                        }
                        throw e;
                    }
                    watchSubdirectories(child);
                }
            }
        } catch (IOException e) {
            if (!Entries.isMissing(e)) {
                throw new ConnectException(Code.INTERNAL, "cannot list " + dir + " to watch it: " + e.getMessage(), e);
            }
        }
    }

    /** Adds (or refreshes) the inotify watch of a directory; returns its descriptor. */
    private int addWatch(Path dir, int mask, boolean isRoot) {
        int wd = Linux.inotifyAddWatch(inotifyFd, dir.toString(), mask);
        if (wd < 0) {
            int errno = Linux.errno();
            if (!isRoot && (errno == Linux.ENOENT || errno == Linux.ENOTDIR)) {
                throw new ConnectException(Code.NOT_FOUND, dir + " vanished before it could be watched");
            }
            throw failure("cannot watch " + dir, errno);
        }
        Path previous = pathByWd.put(wd, dir);
        if (previous != null && !previous.equals(dir)) {
            // Renamed within the tree: move the recorded paths of the directory and everything below it.
            movedWithinTree.add(wd);
            for (Map.Entry<Integer, Path> e : pathByWd.entrySet()) {
                Path p = e.getValue();
                if (e.getKey() != wd && p.startsWith(previous)) {
                    e.setValue(dir.resolve(previous.relativize(p)));
                }
            }
        }
        return wd;
    }

    /** Stops watching a directory that left the tree, and everything below it. */
    private void unwatchTree(Path dir) {
        List<Integer> gone = new ArrayList<>();
        for (Map.Entry<Integer, Path> e : pathByWd.entrySet()) {
            if (e.getValue().startsWith(dir) && e.getKey() != rootWd) {
                gone.add(e.getKey());
            }
        }
        for (int wd : gone) {
            Linux.inotifyRmWatch(inotifyFd, wd);
            pathByWd.remove(wd);
            movedWithinTree.remove(wd);
        }
    }

    private static ConnectException failure(String what, int errno) {
        return switch (errno) {
            case Linux.EMFILE, Linux.ENOSPC -> new ConnectException(Code.RESOURCE_EXHAUSTED, what + ": "
                    + Linux.describe(errno) + "; remove watchers you no longer need, or raise the sysctl");
            case Linux.ENOENT, Linux.ENOTDIR -> new ConnectException(Code.NOT_FOUND, what + ": "
                    + Linux.describe(errno));
            case Linux.EACCES -> new ConnectException(Code.PERMISSION_DENIED, what + ": " + Linux.describe(errno));
            default -> new ConnectException(Code.INTERNAL, what + ": " + Linux.describe(errno));
        };
    }
}
