package dev.capsule.runtime.host;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;

/**
 * The host's mount table as far as the runtime cares: which mount points lie under a directory, mounting an
 * overlay, unmounting, and deleting a directory tree without ever descending into something mounted inside it.
 */
public final class Mounts {

    private Mounts() {
    }

    /**
     * Mount points at or below {@code dir} in this process's mount namespace, the last mounted first: the order to
     * unmount them in (a mount inside another, or one that uses another, as an overlay uses the file system of its
     * upper dir, was mounted after it).
     */
    public static List<Path> under(Path dir) {
        return mounts(dir).stream().map(Mount::point).toList();
    }

    /**
     * A mount: where, from what (a device such as /dev/loop3, or a name such as "overlay"), and whether it is in a
     * shared peer group (mount and unmount events under it propagate to its copies in other namespaces).
     */
    private record Mount(Path point, String source, boolean shared) {}

    private static List<Mount> mounts(Path dir) {
        Path root = dir.toAbsolutePath().normalize();
        List<Mount> found = new ArrayList<>();
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/mountinfo"))) {
                String[] fields = line.split(" ");
                Path mountPoint = Path.of(unescape(fields[4]));
                if (mountPoint.startsWith(root)) {
                    // fields 7...: optional fields such as "shared:12" up to "-", then file system type and source
                    int separator = line.indexOf(" - ");
                    String[] tail = line.substring(separator + 3).split(" ");
                    boolean shared = (" " + line.substring(0, separator) + " ").matches(".* shared:[0-9]+ .*");
                    found.add(new Mount(mountPoint, unescape(tail[1]), shared));
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read /proc/self/mountinfo", e);
        }
        return found.reversed();
    }

    public static boolean isMountPoint(Path dir) {
        Path target = dir.toAbsolutePath().normalize();
        return under(target).contains(target);
    }

    /**
     * Makes {@code dir} a shared mount point, binding it onto itself first if it is not a mount point, so that what
     * is mounted below it and later unmounted is unmounted as well in the copies other processes make of this mount
     * namespace ({@code ip netns exec}, runc's container setup, services with a private /tmp hold slave or peer
     * copies). A private copy would keep a file system mounted, and its loop device attached, until that process
     * exits. The bind is only made while nothing is mounted below {@code dir} (it would hide those mounts); callers
     * serialize it with their own mounts below {@code dir}. Returns whether {@code dir} is shared now.
     */
    public static boolean share(Path dir) {
        Path target = dir.toAbsolutePath().normalize();
        List<Mount> mounts = mounts(target);
        Mount own = mounts.stream().filter(mount -> mount.point().equals(target)).findFirst().orElse(null);
        if (own != null && own.shared()) {
            return true;
        }
        if (own == null) {
            if (!mounts.isEmpty()) {
                return false;
            }
            Command.check("mount", "--bind", target.toString(), target.toString());
        }
        Command.check("mount", "--make-shared", target.toString());
        return true;
    }

    /** Undoes {@link #share} once nothing is mounted below {@code dir} any more; otherwise leaves it. */
    public static void unshare(Path dir) {
        Path target = dir.toAbsolutePath().normalize();
        if (under(target).equals(List.of(target))) {
            // best effort: if something holds it meanwhile, it stays a harmless bind of the directory onto itself
            Command.run(List.of("umount", target.toString()), 30);
        }
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

    /**
     * Unmounts everything at or below {@code dir}; a busy mount is detached lazily so it cannot block cleanup. A
     * loop device a file system was mounted from (mount -o loop) is released once that file system is unmounted
     * everywhere, asynchronously: this waits a little for it, and returns the loop devices still attached then.
     * One stays attached while a process holds a private copy of the mount (its mount namespace was copied from
     * ours while it was mounted); it is released when that process exits, and mounting the same file again
     * reuses it, so its file system is never mounted twice.
     */
    public static List<String> unmountAll(Path dir) {
        List<String> attached = new ArrayList<>();
        for (Mount mount : mounts(dir)) {
            Path backingFile = LOOP_DEVICE.matcher(mount.source()).matches() ? Path.of("/sys/block",
                    Path.of(mount.source()).getFileName().toString(), "loop", "backing_file") : null;
            String backing = backingFile == null ? "" : read(backingFile);
            Command.Result result = Command.run(List.of("umount", mount.point().toString()), 30);
            if (!result.ok()) {
                Command.run(List.of("umount", "--lazy", mount.point().toString()), 30).orThrow();
            }
            if (!backing.isEmpty() && !awaitReleased(backingFile, backing)) {
                attached.add(mount.source() + " (" + backing + ")");
            }
        }
        return attached;
    }

    private static final Pattern LOOP_DEVICE = Pattern.compile("/dev/loop[0-9]+");
    private static final long LOOP_RELEASE_WAIT_MILLIS = 2_000;

    /** Whether the loop device whose {@code backingFile} names {@code file} is released (or someone else's) in time. */
    private static boolean awaitReleased(Path backingFile, String file) {
        long deadline = System.nanoTime() + LOOP_RELEASE_WAIT_MILLIS * 1_000_000;
        while (read(backingFile).equals(file)) {
            if (System.nanoTime() > deadline) {
                return false;
            }
            try {
                Thread.sleep(5);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return false;
            }
        }
        return true;
    }

    /** The file's content, or "" when it is gone (as a free loop device's backing_file is). */
    private static String read(Path file) {
        try {
            return Files.readString(file).strip();
        } catch (IOException e) {
            return "";
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
