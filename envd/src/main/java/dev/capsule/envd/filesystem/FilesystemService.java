package dev.capsule.envd.filesystem;

import dev.capsule.connect.CallContext;
import dev.capsule.connect.Code;
import dev.capsule.connect.ConnectException;
import dev.capsule.connect.ConnectRouter;
import dev.capsule.connect.StreamSender;
import dev.capsule.envd.EnvdState;
import dev.capsule.envd.RpcService;
import dev.capsule.envd.rpc.filesystem.CreateWatcherRequest;
import dev.capsule.envd.rpc.filesystem.CreateWatcherResponse;
import dev.capsule.envd.rpc.filesystem.EntryInfo;
import dev.capsule.envd.rpc.filesystem.FilesystemEvent;
import dev.capsule.envd.rpc.filesystem.GetWatcherEventsRequest;
import dev.capsule.envd.rpc.filesystem.GetWatcherEventsResponse;
import dev.capsule.envd.rpc.filesystem.ListDirRequest;
import dev.capsule.envd.rpc.filesystem.ListDirResponse;
import dev.capsule.envd.rpc.filesystem.MakeDirRequest;
import dev.capsule.envd.rpc.filesystem.MakeDirResponse;
import dev.capsule.envd.rpc.filesystem.MoveRequest;
import dev.capsule.envd.rpc.filesystem.MoveResponse;
import dev.capsule.envd.rpc.filesystem.RemoveRequest;
import dev.capsule.envd.rpc.filesystem.RemoveResponse;
import dev.capsule.envd.rpc.filesystem.RemoveWatcherRequest;
import dev.capsule.envd.rpc.filesystem.RemoveWatcherResponse;
import dev.capsule.envd.rpc.filesystem.StatRequest;
import dev.capsule.envd.rpc.filesystem.StatResponse;
import dev.capsule.envd.rpc.filesystem.WatchDirRequest;
import dev.capsule.envd.rpc.filesystem.WatchDirResponse;
import dev.capsule.envd.users.User;
import dev.capsule.envd.users.UserResolver;

import java.io.IOException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.DirectoryStream;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;

/**
 * envd's {@code filesystem.Filesystem} Connect service, with E2B's semantics: Stat, MakeDir, Move, ListDir, Remove,
 * the WatchDir stream and the polling watchers (CreateWatcher, GetWatcherEvents, RemoveWatcher). Every call acts as
 * the user named in its {@code Authorization} header; relative paths resolve against that user's home. What it creates
 * (directories) belongs to that user.
 */
public final class FilesystemService implements RpcService {
    /** The Connect service name the SDKs call. */
    public static final String SERVICE = "filesystem.Filesystem";
    /** E2B's keepalive period when the client sends no {@code Keepalive-Ping-Interval}. */
    static final Duration DEFAULT_KEEPALIVE = Duration.ofSeconds(90);

    private static final SecureRandom RANDOM = new SecureRandom();

    private final UserResolver users;
    /** Kept for parity with the process service; paths resolve against the user's home, not the default workdir. */
    @SuppressWarnings("unused")
    private final EnvdState state;
    private final Set<DirectoryWatch> streams = ConcurrentHashMap.newKeySet();
    private final Map<String, DirectoryWatch> watchers = new ConcurrentHashMap<>();
    private volatile boolean closed;

    public FilesystemService(UserResolver users, EnvdState state) {
        this.users = users;
        this.state = state;
    }

    @Override
    public void register(ConnectRouter.Builder router) {
        router.unary(SERVICE, "Stat", StatRequest.getDefaultInstance(), this::stat)
                .unary(SERVICE, "MakeDir", MakeDirRequest.getDefaultInstance(), this::makeDir)
                .unary(SERVICE, "Move", MoveRequest.getDefaultInstance(), this::move)
                .unary(SERVICE, "ListDir", ListDirRequest.getDefaultInstance(), this::listDir)
                .unary(SERVICE, "Remove", RemoveRequest.getDefaultInstance(), this::remove)
                .serverStream(SERVICE, "WatchDir", WatchDirRequest.getDefaultInstance(), this::watchDir)
                .unary(SERVICE, "CreateWatcher", CreateWatcherRequest.getDefaultInstance(), this::createWatcher)
                .unary(SERVICE, "GetWatcherEvents", GetWatcherEventsRequest.getDefaultInstance(),
                        this::getWatcherEvents)
                .unary(SERVICE, "RemoveWatcher", RemoveWatcherRequest.getDefaultInstance(), this::removeWatcher);
    }

    /** Ends every watch stream and polling watcher and frees their inotify instances. */
    @Override
    public void close() {
        closed = true;
        for (DirectoryWatch watch : streams) {
            watch.close();
        }
        for (String id : List.copyOf(watchers.keySet())) {
            DirectoryWatch watch = watchers.remove(id);
            if (watch != null) {
                watch.close();
            }
        }
    }

    // ---- Stat, MakeDir, Move, ListDir, Remove ----

    StatResponse stat(StatRequest request, CallContext ctx) {
        User user = user(ctx);
        Path path = resolve(user, request.getPath());
        return StatResponse.newBuilder().setEntry(entry(path, "file not found: " + path)).build();
    }

    MakeDirResponse makeDir(MakeDirRequest request, CallContext ctx) {
        User user = user(ctx);
        Path path = resolve(user, request.getPath());
        if (Files.isDirectory(path)) {
            throw new ConnectException(Code.ALREADY_EXISTS, "directory already exists: " + path);
        }
        if (Files.exists(path)) {
            throw new ConnectException(Code.INVALID_ARGUMENT,
                    "path already exists but it is not a directory: " + path + "; choose another path");
        }
        try {
            Directories.ensure(path, user);
        } catch (FileAlreadyExistsException e) {
            throw new ConnectException(Code.INVALID_ARGUMENT, "cannot create directory " + path + ": "
                    + e.getFile() + " exists and is not a directory");
        } catch (IOException e) {
            throw ioFailure("cannot create directory " + path, e);
        }
        return MakeDirResponse.newBuilder().setEntry(entry(path, "directory vanished: " + path)).build();
    }

    MoveResponse move(MoveRequest request, CallContext ctx) {
        User user = user(ctx);
        Path source = resolve(user, request.getSource());
        Path destination = resolve(user, request.getDestination());
        if (!Files.exists(source, LinkOption.NOFOLLOW_LINKS)) {
            throw new ConnectException(Code.NOT_FOUND, "source file not found: " + source);
        }
        if (destination.getParent() != null) {
            try {
                Directories.ensure(destination.getParent(), user);
            } catch (FileAlreadyExistsException e) {
                throw new ConnectException(Code.INVALID_ARGUMENT, "cannot move to " + destination + ": "
                        + e.getFile() + " exists and is not a directory");
            } catch (IOException e) {
                throw ioFailure("cannot create the parent directories of " + destination, e);
            }
        }
        try {
            try {
                // ATOMIC_MOVE is rename(2): replaces an existing file or empty directory, like Go's os.Rename.
                Files.move(source, destination, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                // Another file system: copy and delete (works for files, links and empty directories).
                Files.move(source, destination, StandardCopyOption.REPLACE_EXISTING);
            }
        } catch (NoSuchFileException e) {
            throw new ConnectException(Code.NOT_FOUND, "source file not found: " + source);
        } catch (DirectoryNotEmptyException e) {
            throw new ConnectException(Code.FAILED_PRECONDITION, "cannot move " + source + " to " + destination + ": "
                    + e.getFile() + " is a non-empty directory (or the move crosses file systems); remove it first");
        } catch (IOException e) {
            throw ioFailure("error renaming " + source + " to " + destination, e);
        }
        return MoveResponse.newBuilder().setEntry(entry(destination, "file not found: " + destination)).build();
    }

    ListDirResponse listDir(ListDirRequest request, CallContext ctx) {
        User user = user(ctx);
        int depth = request.getDepth() == 0 ? 1 : request.getDepth();
        if (depth < 0) {
            depth = Integer.MAX_VALUE; // a uint32 above 2^31
        }
        Path dir = resolve(user, request.getPath());
        Path real;
        try {
            real = dir.toRealPath();
        } catch (IOException e) {
            if (Entries.isMissing(e)) {
                throw new ConnectException(Code.NOT_FOUND, "directory not found: " + dir);
            }
            if (isLoop(e)) {
                throw new ConnectException(Code.FAILED_PRECONDITION,
                        "cyclic symlink or chain >255 links at \"" + dir + "\"; list a path without a link loop");
            }
            throw ioFailure("error resolving symlink " + dir, e);
        }
        if (!Files.isDirectory(real)) {
            throw new ConnectException(Code.INVALID_ARGUMENT, "path is not a directory: " + dir
                    + "; use Stat for a single file");
        }
        List<EntryInfo> entries = new ArrayList<>();
        try {
            walk(dir, 1, depth, entries);
        } catch (IOException e) {
            throw ioFailure("error reading directory " + dir, e);
        }
        return ListDirResponse.newBuilder().addAllEntries(entries).build();
    }

    /** Lists {@code dir} in name order, descending into real (not symlinked) directories up to {@code depth}. */
    private void walk(Path dir, int level, int depth, List<EntryInfo> out) throws IOException {
        TreeSet<String> names = new TreeSet<>();
        try (DirectoryStream<Path> children = Files.newDirectoryStream(dir)) {
            for (Path child : children) {
                names.add(child.getFileName().toString());
            }
        } catch (NoSuchFileException e) {
            if (level > 1) {
                return; // removed while we listed its parent
            }
            throw e;
        }
        for (String name : names) {
            Path child = dir.resolve(name);
            EntryInfo entry;
            try {
                entry = Entries.of(child, users.users());
            } catch (NoSuchFileException e) {
                continue; // removed since the directory was read
            }
            out.add(entry);
            if (level < depth && Files.isDirectory(child, LinkOption.NOFOLLOW_LINKS)) {
                walk(child, level + 1, depth, out);
            }
        }
    }

    RemoveResponse remove(RemoveRequest request, CallContext ctx) {
        User user = user(ctx);
        Path path = resolve(user, request.getPath());
        try {
            deleteRecursively(path);
        } catch (IOException e) {
            throw ioFailure("error removing file or directory " + path, e);
        }
        return RemoveResponse.getDefaultInstance();
    }

    /** Deletes a file, link or directory tree without following links; a missing path is not an error. */
    private static void deleteRecursively(Path path) throws IOException {
        Files.walkFileTree(path, new SimpleFileVisitor<>() {
            @Override
            public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
                Files.deleteIfExists(file);
                return FileVisitResult.CONTINUE;
            }

            @Override
            public FileVisitResult visitFileFailed(Path file, IOException e) throws IOException {
                if (e instanceof NoSuchFileException) {
                    return FileVisitResult.CONTINUE;
                }
                throw e;
            }

            @Override
            public FileVisitResult postVisitDirectory(Path dir, IOException e) throws IOException {
                if (e != null && !(e instanceof NoSuchFileException)) {
                    throw e;
                }
                Files.deleteIfExists(dir);
                return FileVisitResult.CONTINUE;
            }
        });
    }

    // ---- watching ----

    void watchDir(WatchDirRequest request, CallContext ctx, StreamSender<WatchDirResponse> out)
            throws InterruptedException {
        User user = user(ctx);
        Path path = resolve(user, request.getPath());
        DirectoryWatch watch = startWatch(path, request.getRecursive(), request.getIncludeEntry(),
                request.getAllowNetworkMounts());
        streams.add(watch);
        ctx.onCancel(reason -> watch.close());
        try {
            if (closed) {
                throw shuttingDown();
            }
            out.send(WatchDirResponse.newBuilder()
                    .setStart(WatchDirResponse.StartEvent.getDefaultInstance()).build());
            Duration keepalive = keepaliveInterval(ctx.header("Keepalive-Ping-Interval"));
            while (true) {
                List<FilesystemEvent> events = watch.await(keepalive);
                if (events == null) {
                    if (ctx.isCancelled()) {
                        return; // the client left or the deadline passed; the call already carries why
                    }
                    throw shuttingDown();
                }
                if (events.isEmpty()) {
                    out.send(WatchDirResponse.newBuilder()
                            .setKeepalive(WatchDirResponse.KeepAlive.getDefaultInstance()).build());
                    continue;
                }
                for (FilesystemEvent event : events) {
                    out.send(WatchDirResponse.newBuilder().setFilesystem(event).build());
                }
            }
        } finally {
            watch.close();
            streams.remove(watch);
        }
    }

    CreateWatcherResponse createWatcher(CreateWatcherRequest request, CallContext ctx) {
        User user = user(ctx);
        Path path = resolve(user, request.getPath());
        DirectoryWatch watch = startWatch(path, request.getRecursive(), request.getIncludeEntry(),
                request.getAllowNetworkMounts());
        String id = "w" + HexFormat.of().formatHex(randomBytes());
        watchers.put(id, watch);
        if (closed) {
            watchers.remove(id);
            watch.close();
            throw shuttingDown();
        }
        return CreateWatcherResponse.newBuilder().setWatcherId(id).build();
    }

    GetWatcherEventsResponse getWatcherEvents(GetWatcherEventsRequest request, CallContext ctx) {
        user(ctx);
        DirectoryWatch watch = watcher(request.getWatcherId());
        return GetWatcherEventsResponse.newBuilder().addAllEvents(watch.drain()).build();
    }

    RemoveWatcherResponse removeWatcher(RemoveWatcherRequest request, CallContext ctx) {
        user(ctx);
        DirectoryWatch watch = watchers.remove(request.getWatcherId());
        if (watch == null) {
            throw unknownWatcher(request.getWatcherId());
        }
        watch.close();
        return RemoveWatcherResponse.getDefaultInstance();
    }

    /** How many watch streams and polling watchers are open (for tests and metrics). */
    int openWatches() {
        return streams.size() + watchers.size();
    }

    private DirectoryWatch watcher(String id) {
        DirectoryWatch watch = watchers.get(id);
        if (watch == null) {
            throw unknownWatcher(id);
        }
        return watch;
    }

    private static ConnectException unknownWatcher(String id) {
        return new ConnectException(Code.NOT_FOUND, "watcher with id " + id
                + " not found; it was removed or never created: create a new one with CreateWatcher");
    }

    private DirectoryWatch startWatch(Path path, boolean recursive, boolean includeEntry, boolean allowNetwork) {
        BasicFileAttributes attrs;
        try {
            attrs = Files.readAttributes(path, BasicFileAttributes.class);
        } catch (IOException e) {
            if (Entries.isMissing(e)) {
                throw new ConnectException(Code.NOT_FOUND, "path " + path + " not found");
            }
            throw ioFailure("error statting path " + path, e);
        }
        if (!attrs.isDirectory()) {
            throw new ConnectException(Code.INVALID_ARGUMENT, "path " + path + " is not a directory; watch its"
                    + " parent directory instead");
        }
        if (!allowNetwork) {
            String kind = NetworkMounts.networkFileSystem(path);
            if (kind != null) {
                throw new ConnectException(Code.INVALID_ARGUMENT, "cannot watch path on network filesystem: " + path
                        + " is on " + kind + ", where changes made elsewhere are not seen; pass"
                        + " allowNetworkMounts to watch it anyway");
            }
        }
        if (closed) {
            throw shuttingDown();
        }
        return DirectoryWatch.start(path, recursive, includeEntry, users.users());
    }

    private static byte[] randomBytes() {
        byte[] bytes = new byte[10];
        RANDOM.nextBytes(bytes);
        return bytes;
    }

    private static ConnectException shuttingDown() {
        return new ConnectException(Code.UNAVAILABLE, "envd's filesystem service is shutting down; watch again"
                + " once it is back");
    }

    /** E2B's rule: the header's whole seconds when positive, else 90 s. */
    static Duration keepaliveInterval(String header) {
        if (header != null) {
            try {
                long seconds = Long.parseLong(header.trim());
                if (seconds > 0 && seconds <= Duration.ofDays(365).toSeconds()) {
                    return Duration.ofSeconds(seconds);
                }
            } catch (NumberFormatException e) {
                // not a number: the default applies
            }
        }
        return DEFAULT_KEEPALIVE;
    }

    // ---- helpers ----

    private User user(CallContext ctx) {
        return users.fromAuthorization(ctx.header("Authorization"));
    }

    private static Path resolve(User user, String path) {
        try {
            return user.resolve(path);
        } catch (InvalidPathException e) {
            throw new ConnectException(Code.INVALID_ARGUMENT, "invalid path '" + path.replace("\0", "\\0")
                    + "': " + e.getReason() + "; send a path without NUL characters");
        }
    }

    private EntryInfo entry(Path path, String missing) {
        try {
            return Entries.of(path, users.users());
        } catch (IOException e) {
            if (Entries.isMissing(e)) {
                throw new ConnectException(Code.NOT_FOUND, missing);
            }
            throw ioFailure("error getting file info of " + path, e);
        }
    }

    private static boolean isLoop(IOException e) {
        return e instanceof FileSystemException fse && fse.getReason() != null
                && fse.getReason().contains("Too many levels of symbolic links");
    }

    private static ConnectException ioFailure(String what, IOException e) {
        return IoErrors.of(what, e);
    }
}
