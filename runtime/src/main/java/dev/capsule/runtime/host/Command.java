package dev.capsule.runtime.host;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Runs a host tool (runc, mount, mmdebstrap, jlink...) to completion and reports its output. The runtime drives
 * these tools as separate processes rather than re-implementing them; this class is the one place that does it.
 */
public final class Command {

    /** What a finished command printed and how it exited. */
    public record Result(List<String> command, int exitCode, String stdout, String stderr) {
        public boolean ok() {
            return exitCode == 0;
        }

        /** Throws {@link CommandFailedException} unless the command exited with 0. */
        public Result orThrow() {
            if (!ok()) {
                throw new CommandFailedException(this);
            }
            return this;
        }
    }

    /** A host command exited non-zero; the message carries the command line and what it printed on stderr. */
    public static final class CommandFailedException extends RuntimeException {
        private final Result result;

        public CommandFailedException(Result result) {
            super("command " + String.join(" ", result.command()) + " exited with " + result.exitCode() + ": "
                    + tail(result.stderr().isBlank() ? result.stdout() : result.stderr()));
            this.result = result;
        }

        public Result result() {
            return result;
        }
    }

    private Command() {
    }

    /** Runs {@code command}, waiting at most {@code timeoutSeconds}; a command still running then is killed. */
    public static Result run(List<String> command, long timeoutSeconds) {
        Path out = null;
        Path err = null;
        try {
            // Files, not pipes: a tool that leaves a daemon behind (runc run -d) must not keep our pipe open.
            out = Files.createTempFile("capsule-cmd", ".out");
            err = Files.createTempFile("capsule-cmd", ".err");
            try (InputStream stdout = Files.newInputStream(out); InputStream stderr = Files.newInputStream(err)) {
                Process process = new ProcessBuilder(command)
                        .redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()))
                        .redirectOutput(out.toFile())
                        .redirectError(err.toFile())
                        .start();
                // The child and our streams hold the files open: unlinked now, a server killed while the command
                // runs leaves nothing in the temp directory.
                deleteQuietly(out);
                deleteQuietly(err);
                if (!process.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
                    process.destroyForcibly();
                    process.waitFor();
                    return new Result(command, -1, read(stdout), "timed out after " + timeoutSeconds + " s; " + read(stderr));
                }
                return new Result(command, process.exitValue(), read(stdout), read(stderr));
            }
        } catch (IOException e) {
            throw new IllegalStateException("cannot run " + command.getFirst() + " (is it installed?): " + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while running " + String.join(" ", command), e);
        } finally {
            deleteQuietly(out);
            deleteQuietly(err);
        }
    }

    /** Runs {@code command} with a one-minute limit and throws unless it succeeds. */
    public static Result check(String... command) {
        return run(List.of(command), 60).orThrow();
    }

    private static String read(InputStream in) throws IOException {
        return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    }

    private static void deleteQuietly(Path file) {
        if (file != null) {
            try {
                Files.deleteIfExists(file);
            } catch (IOException ignored) {
                // a temp file left behind is harmless
            }
        }
    }

    static String tail(String text) {
        String trimmed = text.strip();
        return trimmed.length() <= 2000 ? trimmed : "..." + trimmed.substring(trimmed.length() - 2000);
    }
}
