package dev.capsule.runtime.oci;

import java.nio.file.Path;

/**
 * One sandbox's files on the host, under {@code <data dir>/sandboxes/<id>/}: the OCI bundle (config.json and the
 * rootfs mount point), the overlay's upper and work dirs, the generated /etc files and the console log.
 */
public record SandboxDirectory(Path dir) {

    public Path config() {
        return dir.resolve("config.json");
    }

    /** Where the overlay is mounted; runc's root.path. */
    public Path rootfs() {
        return dir.resolve("rootfs");
    }

    /** The sandbox's writes: everything it changed relative to the template. */
    public Path upper() {
        return dir.resolve("upper");
    }

    public Path work() {
        return dir.resolve("work");
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
