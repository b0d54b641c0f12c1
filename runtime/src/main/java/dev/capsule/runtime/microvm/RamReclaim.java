package dev.capsule.runtime.microvm;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.LongPredicate;

/**
 * Gives the host back the memory of a VM's RAM file that the guest is not using right now: {@code process_madvise(2)}
 * with {@code MADV_PAGEOUT} on QEMU's shared mapping of the file, through a pidfd (root may advise any process). The
 * kernel drops the clean pages from QEMU's page tables and from the page cache; when the guest touches one again it
 * is read back from the file, which holds exactly what the guest wrote. Dirty pages are left alone (the kernel does
 * not write file pages back on this path), so it is worth doing only once the file has been written back; it never
 * changes what the guest sees, only how fast it sees a page it has not used for a while.
 */
final class RamReclaim {

    private static final long SYS_CLOSE = 3;
    private static final long SYS_PIDFD_OPEN = 434;
    private static final long SYS_PROCESS_MADVISE = 440;
    private static final long MADV_PAGEOUT = 21;
    private static final int ESRCH = 3;

    private static final StructLayout CAPTURE = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO =
            CAPTURE.varHandle(MemoryLayout.PathElement.groupElement("errno")).withInvokeExactBehavior();
    /**
     * {@code long syscall(long number, ...)} with five arguments after the number: the calls here take two to five,
     * and the kernel ignores the registers a call does not use.
     */
    private static final MethodHandle SYSCALL = Linker.nativeLinker().downcallHandle(
            Linker.nativeLinker().defaultLookup().find("syscall").orElseThrow(),
            FunctionDescriptor.of(ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG,
                    ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG),
            Linker.Option.firstVariadicArg(1), Linker.Option.captureCallState("errno"));

    /** Why a page-out did not happen. {@code gone}: QEMU ended meanwhile (a pause or destroy), nothing to report. */
    static final class Failure extends IOException {
        final boolean gone;

        Failure(String message, boolean gone) {
            super(message);
            this.gone = gone;
        }
    }

    private RamReclaim() {
    }

    /**
     * Pages out QEMU's ({@code pid}) mapping of the RAM file {@code ram}, if {@code stillTheVm} confirms, once the
     * pid is pinned by a pidfd, that the pid is still that VM's QEMU. Returns the bytes of the mapping advised.
     *
     * @throws Failure the kernel refused (no process_madvise before Linux 5.10, not root...) or QEMU is gone
     */
    static long pageOut(long pid, Path ram, LongPredicate stillTheVm) throws Failure {
        long[] range;
        try {
            range = mapping(pid, ram);
        } catch (IOException e) {
            throw new Failure("cannot find QEMU's mapping of " + ram + ": " + e.getMessage(), true);
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment errno = arena.allocate(CAPTURE);
            long pidfd = syscall(errno, SYS_PIDFD_OPEN, pid, 0, 0, 0, 0);
            if (pidfd < 0) {
                int error = (int) ERRNO.get(errno, 0L);
                throw new Failure("pidfd_open(" + pid + ") failed with errno " + error, error == ESRCH);
            }
            try {
                if (!stillTheVm.test(pid)) {
                    throw new Failure("process " + pid + " is no longer the VM's QEMU", true);
                }
                MemorySegment iovec = arena.allocate(ValueLayout.JAVA_LONG, 2);
                iovec.setAtIndex(ValueLayout.JAVA_LONG, 0, range[0]);
                iovec.setAtIndex(ValueLayout.JAVA_LONG, 1, range[1] - range[0]);
                long advised = syscall(errno, SYS_PROCESS_MADVISE, pidfd, iovec.address(), 1, MADV_PAGEOUT, 0);
                if (advised < 0) {
                    int error = (int) ERRNO.get(errno, 0L);
                    throw new Failure("process_madvise(MADV_PAGEOUT) on QEMU " + pid + " failed with errno " + error
                            + " (it needs Linux 5.10 or later and root)", error == ESRCH);
                }
                return advised;
            } finally {
                syscall(errno, SYS_CLOSE, pidfd, 0, 0, 0, 0);
            }
        }
    }

    /**
     * The address range of {@code pid}'s mapping of {@code file}, found by device and inode in
     * {@code /proc/<pid>/maps} (a path there may have been renamed or contain spaces).
     */
    static long[] mapping(long pid, Path file) throws IOException {
        long inode = (Long) Files.getAttribute(file, "unix:ino");
        long dev = (Long) Files.getAttribute(file, "unix:dev");
        // st_dev as the kernel encodes it (new_encode_dev), printed in maps as major:minor in hex
        String device = String.format("%02x:%02x", ((dev >>> 8) & 0xfff) | ((dev >>> 32) & ~0xfffL),
                (dev & 0xff) | ((dev >>> 12) & ~0xffL));
        for (String line : Files.readAllLines(Path.of("/proc", String.valueOf(pid), "maps"))) {
            String[] fields = line.split("\\s+", 6);
            if (fields.length >= 5 && fields[3].equals(device) && fields[4].equals(String.valueOf(inode))) {
                String[] bounds = fields[0].split("-");
                return new long[] {Long.parseUnsignedLong(bounds[0], 16), Long.parseUnsignedLong(bounds[1], 16)};
            }
        }
        throw new IOException("process " + pid + " does not map " + file);
    }

    private static long syscall(MemorySegment errno, long number, long a, long b, long c, long d, long e) {
        try {
            return (long) SYSCALL.invokeExact(errno, number, a, b, c, d, e);
        } catch (Throwable t) {
            throw new IllegalStateException("syscall " + number + " could not be called: " + t, t);
        }
    }
}
