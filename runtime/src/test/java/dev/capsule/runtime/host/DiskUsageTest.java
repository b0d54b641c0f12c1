package dev.capsule.runtime.host;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A writable layer's usage: statvfs when it is a file system of its own (a real tmpfs here), else a walk. */
class DiskUsageTest {

    @TempDir Path tmp;

    @Test
    void aDirectoryIsWalkedWithoutFollowingSymlinks() throws IOException {
        Path upper = Files.createDirectories(tmp.resolve("sandbox/upper"));
        Files.write(Files.createDirectories(upper.resolve("home/user")).resolve("a"), new byte[300_000]);
        Files.write(upper.resolve("b"), new byte[2_000]);
        Path outside = Files.write(tmp.resolve("big"), new byte[5_000_000]);
        Files.createSymbolicLink(upper.resolve("link"), outside);
        Files.createSymbolicLink(upper.resolve("dirlink"), tmp);

        DiskUsage.Measured m = new DiskUsage().of(upper);
        // the files, plus the symlinks' own (small) sizes, never what they point at
        assertThat(m.used()).isBetween(302_000L, 302_000L + 4096);
        assertThat(m.total()).isEqualTo(Files.getFileStore(tmp).getTotalSpace());
        assertThat(new DiskUsage().of(tmp.resolve("missing"))).isNull();
    }

    @Test
    void aFileSystemOfItsOwnIsAskedNotWalked() throws Exception {
        Path upper = Files.createDirectories(tmp.resolve("upper"));
        Command.check("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", upper.toString());
        try {
            var disks = new DiskUsage();
            long before = disks.of(upper).used();
            Files.write(upper.resolve("blob"), new byte[4 * 1024 * 1024]);
            DiskUsage.Measured m = disks.of(upper);
            assertThat(m.total()).isEqualTo(16L * 1024 * 1024);
            assertThat(m.used() - before).isGreaterThanOrEqualTo(4L * 1024 * 1024);
        } finally {
            Command.check("umount", upper.toString());
        }
    }
}
