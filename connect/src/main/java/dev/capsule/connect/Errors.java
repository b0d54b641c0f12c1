package dev.capsule.connect;

import io.vertx.core.buffer.Buffer;
import io.vertx.core.http.HttpServerResponse;

import java.nio.charset.StandardCharsets;

/** Connect's error shapes: the JSON body of a failed unary call and the end-of-stream message of a stream. */
final class Errors {
    private Errors() {}

    /** Answers a request that never became a call (unknown procedure, wrong method or content type). */
    static void writeUnary(HttpServerResponse response, ConnectException error, int status) {
        response.setStatusCode(status)
                .putHeader("Content-Type", "application/json")
                .end(unaryErrorBody(error));
    }

    /** The body of a failed unary call: {@code {"code":"not_found","message":"..."}}. */
    static Buffer unaryErrorBody(ConnectException error) {
        return Buffer.buffer(errorJson(error));
    }

    static byte[] endStreamJson(ConnectException error) {
        String json = error == null ? "{}" : "{\"error\":" + errorJson(error) + ",\"metadata\":{}}";
        return json.getBytes(StandardCharsets.UTF_8);
    }

    private static String errorJson(ConnectException error) {
        String message = error.getMessage() == null ? "" : error.getMessage();
        return "{\"code\":\"" + error.code().wireName() + "\",\"message\":" + quote(message) + "}";
    }

    static String quote(String s) {
        StringBuilder b = new StringBuilder(s.length() + 2).append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                default -> {
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.append('"').toString();
    }
}
