package dev.capsule.envd.fuzz;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.BiPredicate;

/**
 * What a fuzz run sent and got: requests per category, a histogram of statuses, and every response that breaks the
 * rule ({@code acceptable}) with the request that caused it. Written as Markdown for docs/SECURITY.md.
 */
public final class FuzzReport {

    private final String name;
    private final BiPredicate<String, RawHttp.Response> acceptable;
    private final Map<String, Integer> categories = new LinkedHashMap<>();
    private final Map<String, Integer> statuses = new TreeMap<>();
    private final List<String> failures = new ArrayList<>();

    /** {@code acceptable} judges a response to a request with the given method. */
    public FuzzReport(String name, BiPredicate<String, RawHttp.Response> acceptable) {
        this.name = name;
        this.acceptable = acceptable;
    }

    /** Counts one exchange; remembers it as a failure when the response is not acceptable. */
    public synchronized void record(String category, String method, String request, RawHttp.Response response) {
        categories.merge(category, 1, Integer::sum);
        String status = response.status() == -1 ? "no answer (timeout)" : response.status() == 0 ? "closed, no response"
                : String.valueOf(response.status());
        statuses.merge(status, 1, Integer::sum);
        if (!acceptable.test(method, response)) {
            String body = response.text();
            failures.add(category + ": " + status + " for " + printable(request, 300) + " -> " + printable(body, 300));
        }
    }

    public synchronized List<String> failures() {
        return List.copyOf(failures);
    }

    public synchronized int total() {
        return categories.values().stream().mapToInt(Integer::intValue).sum();
    }

    public synchronized String markdown(long seed, String command) {
        var b = new StringBuilder("#### ").append(name).append("\n\nSeed ").append(seed).append(", ").append(total())
                .append(" requests; `").append(command).append("`.\n\n| category | requests |\n|---|---:|\n");
        categories.forEach((c, n) -> b.append("| ").append(c).append(" | ").append(n).append(" |\n"));
        b.append("\n| status | responses |\n|---|---:|\n");
        statuses.forEach((s, n) -> b.append("| ").append(s).append(" | ").append(n).append(" |\n"));
        return b.toString();
    }

    /** Writes the report to {@code target/fuzz/<file>} and returns its path. */
    public Path write(Path dir, String file, long seed, String command) throws IOException {
        Files.createDirectories(dir);
        Path out = dir.resolve(file);
        Files.writeString(out, markdown(seed, command), StandardCharsets.UTF_8);
        return out;
    }

    /** Text safe to print: controls escaped, cut at {@code max} characters. */
    public static String printable(String s, int max) {
        var b = new StringBuilder();
        for (char c : s.toCharArray()) {
            if (b.length() >= max) {
                b.append("…");
                break;
            }
            if (c < 0x20 || c == 0x7f || Character.isSurrogate(c)) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.toString();
    }
}
