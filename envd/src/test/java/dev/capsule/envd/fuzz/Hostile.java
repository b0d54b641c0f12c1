package dev.capsule.envd.fuzz;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * Hostile values from a seeded {@link Random}, so a fuzz run repeats exactly: strings with unicode of every kind,
 * control characters, NUL, lone surrogates, percent escapes and path tricks; JSON values of random types; JSON text
 * that is broken in the ways parsers trip over; random methods and paths. JSON is written here rather than by a
 * library so that it can carry what a library would refuse to write (lone surrogate escapes, 1e999, deep nesting).
 */
public final class Hostile {

    private static final String[] UNICODE = {"é", "ß", "Ω", "中文", "日本語", "한국어", "עברית", "العربية", "\u202Eevil",
            "\u200B", "\uFEFF", "e\u0301", "😀", "👩‍👩‍👧", "𝕏", "\u0000", "\u0007", "\u001b[31m", "\r\n", "\t", "\u2028",
            "\uFFFF", "\uD800", "\uDFFF", "%00", "%2e%2e", "%2f", "..", "/", "\\", "~", "*", "?", "#", "&", "=", "+",
            "'", "\"", "<script>", "${jndi:x}", "$(id)", "`id`", ";", "|", "NaN", "-0", "null"};
    private static final String[] PATH_TRICKS = {"..", ".", "", "...", "../..", "../../../../../../..", "./.", "//",
            "%2e%2e", "..%2f", "a\u0000b", "\u0000", "~", "~root", "~/..", "\u202E", "😀", "a".repeat(300),
            "x/".repeat(200), "CON", ".git", "-rf", " ", "a b", "\n"};
    public static final String[] METHODS = {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE",
            "CONNECT", "PROPFIND", "FOO", "get", "G\u0000T", "POST ", "", "GET\tX", "M-SEARCH", "X".repeat(300)};

    private final Random random;

    public Hostile(long seed) {
        this.random = new Random(seed);
    }

    public int between(int lowInclusive, int highExclusive) {
        return lowInclusive + random.nextInt(highExclusive - lowInclusive);
    }

    public boolean chance(double p) {
        return random.nextDouble() < p;
    }

    @SafeVarargs
    public final <T> T pick(T... items) {
        return items[random.nextInt(items.length)];
    }

    public <T> T pick(List<T> items) {
        return items.get(random.nextInt(items.size()));
    }

    /** A string of 0 to about 40 pieces: letters, unicode, controls, escapes and tricks. */
    public String string() {
        return string(between(0, 40));
    }

    public String string(int pieces) {
        var b = new StringBuilder();
        for (int i = 0; i < pieces; i++) {
            switch (random.nextInt(6)) {
                case 0, 1 -> b.append((char) ('a' + random.nextInt(26)));
                case 2 -> b.append(pick(UNICODE));
                case 3 -> b.append((char) random.nextInt(0x20));
                case 4 -> b.append((char) random.nextInt(0x10000));
                default -> b.append(random.nextInt(1000));
            }
        }
        return b.toString();
    }

    /** A long string: up to {@code max} characters of one repeated piece. */
    public String huge(int max) {
        return pick("a", "😀", "\u0000", "é", "%", "/..").repeat(between(1, Math.max(2, max / 2)));
    }

    /** A path built from tricks: dot segments, NUL, unicode, long names, escapes, under {@code base} or not. */
    public String path(String base) {
        var b = new StringBuilder(chance(0.7) ? base : pick("", "/", "~", "~/", "./", "../"));
        int parts = between(0, 6);
        for (int i = 0; i < parts; i++) {
            if (b.length() > 0 && b.charAt(b.length() - 1) != '/') b.append('/');
            b.append(chance(0.5) ? pick(PATH_TRICKS) : chance(0.5) ? "f" + random.nextInt(5) : string(between(1, 4)));
        }
        return b.toString();
    }

    /** A random JSON value, nested up to {@code depth}. */
    public Object value(int depth) {
        int kind = random.nextInt(depth <= 0 ? 5 : 7);
        return switch (kind) {
            case 0 -> null;
            case 1 -> random.nextBoolean();
            case 2 -> number();
            case 3, 4 -> string();
            case 5 -> {
                var list = new ArrayList<>();
                for (int i = between(0, 5); i > 0; i--) list.add(value(depth - 1));
                yield list;
            }
            default -> {
                var map = new LinkedHashMap<String, Object>();
                for (int i = between(0, 5); i > 0; i--) map.put(string(between(0, 6)), value(depth - 1));
                yield map;
            }
        };
    }

    /** A number as JSON text: ints, negatives, fractions, huge and tiny exponents, beyond the long range. */
    public Raw number() {
        return new Raw(pick("0", "-1", "1", "2147483648", "-9223372036854775809", "18446744073709551916", "1e999",
                "-1e999", "1e-999", "0.5", "3.0", "1E2", "-0", "4294967295", "4294967296", "9007199254740993",
                String.valueOf(random.nextInt()), String.valueOf(random.nextLong())));
    }

    /** JSON text that is written as is. */
    public record Raw(String json) {}

    /** {@code value} as JSON text; strings escape controls and surrogates as \\uXXXX, so lone surrogates survive. */
    public static String json(Object value) {
        var b = new StringBuilder();
        write(b, value);
        return b.toString();
    }

    private static void write(StringBuilder b, Object v) {
        switch (v) {
            case null -> b.append("null");
            case Raw r -> b.append(r.json());
            case Boolean x -> b.append(x);
            case Number n -> b.append(n);
            case String s -> {
                b.append('"');
                for (char c : s.toCharArray()) {
                    if (c == '"' || c == '\\') b.append('\\').append(c);
                    else if (c < 0x20 || Character.isSurrogate(c) || c == 0x2028) b.append(String.format("\\u%04x", (int) c));
                    else b.append(c);
                }
                b.append('"');
            }
            case Map<?, ?> m -> {
                b.append('{');
                boolean first = true;
                for (var e : m.entrySet()) {
                    if (!first) b.append(',');
                    first = false;
                    write(b, String.valueOf(e.getKey()));
                    b.append(':');
                    write(b, e.getValue());
                }
                b.append('}');
            }
            case List<?> l -> {
                b.append('[');
                for (int i = 0; i < l.size(); i++) {
                    if (i > 0) b.append(',');
                    write(b, l.get(i));
                }
                b.append(']');
            }
            default -> write(b, v.toString());
        }
    }

    /** Bytes that are not JSON, or not quite: truncated, garbage, deep nesting, bad escapes, BOMs, NaN. */
    public byte[] brokenJson() {
        String valid = json(value(3));
        return switch (random.nextInt(12)) {
            case 0 -> valid.substring(0, random.nextInt(valid.length() + 1)).getBytes(StandardCharsets.UTF_8);
            case 1 -> randomBytes(between(1, 200));
            case 2 -> ("[".repeat(between(100, 20_000))).getBytes(StandardCharsets.UTF_8);
            case 3 -> ("{\"a\":".repeat(between(100, 5_000))).getBytes(StandardCharsets.UTF_8);
            case 4 -> "{\"x\":\"\\uZZZZ\"}".getBytes(StandardCharsets.UTF_8);
            case 5 -> ("\uFEFF" + valid).getBytes(StandardCharsets.UTF_8);
            case 6 -> "{\"a\":NaN,\"b\":Infinity}".getBytes(StandardCharsets.UTF_8);
            case 7 -> "{\"a\":1,}".getBytes(StandardCharsets.UTF_8);
            case 8 -> "{'single':'quotes'}".getBytes(StandardCharsets.UTF_8);
            case 9 -> new byte[] {'{', '"', (byte) 0xC3, (byte) 0x28, '"', ':', '1', '}'}; // invalid UTF-8
            case 10 -> "{\"a\":1}{\"b\":2}".getBytes(StandardCharsets.UTF_8);
            default -> (valid + "\u0000garbage").getBytes(StandardCharsets.UTF_8);
        };
    }

    public byte[] randomBytes(int n) {
        byte[] b = new byte[n];
        random.nextBytes(b);
        return b;
    }

    /** A map of {@code n} entries with hostile keys and values, as JSON-ready strings. */
    public Map<String, Object> stringMap(int n, int valueLength) {
        var m = new LinkedHashMap<String, Object>();
        for (int i = 0; i < n; i++) {
            m.put("k" + i + string(between(0, 3)), chance(0.5) ? string() : huge(valueLength));
        }
        return m;
    }

    /** A request target: a path with tricks, percent escapes, and maybe a query. */
    public String target(List<String> knownPaths) {
        String path = chance(0.6) ? pick(knownPaths) : "/" + string(between(0, 8));
        if (chance(0.4)) path = path + pick("/..", "/.", "//", "/%2e%2e/", "%00", "/%00", "/x", "?", "#frag", "/..;/");
        if (chance(0.3)) path = path + "?" + string(between(0, 10)) + "=" + string(between(0, 10));
        return escapeForRequestLine(path);
    }

    /** Keeps a target on one request line: spaces and line breaks escaped, everything else (NUL too) raw. */
    public static String escapeForRequestLine(String s) {
        return s.replace(" ", "%20").replace("\r", "%0D").replace("\n", "%0A");
    }
}
