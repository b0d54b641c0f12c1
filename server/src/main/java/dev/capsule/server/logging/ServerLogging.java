package dev.capsule.server.logging;

import io.vertx.core.json.JsonObject;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.io.UnsupportedEncodingException;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.Optional;
import java.util.logging.ConsoleHandler;
import java.util.logging.Formatter;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogManager;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The server's log: every {@code System.Logger} and java.util.logging record (and SLF4J's, which the CLI routes
 * to java.util.logging), one line each on stderr. Format {@code json} (the default of {@code capsule server}):
 * one object per line with {@code time}, {@code level}, {@code logger}, {@code message}, {@code sandboxId} when
 * the line concerns a sandbox, {@code thread} and {@code exception} (the stack trace) when there is one. Format
 * {@code text}: the same on one readable line.
 *
 * <p>The sandbox id comes from {@link LogContext} — bound by the lifecycle around every transition, by the REST
 * edge, the sampler and the webhook dispatcher — so it is on lines of code that never names it. A line written
 * outside any binding that still names a sandbox ("sandbox &lt;id&gt;", the convention of the code's messages)
 * gets that id.
 */
public final class ServerLogging {

    private static final Pattern NAMED_SANDBOX = Pattern.compile("\\bsandbox '?([a-z0-9]{20})\\b");

    private ServerLogging() {}

    /** Replaces the root logger's handlers with one on stderr in {@code format} ({@code json} or {@code text}). */
    public static void install(String format) {
        Logger root = LogManager.getLogManager().getLogger("");
        for (Handler h : root.getHandlers()) root.removeHandler(h);
        ConsoleHandler handler = new ConsoleHandler();
        try {
            handler.setEncoding(StandardCharsets.UTF_8.name());
        } catch (UnsupportedEncodingException e) {
            throw new IllegalStateException(e);
        }
        handler.setLevel(Level.ALL);
        handler.setFormatter(format.equals("json") ? new Json() : new Text());
        root.addHandler(handler);
    }

    /** The sandbox a record concerns: the bound one, else one its message names. */
    static Optional<String> sandboxOf(String message) {
        Optional<String> bound = LogContext.sandboxId();
        if (bound.isPresent() || message == null) return bound;
        Matcher m = NAMED_SANDBOX.matcher(message);
        return m.find() ? Optional.of(m.group(1)) : Optional.empty();
    }

    /** E2B's and most tools' level words, rather than java.util.logging's SEVERE and FINE. */
    static String level(Level level) {
        int v = level.intValue();
        if (v >= Level.SEVERE.intValue()) return "ERROR";
        if (v >= Level.WARNING.intValue()) return "WARN";
        if (v >= Level.INFO.intValue()) return "INFO";
        if (v >= Level.FINE.intValue()) return "DEBUG";
        return "TRACE";
    }

    /** The thread's name; virtual threads are mostly unnamed, so theirs is "virtual-<id>". */
    static String threadName() {
        Thread t = Thread.currentThread();
        return t.getName().isEmpty() ? (t.isVirtual() ? "virtual-" : "thread-") + t.threadId() : t.getName();
    }

    static String stackTrace(Throwable t) {
        StringWriter out = new StringWriter();
        t.printStackTrace(new PrintWriter(out));
        return out.toString().strip();
    }

    /** One JSON object per line. */
    public static final class Json extends Formatter {
        @Override
        public String format(LogRecord r) {
            String message = formatMessage(r);
            JsonObject line = new JsonObject()
                    .put("time", Instant.ofEpochMilli(r.getMillis()).toString())
                    .put("level", level(r.getLevel()))
                    .put("logger", r.getLoggerName())
                    .put("message", message);
            sandboxOf(message).ifPresent(id -> line.put("sandboxId", id));
            line.put("thread", threadName());
            if (r.getThrown() != null) line.put("exception", stackTrace(r.getThrown()));
            return line.encode() + System.lineSeparator();
        }
    }

    /** One readable line (the exception's trace follows on its own lines). */
    public static final class Text extends Formatter {
        @Override
        public String format(LogRecord r) {
            String message = formatMessage(r);
            StringBuilder b = new StringBuilder().append(Instant.ofEpochMilli(r.getMillis())).append(' ')
                    .append(String.format("%-5s", level(r.getLevel()))).append(' ').append(r.getLoggerName());
            sandboxOf(message).ifPresent(id -> b.append(" [sandbox ").append(id).append(']'));
            b.append(": ").append(message).append(System.lineSeparator());
            if (r.getThrown() != null) b.append(stackTrace(r.getThrown())).append(System.lineSeparator());
            return b.toString();
        }
    }
}
