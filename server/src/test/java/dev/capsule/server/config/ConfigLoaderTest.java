package dev.capsule.server.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ConfigLoaderTest {

    @TempDir Path tmp;

    @Test
    void defaultsWorkWithNothingSet() {
        Config c = ConfigLoader.load(List.of(), Map.of("CAPSULE_CONFIG", writeFile("")));
        assertThat(c.port()).isEqualTo(3000);
        assertThat(c.dataDir()).isEqualTo(Path.of("/var/lib/capsule"));
        assertThat(c.domain()).isEqualTo("localhost");
        assertThat(c.runtime()).isEqualTo("oci");
        assertThat(c.cacheDir()).isEqualTo(Path.of("/var/cache/capsule"));
        assertThat(c.databaseUrl()).isEqualTo("jdbc:sqlite:/var/lib/capsule/capsule.db");
        assertThat(c.usesPostgres()).isFalse();
        assertThat(c.defaultTimeout()).isEqualTo(Duration.ofMinutes(5));
        assertThat(c.maxTimeout()).isEqualTo(Duration.ofHours(1));
        assertThat(c.warmPoolSize()).isEqualTo(2);
    }

    @Test
    void moreDriversComeAfterTheDefaultOneOnceEach() {
        String file = writeFile("");
        assertThat(ConfigLoader.load(List.of(), Map.of("CAPSULE_CONFIG", file)).runtimes()).containsExactly("oci");
        Config both = ConfigLoader.load(List.of("--runtime", "microvm", "--runtimes", "oci, microvm"),
                Map.of("CAPSULE_CONFIG", file));
        assertThat(both.runtimes()).containsExactly("microvm", "oci");
        assertThat(ConfigLoader.load(List.of(), Map.of("CAPSULE_CONFIG", file, "CAPSULE_RUNTIMES", "microvm"))
                .runtimes()).containsExactly("oci", "microvm");
    }

    @Test
    void observabilitySettingsHaveDefaultsAndAreChecked() {
        String file = writeFile("");
        var o = ConfigLoader.load(List.of(), Map.of("CAPSULE_CONFIG", file)).observability();
        assertThat(o.metricsInterval()).isEqualTo(Duration.ofSeconds(5));
        assertThat(o.metricsRetention()).isEqualTo(Duration.ofHours(24));
        assertThat(o.eventsRetention()).isEqualTo(Duration.ofDays(7));
        assertThat(o.logFormat()).isEqualTo("json");
        assertThat(o.metricsEndpoint()).isEqualTo("public");
        var set = ConfigLoader.load(List.of("--metrics-interval", "1s", "--events-retention", "2d", "--log-format", "text",
                "--metrics-endpoint", "key"), Map.of("CAPSULE_CONFIG", file, "CAPSULE_LOGS_RETENTION", "90m")).observability();
        assertThat(set.metricsInterval()).isEqualTo(Duration.ofSeconds(1));
        assertThat(set.eventsRetention()).isEqualTo(Duration.ofDays(2));
        assertThat(set.logsRetention()).isEqualTo(Duration.ofMinutes(90));
        assertThat(set.logFormat()).isEqualTo("text");
        assertThat(set.metricsEndpoint()).isEqualTo("key");
        assertThatThrownBy(() -> ConfigLoader.load(List.of("--metrics-interval", "0"), Map.of("CAPSULE_CONFIG", file)))
                .isInstanceOf(ConfigException.class).hasMessageContaining("metrics_interval");
        assertThatThrownBy(() -> ConfigLoader.load(List.of("--log-format", "xml"), Map.of("CAPSULE_CONFIG", file)))
                .isInstanceOf(ConfigException.class).hasMessageContaining("json or text");
        assertThatThrownBy(() -> ConfigLoader.load(List.of("--metrics-endpoint", "open"), Map.of("CAPSULE_CONFIG", file)))
                .isInstanceOf(ConfigException.class).hasMessageContaining("public, key or off");
    }

    @Test
    void flagsBeatEnvironmentBeatsFileBeatsDefaults() {
        String file = writeFile("""
                # comment
                port = 4000
                domain = file.example
                runtime = microvm
                data_dir = /from/file
                max_timeout = 2h
                """);
        Map<String, String> env = Map.of("CAPSULE_CONFIG", file, "CAPSULE_PORT", "5000", "CAPSULE_DOMAIN", "env.example",
                "CAPSULE_UNRELATED", "ignored");
        Config c = ConfigLoader.load(List.of("--port", "6000", "--data-dir=/from/flag"), env);
        assertThat(c.port()).isEqualTo(6000);                     // flag over env over file
        assertThat(c.dataDir()).isEqualTo(Path.of("/from/flag")); // flag over file
        assertThat(c.domain()).isEqualTo("env.example");          // env over file
        assertThat(c.runtime()).isEqualTo("microvm");             // file over default
        assertThat(c.maxTimeout()).isEqualTo(Duration.ofHours(2));
        assertThat(c.cacheDir()).isEqualTo(Path.of("/var/cache/capsule")); // default
        assertThat(c.databaseUrl()).isEqualTo("jdbc:sqlite:/from/flag/capsule.db");
    }

    @Test
    void configFlagChoosesTheFileAndPostgresUrlSwitchesStore() {
        String file = writeFile("database_url = jdbc:postgresql://127.0.0.1:5432/capsule\nwarm_pool_size=0\n");
        Config c = ConfigLoader.load(List.of("--config", file), Map.of());
        assertThat(c.usesPostgres()).isTrue();
        assertThat(c.warmPoolSize()).isZero();
    }

    @Test
    void badValuesNameTheirSource() {
        assertThatThrownBy(() -> ConfigLoader.load(List.of(), Map.of("CAPSULE_CONFIG", writeFile(""), "CAPSULE_PORT", "abc")))
                .isInstanceOf(ConfigException.class).hasMessageContaining("CAPSULE_PORT");
        assertThatThrownBy(() -> ConfigLoader.load(List.of("--prot", "1"), Map.of()))
                .isInstanceOf(ConfigException.class).hasMessageContaining("unknown option --prot").hasMessageContaining("--port");
        assertThatThrownBy(() -> ConfigLoader.load(List.of(), Map.of("CAPSULE_CONFIG", writeFile("prot = 1\n"))))
                .isInstanceOf(ConfigException.class).hasMessageContaining("unknown key 'prot'");
        assertThatThrownBy(() -> ConfigLoader.load(List.of("--port"), Map.of()))
                .isInstanceOf(ConfigException.class).hasMessageContaining("needs a value");
        assertThatThrownBy(() -> ConfigLoader.load(List.of("--default-timeout", "2h", "--max-timeout", "1h"), Map.of("CAPSULE_CONFIG", writeFile(""))))
                .isInstanceOf(ConfigException.class).hasMessageContaining("max_timeout");
        assertThatThrownBy(() -> ConfigLoader.load(List.of("--max-timeout", "soon"), Map.of("CAPSULE_CONFIG", writeFile(""))))
                .isInstanceOf(ConfigException.class).hasMessageContaining("--max-timeout");
        assertThatThrownBy(() -> ConfigLoader.load(List.of(), Map.of("CAPSULE_CONFIG", tmp.resolve("missing.conf").toString())))
                .isInstanceOf(ConfigException.class).hasMessageContaining("cannot read config file");
    }

    @Test
    void rateLimitsHaveDefaultsAndRefuseNegativesAndZeroIntervals() {
        Config c = ConfigLoader.load(List.of(), Map.of("CAPSULE_CONFIG", writeFile("")));
        assertThat(c.rateLimits()).isEqualTo(new Config.RateLimits(20_000, Duration.ofSeconds(30), 20, 100));
        Config set = ConfigLoader.load(List.of("--rate-limit-creates", "0", "--max-sandboxes-per-key=5"),
                Map.of("CAPSULE_CONFIG", writeFile("rate_limit_interval = 1m\n"), "CAPSULE_RATE_LIMIT_REQUESTS", "7"));
        assertThat(set.rateLimits()).isEqualTo(new Config.RateLimits(7, Duration.ofMinutes(1), 0, 5));
        assertThatThrownBy(() -> ConfigLoader.load(List.of("--rate-limit-creates", "-1"), Map.of("CAPSULE_CONFIG", writeFile(""))))
                .isInstanceOf(ConfigException.class).hasMessageContaining("cannot be negative");
        assertThatThrownBy(() -> ConfigLoader.load(List.of("--rate-limit-interval", "0"), Map.of("CAPSULE_CONFIG", writeFile(""))))
                .isInstanceOf(ConfigException.class).hasMessageContaining("rate_limit_interval");
    }

    private String writeFile(String text) {
        try {
            Path f = Files.createTempFile(tmp, "capsule", ".conf");
            Files.writeString(f, text);
            return f.toString();
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }
}
