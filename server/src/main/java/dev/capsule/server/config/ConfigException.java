package dev.capsule.server.config;

/** A configuration value is missing or malformed; the message names the source (flag, variable, file) and the fix. */
public class ConfigException extends RuntimeException {
    public ConfigException(String message) {
        super(message);
    }
}
