package dev.capsule.connect;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import com.google.protobuf.util.JsonFormat;

import java.nio.charset.StandardCharsets;

/**
 * The two message codecs Connect defines: proto3 JSON ({@code json}) and protobuf binary ({@code proto}). JSON
 * accepts both lowerCamelCase and the proto field names and ignores unknown fields, as connect-es clients expect.
 */
enum Codec {
    JSON("json"),
    PROTO("proto");

    private static final JsonFormat.Parser JSON_PARSER = JsonFormat.parser().ignoringUnknownFields();
    private static final JsonFormat.Printer JSON_PRINTER = JsonFormat.printer().omittingInsignificantWhitespace();

    private final String name;

    Codec(String name) {
        this.name = name;
    }

    /** The codec named by a content type's suffix ({@code json} or {@code proto}), or null. */
    static Codec named(String name) {
        for (Codec codec : values()) {
            if (codec.name.equals(name)) {
                return codec;
            }
        }
        return null;
    }

    String unaryContentType() {
        return "application/" + name;
    }

    String streamContentType() {
        return "application/connect+" + name;
    }

    @SuppressWarnings("unchecked")
    <M extends Message> M decode(byte[] bytes, M prototype) {
        try {
            if (this == PROTO) {
                return (M) prototype.getParserForType().parseFrom(bytes);
            }
            Message.Builder builder = prototype.newBuilderForType();
            String text = new String(bytes, StandardCharsets.UTF_8);
            JSON_PARSER.merge(text.isBlank() ? "{}" : text, builder);
            return (M) builder.build();
        } catch (InvalidProtocolBufferException | RuntimeException e) {
            throw new ConnectException(Code.INVALID_ARGUMENT,
                    "invalid " + name + " request message for " + prototype.getDescriptorForType().getFullName()
                            + ": " + e.getMessage());
        }
    }

    byte[] encode(Message message) {
        if (this == PROTO) {
            return message.toByteArray();
        }
        try {
            return JSON_PRINTER.print(message).getBytes(StandardCharsets.UTF_8);
        } catch (InvalidProtocolBufferException e) {
            throw new ConnectException(Code.INTERNAL, "cannot encode response as JSON: " + e.getMessage(), e);
        }
    }
}
