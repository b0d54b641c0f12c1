package dev.capsule.envd.system;

import java.io.IOException;
import java.nio.file.FileStore;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The figures of {@code GET /metrics}. Inside a cgroup that limits memory or CPU (a sandbox under the oci driver)
 * the cgroup's limit and usage are the truth: /proc/meminfo and /proc/stat there describe the whole host, so a
 * 512 MiB sandbox would report the host's 64 GiB. Without such limits (a microVM, or a plain host) the kernel's
 * machine-wide files are used. CPU use is the share of the available CPUs busy since the previous call.
 */
public final class SystemMetrics {
    private static final Path CGROUP_ROOT = Path.of("/sys/fs/cgroup");

    private final Path procRoot;
    private final Path cgroupRoot;
    private final Path diskRoot;
    private CpuSample previous;

    public SystemMetrics() {
        this(Path.of("/proc"), CGROUP_ROOT, Path.of("/"));
    }

    SystemMetrics(Path procRoot, Path cgroupRoot, Path diskRoot) {
        this.procRoot = procRoot;
        this.cgroupRoot = cgroupRoot;
        this.diskRoot = diskRoot;
    }

    /** One reading, as E2B's envd reports it (bytes, percent rounded to 2 decimals, unix seconds). */
    public record Reading(long ts, int cpuCount, double cpuUsedPct, long memTotal, long memUsed, long memCache,
                          long diskUsed, long diskTotal) {
        public long memTotalMib() {
            return memTotal / (1024 * 1024);
        }

        public long memUsedMib() {
            return memUsed / (1024 * 1024);
        }
    }

    /** Takes a reading; the first call samples CPU twice, 100 ms apart, to have a delta. Blocking. */
    public synchronized Reading read() throws IOException {
        Path cgroup = ownCgroup();
        Path cpuLimited = cgroup == null ? null : nearest(cgroup, "cpu.max", true);
        Path memLimited = cgroup == null ? null : nearest(cgroup, "memory.max", true);

        double cpus = cpuLimited != null ? quota(cpuLimited) : Runtime.getRuntime().availableProcessors();
        int cpuCount = (int) Math.max(1, Math.ceil(cpus));
        CpuSample now = cpuSample(cpuLimited);
        if (previous == null || previous.cgroup() != (cpuLimited != null)
                || now.wallNanos() - previous.wallNanos() > 600_000_000_000L) {
            previous = now;
            try {
                Thread.sleep(100);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted while sampling CPU use", e);
            }
            now = cpuSample(cpuLimited);
        }
        double pct = cpuPercent(previous, now, cpus);
        if (now.wallNanos() - previous.wallNanos() >= 50_000_000L) {
            previous = now;
        }

        long memTotal;
        long memUsed;
        long memCache;
        Map<String, Long> meminfo = meminfo();
        long hostTotal = meminfo.getOrDefault("MemTotal", 0L);
        if (memLimited != null && number(memLimited.resolve("memory.max")) < hostTotal) {
            Map<String, Long> stat = keyValues(memLimited.resolve("memory.stat"));
            memTotal = number(memLimited.resolve("memory.max"));
            long current = number(memLimited.resolve("memory.current"));
            // Like MemAvailable: page cache that can be dropped (inactive file pages) is not "used".
            memUsed = Math.max(0, current - stat.getOrDefault("inactive_file", 0L));
            memCache = stat.getOrDefault("file", 0L);
        } else {
            memTotal = hostTotal;
            memUsed = Math.max(0, hostTotal - meminfo.getOrDefault("MemAvailable", meminfo.getOrDefault("MemFree", 0L)));
            memCache = meminfo.getOrDefault("Cached", 0L);
        }

        FileStore store = Files.getFileStore(diskRoot);
        long diskTotal = store.getTotalSpace();
        long diskUsed = diskTotal - store.getUnallocatedSpace();

        return new Reading(System.currentTimeMillis() / 1000, cpuCount, Math.round(pct * 100) / 100.0,
                memTotal, memUsed, memCache, diskUsed, diskTotal);
    }

    private record CpuSample(boolean cgroup, long wallNanos, long busy, long total) {}

    private CpuSample cpuSample(Path cpuLimited) throws IOException {
        long wall = System.nanoTime();
        if (cpuLimited != null) {
            long usageMicros = keyValues(cpuLimited.resolve("cpu.stat")).getOrDefault("usage_usec", 0L);
            return new CpuSample(true, wall, usageMicros * 1000, 0);
        }
        // First line of /proc/stat: cpu user nice system idle iowait irq softirq steal guest guest_nice (jiffies).
        String line = Files.readAllLines(procRoot.resolve("stat")).getFirst();
        String[] f = line.trim().split("\\s+");
        long total = 0;
        long idle = 0;
        for (int i = 1; i < f.length && i <= 8; i++) {
            long v = Long.parseLong(f[i]);
            total += v;
            if (i == 4 || i == 5) {
                idle += v;
            }
        }
        return new CpuSample(false, wall, total - idle, total);
    }

    private static double cpuPercent(CpuSample before, CpuSample after, double cpus) {
        double pct;
        if (after.cgroup()) {
            long wall = after.wallNanos() - before.wallNanos();
            pct = wall <= 0 ? 0 : 100.0 * (after.busy() - before.busy()) / (wall * cpus);
        } else {
            long total = after.total() - before.total();
            pct = total <= 0 ? 0 : 100.0 * (after.busy() - before.busy()) / total;
        }
        return Math.clamp(pct, 0.0, 100.0);
    }

    /** The cgroup (v2) this process is in, as a directory under /sys/fs/cgroup, or null outside cgroup v2. */
    private Path ownCgroup() {
        try {
            for (String line : Files.readAllLines(procRoot.resolve("self/cgroup"))) {
                if (line.startsWith("0::")) {
                    String rel = line.substring(3);
                    Path dir = cgroupRoot.resolve(rel.startsWith("/") ? rel.substring(1) : rel).normalize();
                    return dir.startsWith(cgroupRoot) && Files.isDirectory(dir) ? dir : cgroupRoot;
                }
            }
        } catch (IOException | RuntimeException e) {
            return null;
        }
        return null;
    }

    /** The nearest cgroup at or above {@code dir} whose {@code file} sets a limit (not "max"), or null. */
    private Path nearest(Path dir, String file, boolean limited) {
        for (Path p = dir; p != null && p.startsWith(cgroupRoot); p = p.getParent()) {
            Path f = p.resolve(file);
            if (Files.isReadable(f)) {
                try {
                    String v = Files.readString(f).trim();
                    if (limited && !v.startsWith("max")) {
                        return p;
                    }
                } catch (IOException e) {
                    return null;
                }
            }
        }
        return null;
    }

    private static double quota(Path cgroup) throws IOException {
        String[] f = Files.readString(cgroup.resolve("cpu.max")).trim().split("\\s+");
        double q = Double.parseDouble(f[0]);
        double period = f.length > 1 ? Double.parseDouble(f[1]) : 100_000;
        return Math.min(q / period, Runtime.getRuntime().availableProcessors());
    }

    private Map<String, Long> meminfo() throws IOException {
        Map<String, Long> values = new HashMap<>();
        for (String line : Files.readAllLines(procRoot.resolve("meminfo"))) {
            int colon = line.indexOf(':');
            if (colon < 0) {
                continue;
            }
            String[] f = line.substring(colon + 1).trim().split("\\s+");
            try {
                long v = Long.parseLong(f[0]);
                values.put(line.substring(0, colon), f.length > 1 && f[1].equals("kB") ? v * 1024 : v);
            } catch (NumberFormatException ignored) {
                // not a number: skip
            }
        }
        return values;
    }

    private static Map<String, Long> keyValues(Path file) throws IOException {
        Map<String, Long> values = new HashMap<>();
        List<String> lines = Files.readAllLines(file);
        for (String line : lines) {
            String[] f = line.trim().split("\\s+");
            if (f.length == 2) {
                try {
                    values.put(f[0], Long.parseLong(f[1]));
                } catch (NumberFormatException ignored) {
                    // skip
                }
            }
        }
        return values;
    }

    private static long number(Path file) throws IOException {
        String v = Files.readString(file).trim();
        return v.equals("max") ? Long.MAX_VALUE : Long.parseLong(v);
    }
}
