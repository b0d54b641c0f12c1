package dev.capsule.server.logs;

import io.vertx.core.json.DecodeException;
import io.vertx.core.json.JsonObject;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Gives console lines (envd's stdout and stderr, which share the file) a level. Understood: a JSON object with
 * {@code level} and {@code message} (or {@code msg}); java.util.logging's default two-line format (a
 * "date time logger method" line, then "LEVEL: message", joined into one entry with the logger as a field);
 * a leading "LEVEL:"; envd's own "envd: ..." complaints (warn). Anything else is info, as written.
 */
final class ConsoleLines {

    /** A console line with its level, message and fields. */
    record Entry(String level, String message, JsonObject fields) {}

    private static final Pattern JUL_HEADER = Pattern.compile(
            "[A-Z][a-z]{2} \\d{1,2}, \\d{4},? \\d{1,2}:\\d{2}:\\d{2}(?: [AP]M)? (\\S+)(?: \\S+)?");
    private static final Pattern JUL_LEVEL = Pattern.compile("(SEVERE|WARNING|INFO|CONFIG|FINE|FINER|FINEST): (.*)", Pattern.DOTALL);

    private ConsoleLines() {}

    static List<Entry> parse(List<String> lines) {
        List<Entry> out = new ArrayList<>();
        String logger = null;
        for (String raw : lines) {
            String line = raw.endsWith("\r") ? raw.substring(0, raw.length() - 1) : raw;
            Matcher header = JUL_HEADER.matcher(line);
            if (header.matches()) {
                if (logger != null) out.add(entry("info", line, null)); // a header without its message line
                logger = header.group(1);
                continue;
            }
            out.add(classify(line, logger));
            logger = null;
        }
        return out;
    }

    private static Entry classify(String line, String logger) {
        Matcher level = JUL_LEVEL.matcher(line);
        if (level.matches()) {
            return entry(switch (level.group(1)) {
                case "SEVERE" -> "error";
                case "WARNING" -> "warn";
                case "INFO", "CONFIG" -> "info";
                default -> "debug";
            }, level.group(2), logger);
        }
        if (line.startsWith("{")) {
            try {
                JsonObject json = new JsonObject(line);
                String message = json.getString("message", json.getString("msg"));
                String lvl = normalise(json.getString("level"));
                if (message != null && lvl != null) return entry(lvl, message, json.getString("logger", logger));
            } catch (DecodeException | ClassCastException notJson) {
                // not a JSON log line after all: kept as written
            }
        }
        if (line.startsWith("envd: ")) return entry("warn", line, logger);
        return entry("info", line, logger);
    }

    /** One of debug, info, warn, error; null if {@code level} is none of the usual spellings. */
    static String normalise(String level) {
        if (level == null) return null;
        return switch (level.toLowerCase(Locale.ROOT)) {
            case "trace", "debug", "fine", "finer", "finest" -> "debug";
            case "info", "config", "notice" -> "info";
            case "warn", "warning" -> "warn";
            case "error", "severe", "fatal", "critical" -> "error";
            default -> null;
        };
    }

    private static Entry entry(String level, String message, String logger) {
        JsonObject fields = new JsonObject().put("source", "console");
        if (logger != null) fields.put("logger", logger);
        return new Entry(level, message, fields);
    }
}
