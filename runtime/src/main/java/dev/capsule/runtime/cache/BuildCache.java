package dev.capsule.runtime.cache;

import dev.capsule.runtime.host.Mounts;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A directory of build results keyed by a hash of their inputs (templates, runtime bundles), shared by every
 * data directory and every process on the machine. An entry appears complete or not at all: it is built in a
 * temporary directory and renamed into place, under a per-key file lock so that concurrent builders (threads or
 * processes) build it once and a crashed build leaves only a temporary directory the next builder deletes.
 */
public final class BuildCache {

    /** Fills {@code target}, an empty directory, with the entry's contents. */
    @FunctionalInterface
    public interface Builder {
        void build(Path target) throws IOException;
    }

    // FileLock is per process; threads of this JVM must also exclude each other, or lock() throws.
    private static final ConcurrentHashMap<Path, ReentrantLock> LOCAL_LOCKS = new ConcurrentHashMap<>();

    private final Path root;

    public BuildCache(Path root) {
        this.root = root.toAbsolutePath().normalize();
    }

    public Path root() {
        return root;
    }

    /** The entry's directory, whether or not it has been built. */
    public Path entry(String key) {
        requireKey(key);
        return root.resolve(key);
    }

    public boolean contains(String key) {
        return Files.isDirectory(entry(key));
    }

    /** Returns the entry for {@code key}, building it with {@code builder} first if no one has yet. */
    public Path ensure(String key, Builder builder) {
        Path entry = entry(key);
        if (Files.isDirectory(entry)) {
            return entry;
        }
        ReentrantLock local = LOCAL_LOCKS.computeIfAbsent(entry, k -> new ReentrantLock());
        local.lock();
        try {
            Files.createDirectories(root);
            try (FileChannel lockFile = FileChannel.open(root.resolve("." + key + ".lock"),
                    StandardOpenOption.CREATE, StandardOpenOption.WRITE);
                 FileLock ignored = lockFile.lock()) {
                if (Files.isDirectory(entry)) {
                    return entry; // another builder finished while we waited
                }
                deleteAbandonedBuilds(key);
                Path temp = root.resolve(".tmp-" + key + "-" + UUID.randomUUID());
                Files.createDirectory(temp);
                try {
                    builder.build(temp);
                    Files.move(temp, entry, StandardCopyOption.ATOMIC_MOVE);
                } catch (IOException | RuntimeException e) {
                    Mounts.deleteTree(temp);
                    throw e;
                }
                return entry;
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot build cache entry " + entry + ": " + e.getMessage(), e);
        } finally {
            local.unlock();
        }
    }

    /** Deletes an entry, e.g. one whose contents were found damaged; the next ensure() rebuilds it. */
    public void evict(String key) {
        Mounts.deleteTree(entry(key));
    }

    // We hold the key's lock, so any temporary directory for it belongs to a builder that died.
    private void deleteAbandonedBuilds(String key) throws IOException {
        try (DirectoryStream<Path> stream = Files.newDirectoryStream(root, ".tmp-" + key + "-*")) {
            for (Path abandoned : stream) {
                Mounts.deleteTree(abandoned);
            }
        }
    }

    private static void requireKey(String key) {
        if (!key.matches("[A-Za-z0-9][A-Za-z0-9._-]{0,127}")) {
            throw new IllegalArgumentException("cache key must be letters, digits, '.', '_' or '-': " + key);
        }
    }
}
