package dev.capsule.runtime.microvm;

import dev.capsule.runtime.cache.BuildCache;
import dev.capsule.runtime.host.Command;

import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Stream;

/**
 * The kernel every microVM boots: Debian's cloud kernel package, which {@code scripts/setup.sh} downloads and
 * extracts (not installs: the host keeps its own kernel) into {@code <cache>/kernels/<package>/}. It is turned once
 * into what boots fastest under QEMU's microvm machine (MICROVM-NOTES.md): the uncompressed {@code vmlinux} ELF,
 * which QEMU starts through its PVH entry without the in-guest decompression, and a small uncompressed initramfs
 * with busybox, the virtio modules (the cloud kernel has them as modules) and {@code initramfs-init.sh}.
 *
 * @param kernel    what {@code -kernel} gets: vmlinux, or the bzImage when its payload is not LZ4 (slower boot)
 * @param initramfs what {@code -initrd} gets
 * @param release   the kernel release, e.g. {@code 6.1.0-56-cloud-amd64}
 * @param hash      names the build; part of every snapshot's name, since a snapshot is tied to its kernel
 */
record GuestKernel(Path kernel, Path initramfs, String release, String hash) {

    /** The cache's folder of extracted kernel packages. */
    static final String PACKAGES = "kernels";
    /** Modules the guest needs before its root disk is mounted; their dependencies are added. */
    static final List<String> MODULES = List.of("virtio_mmio", "virtio_blk", "virtio_net", "virtio_rng");

    private static final int FORMAT = 1;
    private static final byte[] LZ4_LEGACY_MAGIC = {0x02, 0x21, 0x4c, 0x18};

    /** The kernel built from the newest package under {@code cacheDir/kernels}, building it now if no one has. */
    static GuestKernel ensure(Path cacheDir, BuildCache builds, Path busybox) {
        Path packageDir = newestPackage(cacheDir.resolve(PACKAGES));
        Path vmlinuz = only(packageDir.resolve("boot"), "vmlinuz-*");
        String release = vmlinuz.getFileName().toString().substring("vmlinuz-".length());
        Path modulesDir = packageDir.resolve("lib/modules").resolve(release).resolve("kernel");
        List<Path> modules = modulesWithDependencies(modulesDir);
        String init = GuestFiles.text("initramfs-init.sh");

        Digest digest = new Digest().text("format=" + FORMAT).file(vmlinuz).file(busybox).text(init);
        modules.forEach(digest::file);
        String hash = digest.hex();
        Path entry = builds.ensure("kernel-" + release + "-" + hash, target -> {
            Path kernel = extractVmlinux(vmlinuz, target).orElse(null);
            if (kernel == null) {
                Files.copy(vmlinuz, target.resolve("vmlinuz"));
            }
            writeInitramfs(target.resolve("initramfs.cpio"), init, busybox, modules);
        });
        Path kernel = Files.exists(entry.resolve("vmlinux")) ? entry.resolve("vmlinux") : entry.resolve("vmlinuz");
        return new GuestKernel(kernel, entry.resolve("initramfs.cpio"), release, hash);
    }

    /** The extracted package with the highest kernel release. */
    private static Path newestPackage(Path packages) {
        List<Path> candidates = new ArrayList<>();
        if (Files.isDirectory(packages)) {
            try (DirectoryStream<Path> dirs = Files.newDirectoryStream(packages)) {
                for (Path dir : dirs) {
                    if (Files.isDirectory(dir.resolve("boot")) && Files.isDirectory(dir.resolve("lib/modules"))) {
                        candidates.add(dir);
                    }
                }
            } catch (IOException e) {
                throw new UncheckedIOException("cannot list " + packages + ": " + e.getMessage(), e);
            }
        }
        return candidates.stream().max(Comparator.comparing(dir -> dir.getFileName().toString(),
                GuestKernel::compareVersions)).orElseThrow(() -> new IllegalStateException("no guest kernel in "
                + packages + ": run scripts/setup.sh, which downloads Debian's linux-image-cloud-amd64 package and "
                + "extracts it there (dpkg-deb -x)"));
    }

    /** Compares version-like names by their numbers where both have one, else as text. */
    static int compareVersions(String a, String b) {
        String[] left = a.split("(?<=\\d)(?=\\D)|(?<=\\D)(?=\\d)");
        String[] right = b.split("(?<=\\d)(?=\\D)|(?<=\\D)(?=\\d)");
        for (int i = 0; i < Math.min(left.length, right.length); i++) {
            int order = left[i].matches("\\d+") && right[i].matches("\\d+")
                    ? new java.math.BigInteger(left[i]).compareTo(new java.math.BigInteger(right[i]))
                    : left[i].compareTo(right[i]);
            if (order != 0) {
                return order;
            }
        }
        return Integer.compare(left.length, right.length);
    }

    private static Path only(Path dir, String glob) {
        try (DirectoryStream<Path> files = Files.newDirectoryStream(dir, glob)) {
            List<Path> found = new ArrayList<>();
            files.forEach(found::add);
            if (found.size() != 1) {
                throw new IllegalStateException("expected one " + glob + " in " + dir + ", found " + found
                        + "; extract a single linux-image package there");
            }
            return found.getFirst();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list " + dir + ": " + e.getMessage(), e);
        }
    }

    /** {@link #MODULES} and what they depend on (from each module's {@code depends=}), dependencies first. */
    static List<Path> modulesWithDependencies(Path modulesDir) {
        Map<String, Path> byName = new TreeMap<>();
        try (Stream<Path> files = Files.walk(modulesDir)) {
            files.filter(f -> f.getFileName().toString().endsWith(".ko"))
                    .forEach(f -> byName.put(moduleName(f), f));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list the kernel modules in " + modulesDir + ": " + e.getMessage(), e);
        }
        Set<Path> ordered = new LinkedHashSet<>();
        for (String module : MODULES) {
            addWithDependencies(module, byName, ordered, new LinkedHashSet<>());
        }
        return List.copyOf(ordered);
    }

    private static void addWithDependencies(String module, Map<String, Path> byName, Set<Path> ordered,
                                            Set<String> visiting) {
        Path file = byName.get(module);
        if (file == null) {
            throw new IllegalStateException("the guest kernel has no module " + module + " (looked for " + module
                    + ".ko); use a Debian cloud kernel package, which builds the virtio drivers as modules");
        }
        if (ordered.contains(file) || !visiting.add(module)) {
            return;
        }
        for (String dependency : dependencies(file)) {
            addWithDependencies(dependency, byName, ordered, visiting);
        }
        ordered.add(file);
    }

    /** Module names use '_' where file names may use '-' (virtio-rng.ko is module virtio_rng). */
    static String moduleName(Path file) {
        String name = file.getFileName().toString();
        return name.substring(0, name.length() - ".ko".length()).replace('-', '_');
    }

    /** The {@code depends=} entry of the module's .modinfo section. */
    private static List<String> dependencies(Path module) {
        try {
            String text = new String(Files.readAllBytes(module), StandardCharsets.ISO_8859_1);
            int at = text.indexOf("\0depends=");
            if (at < 0) {
                return List.of();
            }
            int start = at + "\0depends=".length();
            String value = text.substring(start, text.indexOf('\0', start));
            return value.isEmpty() ? List.of() : Arrays.asList(value.split(","));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + module + ": " + e.getMessage(), e);
        }
    }

    /**
     * Writes the ELF vmlinux inside an LZ4-compressed bzImage to {@code target/vmlinux}. The compressed payload's
     * place is in the boot protocol header (payload_offset/payload_length after the setup sectors); the kernel's
     * build appends the uncompressed size as four bytes, which {@code lz4} must not see and which checks the result.
     * Empty when the payload is not LZ4: QEMU boots the bzImage itself then, only slower.
     */
    static Optional<Path> extractVmlinux(Path bzImage, Path target) throws IOException {
        byte[] image = Files.readAllBytes(bzImage);
        ByteBuffer header = ByteBuffer.wrap(image).order(ByteOrder.LITTLE_ENDIAN);
        if (image.length < 0x250 || header.getInt(0x202) != 0x53726448) { // "HdrS"
            return Optional.empty();
        }
        int setupSectors = image[0x1f1] == 0 ? 4 : Byte.toUnsignedInt(image[0x1f1]);
        int payloadStart = (setupSectors + 1) * 512 + header.getInt(0x248);
        int payloadLength = header.getInt(0x24c);
        if (payloadStart < 0 || payloadLength < 8 || payloadStart + payloadLength > image.length
                || !Arrays.equals(image, payloadStart, payloadStart + 4, LZ4_LEGACY_MAGIC, 0, 4)) {
            return Optional.empty();
        }
        long expectedSize = Integer.toUnsignedLong(header.getInt(payloadStart + payloadLength - 4));
        Path compressed = target.resolve("vmlinux.lz4");
        Path vmlinux = target.resolve("vmlinux");
        Files.write(compressed, Arrays.copyOfRange(image, payloadStart, payloadStart + payloadLength - 4));
        try {
            Command.run(List.of(Tools.path("lz4"), "-d", "-q", "-f", compressed.toString(), vmlinux.toString()), 300).orThrow();
        } finally {
            Files.deleteIfExists(compressed);
        }
        byte[] elf = new byte[4];
        try (var in = Files.newInputStream(vmlinux)) {
            in.readNBytes(elf, 0, 4);
        }
        if (Files.size(vmlinux) != expectedSize || !Arrays.equals(elf, new byte[] {0x7f, 'E', 'L', 'F'})) {
            throw new IOException("the kernel extracted from " + bzImage + " is not the expected ELF of "
                    + expectedSize + " bytes");
        }
        return Optional.of(vmlinux);
    }

    private static void writeInitramfs(Path file, String init, Path busybox, List<Path> modules) throws IOException {
        try (OutputStream out = new BufferedOutputStream(Files.newOutputStream(file)); Cpio cpio = new Cpio(out)) {
            for (String dir : List.of("bin", "dev", "lib", "lib/modules", "newroot", "proc", "sys")) {
                cpio.directory(dir);
            }
            cpio.characterDevice("dev/console", 0600, 5, 1);
            cpio.file("init", 0755, init.getBytes(StandardCharsets.UTF_8));
            cpio.file("bin/busybox", 0755, Files.readAllBytes(busybox));
            StringBuilder order = new StringBuilder();
            for (Path module : modules) {
                String name = module.getFileName().toString();
                cpio.file("lib/modules/" + name, 0644, Files.readAllBytes(module));
                order.append(name, 0, name.length() - ".ko".length()).append('\n');
            }
            cpio.file("modules.order", 0644, order.toString().getBytes(StandardCharsets.UTF_8));
        }
    }
}
