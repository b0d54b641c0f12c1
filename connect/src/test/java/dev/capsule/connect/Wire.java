package dev.capsule.connect;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import com.google.protobuf.Struct;
import com.google.protobuf.util.JsonFormat;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.GZIPInputStream;
import java.util.zip.GZIPOutputStream;

/** The client's side of Connect's wire format, written independently of the server's classes for the tests. */
final class Wire {
    private Wire() {}

    record Frame(int flags, byte[] payload) {
        String text() {
            return new String(payload, StandardCharsets.UTF_8);
        }

        boolean isEnd() {
            return (flags & 0x02) != 0;
        }

        boolean isCompressed() {
            return (flags & 0x01) != 0;
        }
    }

    static byte[] envelope(int flags, byte[] payload) {
        return ByteBuffer.allocate(5 + payload.length).put((byte) flags).putInt(payload.length).put(payload).array();
    }

    static byte[] envelopes(byte[]... frames) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (byte[] frame : frames) {
            out.writeBytes(frame);
        }
        return out.toByteArray();
    }

    static List<Frame> frames(byte[] body) {
        List<Frame> frames = new ArrayList<>();
        ByteBuffer buffer = ByteBuffer.wrap(body);
        while (buffer.remaining() > 0) {
            if (buffer.remaining() < 5) {
                throw new AssertionError("truncated envelope header: " + buffer.remaining() + " bytes left");
            }
            int flags = buffer.get() & 0xff;
            byte[] payload = new byte[buffer.getInt()];
            buffer.get(payload);
            frames.add(new Frame(flags, payload));
        }
        return frames;
    }

    /** Reads one envelope from a stream, or null at its end. */
    static Frame readFrame(InputStream in) throws IOException {
        byte[] head = in.readNBytes(5);
        if (head.length == 0) {
            return null;
        }
        if (head.length < 5) {
            throw new IOException("truncated envelope header");
        }
        int length = ByteBuffer.wrap(head, 1, 4).getInt();
        byte[] payload = in.readNBytes(length);
        if (payload.length < length) {
            throw new IOException("truncated envelope payload");
        }
        return new Frame(head[0] & 0xff, payload);
    }

    static byte[] gzip(byte[] data) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (GZIPOutputStream gz = new GZIPOutputStream(out)) {
            gz.write(data);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toByteArray();
    }

    static byte[] gunzip(byte[] data) {
        try (InputStream in = new GZIPInputStream(new ByteArrayInputStream(data))) {
            return in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    static String json(Message message) {
        try {
            return JsonFormat.printer().print(message);
        } catch (InvalidProtocolBufferException e) {
            throw new AssertionError(e);
        }
    }

    @SuppressWarnings("unchecked")
    static <M extends Message> M fromJson(String json, M prototype) {
        Message.Builder builder = prototype.newBuilderForType();
        try {
            JsonFormat.parser().merge(json, builder);
        } catch (InvalidProtocolBufferException e) {
            throw new AssertionError("not valid JSON for " + prototype.getDescriptorForType().getName() + ": " + json, e);
        }
        return (M) builder.build();
    }

    /** Any JSON object, for checking error bodies and end-of-stream messages field by field. */
    static Struct struct(String json) {
        return fromJson(json, Struct.getDefaultInstance());
    }

    static String errorCode(String json) {
        return struct(json).getFieldsOrThrow("code").getStringValue();
    }

    static String endErrorCode(String json) {
        return struct(json).getFieldsOrThrow("error").getStructValue().getFieldsOrThrow("code").getStringValue();
    }
}
