import dev.capsule.runtime.NetworkPolicy;
import dev.capsule.runtime.Resources;
import dev.capsule.runtime.SandboxInstance;
import dev.capsule.runtime.SandboxRuntime;
import dev.capsule.runtime.SandboxSpec;
import dev.capsule.runtime.host.Mounts;
import dev.capsule.runtime.microvm.MicroVmConfig;
import dev.capsule.runtime.microvm.MicroVmRuntime;
import dev.capsule.runtime.network.Ipv4Cidr;
import dev.capsule.runtime.network.NetworkConfig;
import dev.capsule.runtime.oci.OciRuntime;
import dev.capsule.runtime.oci.OciRuntimeConfig;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.stream.Stream;

/**
 * The microvm driver's lifecycle at the driver seam, next to the oci driver's: create (start() to envd's first
 * 204 on /health), pause with memory, resume (to envd answering again), the host CPU and memory of an idle and the
 * memory of a paused sandbox, and what a paused sandbox and a template snapshot take on disk; for 256 and 512 MiB guests. Run by
 * bench/microvm/run.sh; prints a markdown table. Arguments: ROUNDS [SIZES...] (MiB, default 256 512).
 */
public class MicroVmBench {

    static final int IDLE_SECONDS = 5;
    static final Map<String, List<Double>> RESULTS = new LinkedHashMap<>();

    public static void main(String[] args) throws Exception {
        int rounds = args.length > 0 ? Integer.parseInt(args[0]) : 10;
        List<Integer> sizes = new ArrayList<>();
        for (int i = 1; i < args.length; i++) {
            sizes.add(Integer.parseInt(args[i]));
        }
        if (sizes.isEmpty()) {
            sizes = List.of(256, 512);
        }
        Path cache = OciRuntimeConfig.cacheDirFromEnvironment();
        for (int size : sizes) {
            microvm(cache, size, rounds);
        }
        oci(cache, rounds);
        System.out.println();
        System.out.println("| measure | p50 | p95 | min | max | n |");
        System.out.println("|---|---|---|---|---|---|");
        RESULTS.forEach((name, values) -> {
            List<Double> sorted = values.stream().sorted().toList();
            System.out.printf("| %s | %s | %s | %s | %s | %d |%n", name, format(percentile(sorted, 50)),
                    format(percentile(sorted, 95)), format(sorted.getFirst()), format(sorted.getLast()), sorted.size());
        });
    }

    static void microvm(Path cache, int memoryMb, int rounds) throws Exception {
        Path data = Files.createTempDirectory("cmvb");
        NetworkConfig network = NetworkConfig.defaults().withName("capsulebench", "cbm")
                .withPool(Ipv4Cidr.parse("10.217.0.0/24"));
        MicroVmConfig config = MicroVmConfig.defaults().withDirectories(data, cache).withNetwork(network);
        MicroVmRuntime runtime = new MicroVmRuntime(config);
        Thread onInterrupt = new Thread(() -> cleanUp(runtime, config));
        Runtime.getRuntime().addShutdownHook(onInterrupt);
        Resources resources = new Resources(2, memoryMb, Resources.DEFAULT.diskSizeMB());
        String vm = "microvm " + memoryMb + " MiB";
        try {
            // the first start builds the template's snapshot for this size if the cache has none: not measured
            runtime.destroy(runtime.start(spec(resources)).sandboxId());
            Path snapshot = newest(cache.resolve("microvm"), "snapshot-base-2x" + memoryMb + "-");
            record(vm + ": template snapshot on disk (MiB: RAM file allocated + device state + disk)",
                    allocated(snapshot) / 1048576.0);
            for (int round = 0; round < rounds; round++) {
                long begin = System.nanoTime();
                SandboxInstance sandbox = runtime.start(spec(resources));
                record(vm + ": create from the template snapshot to envd's first answer (ms)", millis(begin));
                Path dir = data.resolve("microvm/sandboxes").resolve(sandbox.sandboxId());
                if (round < 3) {
                    long pid = Long.parseLong(Files.readString(dir.resolve("qemu.pid")).strip());
                    long ticks = cpuTicks(pid);
                    Thread.sleep(IDLE_SECONDS * 1000L);
                    record(vm + ": host CPU of an idle sandbox (% of one core)",
                            (cpuTicks(pid) - ticks) / (double) IDLE_SECONDS);
                    Map<String, Long> memory = smapsRollup(pid);
                    record(vm + ": host memory of an idle sandbox, QEMU RSS (MiB)", memory.get("Rss") / 1024.0);
                    record(vm + ": host memory of an idle sandbox, QEMU PSS (MiB)", memory.get("Pss") / 1024.0);
                    record(vm + ": host memory of an idle sandbox, private anonymous (MiB)",
                            memory.get("Anonymous") / 1024.0);
                }
                begin = System.nanoTime();
                runtime.pause(sandbox.sandboxId(), true);
                record(vm + ": pause with memory (ms)", millis(begin));
                record(vm + ": paused sandbox on disk, memory (MiB: RAM file allocated + device state)",
                        (allocated(dir.resolve("memory.ram")) + allocated(dir.resolve("state"))) / 1048576.0);
                record(vm + ": host memory of a paused sandbox (MiB; no process)", 0);
                begin = System.nanoTime();
                runtime.resume(sandbox.sandboxId());
                record(vm + ": resume to envd answering (ms)", millis(begin));
                if (round < 3) {
                    Thread.sleep(IDLE_SECONDS * 1000L);
                    long pid = Long.parseLong(Files.readString(dir.resolve("qemu.pid")).strip());
                    Map<String, Long> memory = smapsRollup(pid);
                    record(vm + ": host memory of an idle resumed sandbox, QEMU RSS (MiB)", memory.get("Rss") / 1024.0);
                    record(vm + ": host memory of an idle resumed sandbox, private anonymous (MiB)",
                            memory.get("Anonymous") / 1024.0);
                }
                runtime.destroy(sandbox.sandboxId());
            }
            // clones of one snapshot share its unchanged RAM through the page cache: what each costs then
            List<SandboxInstance> clones = new ArrayList<>();
            for (int i = 0; i < 3; i++) {
                clones.add(runtime.start(spec(resources)));
            }
            Thread.sleep(IDLE_SECONDS * 1000L);
            for (SandboxInstance clone : clones) {
                Path dir = data.resolve("microvm/sandboxes").resolve(clone.sandboxId());
                long pid = Long.parseLong(Files.readString(dir.resolve("qemu.pid")).strip());
                record(vm + ": host memory of an idle sandbox among 3, QEMU PSS (MiB)",
                        smapsRollup(pid).get("Pss") / 1024.0);
            }
            for (SandboxInstance clone : clones) {
                runtime.destroy(clone.sandboxId());
            }
        } finally {
            Runtime.getRuntime().removeShutdownHook(onInterrupt);
            cleanUp(runtime, config);
        }
    }

    /**
     * Leaves nothing of a run, also one interrupted while a template snapshot was being built: its QEMU processes
     * (the ones whose command line names the run's data directory) are killed by pid, and a driver opened afresh
     * on the run's network removes every namespace, veth and rule of it.
     */
    static void cleanUp(MicroVmRuntime runtime, MicroVmConfig config) {
        ProcessHandle.allProcesses().filter(p -> p.info().commandLine().orElse("")
                .contains(config.dataDir().toString())).forEach(ProcessHandle::destroyForcibly);
        runtime.close();
        MicroVmRuntime fresh = new MicroVmRuntime(config);
        fresh.removeOrphans(Set.of());
        fresh.close();
        Mounts.deleteTree(config.dataDir());
    }

    static void oci(Path cache, int rounds) throws Exception {
        Path data = Files.createTempDirectory("cocb");
        Path runc = Files.createTempDirectory("cocb-runc");
        NetworkConfig network = NetworkConfig.defaults().withName("capsulebencho", "cbo")
                .withPool(Ipv4Cidr.parse("10.218.0.0/24"));
        OciRuntime runtime = new OciRuntime(OciRuntimeConfig.defaults().withDirectories(data, cache)
                .withRunc(runc, "capsule-bench").withNetwork(network));
        Thread onInterrupt = new Thread(() -> {
            runtime.removeOrphans(Set.of());
            runtime.close();
        });
        Runtime.getRuntime().addShutdownHook(onInterrupt);
        try {
            runtime.prepare();
            runtime.destroy(runtime.start(spec(Resources.DEFAULT)).sandboxId());
            for (int round = 0; round < rounds; round++) {
                long begin = System.nanoTime();
                SandboxInstance sandbox = runtime.start(spec(Resources.DEFAULT));
                record("oci (peer): create to envd's first answer (ms)", millis(begin));
                if (round < 3) {
                    // the oci driver's usage samples (cgroup accounting), where this build's driver has them
                    var before = runtime.usage(sandbox.sandboxId());
                    Thread.sleep(IDLE_SECONDS * 1000L);
                    var after = runtime.usage(sandbox.sandboxId());
                    if (before.isPresent() && after.isPresent()) {
                        record("oci (peer): host CPU of an idle sandbox (% of one core)",
                                (after.get().cpuUsageNanos() - before.get().cpuUsageNanos()) / 1e7 / IDLE_SECONDS);
                        record("oci (peer): host memory of an idle sandbox, cgroup memory (MiB)",
                                after.get().memUsed() / 1048576.0);
                    }
                }
                begin = System.nanoTime();
                runtime.pause(sandbox.sandboxId(), true);
                record("oci (peer): pause with memory, cgroup freeze (ms)", millis(begin));
                begin = System.nanoTime();
                runtime.resume(sandbox.sandboxId());
                record("oci (peer): resume, thaw (ms)", millis(begin));
                runtime.destroy(sandbox.sandboxId());
            }
        } finally {
            Runtime.getRuntime().removeShutdownHook(onInterrupt);
            runtime.removeOrphans(Set.of());
            runtime.close();
            Mounts.deleteTree(data);
            Mounts.deleteTree(runc);
        }
    }

    static SandboxSpec spec(Resources resources) {
        return new SandboxSpec(UUID.randomUUID().toString().replace("-", "").substring(0, 20), "base", resources,
                NetworkPolicy.OPEN);
    }

    static void record(String name, double value) {
        RESULTS.computeIfAbsent(name, k -> new ArrayList<>()).add(value);
        System.out.printf("%s: %.1f%n", name, value);
    }

    static double millis(long begin) {
        return (System.nanoTime() - begin) / 1e6;
    }

    static double percentile(List<Double> sorted, int p) {
        return sorted.get(Math.max(0, (int) Math.ceil(p / 100.0 * sorted.size()) - 1));
    }

    static String format(double value) {
        return String.format("%.0f", value);
    }

    /** CPU time of the process and all its threads, in clock ticks (1/100 s): utime + stime. */
    static long cpuTicks(long pid) throws IOException {
        String stat = Files.readString(Path.of("/proc", String.valueOf(pid), "stat"));
        String[] fields = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
        return Long.parseLong(fields[11]) + Long.parseLong(fields[12]);
    }

    static Map<String, Long> smapsRollup(long pid) throws IOException {
        Map<String, Long> values = new LinkedHashMap<>();
        for (String line : Files.readAllLines(Path.of("/proc", String.valueOf(pid), "smaps_rollup"))) {
            String[] parts = line.split("\\s+");
            if (parts.length >= 3 && parts[0].endsWith(":")) {
                values.put(parts[0].substring(0, parts[0].length() - 1), Long.parseLong(parts[1]));
            }
        }
        return values;
    }

    static Path newest(Path dir, String prefix) throws IOException {
        try (Stream<Path> entries = Files.list(dir)) {
            return entries.filter(p -> p.getFileName().toString().startsWith(prefix))
                    .max((a, b) -> Long.compare(a.toFile().lastModified(), b.toFile().lastModified()))
                    .orElseThrow(() -> new IllegalStateException("no " + prefix + "* in " + dir));
        }
    }

    /** Bytes the directory or file takes on disk: sparse files count what is allocated. */
    static long allocated(Path dir) throws IOException, InterruptedException {
        Process du = new ProcessBuilder("du", "-s", "-B1", dir.toString()).redirectErrorStream(true).start();
        String out = new String(du.getInputStream().readAllBytes()).strip();
        if (du.waitFor() != 0) {
            throw new IOException("du " + dir + " failed: " + out);
        }
        return Long.parseLong(out.split("\\s+")[0]);
    }
}
