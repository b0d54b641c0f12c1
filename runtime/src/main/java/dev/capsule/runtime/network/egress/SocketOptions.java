package dev.capsule.runtime.network.egress;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.lang.invoke.VarHandle;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.ByteOrder;
import java.nio.channels.SocketChannel;

/**
 * The two socket options Java has no API for, through the FFM API: {@code SO_ORIGINAL_DST} (where a connection that
 * nftables redirected to the proxy was going) and {@code SO_MARK} (tags the proxy's own outgoing connections so the
 * host's rules keep them away from the host and the sandboxes). Both need the socket's descriptor, which the JDK
 * keeps in {@code sun.nio.ch}: the JVM must run with {@code --add-exports java.base/sun.nio.ch=ALL-UNNAMED}
 * ({@code bin/capsule} and the build's test runs pass it) and {@code --enable-native-access=ALL-UNNAMED}.
 */
public final class SocketOptions {

    private static final int SOL_IP = 0;
    private static final int SO_ORIGINAL_DST = 80;
    private static final int SOL_SOCKET = 1;
    private static final int SO_MARK = 36;
    private static final int AF_INET = 2;
    private static final int SOCKADDR_IN_BYTES = 16;

    private static final Linker LINKER = Linker.nativeLinker();
    private static final StructLayout CAPTURE = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO =
            CAPTURE.varHandle(MemoryLayout.PathElement.groupElement("errno")).withInvokeExactBehavior();
    private static final MethodHandle GETSOCKOPT = downcall("getsockopt");
    private static final MethodHandle SETSOCKOPT = downcall("setsockopt");

    /** {@code sun.nio.ch.SelChImpl#getFDVal()}, or null with {@link #UNAVAILABLE} saying why. */
    private static final MethodHandle FD_VAL;
    private static final String UNAVAILABLE;

    static {
        MethodHandle fdVal = null;
        String unavailable = null;
        try {
            fdVal = MethodHandles.lookup().findVirtual(Class.forName("sun.nio.ch.SelChImpl"), "getFDVal",
                    MethodType.methodType(int.class));
        } catch (ReflectiveOperationException | RuntimeException e) {
            unavailable = "the JVM does not export sun.nio.ch (" + e + "); start it with --add-exports "
                    + "java.base/sun.nio.ch=ALL-UNNAMED, as bin/capsule does";
        }
        FD_VAL = fdVal;
        UNAVAILABLE = unavailable;
    }

    private SocketOptions() {}

    /** Throws when this JVM cannot reach socket descriptors: domain rules and egress proxies cannot work. */
    public static void requireAvailable() {
        if (UNAVAILABLE != null) {
            throw new IllegalStateException("the egress proxy cannot read redirected connections: " + UNAVAILABLE);
        }
    }

    /** Where the client of a connection that nftables redirected (REDIRECT/DNAT) to us was connecting. */
    static InetSocketAddress originalDestination(SocketChannel channel) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment address = arena.allocate(SOCKADDR_IN_BYTES);
            MemorySegment length = arena.allocate(ValueLayout.JAVA_INT);
            length.set(ValueLayout.JAVA_INT, 0, SOCKADDR_IN_BYTES);
            MemorySegment errno = arena.allocate(CAPTURE);
            int rc = (int) GETSOCKOPT.invokeExact(errno, fd(channel), SOL_IP, SO_ORIGINAL_DST, address, length);
            if (rc != 0) {
                throw new IOException("getsockopt(SO_ORIGINAL_DST) failed with errno " + (int) ERRNO.get(errno, 0L)
                        + ": the connection was not redirected by nftables");
            }
            short family = address.get(ValueLayout.JAVA_SHORT, 0);
            if (family != AF_INET) {
                throw new IOException("SO_ORIGINAL_DST returned address family " + family + ", not IPv4");
            }
            int port = Short.toUnsignedInt(address.get(ValueLayout.JAVA_SHORT.withOrder(ByteOrder.BIG_ENDIAN), 2));
            byte[] ip = address.asSlice(4, 4).toArray(ValueLayout.JAVA_BYTE);
            return new InetSocketAddress((Inet4Address) InetAddress.getByAddress(ip), port);
        } catch (IOException | RuntimeException | Error e) {
            throw e;
        } catch (Throwable e) {
            throw new IOException("getsockopt(SO_ORIGINAL_DST) failed: " + e, e);
        }
    }

    /** Sets {@code SO_MARK} (needs CAP_NET_ADMIN) on an unconnected socket, so rules can match its packets. */
    static void mark(SocketChannel channel, int mark) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment value = arena.allocate(ValueLayout.JAVA_INT);
            value.set(ValueLayout.JAVA_INT, 0, mark);
            MemorySegment errno = arena.allocate(CAPTURE);
            int rc = (int) SETSOCKOPT.invokeExact(errno, fd(channel), SOL_SOCKET, SO_MARK, value,
                    (int) ValueLayout.JAVA_INT.byteSize());
            if (rc != 0) {
                throw new IOException("setsockopt(SO_MARK) failed with errno " + (int) ERRNO.get(errno, 0L)
                        + "; the server must run as root (CAP_NET_ADMIN)");
            }
        } catch (IOException | RuntimeException | Error e) {
            throw e;
        } catch (Throwable e) {
            throw new IOException("setsockopt(SO_MARK) failed: " + e, e);
        }
    }

    private static int fd(SocketChannel channel) throws Throwable {
        requireAvailable();
        return (int) FD_VAL.invoke(channel);
    }

    /** int getsockopt/setsockopt(int fd, int level, int name, void *value, socklen_t len-or-pointer). */
    private static MethodHandle downcall(String name) {
        MemoryLayout last = name.equals("getsockopt") ? ValueLayout.ADDRESS : ValueLayout.JAVA_INT;
        return LINKER.downcallHandle(LINKER.defaultLookup().find(name).orElseThrow(
                        () -> new UnsatisfiedLinkError("libc has no '" + name + "'")),
                FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT,
                        ValueLayout.JAVA_INT, ValueLayout.ADDRESS, last),
                Linker.Option.captureCallState("errno"));
    }
}
