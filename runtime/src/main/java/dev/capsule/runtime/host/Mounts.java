package dev.capsule.runtime.host;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * The host's mount table as far as the runtime cares: which mount points lie under a directory, mounting an
 * overlay, unmounting, and deleting a directory tree without ever descending into something mounted inside it.
 */
public final class Mounts {

    private Mounts() {
    }

    /** Mount points at or below {@code dir} in this process's mount namespace, deepest first. */
    public static List<Path> under(Path dir) {
        Path root = dir.toAbsolutePath().normalize();
        List<Path> found = new ArrayList<>();
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/mountinfo"))) {
                String[] fields = line.split(" ");
                Path mountPoint = Path.of(unescape(fields[4]));
                if (mountPoint.startsWith(root)) {
                    found.add(mountPoint);
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read /proc/self/mountinfo", e);
        }
        found.sort(Comparator.comparingInt(Path::getNameCount).reversed());
        return found;
    }

    public static boolean isMountPoint(Path dir) {
        Path target = dir.toAbsolutePath().normalize();
        return under(target).contains(target);
    }

    /**
     * The most the kernel takes as a mount's options (one page, with its terminating NUL): it bounds how many lower
     * layers an overlay can stack with paths of a given length.
     */
    public static final int MAX_MOUNT_OPTIONS = 4095;

    /** Mounts an overlay of {@code lowers} (read-only, top first) with writes going to {@code upper}. */
    public static void mountOverlay(List<Path> lowers, Path upper, Path work, Path target) {
        String options = overlayOptions(lowers, upper, work);
        if (options.length() > MAX_MOUNT_OPTIONS) {
            throw new IllegalArgumentException("cannot stack " + lowers.size() + " layers in one overlay at "
                    + target + ": its mount options take " + options.length() + " characters, more than the kernel's "
                    + MAX_MOUNT_OPTIONS);
        }
        Command.check("mount", "-t", "overlay", "overlay", "-o", options, target.toAbsolutePath().toString());
    }

    /** The overlay mount options for these directories. */
    public static String overlayOptions(List<Path> lowers, Path upper, Path work) {
        StringBuilder lowerdir = new StringBuilder();
        for (Path lower : lowers) {
            lowerdir.append(lowerdir.isEmpty() ? "" : ":").append(lower.toAbsolutePath());
        }
        return "lowerdir=" + lowerdir + ",upperdir=" + upper.toAbsolutePath() + ",workdir=" + work.toAbsolutePath();
    }

    /** Unmounts everything at or below {@code dir}; a busy mount is detached lazily so it cannot block cleanup. */
    public static void unmountAll(Path dir) {
        for (Path mountPoint : under(dir)) {
            Command.Result result = Command.run(List.of("umount", mountPoint.toString()), 30);
            if (!result.ok()) {
                Command.run(List.of("umount", "--lazy", mountPoint.toString()), 30).orThrow();
            }
        }
    }

    /**
     * Unmounts what is mounted below {@code dir}, then deletes it. {@code rm --one-file-system} guarantees that
     * even a mount we failed to see (a race with another process) is never descended into: deleting through a
     * stray bind mount of /dev or / would destroy the host.
     */
    public static void deleteTree(Path dir) {
        if (!Files.exists(dir, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            return;
        }
        unmountAll(dir);
        Command.run(List.of("rm", "-rf", "--one-file-system", dir.toAbsolutePath().toString()), 600).orThrow();
    }

    // mountinfo escapes space, tab, newline and backslash as octal.
    private static String unescape(String field) {
        if (field.indexOf('\\') < 0) {
            return field;
        }
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < field.length(); i++) {
            char c = field.charAt(i);
            if (c == '\\' && i + 3 < field.length()) {
                sb.append((char) Integer.parseInt(field.substring(i + 1, i + 4), 8));
                i += 3;
            } else {
                sb.append(c);
            }
        }
        return sb.toString();
    }
}
