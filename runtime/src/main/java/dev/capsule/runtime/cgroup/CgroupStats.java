package dev.capsule.runtime.cgroup;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * One reading of a cgroup's accounting, from the v1 controllers (cpuacct, memory, cpu, freezer) where they are
 * mounted — this project's hosts are hybrid — else from the v2 files of the unified hierarchy.
 *
 * @param frozen        the cgroup is frozen or freezing (a paused sandbox)
 * @param cpuNanos      CPU time used by its tasks since the cgroup was made
 * @param memoryBytes   memory charged to it (v1 usage_in_bytes, v2 memory.current), page cache included
 * @param memoryLimit   its memory limit in bytes, or -1 when unlimited
 * @param cacheBytes    page cache among {@code memoryBytes} (v1 total_cache, v2 file)
 * @param inactiveFile  inactive file pages: cache the kernel reclaims first, which is not "used" memory
 * @param cpuQuota      CPUs its CFS quota allows (quota / period, rounded up), or 0 when unlimited
 */
public record CgroupStats(boolean frozen, long cpuNanos, long memoryBytes, long memoryLimit, long cacheBytes,
                          long inactiveFile, int cpuQuota) {

    /** What memory limits at or above this mean: none (v1 writes "unlimited" as a page-rounded LONG_MAX). */
    private static final long UNLIMITED = Long.MAX_VALUE / 2;
    private static final Map<String, List<Path>> DIRECTORIES = new java.util.concurrent.ConcurrentHashMap<>();

    /** Memory in use as container tools report it: charged memory minus the inactive page cache. */
    public long workingSet() {
        return Math.max(0, memoryBytes - inactiveFile);
    }

    /**
     * Reads cgroup {@code cgroupsPath} (an OCI {@code linux.cgroupsPath}); empty when it does not exist (the
     * container is gone or was never started).
     */
    public static Optional<CgroupStats> read(String cgroupsPath) {
        Map<String, Path> files = new HashMap<>();
        // a cgroup's directories do not move while it lives: found once (that reads two /proc files), then reused
        List<Path> dirs = DIRECTORIES.computeIfAbsent(cgroupsPath, Cgroups::directoriesOf);
        for (Path dir : dirs) {
            if (!Files.isDirectory(dir)) continue;
            for (String name : List.of("cpuacct.usage", "memory.usage_in_bytes", "memory.limit_in_bytes",
                    "memory.stat", "cpu.cfs_quota_us", "cpu.cfs_period_us", "freezer.state", "cpu.stat",
                    "memory.current", "memory.max", "cpu.max", "cgroup.freeze")) {
                Path file = dir.resolve(name);
                // v1's memory.stat wins over the unified hierarchy's (which on hybrid hosts accounts nothing)
                if (!files.containsKey(name) && Files.isRegularFile(file)) files.put(name, file);
            }
        }
        if (files.isEmpty()) {
            DIRECTORIES.remove(cgroupsPath); // gone: forget it
            return Optional.empty();
        }
        try {
            return Optional.of(files.containsKey("cpuacct.usage") || files.containsKey("memory.usage_in_bytes")
                    ? v1(files) : v2(files));
        } catch (NoSuchFileException gone) {
            DIRECTORIES.remove(cgroupsPath);
            return Optional.empty(); // removed while being read: the container was just deleted
        } catch (IOException | RuntimeException e) {
            throw new IllegalStateException("cannot read the accounting of cgroup " + cgroupsPath + ": " + e.getMessage(), e);
        }
    }

    private static CgroupStats v1(Map<String, Path> f) throws IOException {
        Map<String, Long> stat = keyed(f.get("memory.stat"));
        long limit = number(f.get("memory.limit_in_bytes"), -1);
        long quota = number(f.get("cpu.cfs_quota_us"), -1);
        long period = number(f.get("cpu.cfs_period_us"), 100_000);
        String freezer = text(f.get("freezer.state"), "THAWED");
        return new CgroupStats(!freezer.equals("THAWED"), number(f.get("cpuacct.usage"), 0),
                number(f.get("memory.usage_in_bytes"), 0), limit >= UNLIMITED ? -1 : limit,
                stat.getOrDefault("total_cache", stat.getOrDefault("cache", 0L)),
                stat.getOrDefault("total_inactive_file", stat.getOrDefault("inactive_file", 0L)),
                cpus(quota, period));
    }

    private static CgroupStats v2(Map<String, Path> f) throws IOException {
        Map<String, Long> stat = keyed(f.get("memory.stat"));
        String max = text(f.get("memory.max"), "max");
        String[] cpuMax = text(f.get("cpu.max"), "max 100000").split("\\s+");
        long quota = cpuMax[0].equals("max") ? -1 : Long.parseLong(cpuMax[0]);
        long period = cpuMax.length > 1 ? Long.parseLong(cpuMax[1]) : 100_000;
        return new CgroupStats(text(f.get("cgroup.freeze"), "0").equals("1"),
                keyed(f.get("cpu.stat")).getOrDefault("usage_usec", 0L) * 1000,
                number(f.get("memory.current"), 0), max.equals("max") ? -1 : Long.parseLong(max),
                stat.getOrDefault("file", 0L), stat.getOrDefault("inactive_file", 0L), cpus(quota, period));
    }

    private static int cpus(long quota, long period) {
        return quota <= 0 || period <= 0 ? 0 : (int) ((quota + period - 1) / period);
    }

    private static String text(Path file, String absent) throws IOException {
        return file == null ? absent : Files.readString(file).strip();
    }

    private static long number(Path file, long absent) throws IOException {
        return file == null ? absent : Long.parseLong(Files.readString(file).strip());
    }

    /** A "key value" per line file (memory.stat, cpu.stat). */
    private static Map<String, Long> keyed(Path file) throws IOException {
        Map<String, Long> out = new HashMap<>();
        if (file == null) return out;
        for (String line : Files.readAllLines(file)) {
            int space = line.indexOf(' ');
            if (space > 0) {
                try {
                    out.put(line.substring(0, space), Long.parseLong(line.substring(space + 1).strip()));
                } catch (NumberFormatException ignored) {
                    // a key with a non-numeric value (none today): not accounting we read
                }
            }
        }
        return out;
    }
}
