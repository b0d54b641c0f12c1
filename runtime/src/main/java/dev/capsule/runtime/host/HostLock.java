package dev.capsule.runtime.host;

import dev.capsule.runtime.RuntimeFailure;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Function;

/**
 * An exclusive claim on a host-wide resource (a runc root, a sandbox network) by one process: an advisory lock on
 * a file, held until {@link #close}. Two Capsule servers sharing a runc root or a network would adopt and remove
 * each other's sandboxes, so the second one must fail to start instead. Within one process the claim is shared
 * (counted), since a process may open a driver again on the same host state, as a restart does.
 */
public final class HostLock implements AutoCloseable {
    private static final Map<Path, Held> HELD = new HashMap<>();

    private final Path file;
    private boolean closed;

    private HostLock(Path file) {
        this.file = file;
    }

    /**
     * Claims {@code file}, or returns empty if another process holds it.
     *
     * @throws IOException the lock file cannot be created
     */
    public static Optional<HostLock> tryAcquire(Path file) throws IOException {
        Path key = file.toAbsolutePath().normalize();
        synchronized (HELD) {
            Held held = HELD.get(key);
            if (held == null) {
                Files.createDirectories(key.getParent());
                FileChannel channel = FileChannel.open(key, StandardOpenOption.CREATE, StandardOpenOption.WRITE);
                FileLock lock;
                try {
                    lock = channel.tryLock();
                } catch (IOException | RuntimeException e) {
                    channel.close();
                    throw e;
                }
                if (lock == null) {
                    channel.close();
                    return Optional.empty();
                }
                held = new Held(channel, lock);
                HELD.put(key, held);
            }
            held.count++;
            return Optional.of(new HostLock(key));
        }
    }

    /**
     * Claims every file or none: when one cannot be created, or another process holds it, the claims made so far
     * are released and a {@link RuntimeFailure} says so, naming the conflict with {@code whenTaken(file)}.
     */
    public static List<HostLock> claimAll(List<Path> files, Function<Path, String> whenTaken) {
        List<HostLock> claims = new ArrayList<>();
        for (Path file : files) {
            Optional<HostLock> claim;
            try {
                claim = tryAcquire(file);
            } catch (IOException e) {
                claims.forEach(HostLock::close);
                throw new RuntimeFailure("cannot create the lock file " + file + ": " + e.getMessage(), e);
            }
            if (claim.isEmpty()) {
                claims.forEach(HostLock::close);
                throw new RuntimeFailure(whenTaken.apply(file));
            }
            claims.add(claim.get());
        }
        return List.copyOf(claims);
    }

    @Override
    public void close() {
        synchronized (HELD) {
            if (closed) {
                return;
            }
            closed = true;
            Held held = HELD.get(file);
            if (held != null && --held.count == 0) {
                HELD.remove(file);
                try {
                    held.lock.release();
                    held.channel.close();
                } catch (IOException ignored) {
                    // the lock goes with the channel; nothing else to undo
                }
            }
        }
    }

    private static final class Held {
        final FileChannel channel;
        final FileLock lock;
        int count;

        Held(FileChannel channel, FileLock lock) {
            this.channel = channel;
            this.lock = lock;
        }
    }
}
