package dev.capsule.connect;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParseException;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import com.google.protobuf.util.JsonFormat;

import java.io.IOException;
import java.nio.charset.StandardCharsets;

/**
 * The two message codecs Connect defines: proto3 JSON ({@code json}) and protobuf binary ({@code proto}). JSON
 * accepts both lowerCamelCase and the proto field names and ignores unknown fields, as connect-es clients expect.
 */
enum Codec {
    JSON("json"),
    PROTO("proto");

    private static final JsonFactory STRICT_JSON = JsonFactory.builder()
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION).build();
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
            if (text.isBlank()) {
                return (M) builder.build();
            }
            requireStrictJsonObject(bytes);
            JSON_PARSER.merge(text, builder);
            return (M) builder.build();
        } catch (IOException | RuntimeException e) {
            throw new ConnectException(Code.INVALID_ARGUMENT,
                    "invalid " + name + " request message for " + prototype.getDescriptorForType().getFullName()
                            + ": " + e.getMessage());
        }
    }

    /**
     * JsonFormat parses leniently (unquoted strings, comments, trailing garbage); a Connect server must refuse what
     * is not JSON, so the body is first checked by a strict tokenizer: one object and nothing after it.
     */
    private static void requireStrictJsonObject(byte[] bytes) throws IOException {
        try (JsonParser parser = STRICT_JSON.createParser(bytes)) {
            if (parser.nextToken() != JsonToken.START_OBJECT) {
                throw new JsonParseException(parser, "a message must be a JSON object");
            }
            parser.skipChildren();
            if (parser.nextToken() != null) {
                throw new JsonParseException(parser, "unexpected content after the JSON object");
            }
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
