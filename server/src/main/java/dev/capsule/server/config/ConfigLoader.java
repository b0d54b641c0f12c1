package dev.capsule.server.config;

import java.io.IOException;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;

/**
 * Resolves a {@link Config}: flags ({@code --data-dir /x} or {@code --data-dir=/x}) over environment variables
 * ({@code CAPSULE_DATA_DIR}) over the config file ({@code data_dir = /x}) over defaults.
 *
 * <p>The file is Java properties ({@code key = value}, {@code #} comments): every setting is a flat scalar, so one
 * key maps 1:1 to its variable and its flag, and it needs no parser beyond the JDK. Its path is {@code --config},
 * else {@code CAPSULE_CONFIG}, else {@code /etc/capsule/capsule.conf} when that exists. Unknown keys in the file and
 * unknown flags are errors (a typo must not silently fall back to a default); unknown {@code CAPSULE_*} variables
 * are ignored because other parts of Capsule read their own.
 */
public final class ConfigLoader {

    /** Every setting: its file key; the variable is CAPSULE_ + upper case, the flag -- + dashes. */
    public static final Map<String, String> DEFAULTS = defaults();

    public static final Path DEFAULT_CONFIG_FILE = Path.of("/etc/capsule/capsule.conf");

    private ConfigLoader() {}

    private static Map<String, String> defaults() {
        var d = new LinkedHashMap<String, String>();
        d.put("host", "0.0.0.0");
        d.put("port", "3000");
        d.put("data_dir", "/var/lib/capsule");
        d.put("domain", "localhost");
        d.put("runtime", "oci");
        d.put("runtimes", "");
        d.put("cache_dir", "/var/cache/capsule");
        d.put("database_url", "");
        d.put("database_user", "");
        d.put("database_password", "");
        d.put("default_timeout", "300");
        d.put("max_timeout", "3600");
        d.put("warm_pool_size", "2");
        d.put("metrics_interval", "5s");
        d.put("metrics_retention", "24h");
        d.put("logs_retention", "24h");
        d.put("events_retention", "7d");
        d.put("log_format", "json");
        d.put("metrics_endpoint", "public");
        d.put("rate_limit_requests", "20000");
        d.put("rate_limit_interval", "30s");
        d.put("rate_limit_creates", "20");
        d.put("max_sandboxes_per_key", "100");
        return Map.copyOf(d);
    }

    /** Resolves the configuration from command-line arguments and the process environment. */
    public static Config load(List<String> args) {
        return load(args, System.getenv());
    }

    public static Config load(List<String> args, Map<String, String> env) {
        Map<String, String> flags = parseFlags(args);
        Path file = flags.containsKey("config") ? Path.of(flags.remove("config"))
                : env.containsKey("CAPSULE_CONFIG") ? Path.of(env.get("CAPSULE_CONFIG"))
                : Files.exists(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : null;
        Map<String, String> fromFile = file == null ? Map.of() : readFile(file);

        var values = new LinkedHashMap<String, Source>();
        for (var key : DEFAULTS.keySet()) {
            String envName = "CAPSULE_" + key.toUpperCase(Locale.ROOT);
            if (flags.containsKey(key)) {
                values.put(key, new Source(flags.get(key), "flag --" + key.replace('_', '-')));
            } else if (env.containsKey(envName)) {
                values.put(key, new Source(env.get(envName), "environment variable " + envName));
            } else if (fromFile.containsKey(key)) {
                values.put(key, new Source(fromFile.get(key), "key '" + key + "' in " + file));
            } else {
                values.put(key, new Source(DEFAULTS.get(key), "default of " + key));
            }
        }
        return new Config(
                values.get("host").text(),
                values.get("port").integer(),
                Path.of(values.get("data_dir").nonEmpty()),
                values.get("domain").nonEmpty(),
                values.get("runtime").nonEmpty(),
                Path.of(values.get("cache_dir").nonEmpty()),
                values.get("database_url").text(),
                values.get("database_user").text(),
                values.get("database_password").text(),
                values.get("default_timeout").duration(),
                values.get("max_timeout").duration(),
                values.get("warm_pool_size").integer(),
                new ObservabilityConfig(values.get("metrics_interval").duration(), values.get("metrics_retention").duration(),
                        values.get("logs_retention").duration(), values.get("events_retention").duration(),
                        values.get("log_format").nonEmpty(), values.get("metrics_endpoint").nonEmpty()),
                new Config.RateLimits(values.get("rate_limit_requests").integer(),
                        values.get("rate_limit_interval").duration(), values.get("rate_limit_creates").integer(),
                        values.get("max_sandboxes_per_key").integer()),
                java.util.Arrays.stream(values.get("runtimes").text().split(",")).map(String::strip)
                        .filter(r -> !r.isEmpty()).toList());
    }

    private static Map<String, String> parseFlags(List<String> args) {
        var flags = new LinkedHashMap<String, String>();
        for (int i = 0; i < args.size(); i++) {
            String arg = args.get(i);
            if (!arg.startsWith("--") || arg.length() == 2) {
                throw new ConfigException("unexpected argument '" + arg + "'; options look like --port 3000 or --port=3000");
            }
            String name = arg.substring(2);
            String value;
            int eq = name.indexOf('=');
            if (eq >= 0) {
                value = name.substring(eq + 1);
                name = name.substring(0, eq);
            } else if (i + 1 < args.size()) {
                value = args.get(++i);
            } else {
                throw new ConfigException("option --" + name + " needs a value, e.g. --" + name + "=<value>");
            }
            String key = name.replace('-', '_');
            if (!DEFAULTS.containsKey(key) && !key.equals("config")) {
                throw new ConfigException("unknown option --" + name + "; known options: --config, "
                        + String.join(", ", DEFAULTS.keySet().stream().map(k -> "--" + k.replace('_', '-')).sorted().toList()));
            }
            flags.put(key, value);
        }
        return flags;
    }

    private static Map<String, String> readFile(Path file) {
        var props = new Properties();
        try (Reader reader = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            props.load(reader);
        } catch (IOException e) {
            throw new ConfigException("cannot read config file " + file + ": " + e.getMessage()
                    + "; fix the path given by --config / CAPSULE_CONFIG or create the file");
        }
        var out = new LinkedHashMap<String, String>();
        for (var name : props.stringPropertyNames()) {
            if (!DEFAULTS.containsKey(name)) {
                throw new ConfigException("unknown key '" + name + "' in " + file + "; known keys: "
                        + String.join(", ", DEFAULTS.keySet().stream().sorted().toList()));
            }
            out.put(name, props.getProperty(name).strip());
        }
        return out;
    }

    /** A raw value and where it came from, so that an error names the place to fix. */
    private record Source(String text, String origin) {

        String nonEmpty() {
            if (text.isBlank()) {
                throw new ConfigException(origin + " is empty; give it a value or remove it to use the default");
            }
            return text.strip();
        }

        int integer() {
            try {
                return Integer.parseInt(text.strip());
            } catch (NumberFormatException e) {
                throw new ConfigException(origin + " is '" + text + "', not a whole number; write digits only, e.g. 3000");
            }
        }

        /** Seconds as a plain number, or with a unit: 90s, 5m, 24h, 7d. */
        Duration duration() {
            String t = text.strip().toLowerCase(Locale.ROOT);
            try {
                if (t.endsWith("d")) return Duration.ofDays(Long.parseLong(t.substring(0, t.length() - 1)));
                if (t.endsWith("h")) return Duration.ofHours(Long.parseLong(t.substring(0, t.length() - 1)));
                if (t.endsWith("m")) return Duration.ofMinutes(Long.parseLong(t.substring(0, t.length() - 1)));
                if (t.endsWith("s")) return Duration.ofSeconds(Long.parseLong(t.substring(0, t.length() - 1)));
                return Duration.ofSeconds(Long.parseLong(t));
            } catch (NumberFormatException e) {
                throw new ConfigException(origin + " is '" + text + "', not a duration; use seconds (300) or 90s, 5m, 24h, 7d");
            }
        }
    }
}
