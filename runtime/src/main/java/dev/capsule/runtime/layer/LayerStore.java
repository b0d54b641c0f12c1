package dev.capsule.runtime.layer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.capsule.runtime.Resources;
import dev.capsule.runtime.RuntimeFailure;
import dev.capsule.runtime.host.Command;
import dev.capsule.runtime.host.Mounts;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.SecureRandom;
import java.time.Instant;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.function.Supplier;

/**
 * Snapshot layers on disk, under {@code <data dir>/layers/}:
 * <ul>
 * <li>{@code <name>/fs/} and {@code <name>/layer.json} (id, template build, parent chain, resources, size,
 *     creation time): one {@link Layer}, immutable once there;</li>
 * <li>{@code ids/<sha256 of the snapshot id>}: a symbolic link to {@code ../<name>}, the id's current layer.
 *     Creating it is how an id is claimed (atomically: a second claim finds it there), deleting it is how a
 *     snapshot is deleted;</li>
 * <li>{@code .tmp-<name>/}: a layer being written, renamed to {@code <name>} once complete, so a crash never
 *     leaves half a layer where one is looked for.</li>
 * </ul>
 * A layer's files stay while anything references it: an id, a sandbox started from it (the {@code inUse}
 * supplier tells), a layer above it, or a start in progress ({@link #pin}). {@link #collectGarbage()} removes
 * the rest.
 */
public final class LayerStore {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final SecureRandom RANDOM = new SecureRandom();
    /** The length of a layer's name: what a lower dir's path in an overlay's mount options takes. */
    public static final int NAME_LENGTH = 21;
    private static final String IDS = "ids";
    private static final String TEMP_PREFIX = ".tmp-";
    private static final long COPY_TIMEOUT_SECONDS = 3600;

    /** Fills a new layer's {@code fs} directory (which does not exist yet). */
    @FunctionalInterface
    public interface Filler {
        void fill(Path fs);
    }

    /** What a new layer is taken over and from: its template build, its parents (top first), its default limits. */
    public record Origin(String templateName, String templateHash, List<String> parents, Resources resources) {
        public Origin {
            parents = List.copyOf(parents);
        }
    }

    private final Path dir;
    private final Supplier<Set<String>> inUse;
    private final Object lock = new Object();
    /** Layers held by starts and snapshots in progress, with how many hold each. */
    private final Map<String, Integer> pinned = new HashMap<>();

    /**
     * @param dir   the store's directory, created when the first layer is
     * @param inUse the names of the layers sandboxes on this host use (their chains, as recorded for each)
     */
    public LayerStore(Path dir, Supplier<Set<String>> inUse) {
        this.dir = dir.toAbsolutePath().normalize();
        this.inUse = inUse;
    }

    public Path dir() {
        return dir;
    }

    /** The current layer of snapshot {@code snapshotId}, if it exists (and is complete). */
    public Optional<Layer> find(String snapshotId) {
        Path link = idLink(snapshotId);
        try {
            if (!Files.isSymbolicLink(link)) {
                return Optional.empty();
            }
            Optional<Layer> layer = read(Files.readSymbolicLink(link).getFileName().toString());
            return layer.filter(l -> l.snapshotId().equals(snapshotId));
        } catch (IOException e) {
            return Optional.empty(); // deleted while we looked
        }
    }

    /** The layers named, in that order. */
    public List<Layer> layers(List<String> names) {
        List<Layer> layers = new ArrayList<>();
        for (String name : names) {
            layers.add(read(name).orElseThrow(() -> new RuntimeFailure("layer " + name + " is missing from "
                    + dir + "; the sandboxes and snapshots resting on it cannot be started")));
        }
        return layers;
    }

    /** Where {@code name}'s files are, whether or not it exists: what an overlay stacks. */
    public Path fs(String name) {
        return dir.resolve(name).resolve("fs");
    }

    /**
     * Stores a new layer as snapshot {@code snapshotId}: claims the id, has {@code filler} write its files into a
     * temporary directory, records it and renames it into place (flushed to disk before and after). The parents
     * are kept while it is being written.
     *
     * @throws RuntimeFailure the id is taken (nothing changed), or writing failed (nothing is left of it)
     */
    public Layer create(String snapshotId, Origin origin, Filler filler) {
        String name = newName(snapshotId);
        Path link = idLink(snapshotId);
        Path temp = dir.resolve(TEMP_PREFIX + name);
        try (Pin parents = pin(origin.parents())) {
            try {
                Files.createDirectories(link.getParent());
                Files.createSymbolicLink(link, Path.of("..", name));
            } catch (FileAlreadyExistsException e) {
                throw new RuntimeFailure("snapshot id '" + snapshotId + "' is taken on this host; delete it first "
                        + "or choose another id");
            } catch (IOException e) {
                throw new RuntimeFailure("cannot claim snapshot id '" + snapshotId + "' in " + link.getParent()
                        + ": " + e.getMessage(), e);
            }
            try {
                Files.createDirectories(temp);
                filler.fill(temp.resolve("fs"));
                long size = Long.parseLong(Command.run(List.of("du", "-s", "-B1", temp.resolve("fs").toString()),
                        COPY_TIMEOUT_SECONDS).orThrow().stdout().split("\\s+")[0]);
                Layer layer = new Layer(name, snapshotId, origin.templateName(), origin.templateHash(),
                        origin.parents(), origin.resources(), size, Instant.now(), dir.resolve(name));
                write(layer, temp.resolve("layer.json"));
                sync(temp);
                synchronized (lock) {
                    Files.move(temp, layer.dir(), StandardCopyOption.ATOMIC_MOVE);
                }
                sync(dir);
                return layer;
            } catch (IOException | RuntimeException e) {
                RuntimeFailure failure = e instanceof RuntimeFailure f ? f : new RuntimeFailure("cannot store "
                        + "snapshot '" + snapshotId + "' in " + dir + ": " + e.getMessage(), e);
                try {
                    Mounts.deleteTree(temp);
                    Files.deleteIfExists(link);
                } catch (IOException | RuntimeException cleanup) {
                    failure.addSuppressed(cleanup);
                }
                throw failure;
            }
        }
    }

    /**
     * Deletes snapshot {@code snapshotId}: the id is free again at once; its layer's files go with the last
     * sandbox or layer that uses them. Returns whether the snapshot existed.
     */
    public boolean delete(String snapshotId) {
        boolean existed;
        synchronized (lock) {
            existed = find(snapshotId).isPresent();
            if (existed) {
                try {
                    Files.delete(idLink(snapshotId));
                } catch (IOException e) {
                    throw new RuntimeFailure("cannot delete snapshot '" + snapshotId + "' (" + idLink(snapshotId)
                            + "): " + e.getMessage(), e);
                }
            }
        }
        if (existed) {
            collectGarbage();
        }
        return existed;
    }

    /** A hold on layers, so that garbage collection keeps them while a start or a snapshot uses them. */
    public final class Pin implements AutoCloseable {
        private final List<String> names;
        private boolean closed;

        private Pin(List<String> names) {
            this.names = List.copyOf(names);
        }

        @Override
        public void close() {
            synchronized (lock) {
                if (!closed) {
                    closed = true;
                    names.forEach(name -> pinned.computeIfPresent(name, (key, count) -> count == 1 ? null : count - 1));
                }
            }
        }
    }

    /**
     * Holds {@code names} until the pin is closed.
     *
     * @throws RuntimeFailure one of them is gone already (deleted and collected since it was looked up)
     */
    public Pin pin(List<String> names) {
        synchronized (lock) {
            for (String name : names) {
                if (!Files.isRegularFile(dir.resolve(name).resolve("layer.json"))) {
                    throw new RuntimeFailure("layer " + name + " was deleted meanwhile; start from an existing "
                            + "snapshot");
                }
            }
            names.forEach(name -> pinned.merge(name, 1, Integer::sum));
            return new Pin(names);
        }
    }

    /**
     * Removes the layers nothing references any more (no id, no sandbox, no layer above, no pin) and returns their
     * names. Layers being written are left alone.
     */
    public List<String> collectGarbage() {
        if (!Files.isDirectory(dir)) {
            return List.of();
        }
        synchronized (lock) {
            Set<String> referenced = new HashSet<>(pinned.keySet());
            referenced.addAll(inUse.get());
            for (Path link : list(dir.resolve(IDS))) {
                try {
                    referenced.add(Files.readSymbolicLink(link).getFileName().toString());
                } catch (IOException e) {
                    // not a link of ours: it references nothing
                }
            }
            Deque<String> toExpand = new ArrayDeque<>(referenced);
            while (!toExpand.isEmpty()) {
                read(toExpand.pop()).ifPresent(layer -> layer.parents().stream().filter(referenced::add)
                        .forEach(toExpand::push));
            }
            List<String> removed = new ArrayList<>();
            for (Path entry : list(dir)) {
                String name = entry.getFileName().toString();
                if (!name.equals(IDS) && !name.startsWith(TEMP_PREFIX) && !referenced.contains(name)) {
                    Mounts.deleteTree(entry);
                    removed.add(name);
                }
            }
            return removed;
        }
    }

    /**
     * What a crash may have left: layers half-written (temporary directories) and the ids they had claimed. Call
     * it when no snapshot is being taken, at start-up; it then collects garbage.
     */
    public void recover() {
        synchronized (lock) {
            for (Path entry : list(dir)) {
                if (entry.getFileName().toString().startsWith(TEMP_PREFIX)) {
                    Mounts.deleteTree(entry);
                }
            }
            for (Path link : list(dir.resolve(IDS))) {
                if (!Files.exists(link)) { // follows the link: its layer was never completed
                    try {
                        Files.deleteIfExists(link);
                    } catch (IOException e) {
                        throw new UncheckedIOException("cannot remove the unfinished snapshot id " + link, e);
                    }
                }
            }
        }
        collectGarbage();
    }

    // --- on disk ------------------------------------------------------------------------------------------

    private Path idLink(String snapshotId) {
        if (snapshotId == null || snapshotId.isBlank()) {
            throw new RuntimeFailure("a snapshot id must not be empty");
        }
        return dir.resolve(IDS).resolve(sha256(snapshotId));
    }

    /** A name no layer had: the id's hash, to find it by eye, and a random part, as an id may be taken again. */
    private static String newName(String snapshotId) {
        byte[] random = new byte[4];
        RANDOM.nextBytes(random);
        return sha256(snapshotId).substring(0, 12) + "-" + HexFormat.of().formatHex(random);
    }

    private Optional<Layer> read(String name) {
        Path layerDir = dir.resolve(name);
        Path file = layerDir.resolve("layer.json");
        if (!Files.isRegularFile(file, LinkOption.NOFOLLOW_LINKS)) {
            return Optional.empty();
        }
        try {
            JsonNode json = JSON.readTree(file.toFile());
            List<String> parents = new ArrayList<>();
            json.path("parents").forEach(node -> parents.add(node.asText()));
            return Optional.of(new Layer(name, json.path("snapshotId").asText(),
                    json.path("template").path("name").asText(), json.path("template").path("hash").asText(),
                    parents, JSON.treeToValue(json.path("resources"), Resources.class),
                    json.path("sizeBytes").asLong(), Instant.parse(json.path("createdAt").asText()), layerDir));
        } catch (IOException | RuntimeException e) {
            throw new RuntimeFailure("layer " + name + " has an unreadable " + file + ": " + e.getMessage(), e);
        }
    }

    private static void write(Layer layer, Path file) throws IOException {
        ObjectNode json = JSON.createObjectNode();
        json.put("snapshotId", layer.snapshotId());
        json.put("name", layer.name());
        ObjectNode template = json.putObject("template");
        template.put("name", layer.templateName());
        template.put("hash", layer.templateHash());
        layer.parents().forEach(json.putArray("parents")::add);
        json.set("resources", JSON.valueToTree(layer.resources()));
        json.put("sizeBytes", layer.sizeBytes());
        json.put("createdAt", layer.createdAt().toString());
        JSON.writerWithDefaultPrettyPrinter().writeValue(file.toFile(), json);
    }

    /** syncfs of the file system holding {@code path}: what was written there is on disk. */
    private static void sync(Path path) {
        Command.run(List.of("sync", "-f", path.toString()), COPY_TIMEOUT_SECONDS).orThrow();
    }

    private static List<Path> list(Path directory) {
        if (!Files.isDirectory(directory)) {
            return List.of();
        }
        List<Path> entries = new ArrayList<>();
        try (DirectoryStream<Path> stream = Files.newDirectoryStream(directory)) {
            stream.forEach(entries::add);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list " + directory, e);
        }
        return entries;
    }

    private static String sha256(String text) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256")
                    .digest(text.getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
