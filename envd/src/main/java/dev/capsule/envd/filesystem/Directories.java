package dev.capsule.envd.filesystem;

import dev.capsule.envd.users.User;

import java.io.IOException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.Deque;

/** Creating directories on behalf of a user: every directory envd creates belongs to the user who asked. */
public final class Directories {
    private Directories() {}

    /**
     * Creates {@code dir} and any missing parents, each owned by {@code owner}. Returns true if {@code dir} was
     * created, false if it already existed as a directory.
     *
     * @throws FileAlreadyExistsException if {@code dir} or one of its parents exists and is not a directory
     */
    public static boolean ensure(Path dir, User owner) throws IOException {
        Path absolute = dir.toAbsolutePath().normalize();
        Deque<Path> missing = new ArrayDeque<>();
        for (Path p = absolute; p != null; p = p.getParent()) {
            if (Files.exists(p)) {
                if (!Files.isDirectory(p)) {
                    throw new FileAlreadyExistsException(p.toString(), null, "exists and is not a directory");
                }
                break;
            }
            missing.push(p);
        }
        if (missing.isEmpty()) {
            return false;
        }
        while (!missing.isEmpty()) {
            Path p = missing.pop();
            try {
                Files.createDirectory(p);
                Ownership.set(p, owner);
            } catch (FileAlreadyExistsException e) {
                if (!Files.isDirectory(p)) {
                    throw e;
                }
            }
        }
        return true;
    }
}
