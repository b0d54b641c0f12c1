package dev.capsule.runtime.host;

import java.io.IOException;
import java.nio.file.FileStore;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * How much a sandbox's writable layer holds, for its disk metrics. When the directory is a file system of its
 * own (e.g. a loop-mounted image per sandbox) its statvfs answers in O(1): used = size - free. Otherwise the
 * directory is walked — lstat only, symlinks never followed and no file opened, so nothing in the sandbox can
 * point the host elsewhere — summing apparent sizes. A walk costs time in proportion to the entries it visits (about a
 * microsecond of lstat each), so its result is reused for a millisecond per entry (a layer of a thousand files is
 * walked at most every second, one of a hundred thousand every 100 s): walking stays near 0.1% of a core per
 * sandbox whatever it holds, and a small layer is measured afresh on every sample. Counting entries rather than
 * timing the walk keeps this independent of how loaded the host is. A walk stops after {@value #MAX_ENTRIES}
 * entries, and its sum is then a lower bound.
 */
public final class DiskUsage {

    /** A measurement: bytes used, and the size of the file system they are on. */
    public record Measured(long used, long total) {}

    /** How long a walk's result is reused, per entry it visited. */
    static final long REUSE_NANOS_PER_ENTRY = 1_000_000;
    static final int MAX_ENTRIES = 1_000_000;
    /** Directories not asked about for this long are forgotten (their sandbox is gone). */
    private static final long FORGET_NANOS = 60_000_000_000L;

    /**
     * What is known of one directory: its file store (found once: finding it reads the mount table; statvfs on it
     * is then one call), whether that is a file system of its own, and the last walk's sum and reuse deadline.
     */
    private record Known(FileStore store, boolean ownFileSystem, long walked, long reuseUntil, long askedAt) {}

    private final Map<Path, Known> known = new ConcurrentHashMap<>();

    /** The usage of {@code dir}; null when it does not exist. */
    public Measured of(Path dir) {
        long now = System.nanoTime();
        known.values().removeIf(k -> now - k.askedAt() > FORGET_NANOS);
        try {
            Known k = known.get(dir);
            if (k == null) {
                Path parent = dir.toAbsolutePath().getParent();
                boolean own = parent != null && !device(dir).equals(device(parent));
                k = new Known(Files.getFileStore(dir), own, 0, now, now);
            }
            long total = k.store().getTotalSpace();
            if (k.ownFileSystem()) {
                known.put(dir, new Known(k.store(), true, 0, 0, now));
                return new Measured(total - k.store().getUnallocatedSpace(), total);
            }
            if (now < k.reuseUntil()) {
                known.put(dir, new Known(k.store(), false, k.walked(), k.reuseUntil(), now));
                return new Measured(k.walked(), total);
            }
            long[] walked = walk(dir);
            known.put(dir, new Known(k.store(), false, walked[0], now + walked[1] * REUSE_NANOS_PER_ENTRY, now));
            return new Measured(walked[0], total);
        } catch (java.nio.file.NoSuchFileException e) {
            known.remove(dir);
            return null;
        } catch (IOException e) {
            throw new java.io.UncheckedIOException("cannot measure the disk usage of " + dir + ": " + e.getMessage(), e);
        }
    }

    private static Object device(Path p) throws IOException {
        return Files.getAttribute(p, "unix:dev", java.nio.file.LinkOption.NOFOLLOW_LINKS);
    }

    /** The apparent bytes under {@code dir} and the entries visited. */
    private static long[] walk(Path dir) throws IOException {
        long[] sum = {0};
        int[] entries = {0};
        Files.walkFileTree(dir, new SimpleFileVisitor<>() {
            @Override
            public FileVisitResult preVisitDirectory(Path d, BasicFileAttributes attrs) {
                return ++entries[0] > MAX_ENTRIES ? FileVisitResult.TERMINATE : FileVisitResult.CONTINUE;
            }

            @Override
            public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) {
                sum[0] += attrs.size();
                return ++entries[0] > MAX_ENTRIES ? FileVisitResult.TERMINATE : FileVisitResult.CONTINUE;
            }

            @Override
            public FileVisitResult visitFileFailed(Path file, IOException e) {
                return FileVisitResult.CONTINUE; // deleted while walking, or unreadable: not counted
            }
        });
        return new long[] {sum[0], entries[0]};
    }
}
