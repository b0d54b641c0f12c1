package dev.capsule.server.logging;

import static org.assertj.core.api.Assertions.assertThat;

import io.vertx.core.json.JsonObject;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import org.junit.jupiter.api.Test;

/** The server's log formats: one JSON object per line, the sandbox id from the context or the message. */
class ServerLoggingTest {

    private static LogRecord record(Level level, String message, Throwable thrown) {
        var r = new LogRecord(level, message);
        r.setLoggerName("dev.capsule.server.lifecycle.SandboxLifecycle");
        r.setThrown(thrown);
        return r;
    }

    @Test
    void jsonLinesCarryTheBoundSandboxIdAndTheException() {
        var json = new ServerLogging.Json();
        String line = LogContext.forSandbox("abcdefghij0123456789", () ->
                json.format(record(Level.WARNING, "pausing failed", new IllegalStateException("frozen\nsolid"))));
        assertThat(line).endsWith(System.lineSeparator());
        assertThat(line.strip()).doesNotContain("\n");
        JsonObject o = new JsonObject(line);
        assertThat(o.getString("level")).isEqualTo("WARN");
        assertThat(o.getString("logger")).isEqualTo("dev.capsule.server.lifecycle.SandboxLifecycle");
        assertThat(o.getString("message")).isEqualTo("pausing failed");
        assertThat(o.getString("sandboxId")).isEqualTo("abcdefghij0123456789");
        assertThat(o.getString("exception")).startsWith("java.lang.IllegalStateException: frozen\nsolid").contains("\tat ");
        assertThat(java.time.Instant.parse(o.getString("time"))).isNotNull();
    }

    @Test
    void aLineOutsideAnyBindingGetsTheSandboxItNamesAndOthersNone() {
        var json = new ServerLogging.Json();
        assertThat(new JsonObject(json.format(record(Level.INFO, "destroying sandbox zyxwvutsrq9876543210 found on the host", null)))
                .getString("sandboxId")).isEqualTo("zyxwvutsrq9876543210");
        JsonObject plain = new JsonObject(json.format(record(Level.SEVERE, "the store failed", null)));
        assertThat(plain.containsKey("sandboxId")).isFalse();
        assertThat(plain.getString("level")).isEqualTo("ERROR");
        assertThat(plain.containsKey("exception")).isFalse();
    }

    @Test
    void textIsOneReadableLine() {
        String line = LogContext.forSandbox("abcdefghij0123456789", () ->
                new ServerLogging.Text().format(record(Level.INFO, "sandbox resumed", null)));
        assertThat(line).contains(" INFO  dev.capsule.server.lifecycle.SandboxLifecycle [sandbox abcdefghij0123456789]: sandbox resumed");
    }
}
