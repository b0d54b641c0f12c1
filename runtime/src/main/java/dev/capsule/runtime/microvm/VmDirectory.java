package dev.capsule.runtime.microvm;

import java.nio.file.Path;

/**
 * One sandbox's files on the host, under {@code <data dir>/microvm/sandboxes/<id>/}. Everything a restarted server
 * (or a rebooted host) needs is here: the record, the disk, the RAM file, and
 * while paused with memory the device state.
 */
record VmDirectory(Path dir) {

    /** Unix socket paths are limited to 107 bytes; QEMU's sockets live here. */
    static final int MAX_SOCKET_PATH = 107;

    /** What the driver records about the sandbox ({@link VmRecord}). */
    Path record() {
        return dir.resolve("vm.json");
    }

    /** The sandbox's disk: a qcow2 overlay on the template's image (or on a snapshot's disk). */
    Path disk() {
        return dir.resolve("disk.qcow2");
    }

    /**
     * The guest's RAM: a file QEMU maps shared, so the file is the memory (a copy of the snapshot it was created
     * from, or empty for a VM that booted). Pausing saves only the device state next to it.
     */
    Path ram() {
        return dir.resolve("memory.ram");
    }

    /** The VM's device state while it is paused with memory (QEMU's migration stream without the RAM). */
    Path state() {
        return dir.resolve("state");
    }

    Path pidFile() {
        return dir.resolve("qemu.pid");
    }

    Path qmp() {
        return dir.resolve("qmp.sock");
    }

    /** The serial console: the guest agent's channel. */
    Path console() {
        return dir.resolve("console.sock");
    }

    /** Everything the serial console printed: kernel messages, the guest init's and envd's output. */
    Path consoleLog() {
        return dir.resolve("console.log");
    }

    /** QEMU's own output (its errors). */
    Path qemuLog() {
        return dir.resolve("qemu.log");
    }
}
