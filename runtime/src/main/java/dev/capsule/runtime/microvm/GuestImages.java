package dev.capsule.runtime.microvm;

import dev.capsule.runtime.bundle.RuntimeBundle;
import dev.capsule.runtime.cache.BuildCache;
import dev.capsule.runtime.host.Command;
import dev.capsule.runtime.host.Mounts;
import dev.capsule.runtime.template.Template;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;

/**
 * The two disks every microVM gets, each an ext4 image built once (with {@code mkfs.ext4 -d}, which fills it from
 * a directory without mounting anything) and shared read-only by all VMs:
 * <ul>
 * <li>the template's root file system ({@code rootfs-<template hash>-<disk MiB>/disk.img}), the backing file of
 *     every sandbox's copy-on-write qcow2 overlay; sized for the template's files plus its {@code diskSizeMB};</li>
 * <li>the runtime bundle ({@code bundle-<bundle hash>-<guest files hash>/disk.img}), mounted read-only at
 *     {@value RuntimeBundle#MOUNT_POINT} as the oci driver bind-mounts it, plus {@code vm/}: the guest init, static
 *     busybox for it and {@code capsule-guest} (network set-up and the agent).</li>
 * </ul>
 * Keeping the bundle on its own disk means a new envd build makes a 60 MB image, not a new copy of the template.
 */
final class GuestImages {

    private static final int FORMAT = 1;
    private static final long MIB = 1024 * 1024;

    private GuestImages() {
    }

    /** The template's root file system as a raw ext4 image. */
    static Path rootfs(BuildCache builds, Template template) {
        int diskMb = template.resources().diskSizeMB();
        Path entry = builds.ensure("rootfs-" + template.name() + "-" + template.hash() + "-" + diskMb + "-f" + FORMAT,
                target -> {
                    Path image = target.resolve("disk.img");
                    makeExt4(template.rootfs(), image, "capsule-root", usedBytes(template.rootfs()) * 11 / 10
                            + diskMb * MIB);
                    // the shared backing file of every overlay: nothing may write to it
                    Files.setPosixFilePermissions(image, PosixFilePermissions.fromString("r--r--r--"));
                });
        return entry.resolve("disk.img");
    }

    /** The runtime bundle plus the guest's own files as a raw ext4 image; envd starts with {@code envdCommand}. */
    static Path bundle(BuildCache builds, RuntimeBundle bundle, Path busybox, List<String> envdCommand) {
        String init = GuestFiles.text("init.sh").replace("@ENVD_COMMAND@", shellWords(envdCommand));
        byte[] guestTool = GuestFiles.bytes("capsule-guest");
        String hash = new Digest().text("format=" + FORMAT).text(init).bytes(guestTool).file(busybox).hex();
        Path entry = builds.ensure("bundle-" + bundle.hash() + "-" + hash, target -> {
            Path tree = target.resolve("tree");
            copyTree(bundle.root(), tree);
            Path vm = Files.createDirectories(tree.resolve("vm"));
            Path bin = Files.createDirectories(vm.resolve("bin"));
            Files.writeString(vm.resolve("init.sh"), init);
            Files.copy(busybox, bin.resolve("busybox"));
            Files.write(bin.resolve("capsule-guest"), guestTool);
            for (Path tool : List.of(bin.resolve("busybox"), bin.resolve("capsule-guest"))) {
                Files.setPosixFilePermissions(tool, PosixFilePermissions.fromString("rwxr-xr-x"));
            }
            for (String applet : Command.run(List.of(busybox.toString(), "--list"), 60).orThrow().stdout()
                    .strip().split("\\s+")) {
                if (!applet.equals("busybox")) {
                    Files.createSymbolicLink(bin.resolve(applet), Path.of("busybox"));
                }
            }
            Path image = target.resolve("disk.img");
            makeExt4(tree, image, "capsule-bundle", usedBytes(tree) * 12 / 10 + 16 * MIB);
            Mounts.deleteTree(tree);
            Files.setPosixFilePermissions(image, PosixFilePermissions.fromString("r--r--r--"));
        });
        return entry.resolve("disk.img");
    }

    /** Static busybox ({@code busybox-static}), which runs on any template whatever its C library. */
    static Path staticBusybox() {
        Path busybox = Path.of("/bin/busybox");
        if (!Files.isRegularFile(busybox) || isDynamic(busybox)) {
            throw new IllegalStateException("the microvm driver needs a static busybox at " + busybox
                    + ": install Debian's busybox-static (scripts/setup.sh does)");
        }
        return busybox;
    }

    /** Whether the ELF has a program interpreter (PT_INTERP), i.e. is dynamically linked. */
    static boolean isDynamic(Path elf) {
        try {
            ByteBuffer header = ByteBuffer.wrap(Files.readAllBytes(elf)).order(ByteOrder.LITTLE_ENDIAN);
            long programHeaders = header.getLong(0x20);
            int entrySize = Short.toUnsignedInt(header.getShort(0x36));
            int count = Short.toUnsignedInt(header.getShort(0x38));
            for (int i = 0; i < count; i++) {
                if (header.getInt((int) programHeaders + i * entrySize) == 3) {
                    return true;
                }
            }
            return false;
        } catch (IOException | RuntimeException e) {
            return true; // unreadable or not a 64-bit ELF: not usable as the guest's busybox
        }
    }

    /** Shell words for a command line: each argument single-quoted. */
    static String shellWords(List<String> args) {
        List<String> quoted = new ArrayList<>();
        for (String arg : args) {
            quoted.add("'" + arg.replace("'", "'\\''") + "'");
        }
        return String.join(" ", quoted);
    }

    private static void makeExt4(Path tree, Path image, String label, long minimumBytes) throws IOException {
        long size = (minimumBytes + 64 * MIB - 1) / (64 * MIB) * (64 * MIB);
        try (var file = java.nio.channels.FileChannel.open(image, java.nio.file.StandardOpenOption.CREATE_NEW,
                java.nio.file.StandardOpenOption.WRITE)) {
            file.truncate(0);
            file.position(size - 1);
            file.write(ByteBuffer.wrap(new byte[1]));
        }
        // no reserved blocks (a sandbox's user may fill its disk); root directory owned by root like the tree's
        Command.run(List.of(Tools.path("mkfs.ext4"), "-q", "-F", "-m", "0", "-L", label, "-E", "root_owner=0:0", "-d",
                tree.toString(), image.toString()), 600).orThrow();
    }

    /** What the tree takes on an ext4 file system: its files rounded up to blocks, plus a block per entry. */
    static long usedBytes(Path tree) {
        long[] total = {0};
        try {
            Files.walkFileTree(tree, new SimpleFileVisitor<>() {
                @Override
                public FileVisitResult visitFile(Path file, BasicFileAttributes attributes) {
                    total[0] += (attributes.size() + 4095) / 4096 * 4096 + 4096;
                    return FileVisitResult.CONTINUE;
                }

                @Override
                public FileVisitResult preVisitDirectory(Path dir, BasicFileAttributes attributes) {
                    total[0] += 4096;
                    return FileVisitResult.CONTINUE;
                }
            });
        } catch (IOException e) {
            throw new UncheckedIOException("cannot measure " + tree + ": " + e.getMessage(), e);
        }
        return total[0];
    }

    private static void copyTree(Path source, Path target) throws IOException {
        Files.walkFileTree(source, new SimpleFileVisitor<>() {
            @Override
            public FileVisitResult preVisitDirectory(Path dir, BasicFileAttributes attributes) throws IOException {
                Files.copy(dir, target.resolve(source.relativize(dir).toString()), StandardCopyOption.COPY_ATTRIBUTES);
                return FileVisitResult.CONTINUE;
            }

            @Override
            public FileVisitResult visitFile(Path file, BasicFileAttributes attributes) throws IOException {
                Files.copy(file, target.resolve(source.relativize(file).toString()), StandardCopyOption.COPY_ATTRIBUTES,
                        LinkOption.NOFOLLOW_LINKS);
                return FileVisitResult.CONTINUE;
            }
        });
    }
}
