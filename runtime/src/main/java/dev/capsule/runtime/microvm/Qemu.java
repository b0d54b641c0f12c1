package dev.capsule.runtime.microvm;

import dev.capsule.runtime.RuntimeFailure;
import dev.capsule.runtime.host.Processes;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Starts and stops QEMU processes: the command line of a sandbox's VM (the microvm machine, its disks, network,
 * entropy source, serial console and monitor; see MICROVM-NOTES.md for why each piece) and the process itself,
 * which runs in the sandbox's network namespace in a session of its own, so it outlives the server that started it.
 * A restore must use the very machine the snapshot was taken on: same memory, vCPUs, devices and kernel.
 */
final class Qemu {

    /** The guest's NIC. Fixed: a restored guest keeps its ARP neighbours' view of it (MICROVM-NOTES.md §3). */
    static final String GUEST_MAC = "52:54:00:ca:b5:01";
    /** The tap device in the sandbox's namespace. */
    static final String TAP = "tap0";
    /** The memory backend's id: a migration stream names RAM blocks by it, so every VM uses the same. */
    private static final String RAM_ID = "ram0";
    /**
     * QEMU's default CPU model plus ARAT (the local APIC timer keeps running in idle states). Without it the guest
     * kernel treats its APIC timer as stopping in deep idle and, having no broadcast timer on the microvm machine,
     * never leaves periodic ticks: 250 timer interrupts a second per vCPU, about 12% of a host core for an idle VM
     * under TCG. With it the tick stops when the guest idles. Part of the machine: a snapshot restores only on it.
     */
    static final String CPU = "qemu64,+arat";
    /** TCG's translation cache: the default (1 GiB) lets a JVM grow QEMU by hundreds of MiB (MICROVM-NOTES.md §5). */
    private static final int TCG_CACHE_MB = 128;
    private static final long POLL_MILLIS = 5;

    /**
     * The machine: vCPUs, RAM, kernel, the read-only bundle disk and the kernel command line. Everything in it
     * must be equal for a snapshot and its restores.
     */
    record Machine(String qemu, String accelerator, int cpus, int memoryMb, GuestKernel kernel, Path bundleImage,
                   String append) {}

    private Qemu() {
    }

    /**
     * The kernel command line of a VM that boots as sandbox {@code hostname} with that address and gateway, on a host
     * whose TSC runs at {@code tscKhz}.
     */
    static String append(long tscKhz, String addressWithPrefix, String gateway, String hostname,
                         List<String> nameservers) {
        // tsc=reliable: without it the kernel does not trust the TSC (no invariant-TSC flag on QEMU's CPU model)
        // and keeps time with jiffies, which fall behind whenever the host is busy; under TCG the guest's TSC is
        // the host's, so it keeps the guest's clock right, also across a restore
        return "console=ttyS0 quiet panic=-1 tsc_early_khz=" + tscKhz + " tsc=reliable"
                // crypto self-tests take ~0.3 s under TCG; the guest has no PCI bus and no use for IPv6
                + " cryptomgr.notests=1 pci=off ipv6.disable=1"
                + " capsule.ip=" + addressWithPrefix + " capsule.gw=" + gateway + " capsule.host=" + hostname
                + " capsule.dns=" + String.join(",", nameservers);
    }

    /**
     * The host's TSC rate in kHz. Under TCG the guest's TSC is the host's, and QEMU's microvm machine has no timer
     * the guest kernel could calibrate it against reliably: without it about one boot in eight hangs.
     */
    static long tscKhz() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                if (line.startsWith("cpu MHz")) {
                    return Math.round(Double.parseDouble(line.substring(line.indexOf(':') + 1).strip()) * 1000);
                }
            }
        } catch (IOException | NumberFormatException e) {
            throw new IllegalStateException("cannot read the CPU's clock rate from /proc/cpuinfo: " + e.getMessage(), e);
        }
        throw new IllegalStateException("/proc/cpuinfo names no 'cpu MHz'; the microvm driver needs the TSC rate");
    }

    /**
     * QEMU's command line for the VM in {@code dir} with its RAM in the file {@code ram}, mapped shared: the file is
     * the guest's memory, so saving the VM needs only its device state (MICROVM-NOTES.md §4), and what the guest
     * wrote is in the file when QEMU stops. {@code incoming}: wait for a migration stream (a restore).
     */
    static List<String> command(Machine machine, VmDirectory dir, Path ram, boolean incoming) {
        String accel = machine.accelerator().equals("tcg") ? "tcg,tb-size=" + TCG_CACHE_MB : machine.accelerator();
        List<String> command = new ArrayList<>(List.of(machine.qemu(),
                "-name", "capsule-" + dir.dir().getFileName(),
                "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                "-M", "microvm,isa-serial=on,rtc=on",
                "-accel", accel,
                "-cpu", CPU,
                "-smp", String.valueOf(machine.cpus()),
                "-m", machine.memoryMb() + "M",
                "-kernel", machine.kernel().kernel().toString(),
                "-initrd", machine.kernel().initramfs().toString(),
                "-append", machine.append()));
        String size = "size=" + machine.memoryMb() + "M";
        command.add("-object");
        command.add("memory-backend-file,id=" + RAM_ID + "," + size + ",mem-path=" + option(ram.toString())
                + ",share=on");
        command.addAll(List.of("-machine", "memory-backend=" + RAM_ID,
                "-drive", "id=root,file=" + option(dir.disk().toString())
                        + ",format=qcow2,if=none,cache=writeback,discard=unmap",
                "-device", "virtio-blk-device,drive=root,serial=root",
                "-drive", "id=bundle,file=" + option(machine.bundleImage().toString())
                        + ",format=raw,if=none,readonly=on",
                "-device", "virtio-blk-device,drive=bundle,serial=bundle",
                "-netdev", "tap,id=net0,ifname=" + TAP + ",script=no,downscript=no",
                "-device", "virtio-net-device,netdev=net0,mac=" + GUEST_MAC,
                "-object", "rng-random,id=rng0,filename=/dev/urandom",
                "-device", "virtio-rng-device,rng=rng0",
                "-chardev", "socket,id=console,path=" + option(dir.console().toString())
                        + ",server=on,wait=off,logfile=" + option(dir.consoleLog().toString()) + ",logappend=on",
                "-serial", "chardev:console",
                "-qmp", "unix:" + option(dir.qmp().toString()) + ",server=on,wait=off",
                "-pidfile", dir.pidFile().toString()));
        if (incoming) {
            command.addAll(List.of("-incoming", "defer"));
        }
        return command;
    }

    /** A value inside QEMU's comma-separated options: commas are doubled. */
    private static String option(String value) {
        return value.replace(",", ",,");
    }

    /**
     * Starts QEMU in the network namespace {@code netns} in a new session, its output appended to the VM's
     * {@code qemu.log}, and returns its pid once its monitor accepts connections.
     *
     * @throws RuntimeFailure QEMU exited or did not open its monitor in time; its log says why
     */
    static long launch(List<String> qemuCommand, Path netns, VmDirectory dir, Duration timeout) {
        for (Path socket : List.of(dir.qmp(), dir.console())) {
            if (socket.toString().getBytes(StandardCharsets.UTF_8).length > VmDirectory.MAX_SOCKET_PATH) {
                throw new RuntimeFailure("the socket path " + socket + " is longer than Linux allows ("
                        + VmDirectory.MAX_SOCKET_PATH + " bytes); use a shorter data directory");
            }
        }
        List<String> command = new ArrayList<>(List.of(Tools.path("setsid"), Tools.path("nsenter"), "--net=" + netns, "--"));
        command.addAll(qemuCommand);
        Process process;
        try {
            Files.deleteIfExists(dir.qmp());
            Files.deleteIfExists(dir.console());
            Files.deleteIfExists(dir.pidFile());
            process = new ProcessBuilder(command)
                    .redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()))
                    .redirectOutput(ProcessBuilder.Redirect.appendTo(dir.qemuLog().toFile()))
                    .redirectErrorStream(true)
                    .start();
        } catch (IOException e) {
            throw new RuntimeFailure("cannot start QEMU (" + qemuCommand.getFirst() + "): " + e.getMessage()
                    + "; install qemu-system-x86 (scripts/setup.sh does)", e);
        }
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            Optional<Long> pid = readPid(dir);
            if (pid.isPresent() && Files.exists(dir.qmp())) {
                return pid.get();
            }
            if (!process.isAlive()) {
                throw new RuntimeFailure("QEMU exited with " + process.exitValue() + " while starting: "
                        + tail(dir.qemuLog()));
            }
            if (System.nanoTime() > deadline) {
                process.destroyForcibly();
                throw new RuntimeFailure("QEMU did not open its monitor within " + timeout.toSeconds() + " s: "
                        + tail(dir.qemuLog()));
            }
            sleep(POLL_MILLIS);
        }
    }

    /** The pid QEMU wrote, if it did. */
    static Optional<Long> readPid(VmDirectory dir) {
        try {
            String text = Files.readString(dir.pidFile()).strip();
            return text.isEmpty() ? Optional.empty() : Optional.of(Long.parseLong(text));
        } catch (IOException | NumberFormatException e) {
            return Optional.empty();
        }
    }

    /**
     * The pid of the VM's QEMU if it runs: the pid file names a live process whose command line is this VM's (a
     * pid of a process that ended may have been reused, e.g. after a reboot).
     */
    static Optional<Long> running(VmDirectory dir) {
        return readPid(dir).filter(pid -> isVm(pid, dir));
    }

    private static boolean isVm(long pid, VmDirectory dir) {
        if (!Processes.alive(pid)) {
            return false;
        }
        try {
            byte[] cmdline = Files.readAllBytes(Path.of("/proc", String.valueOf(pid), "cmdline"));
            return new String(cmdline, StandardCharsets.UTF_8).contains(dir.qmp().toString());
        } catch (IOException | RuntimeException e) {
            return false;
        }
    }

    /** Waits until the VM's QEMU has exited, killing it when {@code grace} passes first. */
    static void awaitExit(long pid, VmDirectory dir, Duration grace) {
        long deadline = System.nanoTime() + grace.toNanos();
        while (isVm(pid, dir)) {
            if (System.nanoTime() > deadline) {
                kill(pid, dir);
                return;
            }
            sleep(POLL_MILLIS);
        }
    }

    /** Kills the VM's QEMU at once (SIGKILL) and waits until it is gone. */
    static void kill(long pid, VmDirectory dir) {
        if (!isVm(pid, dir)) {
            return;
        }
        ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly);
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (isVm(pid, dir)) {
            if (System.nanoTime() > deadline) {
                throw new RuntimeFailure("QEMU (pid " + pid + ") did not exit after SIGKILL within 30 s");
            }
            sleep(POLL_MILLIS);
        }
    }

    /** The last lines of a log, for error messages. */
    static String tail(Path log) {
        try {
            String text = Files.readString(log, StandardCharsets.UTF_8).strip();
            return text.isEmpty() ? "(" + log + " is empty)"
                    : text.length() <= 3000 ? text : "..." + text.substring(text.length() - 3000);
        } catch (IOException e) {
            return "(no " + log + ")";
        }
    }

    static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new RuntimeFailure("interrupted while waiting for QEMU", e);
        }
    }
}
