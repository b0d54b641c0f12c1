package dev.capsule.runtime.network;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

/**
 * Runs {@code ip} and {@code nft} with a script on stdin. Batches ({@code ip -batch -}, {@code nft -f -}) keep
 * a sandbox's set-up to a handful of processes, and {@code nft -f} applies a whole script as one transaction.
 */
final class HostCommands {

    private static final long TIMEOUT_SECONDS = 30;

    private final String ip = executable("ip");
    private final String nft = executable("nft");

    /** {@code ip [-n namespace] -batch -}: stops at the first failing line unless {@code force}. */
    Result ipBatch(String namespace, boolean force, String script) {
        List<String> command = new ArrayList<>(List.of(ip));
        if (namespace != null) {
            command.addAll(List.of("-n", namespace));
        }
        if (force) {
            command.add("-force");
        }
        command.addAll(List.of("-batch", "-"));
        return run(command, script);
    }

    /** {@code nft -f -}: the script is applied atomically or not at all. */
    Result nft(String script) {
        return run(List.of(nft, "-f", "-"), script);
    }

    record Result(List<String> command, String stdin, int exitCode, String stdout, String stderr) {
        boolean ok() {
            return exitCode == 0;
        }

        Result orThrow(String what) {
            if (!ok()) {
                throw new NetworkException(what + " failed: `" + String.join(" ", command) + "` exited "
                        + exitCode + ": " + stderr.strip() + (stdin.isEmpty() ? "" : "\nscript:\n" + stdin));
            }
            return this;
        }
    }

    private static Result run(List<String> command, String stdin) {
        Process process;
        try {
            process = new ProcessBuilder(command).start();
        } catch (IOException e) {
            throw new NetworkException("cannot run `" + String.join(" ", command) + "`: " + e.getMessage()
                    + " (install Debian's iproute2 and nftables and run as root)", e);
        }
        CompletableFuture<String> out = drain(process.getInputStream());
        CompletableFuture<String> err = drain(process.getErrorStream());
        try (OutputStream in = process.getOutputStream()) {
            in.write(stdin.getBytes(StandardCharsets.UTF_8));
        } catch (IOException e) {
            // The process exited before reading its script; its exit code and stderr say why.
        }
        try {
            if (!process.waitFor(TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
                process.destroyForcibly();
                throw new NetworkException("`" + String.join(" ", command) + "` did not finish within "
                        + TIMEOUT_SECONDS + " s; the host's networking may be stuck");
            }
            return new Result(command, stdin, process.exitValue(), out.get(), err.get());
        } catch (InterruptedException e) {
            process.destroyForcibly();
            Thread.currentThread().interrupt();
            throw new NetworkException("interrupted while running `" + String.join(" ", command) + "`", e);
        } catch (ExecutionException e) {
            throw new NetworkException("cannot read the output of `" + String.join(" ", command) + "`", e);
        }
    }

    private static CompletableFuture<String> drain(InputStream stream) {
        CompletableFuture<String> result = new CompletableFuture<>();
        Thread.ofVirtual().start(() -> {
            try (stream) {
                result.complete(new String(stream.readAllBytes(), StandardCharsets.UTF_8));
            } catch (IOException e) {
                result.completeExceptionally(e);
            }
        });
        return result;
    }

    /** Java may run with a PATH lacking /usr/sbin (where Debian puts both tools); prefer the absolute path. */
    private static String executable(String name) {
        for (String dir : List.of("/usr/sbin", "/sbin", "/usr/bin", "/bin")) {
            Path candidate = Path.of(dir, name);
            if (Files.isExecutable(candidate)) {
                return candidate.toString();
            }
        }
        return name;
    }
}
