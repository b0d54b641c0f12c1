package dev.capsule.runtime.oci;

import dev.capsule.runtime.host.Mounts;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

/**
 * Whether CRIU can checkpoint and restore a process on this host, found out by doing it: {@code criu check}, then a
 * real {@code criu dump} of a throwaway {@code setsid sleep} and a {@code criu restore} of it, each step with a
 * timeout. A passing {@code criu check} proves little: on the machines this project is built on, criu 3.17 fails
 * the check and criu 4.1 passes it but hangs inside the dump (OCI-NOTES.md), so a step that does not finish in time
 * is killed and counts as a failure. Everything the probe starts or writes is removed before it returns.
 *
 * <p>The oci driver does not hibernate sandboxes with CRIU even when the probe passes (that path cannot be verified
 * on the hosts we measured); the probe's result is what {@link OciRuntime#pauseModeReason()} tells the operator.
 */
public final class CriuProbe {

    private static final System.Logger LOG = System.getLogger(CriuProbe.class.getName());
    static final Duration STEP_TIMEOUT = Duration.ofSeconds(10);
    private static final String FREEZE = "paused sandboxes keep their memory in RAM under a frozen cgroup";
    private static volatile Result onThisHost;

    /**
     * What the probe found.
     *
     * @param passed  CRIU dumped and restored a process here
     * @param version CRIU's version, empty when it is not installed or does not say
     * @param reason  a sentence for logs and {@code /health}: what was found and what pause does because of it
     */
    public record Result(boolean passed, String version, String reason) {}

    private final Path criu;
    private final Duration timeout;

    CriuProbe(Path criu, Duration timeout) {
        this.criu = criu;
        this.timeout = timeout;
    }

    /**
     * The probe's result for this host, probed once per process (the first call takes up to a few timeouts) and
     * logged once.
     */
    public static Result onThisHost() {
        Result result = onThisHost;
        if (result == null) {
            synchronized (CriuProbe.class) {
                if (onThisHost == null) {
                    Optional<Path> criu = findOnPath("criu");
                    onThisHost = criu.isEmpty()
                            ? new Result(false, "", "CRIU is not installed (no criu on PATH); " + FREEZE)
                            : new CriuProbe(criu.get(), STEP_TIMEOUT).run();
                    LOG.log(System.Logger.Level.INFO, "oci pause mode: " + OciRuntime.PAUSE_MODE + " ("
                            + onThisHost.reason() + ")");
                }
                result = onThisHost;
            }
        }
        return result;
    }

    /** Runs the probe: check, dump, restore. */
    Result run() {
        Step version = step(List.of(criu.toString(), "--version"), null);
        String number = version.output().lines().filter(line -> line.startsWith("Version:"))
                .map(line -> line.substring("Version:".length()).strip()).findFirst().orElse("");
        String name = number.isEmpty() ? "CRIU" : "CRIU " + number;
        Step check = step(List.of(criu.toString(), "check"), null);
        if (!check.ok()) {
            return failed(number, name, "criu check " + check.describe());
        }
        Path dir = null;
        Process target = null;
        long restoredPid = -1;
        try {
            dir = Files.createTempDirectory("capsule-criu-probe");
            target = new ProcessBuilder("setsid", "sleep", "60")
                    .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                    .redirectOutput(ProcessBuilder.Redirect.DISCARD)
                    .redirectError(ProcessBuilder.Redirect.DISCARD)
                    .start();
            long pid = target.pid();
            Step dump = step(List.of(criu.toString(), "dump", "--tree", String.valueOf(pid), "--images-dir",
                    dir.toString(), "--log-file", "dump.log"), dir.resolve("dump.log"));
            if (!dump.ok()) {
                return failed(number, name, "criu dump " + dump.describe());
            }
            // the dump ended the process; reaping it frees its pid for the restore
            target.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS);
            Step restore = step(List.of(criu.toString(), "restore", "--restore-detached", "--images-dir",
                    dir.toString(), "--log-file", "restore.log"), dir.resolve("restore.log"));
            restoredPid = pid;
            if (!restore.ok()) {
                return failed(number, name, "criu restore " + restore.describe());
            }
            if (!isSleep(pid)) {
                return failed(number, name, "criu restore exited 0 but the restored process is not running");
            }
            return new Result(true, number, name + " passed its self-test on this host (checkpoint and restore of a"
                    + " process), but this version of Capsule does not hibernate sandboxes with it; " + FREEZE);
        } catch (IOException e) {
            return failed(number, name, "the probe could not run: " + e.getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return failed(number, name, "the probe was interrupted");
        } finally {
            if (target != null) {
                kill(target.toHandle());
            }
            if (restoredPid > 0 && isSleep(restoredPid)) {
                ProcessHandle.of(restoredPid).ifPresent(CriuProbe::kill);
            }
            if (dir != null) {
                Mounts.deleteTree(dir);
            }
        }
    }

    private static Result failed(String version, String name, String why) {
        return new Result(false, version, name + " is installed but failed its self-test on this host (" + why
                + "); " + FREEZE);
    }

    /** SIGKILL, then a short wait for the process to be gone, so the probe returns with nothing of it running. */
    private static void kill(ProcessHandle process) {
        process.destroyForcibly();
        try {
            process.onExit().get(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException e) {
            // not our child (a restored process is init's): gone from our view is all we can wait for
        }
    }

    /** Whether {@code pid} is our throwaway sleep (and not a process that reused its pid). */
    private static boolean isSleep(long pid) {
        return ProcessHandle.of(pid).filter(ProcessHandle::isAlive)
                .flatMap(handle -> handle.info().command()).map(command -> command.endsWith("/sleep"))
                .orElse(false);
    }

    /** How one criu command ended: its exit code (-1: killed at the timeout), output and the error it logged. */
    private record Step(int exitCode, String output, String error, Duration timeout) {
        boolean ok() {
            return exitCode == 0;
        }

        String describe() {
            if (exitCode == -1) {
                return "did not finish within " + timeout.toSeconds() + " s and was killed";
            }
            return "exited with " + exitCode + (error.isEmpty() ? "" : ": " + error);
        }
    }

    /**
     * Runs a criu command with the timeout, killing it and everything it started when the time is up. Its first
     * {@code Error (file:line): message} line, from its output or {@code logFile}, says why it failed.
     */
    private Step step(List<String> command, Path logFile) {
        Path output = null;
        try {
            output = Files.createTempFile("capsule-criu", ".out");
            Process process = new ProcessBuilder(command)
                    .directory(logFile == null ? null : logFile.getParent().toFile())
                    .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                    .redirectErrorStream(true)
                    .redirectOutput(output.toFile())
                    .start();
            int exit;
            if (process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                exit = process.exitValue();
            } else {
                process.descendants().forEach(CriuProbe::kill);
                kill(process.toHandle());
                exit = -1;
            }
            String text = Files.readString(output, StandardCharsets.UTF_8);
            if (logFile != null && Files.isRegularFile(logFile)) {
                text = text + "\n" + Files.readString(logFile, StandardCharsets.UTF_8);
            }
            return new Step(exit, text, firstError(text), timeout);
        } catch (IOException e) {
            return new Step(127, "", "cannot run " + command.getFirst() + ": " + e.getMessage(), timeout);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return new Step(-1, "", "interrupted", timeout);
        } finally {
            if (output != null) {
                try {
                    Files.deleteIfExists(output);
                } catch (IOException ignored) {
                    // a temp file left behind is harmless
                }
            }
        }
    }

    /** The message of criu's first "Error (criu/vdso.c:613): vdso: ..." line, without its source location. */
    static String firstError(String output) {
        for (String line : output.lines().toList()) {
            int at = line.indexOf("Error (");
            if (at >= 0) {
                int end = line.indexOf("): ", at);
                return (end < 0 ? line.substring(at) : line.substring(end + 3)).strip();
            }
        }
        return "";
    }

    static Optional<Path> findOnPath(String program) {
        String path = System.getenv("PATH");
        for (String dir : path == null ? new String[0] : path.split(File.pathSeparator)) {
            if (!dir.isEmpty()) {
                Path candidate = Path.of(dir, program);
                if (Files.isRegularFile(candidate) && Files.isExecutable(candidate)) {
                    return Optional.of(candidate);
                }
            }
        }
        return Optional.empty();
    }
}
