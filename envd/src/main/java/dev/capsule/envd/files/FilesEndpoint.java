package dev.capsule.envd.files;

import dev.capsule.connect.Code;
import dev.capsule.connect.ConnectException;
import dev.capsule.envd.EnvdHttp;
import dev.capsule.envd.EnvdState;
import dev.capsule.envd.auth.AccessControl;
import dev.capsule.envd.auth.Signatures;
import dev.capsule.envd.filesystem.Directories;
import dev.capsule.envd.filesystem.IoErrors;
import dev.capsule.envd.filesystem.Metadata;
import dev.capsule.envd.filesystem.Ownership;
import dev.capsule.envd.users.User;
import dev.capsule.envd.users.UserResolver;
import io.vertx.core.MultiMap;
import io.vertx.core.http.HttpMethod;
import io.vertx.core.http.HttpServerRequest;
import io.vertx.core.http.HttpServerResponse;
import io.vertx.core.http.HttpVersion;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URLEncoder;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.UserDefinedFileAttributeView;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.logging.Level;
import java.util.logging.Logger;
import java.util.zip.GZIPInputStream;
import java.util.zip.Deflater;
import java.util.zip.GZIPOutputStream;
import java.util.zip.ZipException;

/**
 * {@code GET /files} (download) and {@code POST /files} (upload) as E2B's envd serves them: raw bytes out, optionally
 * gzip; multipart (one or many files) or raw octet-stream in, optionally gzip; files and the directories created for
 * them belong to the requesting user; {@code X-Metadata-<key>} headers become the file's metadata. Bodies stream in
 * both directions on a virtual thread, so memory use does not depend on file size.
 */
public final class FilesEndpoint {
    private static final Logger LOG = Logger.getLogger(FilesEndpoint.class.getName());
    private static final String METADATA_PREFIX = "x-metadata-";
    private static final int COPY_BUFFER = 64 * 1024;

    private final UserResolver users;
    private final EnvdState state;
    private final AccessControl access;
    private final ExecutorService executor;

    public FilesEndpoint(UserResolver users, EnvdState state, AccessControl access, ExecutorService executor) {
        this.users = users;
        this.state = state;
        this.access = access;
        this.executor = executor;
    }

    /** Serves a /files request; call on the event loop, from the request handler. */
    public void handle(HttpServerRequest request) {
        HttpServerResponse response = request.response();
        if (request.method() == HttpMethod.GET) {
            executor.execute(() -> guarded(response, () -> download(request)));
        } else if (request.method() == HttpMethod.POST) {
            RequestBodyStream body = new RequestBodyStream(request);
            response.closeHandler(v -> body.abort("the client closed the connection during the upload"));
            executor.execute(() -> {
                try {
                    guarded(response, () -> upload(request, body));
                } finally {
                    body.close();
                }
            });
        } else {
            response.putHeader("Allow", "GET, POST");
            EnvdHttp.error(response, 405, "method " + request.method() + " not allowed on /files: use GET to "
                    + "download or POST to upload");
        }
    }

    private interface Work {
        void run() throws IOException;
    }

    private static void guarded(HttpServerResponse response, Work work) {
        try {
            work.run();
        } catch (ConnectException e) {
            EnvdHttp.error(response, e);
        } catch (FileTransferException e) {
            EnvdHttp.error(response, e.status(), e.getMessage());
        } catch (IOException | RuntimeException e) {
            ConnectException mapped = e instanceof IOException io ? IoErrors.of("file transfer failed", io) : null;
            if (mapped == null || mapped.code() == Code.INTERNAL) {
                LOG.log(Level.WARNING, "/files request failed", e);
            }
            if (response.headWritten()) {
                // Too late for an error body: cut the transfer so the client sees it incomplete.
                response.reset();
            } else if (mapped != null) {
                EnvdHttp.error(response, mapped);
            } else {
                EnvdHttp.error(response, 500, "file transfer failed: " + e.getMessage());
            }
        }
    }

    // ---------------------------------------------------------------- download

    private void download(HttpServerRequest request) throws IOException {
        HttpServerResponse response = request.response();
        String rawPath = request.getParam("path");
        String username = request.getParam("username");
        access.checkFileAccess(request.getHeader(AccessControl.TOKEN_HEADER), request.getParam("signature"),
                request.getParam("signature_expiration"), username, rawPath, Signatures.Operation.READ);
        User user = users.byName(username);
        Path path = resolve(rawPath, user);

        BasicFileAttributes attributes;
        try {
            attributes = Files.readAttributes(path, BasicFileAttributes.class);
        } catch (NoSuchFileException e) {
            throw new ConnectException(Code.NOT_FOUND, "path '" + path + "' does not exist");
        }
        if (attributes.isDirectory()) {
            throw new ConnectException(Code.INVALID_ARGUMENT, "path '" + path + "' is a directory");
        }
        ContentCoding coding;
        try {
            coding = ContentCoding.negotiate(request.getHeader("Accept-Encoding"));
        } catch (ContentCoding.NotAcceptable e) {
            throw new FileTransferException(406, e.getMessage());
        }

        FileChannel channel;
        try {
            channel = FileChannel.open(path, StandardOpenOption.READ);
        } catch (NoSuchFileException e) {
            throw new ConnectException(Code.NOT_FOUND, "path '" + path + "' does not exist");
        }
        boolean handedOver = false;
        try {
            long size = channel.size();
            response.setStatusCode(200)
                    .putHeader("Content-Type", "application/octet-stream")
                    .putHeader("Content-Disposition", contentDisposition(path))
                    .putHeader("Vary", "Accept-Encoding")
                    .putHeader("Last-Modified", httpDate(attributes));
            if (coding == ContentCoding.IDENTITY && request.version() != HttpVersion.HTTP_2) {
                // Plain HTTP/1.x: the event loop sends the file with sendfile(2), straight from the page cache to
                // the socket, as fast as the client takes it (no copies through the heap, no thread hand-offs).
                handedOver = true;
                response.sendFile(channel, 0, size).onComplete(done -> closeQuietly(channel));
                return;
            }
            if (coding == ContentCoding.GZIP) {
                response.putHeader("Content-Encoding", "gzip").setChunked(true);
                try (OutputStream out = fastGzip(new ResponseBodyStream(response))) {
                    copy(channel, size, out);
                }
            } else {
                response.putHeader("Content-Length", Long.toString(size));
                try (OutputStream out = new ResponseBodyStream(response)) {
                    copy(channel, size, out);
                }
            }
        } finally {
            if (!handedOver) {
                closeQuietly(channel);
            }
        }
    }

    private static void closeQuietly(FileChannel channel) {
        try {
            channel.close();
        } catch (IOException e) {
            LOG.log(Level.FINE, "closing a downloaded file", e);
        }
    }

    /**
     * gzip at deflate's fastest level: a client that accepts gzip (as fetch always does) mostly talks to envd over a
     * fast link, where the default level costs more time than its smaller output saves (1 MiB: 4 ms against 1.6 ms).
     */
    private static OutputStream fastGzip(OutputStream out) throws IOException {
        return new GZIPOutputStream(out, COPY_BUFFER) {
            {
                def.setLevel(Deflater.BEST_SPEED);
            }
        };
    }

    /** Copies exactly {@code size} bytes (the length announced to the client) from the file. */
    private static void copy(FileChannel channel, long size, OutputStream out) throws IOException {
        byte[] chunk = new byte[COPY_BUFFER];
        ByteBuffer buffer = ByteBuffer.wrap(chunk);
        long left = size;
        while (left > 0) {
            buffer.clear().limit((int) Math.min(chunk.length, left));
            int n = channel.read(buffer);
            if (n < 0) {
                throw new IOException("the file shrank while it was being sent");
            }
            out.write(chunk, 0, n);
            left -= n;
        }
    }

    private static String contentDisposition(Path path) {
        Path name = path.getFileName();
        String filename = name == null ? "file" : name.toString();
        StringBuilder ascii = new StringBuilder();
        boolean plain = true;
        for (char c : filename.toCharArray()) {
            if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') {
                plain = false;
                ascii.append('_');
            } else {
                ascii.append(c);
            }
        }
        String value = "inline; filename=\"" + ascii + "\"";
        if (!plain) {
            value += "; filename*=UTF-8''" + URLEncoder.encode(filename, StandardCharsets.UTF_8).replace("+", "%20");
        }
        return value;
    }

    private static String httpDate(BasicFileAttributes attributes) {
        return java.time.format.DateTimeFormatter.RFC_1123_DATE_TIME.format(
                attributes.lastModifiedTime().toInstant().atZone(java.time.ZoneOffset.UTC));
    }

    // ---------------------------------------------------------------- upload

    private void upload(HttpServerRequest request, RequestBodyStream body) throws IOException {
        HttpServerResponse response = request.response();
        String rawPath = request.getParam("path");
        String username = request.getParam("username");
        access.checkFileAccess(request.getHeader(AccessControl.TOKEN_HEADER), request.getParam("signature"),
                request.getParam("signature_expiration"), username, rawPath, Signatures.Operation.WRITE);
        User user = users.byName(username);
        ContentCoding coding = ContentCoding.ofRequest(request.getHeader("Content-Encoding"));
        Map<String, String> metadata = metadataHeaders(request.headers());

        String contentType = request.getHeader("Content-Type");
        String mediaType = contentType == null ? "" : contentType.split(";", 2)[0].trim().toLowerCase(Locale.ROOT);
        InputStream in;
        try {
            in = coding == ContentCoding.GZIP ? new GZIPInputStream(body, COPY_BUFFER) : body;
        } catch (IOException e) {
            throw badBody(e);
        }
        List<JsonObject> written = new ArrayList<>();
        if (mediaType.equals("application/octet-stream")) {
            if (rawPath == null) {
                throw new ConnectException(Code.INVALID_ARGUMENT,
                        "path query parameter is required for raw body upload");
            }
            written.add(writeFile(resolve(rawPath, user), in, user, metadata));
        } else if (mediaType.startsWith("multipart/")) {
            String boundary = MultipartReader.boundaryOf(contentType);
            if (boundary == null || boundary.isEmpty()) {
                throw new ConnectException(Code.INVALID_ARGUMENT,
                        "the multipart Content-Type has no boundary parameter; send multipart/form-data; boundary=...");
            }
            MultipartReader reader = new MultipartReader(in, boundary);
            List<Path> targets = new ArrayList<>();
            MultipartReader.Part part;
            while ((part = next(reader)) != null) {
                if (!"file".equals(part.name())) {
                    continue;
                }
                String target = rawPath;
                if (target == null) {
                    target = part.filename();
                    if (target == null || target.isEmpty()) {
                        throw new ConnectException(Code.INVALID_ARGUMENT, "a multipart 'file' part has no filename: "
                                + "without the path query parameter each part's filename must be its target path");
                    }
                }
                Path path = resolve(target, user);
                if (targets.contains(path)) {
                    throw new ConnectException(Code.INVALID_ARGUMENT, "you cannot upload multiple files to the same "
                            + "path '" + path + "' in one upload request, only the first specified file was uploaded");
                }
                targets.add(path);
                written.add(writeFile(path, part.body(), user, metadata));
            }
        } else {
            throw new ConnectException(Code.INVALID_ARGUMENT, "unsupported content type: " + contentType
                    + ", expected multipart/form-data or application/octet-stream");
        }
        response.setStatusCode(200)
                .putHeader("Content-Type", "application/json")
                .end(new JsonArray(new ArrayList<Object>(written)).encode());
    }

    private static MultipartReader.Part next(MultipartReader reader) {
        try {
            return reader.next();
        } catch (IOException e) {
            throw badBody(e);
        }
    }

    private static RuntimeException badBody(IOException e) {
        if (e instanceof ZipException || e instanceof java.io.EOFException) {
            return new ConnectException(Code.INVALID_ARGUMENT, "error decompressing request body: " + e.getMessage()
                    + "; send valid gzip or drop Content-Encoding");
        }
        return new ConnectException(Code.INVALID_ARGUMENT, "error reading the upload: " + e.getMessage());
    }

    /** Writes one uploaded file, streaming {@code content} to disk, and describes it as E2B's EntryInfo. */
    private JsonObject writeFile(Path path, InputStream content, User user, Map<String, String> metadata)
            throws IOException {
        Path parent = path.getParent();
        if (parent != null) {
            try {
                Directories.ensure(parent, user);
            } catch (FileAlreadyExistsException e) {
                throw new ConnectException(Code.INVALID_ARGUMENT, "cannot create the parent directories of '" + path
                        + "': '" + e.getFile() + "' exists and is not a directory");
            }
        }
        if (Files.isDirectory(path)) {
            throw new ConnectException(Code.INVALID_ARGUMENT, "path is a directory: " + path);
        }
        FileChannel channel;
        try {
            channel = FileChannel.open(path, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                    StandardOpenOption.TRUNCATE_EXISTING);
        } catch (IOException e) {
            if (isNoSpace(e)) {
                throw new FileTransferException(507, "not enough inodes available to create '" + path
                        + "': free some space in the sandbox and retry");
            }
            throw e;
        }
        long total = 0;
        try (channel) {
            Ownership.set(path, user);
            byte[] chunk = new byte[COPY_BUFFER];
            while (true) {
                int n;
                try {
                    n = content.read(chunk);
                } catch (IOException e) {
                    throw badBody(e);
                }
                if (n < 0) {
                    break;
                }
                ByteBuffer buffer = ByteBuffer.wrap(chunk, 0, n);
                while (buffer.hasRemaining()) {
                    channel.write(buffer);
                }
                total += n;
            }
        } catch (IOException e) {
            if (isNoSpace(e)) {
                // A truncated file is of no use and keeps the disk full; remove it so the sandbox can go on.
                Files.deleteIfExists(path);
                throw new FileTransferException(507, "attempted to write " + total + "+ bytes to '" + path
                        + "': not enough disk space available; free some space in the sandbox and retry");
            }
            throw e;
        }
        replaceMetadata(path, metadata);
        JsonObject entry = new JsonObject().put("path", path.toString())
                .put("name", path.getFileName() == null ? "" : path.getFileName().toString())
                .put("type", "file");
        Map<String, String> persisted = Metadata.read(path);
        if (!persisted.isEmpty()) {
            entry.put("metadata", new JsonObject(new LinkedHashMap<String, Object>(persisted)));
        }
        return entry;
    }

    /** Overwriting a file replaces its whole metadata set, as E2B does (truncation keeps old xattrs). */
    private static void replaceMetadata(Path path, Map<String, String> metadata) throws IOException {
        UserDefinedFileAttributeView view = Files.getFileAttributeView(path, UserDefinedFileAttributeView.class);
        try {
            if (view != null) {
                for (String name : view.list()) {
                    if (name.startsWith("e2b.")) {
                        view.delete(name);
                    }
                }
            }
            Metadata.write(path, metadata);
        } catch (IOException | UnsupportedOperationException e) {
            if (e instanceof IOException io && isNoSpace(io)) {
                throw new FileTransferException(507, "not enough space for the metadata of '" + path + "'");
            }
            if (!metadata.isEmpty()) {
                // Like E2B: the content is on disk; metadata is best effort where the file system keeps no xattrs.
                LOG.log(Level.WARNING, "metadata not kept for " + path + ": " + e.getMessage());
            }
        }
    }

    /** {@code X-Metadata-<key>: value} headers: keys lower-cased, first value wins, empty keys dropped. */
    static Map<String, String> metadataHeaders(MultiMap headers) {
        Map<String, String> metadata = new LinkedHashMap<>();
        for (Map.Entry<String, String> h : headers) {
            String name = h.getKey().toLowerCase(Locale.ROOT);
            if (name.startsWith(METADATA_PREFIX) && name.length() > METADATA_PREFIX.length()) {
                String key = name.substring(METADATA_PREFIX.length());
                if (key.length() > 200) {
                    throw new ConnectException(Code.INVALID_ARGUMENT, "invalid metadata: key '" + key
                            + "' is longer than 200 characters");
                }
                metadata.putIfAbsent(key, h.getValue());
            }
        }
        return metadata;
    }

    /**
     * The absolute path a request names: {@code ~} and {@code ~/x} against the user's home, other relative paths
     * against the sandbox's default workdir when /init set one, else the home (as E2B's envd resolves them).
     */
    Path resolve(String raw, User user) {
        try {
            if (raw != null && !raw.isEmpty() && !raw.startsWith("~") && !raw.startsWith("/")
                    && state.defaultWorkdir() != null) {
                return Path.of(state.defaultWorkdir()).resolve(raw).normalize();
            }
            return user.resolve(raw);
        } catch (InvalidPathException e) {
            throw new ConnectException(Code.INVALID_ARGUMENT, "invalid path '" + raw + "': " + e.getReason());
        }
    }

    static boolean isNoSpace(IOException e) {
        String text = e instanceof FileSystemException fse && fse.getReason() != null ? fse.getReason() : e.getMessage();
        return text != null && (text.contains("No space left on device") || text.contains("Disk quota exceeded"));
    }
}
