package dev.capsule.envd.filesystem;

import java.nio.file.Path;
import java.util.Map;

/**
 * Tells network and user-space file systems apart from local ones by their statfs magic number, as E2B's envd does
 * before watching: inotify sees only changes made through this kernel, so on NFS, SMB/CIFS or FUSE mounts changes made
 * elsewhere go unnoticed, and watching is refused unless the client allows it.
 */
final class NetworkMounts {
    /** The magic numbers E2B checks (linux/magic.h, fs/smb): NFS, CIFS, SMB, SMB2, FUSE. */
    private static final Map<Long, String> NETWORK = Map.of(
            0x6969L, "nfs",
            0xFF534D42L, "cifs",
            0x517BL, "smb",
            0xFE534D42L, "smb2",
            0x65735546L, "fuse");

    private NetworkMounts() {}

    /** The name of the network file system holding {@code path}, or null when it is local or cannot be told. */
    static String networkFileSystem(Path path) {
        long type = Linux.fileSystemType(path.toString());
        return type < 0 ? null : kind(type);
    }

    /** The network file system a statfs magic number stands for, or null for a local one. */
    static String kind(long magic) {
        return NETWORK.get(magic & 0xFFFFFFFFL);
    }
}
