package dev.capsule.runtime.microvm;

import dev.capsule.runtime.host.Mounts;

import java.io.IOException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Copies of template snapshots' RAM files made ahead, off the create path, in {@code <data>/microvm/spares/<snapshot>/}:
 * a sandbox's RAM is its own file (see {@link MicroVmRuntime}), and copying ~190 MiB at create costs ~0.1 s and
 * leaves that much dirty page cache for the sandbox's first pause to flush (pause then took 0.12-0.15 s instead of
 * 0.04-0.06 s). A spare is written, flushed to disk and only then renamed to {@code *.ram}, so a spare taken (an
 * atomic rename into the sandbox's directory) is complete and on disk. After a take the spares are topped up in the
 * background, one copy at a time per snapshot. Costs {@link #COUNT} copies of disk per template snapshot in use, and
 * their clean page cache while it lasts.
 */
final class RamSpares {

    /** Spares kept per template snapshot: a create burst larger than this copies on the create path. */
    static final int COUNT = 2;

    private final Path root;
    private final Set<String> refilling = ConcurrentHashMap.newKeySet();
    private final Set<Thread> workers = ConcurrentHashMap.newKeySet();
    private volatile boolean closed;

    RamSpares(Path root) {
        this.root = root;
    }

    /**
     * Removes what cannot be used: half-written spares (a crash during a copy) and the spares of template snapshots
     * that are no longer in the cache ({@code snapshotExists} false for their directory's name).
     */
    void sweep(java.util.function.Predicate<String> snapshotExists) {
        for (Path dir : MicroVmRuntime.list(root)) {
            if (!snapshotExists.test(dir.getFileName().toString())) {
                Mounts.deleteTree(dir);
                continue;
            }
            for (Path file : MicroVmRuntime.list(dir)) {
                if (!file.getFileName().toString().endsWith(".ram")) {
                    Mounts.deleteTree(file);
                }
            }
        }
    }

    /**
     * Moves a spare copy of {@code ram} (a template snapshot's RAM file) to {@code target}; false when there is none
     * (the caller copies). Either way the spares of {@code ram} are topped up in the background.
     */
    boolean take(Path ram, Path target) {
        boolean taken = false;
        for (Path spare : MicroVmRuntime.list(dir(ram))) {
            if (!spare.getFileName().toString().endsWith(".ram")) {
                continue;
            }
            try {
                Files.move(spare, target, StandardCopyOption.ATOMIC_MOVE);
                taken = true;
                break;
            } catch (NoSuchFileException e) {
                // another create took it first
            } catch (IOException e) {
                break; // copy instead
            }
        }
        refill(ram);
        return taken;
    }

    /** Tops up the spares of {@code ram} in the background, unless that is already under way. */
    void refill(Path ram) {
        Path dir = dir(ram);
        String key = dir.getFileName().toString();
        if (closed || !refilling.add(key)) {
            return;
        }
        Thread worker = Thread.ofVirtual().name("ram-spares-" + key).unstarted(() -> {
            try {
                try {
                    Files.createDirectory(dir);
                } catch (FileAlreadyExistsException e) {
                    // kept from before
                }
                while (!closed && count(dir) < COUNT) {
                    String name = UUID.randomUUID().toString();
                    Path temp = dir.resolve(name + ".tmp");
                    try {
                        MicroVmRuntime.copySparse(ram, temp);
                        MicroVmRuntime.force(temp);
                        Files.move(temp, dir.resolve(name + ".ram"), StandardCopyOption.ATOMIC_MOVE);
                    } finally {
                        Files.deleteIfExists(temp);
                    }
                }
            } catch (IOException | RuntimeException e) {
                // the data directory went away (a test's, a closed driver's) or is full: creates copy instead
            } finally {
                refilling.remove(key);
                workers.remove(Thread.currentThread());
            }
        });
        workers.add(worker);
        worker.start();
    }

    /**
     * Stops topping up and waits (up to 30 s) for a copy under way, so nothing writes into the data directory once
     * the driver is closed; one that takes longer is swept at the next start.
     */
    void close() {
        closed = true;
        for (Thread worker : List.copyOf(workers)) {
            try {
                worker.join(30_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    private Path dir(Path ram) {
        return root.resolve(ram.getParent().getFileName().toString());
    }

    private static long count(Path dir) {
        return MicroVmRuntime.list(dir).stream().filter(file -> file.getFileName().toString().endsWith(".ram"))
                .count();
    }
}
