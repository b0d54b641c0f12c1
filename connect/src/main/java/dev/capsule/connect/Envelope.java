package dev.capsule.connect;

import io.vertx.core.buffer.Buffer;

import java.util.ArrayDeque;
import java.util.Queue;

/**
 * Connect's streaming framing: each message is one flags byte, a 4-byte big-endian length and the payload. Flag
 * {@code 0x01} marks a compressed payload, {@code 0x02} the end-of-stream message.
 */
final class Envelope {
    static final byte COMPRESSED = 0x01;
    static final byte END_STREAM = 0x02;

    final byte flags;
    final byte[] payload;

    Envelope(byte flags, byte[] payload) {
        this.flags = flags;
        this.payload = payload;
    }

    static Buffer frame(byte flags, byte[] payload) {
        Buffer buffer = Buffer.buffer(5 + payload.length);
        buffer.appendByte(flags).appendInt(payload.length).appendBytes(payload);
        return buffer;
    }

    /** Splits a byte stream into envelopes as bytes arrive; refuses envelopes larger than the limit. */
    static final class Reader {
        private final int maxBytes;
        private Buffer pending = Buffer.buffer();

        Reader(int maxBytes) {
            this.maxBytes = maxBytes;
        }

        /** Adds bytes; returns the envelopes now complete. */
        Queue<Envelope> feed(Buffer bytes) {
            pending.appendBuffer(bytes);
            Queue<Envelope> complete = new ArrayDeque<>();
            int offset = 0;
            while (pending.length() - offset >= 5) {
                long length = pending.getUnsignedInt(offset + 1);
                if (length > maxBytes) {
                    throw new ConnectException(Code.RESOURCE_EXHAUSTED,
                            "message of " + length + " bytes is larger than the limit of " + maxBytes + " bytes");
                }
                if (pending.length() - offset - 5 < length) {
                    break;
                }
                byte flags = pending.getByte(offset);
                complete.add(new Envelope(flags, pending.getBytes(offset + 5, offset + 5 + (int) length)));
                offset += 5 + (int) length;
            }
            if (offset > 0) {
                pending = pending.getBuffer(offset, pending.length());
            }
            return complete;
        }

        /** True when bytes of an incomplete envelope are left over. */
        boolean hasPartial() {
            return pending.length() > 0;
        }
    }
}
