package dev.capsule.runtime.cgroup;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Where a container's cgroup lives on this host, whatever its layout: cgroup v1 (one hierarchy per controller),
 * hybrid (v1 controllers plus an empty cgroup2 at {@code unified}, as on Debian 12 machines) or v2 (one
 * hierarchy). runc creates and removes the cgroups; this class finds them, to read usage and limits and to
 * prove that nothing is left behind.
 */
public final class Cgroups {

    public enum Mode { V1, HYBRID, V2 }

    private Cgroups() {
    }

    public static Mode detect() {
        if (Files.exists(Path.of("/sys/fs/cgroup/cgroup.controllers"))) {
            return Mode.V2;
        }
        return Files.isDirectory(Path.of("/sys/fs/cgroup/unified")) ? Mode.HYBRID : Mode.V1;
    }

    /**
     * The directories of cgroup {@code cgroupsPath} (an OCI {@code linux.cgroupsPath}) in every hierarchy,
     * whether or not they exist. A relative path is resolved, as runc does, under this process's own cgroup in
     * each hierarchy (runc runs as our child, in our cgroups).
     */
    public static List<Path> directoriesOf(String cgroupsPath) {
        Map<String, String> own = ownCgroups();
        List<Path> directories = new ArrayList<>();
        for (Hierarchy hierarchy : hierarchies()) {
            String base = cgroupsPath.startsWith("/") ? "/" : own.getOrDefault(hierarchy.key(), "/");
            Path dir = hierarchy.mountPoint();
            for (String part : (base + "/" + cgroupsPath).split("/")) {
                if (!part.isEmpty()) {
                    dir = dir.resolve(part);
                }
            }
            directories.add(dir);
        }
        return directories;
    }

    /** The directories of {@code cgroupsPath} that exist now: empty once the container is fully deleted. */
    public static List<Path> existing(String cgroupsPath) {
        return directoriesOf(cgroupsPath).stream().filter(Files::isDirectory).toList();
    }

    /** The value of control file {@code file} (e.g. "memory.limit_in_bytes", "pids.max") of the cgroup. */
    public static Optional<String> read(String cgroupsPath, String file) {
        for (Path dir : directoriesOf(cgroupsPath)) {
            Path control = dir.resolve(file);
            if (Files.isRegularFile(control)) {
                try {
                    return Optional.of(Files.readString(control).strip());
                } catch (IOException e) {
                    throw new UncheckedIOException("cannot read " + control, e);
                }
            }
        }
        return Optional.empty();
    }

    /** A mounted hierarchy; key is the controller list as /proc/self/cgroup names it ("" for cgroup2). */
    private record Hierarchy(String key, Path mountPoint) {
    }

    private static List<Hierarchy> hierarchies() {
        List<Hierarchy> found = new ArrayList<>();
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/mountinfo"))) {
                String[] halves = line.split(" - ", 2);
                String[] left = halves[0].split(" ");
                String[] right = halves[1].split(" ");
                Path mountPoint = Path.of(left[4]);
                if (right[0].equals("cgroup2")) {
                    found.add(new Hierarchy("", mountPoint));
                } else if (right[0].equals("cgroup")) {
                    List<String> controllers = new ArrayList<>();
                    for (String option : right[2].split(",")) {
                        if (!List.of("rw", "ro", "relatime", "nosuid", "nodev", "noexec", "clone_children",
                                "xattr").contains(option)) {
                            controllers.add(option);
                        }
                    }
                    found.add(new Hierarchy(String.join(",", controllers), mountPoint));
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read /proc/self/mountinfo", e);
        }
        return found;
    }

    private static Map<String, String> ownCgroups() {
        Map<String, String> own = new LinkedHashMap<>();
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/cgroup"))) {
                String[] fields = line.split(":", 3);
                own.put(fields[1], fields[2]);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read /proc/self/cgroup", e);
        }
        return own;
    }
}
