package dev.capsule.server.api;

import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Typed reads of request JSON, each failing with a 400 that names the field and the expected type. */
final class Bodies {

    private Bodies() {}

    static String requiredString(JsonObject body, String field) {
        Object v = body.getValue(field);
        if (v == null) throw bad("'" + field + "' is required; e.g. {\"" + field + "\": \"base\"}");
        if (!(v instanceof String s) || s.isBlank()) throw bad("'" + field + "' must be a non-empty string");
        return s;
    }

    static String optionalString(JsonObject body, String field) {
        Object v = body.getValue(field);
        if (v == null) return null;
        if (!(v instanceof String s) || s.isBlank()) throw bad("'" + field + "' must be a non-empty string, got " + describe(v));
        return s;
    }

    static Long optionalInteger(JsonObject body, String field) {
        Object v = body.getValue(field);
        if (v == null) return null;
        if (v instanceof Number n && n.doubleValue() == Math.rint(n.doubleValue()) && !Double.isInfinite(n.doubleValue())) {
            // Past the long range longValue() would wrap around (2^64 + 300 would read as 300).
            if (Math.abs(n.doubleValue()) > Long.MAX_VALUE / 2.0) {
                throw bad("'" + field + "' is out of range, got " + describe(v) + "; send a number of seconds");
            }
            return n.longValue();
        }
        throw bad("'" + field + "' must be a whole number of seconds, got " + describe(v));
    }

    static Boolean optionalBoolean(JsonObject body, String field) {
        Object v = body.getValue(field);
        if (v == null) return null;
        if (v instanceof Boolean b) return b;
        throw bad("'" + field + "' must be true or false, got " + describe(v));
    }

    static JsonObject optionalObject(JsonObject body, String field) {
        Object v = body.getValue(field);
        if (v == null) return null;
        if (v instanceof JsonObject o) return o;
        throw bad("'" + field + "' must be a JSON object, got " + describe(v));
    }

    static Map<String, String> stringMap(JsonObject body, String field) {
        JsonObject o = optionalObject(body, field);
        if (o == null) return Map.of();
        var out = new LinkedHashMap<String, String>();
        for (var e : o) {
            if (!(e.getValue() instanceof String s)) {
                throw bad("'" + field + "." + e.getKey() + "' must be a string, got " + describe(e.getValue()));
            }
            out.put(e.getKey(), s);
        }
        return out;
    }

    static List<String> stringList(JsonObject body, String field) {
        Object v = body.getValue(field);
        if (v == null) return List.of();
        if (!(v instanceof JsonArray a)) throw bad("'" + field + "' must be an array of strings, got " + describe(v));
        var out = new ArrayList<String>();
        for (Object item : a) {
            if (!(item instanceof String s)) throw bad("'" + field + "' must hold only strings, got " + describe(item));
            out.add(s);
        }
        return out;
    }

    /** The most metadata a sandbox keeps (keys and values, UTF-8): it is read back on every list. */
    static final int MAX_METADATA_BYTES = 64 * 1024;
    /** The most env vars a sandbox gets (names and values, UTF-8): they travel to envd's /init, which takes 1 MiB. */
    static final int MAX_ENV_BYTES = 512 * 1024;

    /** {@code metadata}: strings, well-formed, at most {@value #MAX_METADATA_BYTES} bytes in all. */
    static Map<String, String> metadata(JsonObject body) {
        Map<String, String> m = stringMap(body, "metadata");
        checkText(m, "metadata", MAX_METADATA_BYTES);
        return m;
    }

    /**
     * {@code envVars}: what a process environment can hold — names non-empty without '=' or NUL, values without NUL
     * (execve would cut them) — at most {@value #MAX_ENV_BYTES} bytes in all.
     */
    static Map<String, String> envVars(JsonObject body) {
        Map<String, String> m = stringMap(body, "envVars");
        for (var e : m.entrySet()) {
            if (e.getKey().isEmpty() || e.getKey().indexOf('=') >= 0 || e.getKey().indexOf('\0') >= 0) {
                throw bad("'envVars' has the name '" + printable(e.getKey()) + "'; an environment variable's name must"
                        + " be non-empty and contain neither '=' nor NUL");
            }
            if (e.getValue().indexOf('\0') >= 0) {
                throw bad("'envVars." + printable(e.getKey()) + "' contains a NUL character, which an environment"
                        + " variable cannot hold");
            }
        }
        checkText(m, "envVars", MAX_ENV_BYTES);
        return m;
    }

    /** {@code templateID}: a name or id of at most 256 characters without control characters. */
    static String templateRef(JsonObject body) {
        String ref = requiredString(body, "templateID");
        if (ref.length() > 256 || ref.chars().anyMatch(c -> c < 0x20 || c == 0x7f) || !wellFormed(ref)) {
            throw bad("'templateID' must be a template id or name of at most 256 characters without control"
                    + " characters, e.g. \"base\"");
        }
        return ref;
    }

    private static void checkText(Map<String, String> m, String field, int maxBytes) {
        long bytes = 0;
        for (var e : m.entrySet()) {
            if (!wellFormed(e.getKey()) || !wellFormed(e.getValue())) {
                throw bad("'" + field + "' holds a string with an unpaired UTF-16 surrogate (e.g. \\ud800); send valid Unicode");
            }
            bytes += e.getKey().getBytes(StandardCharsets.UTF_8).length + e.getValue().getBytes(StandardCharsets.UTF_8).length;
        }
        if (bytes > maxBytes) {
            throw bad("'" + field + "' holds " + bytes + " bytes of keys and values; at most " + maxBytes
                    + " are kept, send less");
        }
    }

    /** Whether every surrogate in {@code s} is half of a pair. */
    static boolean wellFormed(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (Character.isHighSurrogate(c) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
                i++;
            } else if (Character.isSurrogate(c)) {
                return false;
            }
        }
        return true;
    }

    private static String printable(String s) {
        String cut = s.length() > 64 ? s.substring(0, 64) + "…" : s;
        return cut.replace("\0", "\\0");
    }

    private static String describe(Object v) {
        return v instanceof String ? "a string" : v instanceof Number ? "a number" : v instanceof Boolean ? "a boolean"
                : v instanceof JsonArray ? "an array" : v instanceof JsonObject ? "an object" : String.valueOf(v);
    }

    static ApiError bad(String message) {
        return new ApiError(400, message);
    }
}
