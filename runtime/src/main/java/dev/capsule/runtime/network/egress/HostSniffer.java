package dev.capsule.runtime.network.egress;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Locale;

/**
 * Reads the first bytes a client sends on a new connection and finds the host name it is asking for: the
 * {@code server_name} of a TLS ClientHello (SNI) or the {@code Host} header of an HTTP/1.x request. The bytes read
 * are kept so they can be sent on to the server unchanged. Nothing is decrypted or altered.
 */
final class HostSniffer {

    /** The most we read looking for a name: a ClientHello with post-quantum key shares fits well within it. */
    static final int LIMIT = 64 * 1024;

    /** What the client sent first, and the host name in it (null if it named none). */
    record Sniffed(String host, byte[] prefix) {}

    private HostSniffer() {}

    /**
     * Reads until a name is found, the client's first message is complete without one, {@link #LIMIT} bytes, or
     * end of stream. The caller sets the read timeout; a client that waits for the server to speak first times out
     * and has named nothing.
     */
    static Sniffed sniff(InputStream in) throws IOException {
        Buffer buffer = new Buffer(in);
        try {
            if (!buffer.fill(1)) {
                return new Sniffed(null, buffer.bytes());
            }
            int first = buffer.at(0);
            if (first == 0x16) {
                return new Sniffed(tlsServerName(buffer), buffer.bytes());
            }
            if (first >= 'A' && first <= 'Z') {
                return new Sniffed(httpHost(buffer), buffer.bytes());
            }
        } catch (SocketTimeoutException e) {
            // the client stopped sending before naming a host
        }
        return new Sniffed(null, buffer.bytes());
    }

    /** The SNI host name of a ClientHello, reassembled from as many handshake records as it spans. */
    private static String tlsServerName(Buffer buffer) throws IOException {
        ByteArrayOutputStream handshake = new ByteArrayOutputStream();
        int offset = 0;
        while (true) {
            if (!buffer.fill(offset + 5) || buffer.at(offset) != 0x16) {
                return null;
            }
            int length = buffer.at(offset + 3) << 8 | buffer.at(offset + 4);
            if (!buffer.fill(offset + 5 + length)) {
                return null;
            }
            handshake.write(buffer.data, offset + 5, length);
            offset += 5 + length;
            byte[] message = handshake.toByteArray();
            if (message.length >= 4) {
                if (message[0] != 1) {
                    return null; // not a ClientHello
                }
                int messageLength = (message[1] & 0xff) << 16 | (message[2] & 0xff) << 8 | (message[3] & 0xff);
                if (message.length >= 4 + messageLength) {
                    return serverName(Arrays.copyOfRange(message, 4, 4 + messageLength));
                }
            }
        }
    }

    /** The host_name entry of the server_name extension (RFC 6066) in a ClientHello body. */
    private static String serverName(byte[] hello) {
        Reader r = new Reader(hello);
        r.skip(2 + 32); // client_version, random
        r.skip(r.u8()); // session_id
        r.skip(r.u16()); // cipher_suites
        r.skip(r.u8()); // compression_methods
        if (r.remaining() < 2) {
            return null;
        }
        int end = r.position() + r.u16();
        while (r.position() + 4 <= end && r.ok()) {
            int type = r.u16();
            int length = r.u16();
            if (type != 0) {
                r.skip(length);
                continue;
            }
            int listEnd = r.position() + r.u16();
            while (r.position() + 3 <= listEnd && r.ok()) {
                int nameType = r.u8();
                int nameLength = r.u16();
                if (nameType == 0 && r.remaining() >= nameLength) {
                    return DomainPattern.normalize(new String(hello, r.position(), nameLength,
                            StandardCharsets.US_ASCII).toLowerCase(Locale.ROOT));
                }
                r.skip(nameLength);
            }
            return null;
        }
        return null;
    }

    /** The Host header of an HTTP/1.x request head (without its port), or null. */
    private static String httpHost(Buffer buffer) throws IOException {
        int scanned = 0;
        while (true) {
            int end = indexOf(buffer, "\r\n\r\n".getBytes(StandardCharsets.US_ASCII), Math.max(0, scanned - 3));
            if (end >= 0) {
                String head = new String(buffer.data, 0, end, StandardCharsets.ISO_8859_1);
                for (String line : head.split("\r\n")) {
                    int colon = line.indexOf(':');
                    if (colon > 0 && line.substring(0, colon).strip().equalsIgnoreCase("host")) {
                        String host = line.substring(colon + 1).strip();
                        int port = host.lastIndexOf(':');
                        if (port > 0 && !host.startsWith("[")) {
                            host = host.substring(0, port);
                        }
                        return DomainPattern.normalize(host.toLowerCase(Locale.ROOT));
                    }
                }
                return null;
            }
            scanned = buffer.size;
            if (!buffer.fill(buffer.size + 1)) {
                return null;
            }
        }
    }

    private static int indexOf(Buffer buffer, byte[] needle, int from) {
        outer:
        for (int i = from; i <= buffer.size - needle.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (buffer.data[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return i;
        }
        return -1;
    }

    /** The bytes read so far from the client; reads more on demand, never beyond {@link #LIMIT}. */
    private static final class Buffer {
        private final InputStream in;
        private byte[] data = new byte[4096];
        private int size;

        Buffer(InputStream in) {
            this.in = in;
        }

        /** Reads until at least {@code wanted} bytes are here; false at end of stream or beyond the limit. */
        boolean fill(int wanted) throws IOException {
            if (wanted > LIMIT) {
                return false;
            }
            while (size < wanted) {
                if (data.length < wanted) {
                    data = Arrays.copyOf(data, Math.min(LIMIT, Math.max(wanted, data.length * 2)));
                }
                int n = in.read(data, size, data.length - size);
                if (n < 0) {
                    return false;
                }
                size += n;
            }
            return true;
        }

        int at(int index) {
            return data[index] & 0xff;
        }

        byte[] bytes() {
            return Arrays.copyOf(data, size);
        }
    }

    /** Bounds-checked reading of a byte array; once it runs past the end, {@link #ok()} is false. */
    private static final class Reader {
        private final byte[] data;
        private int position;

        Reader(byte[] data) {
            this.data = data;
        }

        int u8() {
            return position < data.length ? data[position++] & 0xff : fail();
        }

        int u16() {
            return u8() << 8 | u8();
        }

        void skip(int n) {
            position += n;
        }

        int position() {
            return position;
        }

        int remaining() {
            return data.length - position;
        }

        boolean ok() {
            return position <= data.length;
        }

        private int fail() {
            position = data.length + 1;
            return 0;
        }
    }
}
