package dev.capsule.runtime.oci;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.capsule.runtime.bundle.RuntimeBundle;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Generates a sandbox's OCI runtime config (config.json for runc). The reference is what Docker gives a default
 * container: its capability set, seccomp profile, masked and read-only /proc and /sys paths and /dev mounts; no
 * user namespace; no_new_privileges off so sudo works inside. PID 1 is the bundle's init running the command.
 */
public final class OciConfig {

    /** Docker's default capabilities. */
    public static final List<String> CAPABILITIES = List.of("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID",
            "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
            "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE");

    /** Docker's masked paths, with /proc/interrupts (the host's per-CPU interrupt counts) as recent Docker masks it. */
    private static final List<String> MASKED_PATHS = List.of("/proc/asound", "/proc/acpi", "/proc/interrupts",
            "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
            "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap");
    private static final List<String> READONLY_PATHS = List.of("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
            "/proc/sysrq-trigger");

    private static final String DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    private static final ObjectMapper JSON = new ObjectMapper();

    private OciConfig() {
    }

    /** The config for {@code spec}, with its files in {@code dir} and its cgroup at {@code cgroupsPath}. */
    public static ObjectNode build(ContainerSpec spec, SandboxDirectory dir, String cgroupsPath, boolean swapAccounting) {
        ObjectNode config = JSON.createObjectNode();
        config.put("ociVersion", "1.0.2");
        config.set("process", process(spec));
        ObjectNode root = config.putObject("root");
        root.put("path", dir.rootfs().toString());
        root.put("readonly", false);
        config.put("hostname", spec.id());
        config.set("mounts", mounts(spec, dir));
        config.set("linux", linux(spec, cgroupsPath, swapAccounting));
        return config;
    }

    private static ObjectNode process(ContainerSpec spec) {
        ObjectNode process = JSON.createObjectNode();
        process.put("terminal", false);
        ObjectNode user = process.putObject("user");
        user.put("uid", 0);
        user.put("gid", 0);
        ArrayNode args = process.putArray("args");
        List<String> command = new ArrayList<>(List.of(RuntimeBundle.INIT, "--"));
        command.addAll(spec.command());
        command.forEach(args::add);
        Map<String, String> env = new TreeMap<>(Map.of("PATH", DEFAULT_PATH, "HOME", "/root", "LANG", "C.UTF-8"));
        env.putAll(spec.env());
        ArrayNode envArray = process.putArray("env");
        env.forEach((key, value) -> envArray.add(key + "=" + value));
        process.put("cwd", "/");
        ObjectNode capabilities = process.putObject("capabilities");
        for (String set : List.of("bounding", "effective", "permitted")) {
            ArrayNode caps = capabilities.putArray(set);
            CAPABILITIES.forEach(caps::add);
        }
        ArrayNode rlimits = process.putArray("rlimits");
        ObjectNode nofile = rlimits.addObject();
        nofile.put("type", "RLIMIT_NOFILE");
        long files = openFilesLimit();
        nofile.put("hard", files);
        nofile.put("soft", files);
        process.put("noNewPrivileges", false);
        return process;
    }

    /**
     * As many open files as Docker's containers get (1048576), but no more than our own hard limit: raising it
     * needs CAP_SYS_RESOURCE, which a server in a restricted environment may not hold.
     */
    static long openFilesLimit() {
        long wanted = 1_048_576;
        try {
            for (String line : java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc/self/limits"))) {
                if (line.startsWith("Max open files")) {
                    String hard = line.substring("Max open files".length()).strip().split("\\s+")[1];
                    return hard.equals("unlimited") ? wanted : Math.min(wanted, Long.parseLong(hard));
                }
            }
        } catch (java.io.IOException | RuntimeException e) {
            // fall through: a modest limit every host allows
        }
        return 4096;
    }

    private static ArrayNode mounts(ContainerSpec spec, SandboxDirectory dir) {
        ArrayNode mounts = JSON.createArrayNode();
        mount(mounts, "/proc", "proc", "proc", "nosuid", "noexec", "nodev");
        mount(mounts, "/dev", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k");
        mount(mounts, "/dev/pts", "devpts", "devpts", "nosuid", "noexec", "newinstance", "ptmxmode=0666",
                "mode=0620", "gid=5");
        mount(mounts, "/sys", "sysfs", "sysfs", "nosuid", "noexec", "nodev", "ro");
        mount(mounts, "/sys/fs/cgroup", "cgroup", "cgroup", "nosuid", "noexec", "nodev", "relatime", "ro");
        mount(mounts, "/dev/mqueue", "mqueue", "mqueue", "nosuid", "noexec", "nodev");
        mount(mounts, "/dev/shm", "tmpfs", "shm", "nosuid", "noexec", "nodev", "mode=1777", "size=65536k");
        mount(mounts, RuntimeBundle.MOUNT_POINT, "bind", spec.bundle().root().toString(), "rbind", "ro", "nosuid",
                "nodev");
        mount(mounts, "/etc/hosts", "bind", dir.hosts().toString(), "rbind", "rw");
        mount(mounts, "/etc/resolv.conf", "bind", dir.resolvConf().toString(), "rbind", "rw");
        mount(mounts, "/etc/hostname", "bind", dir.hostname().toString(), "rbind", "rw");
        return mounts;
    }

    private static void mount(ArrayNode mounts, String destination, String type, String source, String... options) {
        ObjectNode mount = mounts.addObject();
        mount.put("destination", destination);
        mount.put("type", type);
        mount.put("source", source);
        ArrayNode optionArray = mount.putArray("options");
        for (String option : options) {
            optionArray.add(option);
        }
    }

    private static ObjectNode linux(ContainerSpec spec, String cgroupsPath, boolean swapAccounting) {
        ObjectNode linux = JSON.createObjectNode();
        ArrayNode namespaces = linux.putArray("namespaces");
        for (String type : List.of("pid", "mount", "uts", "ipc")) {
            namespaces.addObject().put("type", type);
        }
        ObjectNode network = namespaces.addObject().put("type", "network");
        spec.networkNamespace().ifPresent(path -> network.put("path", path.toString()));

        linux.put("cgroupsPath", cgroupsPath);
        ObjectNode resources = linux.putObject("resources");
        resources.putArray("devices").addObject().put("allow", false).put("access", "rwm");
        ObjectNode memory = resources.putObject("memory");
        memory.put("limit", spec.limits().memoryBytes());
        if (swapAccounting) {
            memory.put("swap", spec.limits().memoryBytes()); // memory+swap: no swap on top of the limit
        }
        ObjectNode cpu = resources.putObject("cpu");
        cpu.put("quota", spec.limits().cpuQuotaMicros());
        cpu.put("period", ResourceLimits.CPU_PERIOD_MICROS);
        resources.putObject("pids").put("limit", spec.limits().pidsMax());

        ArrayNode masked = linux.putArray("maskedPaths");
        MASKED_PATHS.forEach(masked::add);
        ArrayNode readonly = linux.putArray("readonlyPaths");
        READONLY_PATHS.forEach(readonly::add);
        linux.set("seccomp", SeccompProfile.dockerDefault());
        return linux;
    }
}
