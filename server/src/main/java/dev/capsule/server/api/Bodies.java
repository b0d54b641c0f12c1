package dev.capsule.server.api;

import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
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

    private static String describe(Object v) {
        return v instanceof String ? "a string" : v instanceof Number ? "a number" : v instanceof Boolean ? "a boolean"
                : v instanceof JsonArray ? "an array" : v instanceof JsonObject ? "an object" : String.valueOf(v);
    }

    static ApiError bad(String message) {
        return new ApiError(400, message);
    }
}
