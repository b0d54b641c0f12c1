package dev.capsule.runtime.microvm;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;

/**
 * Writes an initramfs: the kernel's "newc" cpio format, uncompressed (under TCG the kernel unpacks a plain archive
 * faster than a gzipped one, and no cpio tool is needed on the host). Every entry is owned by root with time 0, so
 * the same inputs give the same bytes.
 */
final class Cpio implements AutoCloseable {

    private static final int S_IFDIR = 0040000;
    private static final int S_IFREG = 0100000;
    private static final int S_IFLNK = 0120000;
    private static final int S_IFCHR = 0020000;

    private final OutputStream out;
    private long written;
    private int inode = 1;

    Cpio(OutputStream out) {
        this.out = out;
    }

    void directory(String name) throws IOException {
        entry(name, S_IFDIR | 0755, 2, 0, 0, new byte[0]);
    }

    void file(String name, int permissions, byte[] data) throws IOException {
        entry(name, S_IFREG | permissions, 1, 0, 0, data);
    }

    void symlink(String name, String target) throws IOException {
        entry(name, S_IFLNK | 0777, 1, 0, 0, target.getBytes(StandardCharsets.UTF_8));
    }

    /** A device node, so the kernel finds e.g. /dev/console before anything could mknod it. */
    void characterDevice(String name, int permissions, int major, int minor) throws IOException {
        entry(name, S_IFCHR | permissions, 1, major, minor, new byte[0]);
    }

    /** Writes the trailer; the stream stays the caller's to close. */
    @Override
    public void close() throws IOException {
        entry("TRAILER!!!", 0, 1, 0, 0, new byte[0]);
        out.flush();
    }

    private void entry(String name, int mode, int links, int deviceMajor, int deviceMinor, byte[] data)
            throws IOException {
        byte[] path = (name + "\0").getBytes(StandardCharsets.UTF_8);
        StringBuilder header = new StringBuilder("070701");
        for (long field : new long[] {inode++, mode, 0, 0, links, 0, data.length, 0, 0, deviceMajor, deviceMinor,
                path.length, 0}) {
            header.append(String.format("%08X", field));
        }
        write(header.toString().getBytes(StandardCharsets.US_ASCII));
        write(path);
        pad();
        write(data);
        pad();
    }

    private void write(byte[] bytes) throws IOException {
        out.write(bytes);
        written += bytes.length;
    }

    private void pad() throws IOException {
        while (written % 4 != 0) {
            out.write(0);
            written++;
        }
    }
}
