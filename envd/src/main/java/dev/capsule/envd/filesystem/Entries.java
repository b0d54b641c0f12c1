package dev.capsule.envd.filesystem;

import com.google.protobuf.Timestamp;
import dev.capsule.envd.rpc.filesystem.EntryInfo;
import dev.capsule.envd.rpc.filesystem.FileType;
import dev.capsule.envd.users.Users;

import java.io.IOException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.time.Instant;
import java.util.Map;

/**
 * Builds the {@link EntryInfo} E2B's envd reports for a path. The entry describes the path itself (lstat: a symlink
 * is not followed for size, times, owner and the permissions string {@code Lrwxrwxrwx}), except that a symlink's
 * {@code type} and {@code mode} are those of what it finally points to, and {@code symlink_target} is that fully
 * resolved path. A dangling or cyclic symlink has type {@code FILE_TYPE_UNSPECIFIED} and mode 0 (the JS SDK's
 * {@code list} skips such entries), and its target is its own link text made absolute.
 */
public final class Entries {
    private static final int S_IFMT = 0170000;
    private static final int S_IFSOCK = 0140000;
    private static final int S_IFLNK = 0120000;
    private static final int S_IFREG = 0100000;
    private static final int S_IFBLK = 0060000;
    private static final int S_IFDIR = 0040000;
    private static final int S_IFCHR = 0020000;
    private static final int S_IFIFO = 0010000;
    private static final int S_ISUID = 04000;
    private static final int S_ISGID = 02000;
    private static final int S_ISVTX = 01000;

    private Entries() {}

    /**
     * The entry for {@code path}, which should be absolute and normalised (it is reported as given).
     *
     * @throws NoSuchFileException if nothing exists at the path (a dangling symlink does exist)
     * @throws IOException         if the path cannot be examined
     */
    public static EntryInfo of(Path path, Users users) throws IOException {
        Map<String, Object> attrs = Files.readAttributes(path, "unix:mode,uid,gid,size,lastModifiedTime",
                LinkOption.NOFOLLOW_LINKS);
        int stMode = (Integer) attrs.get("mode");
        EntryInfo.Builder entry = EntryInfo.newBuilder()
                .setName(path.getFileName() == null ? "/" : path.getFileName().toString())
                .setPath(path.toString())
                .setSize((Long) attrs.get("size"))
                .setPermissions(permissions(stMode))
                .setOwner(users.userName((Integer) attrs.get("uid")))
                .setGroup(users.groupName((Integer) attrs.get("gid")))
                .setModifiedTime(timestamp((FileTime) attrs.get("lastModifiedTime")));
        if ((stMode & S_IFMT) == S_IFLNK) {
            Path target = resolvedTarget(path);
            int targetMode = target == null ? -1 : targetMode(target);
            if (target == null || targetMode < 0) {
                entry.setType(FileType.FILE_TYPE_UNSPECIFIED).setMode(0)
                        .setSymlinkTarget(linkText(path));
            } else {
                entry.setType(type(targetMode)).setMode(targetMode & 0777)
                        .setSymlinkTarget(target.toString());
            }
        } else {
            entry.setType(type(stMode)).setMode(stMode & 0777);
        }
        entry.putAllMetadata(Metadata.read(path));
        return entry.build();
    }

    /** The entry's type for a {@code st_mode}: regular files and directories; anything else is unspecified. */
    public static FileType type(int stMode) {
        return switch (stMode & S_IFMT) {
            case S_IFREG -> FileType.FILE_TYPE_FILE;
            case S_IFDIR -> FileType.FILE_TYPE_DIRECTORY;
            case S_IFLNK -> FileType.FILE_TYPE_SYMLINK;
            default -> FileType.FILE_TYPE_UNSPECIFIED;
        };
    }

    /**
     * The permissions string Go's {@code os.FileMode.String()} gives for a Linux {@code st_mode}: type and special
     * letters in Go's order ({@code d L D p S u g c t}, or {@code -} when none), then {@code rwxrwxrwx}. E.g.
     * {@code -rw-r--r--}, {@code drwxr-xr-x}, {@code Lrwxrwxrwx}, {@code dtrwxrwxrwx} (/tmp), {@code Dcrw-rw-rw-}
     * (/dev/null), {@code urwxr-xr-x} (setuid).
     */
    public static String permissions(int stMode) {
        StringBuilder s = new StringBuilder(12);
        int type = stMode & S_IFMT;
        if (type == S_IFDIR) {
            s.append('d');
        }
        if (type == S_IFLNK) {
            s.append('L');
        }
        if (type == S_IFBLK || type == S_IFCHR) {
            s.append('D');
        }
        if (type == S_IFIFO) {
            s.append('p');
        }
        if (type == S_IFSOCK) {
            s.append('S');
        }
        if ((stMode & S_ISUID) != 0) {
            s.append('u');
        }
        if ((stMode & S_ISGID) != 0) {
            s.append('g');
        }
        if (type == S_IFCHR) {
            s.append('c');
        }
        if ((stMode & S_ISVTX) != 0) {
            s.append('t');
        }
        if (s.isEmpty()) {
            s.append('-');
        }
        String rwx = "rwxrwxrwx";
        for (int i = 0; i < 9; i++) {
            s.append((stMode & (1 << (8 - i))) != 0 ? rwx.charAt(i) : '-');
        }
        return s.toString();
    }

    static Timestamp timestamp(FileTime time) {
        Instant instant = time.toInstant();
        return Timestamp.newBuilder().setSeconds(instant.getEpochSecond()).setNanos(instant.getNano()).build();
    }

    /** The symlink's final target with every link resolved, or null when it dangles or loops. */
    private static Path resolvedTarget(Path link) {
        try {
            return link.toRealPath();
        } catch (IOException e) {
            return null;
        }
    }

    private static int targetMode(Path target) {
        try {
            return (Integer) Files.getAttribute(target, "unix:mode");
        } catch (IOException e) {
            return -1;
        }
    }

    /** The link's own text, made absolute against the link's directory, for links that lead nowhere. */
    private static String linkText(Path link) {
        try {
            Path text = Files.readSymbolicLink(link);
            Path parent = link.getParent();
            return (text.isAbsolute() || parent == null ? text : parent.resolve(text)).normalize().toString();
        } catch (IOException | UnsupportedOperationException e) {
            return link.toString();
        }
    }

    /** True when an I/O failure means the path (or one of its parents) does not exist as named. */
    static boolean isMissing(IOException e) {
        if (e instanceof NoSuchFileException) {
            return true;
        }
        return e instanceof FileSystemException fse && fse.getReason() != null
                && fse.getReason().contains("Not a directory");
    }
}
