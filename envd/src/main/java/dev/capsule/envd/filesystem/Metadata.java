package dev.capsule.envd.filesystem;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.UserDefinedFileAttributeView;
import java.util.Map;
import java.util.TreeMap;

/**
 * A file's metadata as E2B keeps it: extended attributes {@code user.e2b.<key>}, shown to clients with the prefix
 * stripped. (Java's user-defined attribute view is the {@code user.} xattr namespace on Linux.)
 */
public final class Metadata {
    private static final String PREFIX = "e2b.";

    private Metadata() {}

    /** The file's metadata; empty when it has none or the file system keeps no extended attributes. */
    public static Map<String, String> read(Path path) {
        Map<String, String> metadata = new TreeMap<>();
        try {
            UserDefinedFileAttributeView view = Files.getFileAttributeView(path, UserDefinedFileAttributeView.class);
            if (view == null) {
                return metadata;
            }
            for (String name : view.list()) {
                if (name.startsWith(PREFIX)) {
                    ByteBuffer value = ByteBuffer.allocate(view.size(name));
                    view.read(name, value);
                    value.flip();
                    metadata.put(name.substring(PREFIX.length()), StandardCharsets.UTF_8.decode(value).toString());
                }
            }
        } catch (IOException | UnsupportedOperationException e) {
            return metadata;
        }
        return metadata;
    }

    /** Writes each entry as {@code user.e2b.<key>}. */
    public static void write(Path path, Map<String, String> metadata) throws IOException {
        if (metadata.isEmpty()) {
            return;
        }
        UserDefinedFileAttributeView view = Files.getFileAttributeView(path, UserDefinedFileAttributeView.class);
        if (view == null) {
            throw new IOException("the file system of " + path + " keeps no extended attributes");
        }
        for (Map.Entry<String, String> e : metadata.entrySet()) {
            view.write(PREFIX + e.getKey(), StandardCharsets.UTF_8.encode(e.getValue()));
        }
    }
}
