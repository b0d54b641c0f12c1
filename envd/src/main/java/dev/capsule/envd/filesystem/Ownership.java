package dev.capsule.envd.filesystem;

import dev.capsule.envd.users.User;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;

/** Gives a file to a user: envd runs as root, and what it creates for a request belongs to the requesting user. */
public final class Ownership {
    private Ownership() {}

    /** Sets the file's owner and group to the user's uid and primary gid (the link itself for a symlink). */
    public static void set(Path path, User owner) throws IOException {
        Files.setAttribute(path, "unix:uid", owner.uid(), LinkOption.NOFOLLOW_LINKS);
        Files.setAttribute(path, "unix:gid", owner.gid(), LinkOption.NOFOLLOW_LINKS);
    }
}
