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
 * point the host elsewhere — summing apparent sizes. A walk costs time in proportion to the files, so each
 * directory's walk is reused until {@value #COST_FACTOR} times its own duration has passed (a 2 ms walk is redone
 * after 2 s, a 50 ms one after 50 s): walking stays under 0.1% of a core per sandbox whatever it holds. A walk
 * stops after {@value #MAX_ENTRIES} entries, and its sum is then a lower bound.
 */
public final class DiskUsage {

    /** A measurement: bytes used, and the size of the file system they are on. */
    public record Measured(long used, long total) {}

    static final long COST_FACTOR = 1000;
    static final int MAX_ENTRIES = 1_000_000;

    private record Walk(long used, long total, long reuseUntil) {}

    private final Map<Path, Walk> walks = new ConcurrentHashMap<>();

    /** The usage of {@code dir}; null when it does not exist. */
    public Measured of(Path dir) {
        long now = System.nanoTime();
        walks.values().removeIf(w -> now - w.reuseUntil() > 60_000_000_000L); // forget directories no longer asked about
        try {
            FileStore store = Files.getFileStore(dir);
            Path parent = dir.getParent();
            if (parent != null && !store.equals(Files.getFileStore(parent))) {
                return new Measured(store.getTotalSpace() - store.getUnallocatedSpace(), store.getTotalSpace());
            }
            Walk cached = walks.get(dir);
            if (cached != null && now < cached.reuseUntil()) return new Measured(cached.used(), cached.total());
            long used = walk(dir);
            long took = System.nanoTime() - now;
            walks.put(dir, new Walk(used, store.getTotalSpace(), now + took * COST_FACTOR));
            return new Measured(used, store.getTotalSpace());
        } catch (java.nio.file.NoSuchFileException e) {
            walks.remove(dir);
            return null;
        } catch (IOException e) {
            throw new java.io.UncheckedIOException("cannot measure the disk usage of " + dir + ": " + e.getMessage(), e);
        }
    }

    private static long walk(Path dir) throws IOException {
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
        return sum[0];
    }
}
