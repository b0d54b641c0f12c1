package dev.capsule.server.config;

import java.time.Duration;
import java.util.List;

/**
 * The observability settings of {@link Config}: how often sandboxes are sampled, how long what is kept of killed
 * sandboxes (metrics, logs) and events stays, the server's log format, and who may read {@code /metrics}.
 */
public record ObservabilityConfig(Duration metricsInterval, Duration metricsRetention, Duration logsRetention,
                                  Duration eventsRetention, String logFormat, String metricsEndpoint) {

    public static final List<String> LOG_FORMATS = List.of("json", "text");
    public static final List<String> METRICS_ENDPOINT = List.of("public", "key", "off");

    public ObservabilityConfig {
        if (metricsInterval.compareTo(Duration.ofSeconds(1)) < 0) {
            throw new ConfigException("metrics_interval must be at least 1 second, got " + metricsInterval.toMillis()
                    + " ms; use e.g. 5s");
        }
        for (var retention : List.of(metricsRetention, logsRetention, eventsRetention)) {
            if (retention.isNegative()) throw new ConfigException("retention settings must not be negative; use e.g. 24h or 7d");
        }
        if (!LOG_FORMATS.contains(logFormat)) {
            throw new ConfigException("log_format must be json or text, got '" + logFormat + "'");
        }
        if (!METRICS_ENDPOINT.contains(metricsEndpoint)) {
            throw new ConfigException("metrics_endpoint must be public, key or off, got '" + metricsEndpoint + "'");
        }
    }
}
