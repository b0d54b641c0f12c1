package dev.capsule.runtime.oci;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * One sandbox's files on the host, under {@code <data dir>/sandboxes/<id>/}: the OCI bundle (config.json and the
 * rootfs mount point), its disk (a file system of its disk size, holding the overlay's upper and work dirs), the
 * generated /etc files and the console log.
 */
public record SandboxDirectory(Path dir) {

    /** The sandbox's disk: a sparse file holding an ext4 file system, so its writes cannot exceed its size. */
    public Path disk() {
        return dir.resolve("disk.img");
    }

    /** Where its disk is mounted while the sandbox runs (or while its files are read). */
    public Path diskMount() {
        return dir.resolve("disk");
    }

    /**
     * Whether its writes are on its own disk: those of sandboxes made before disks were enforced are in an upper
     * dir at the top of their directory, without a limit.
     */
    public boolean hasOwnDisk() {
        return !Files.isDirectory(dir.resolve("upper"));
    }

    /** Whether it has writes kept from a previous run, to start again from. */
    public boolean keepsFiles() {
        return Files.isRegularFile(disk()) || !hasOwnDisk();
    }

    public Path config() {
        return dir.resolve("config.json");
    }

    /** Where the overlay is mounted; runc's root.path. */
    public Path rootfs() {
        return dir.resolve("rootfs");
    }

    /** The sandbox's writes: everything it changed relative to the template (on its disk, when mounted). */
    public Path upper() {
        return hasOwnDisk() ? diskMount().resolve("upper") : dir.resolve("upper");
    }

    public Path work() {
        return hasOwnDisk() ? diskMount().resolve("work") : dir.resolve("work");
    }

    public Path hosts() {
        return dir.resolve("etc/hosts");
    }

    public Path resolvConf() {
        return dir.resolve("etc/resolv.conf");
    }

    public Path hostname() {
        return dir.resolve("etc/hostname");
    }

    /** What the oci driver records about the sandbox (template, start time, network policy) for a restarted server. */
    public Path metadata() {
        return dir.resolve("sandbox.json");
    }

    /** stdout and stderr of the init and everything it runs without redirecting. */
    public Path log() {
        return dir.resolve("console.log");
    }
}
