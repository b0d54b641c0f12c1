package dev.capsule.envd.users;

import java.nio.file.Path;
import java.util.List;

/**
 * A user of the machine envd runs on, as /etc/passwd and /etc/group describe it. {@code groups} holds every group id
 * the user's processes get: the primary group first, then the supplementary ones.
 */
public record User(String name, int uid, int gid, Path home, String shell, List<Integer> groups) {

    public User {
        groups = List.copyOf(groups);
    }

    /**
     * Resolves a path the way E2B's envd does: {@code ~} and {@code ~/x} against the home directory, relative paths
     * against the home directory, then normalised ({@code ..} collapsed lexically). An empty path is the home.
     */
    public Path resolve(String path) {
        if (path == null || path.isEmpty() || path.equals("~")) {
            return home;
        }
        if (path.startsWith("~/")) {
            return home.resolve(path.substring(2)).normalize();
        }
        Path p = Path.of(path);
        return (p.isAbsolute() ? p : home.resolve(p)).normalize();
    }
}
