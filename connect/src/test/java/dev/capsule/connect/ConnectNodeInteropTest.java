package dev.capsule.connect;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;

/**
 * Interop with the official Connect client for Node ({@code @connectrpc/connect-node}, versions pinned in
 * {@code src/test/node/package-lock.json}): runs {@code src/test/node/interop.mjs} against a live server over
 * HTTP/1.1 and h2c, with the JSON and binary codecs. Installs the npm packages itself when they are missing;
 * fails (never skips) when node or npm is not there, since this is the proof that real clients work.
 */
class ConnectNodeInteropTest {
    private static final Path NODE_DIR = Path.of("src/test/node").toAbsolutePath();
    private static EchoServer server;

    @BeforeAll
    static void start() throws Exception {
        if (!Files.isDirectory(NODE_DIR.resolve("node_modules/@connectrpc/connect-node"))) {
            Run install = run(List.of("npm", "ci", "--no-audit", "--no-fund"), 600);
            if (install.exitCode != 0) {
                fail("npm ci in " + NODE_DIR + " failed (exit " + install.exitCode + "):\n" + install.output);
            }
        }
        server = new EchoServer();
    }

    @AfterAll
    static void stop() throws Exception {
        if (server != null) {
            server.close();
        }
    }

    @Test
    void officialConnectNodeClientPassesEveryCheck() throws Exception {
        Run run = run(List.of("node", "interop.mjs", "http://127.0.0.1:" + server.port()), 300);

        System.out.println(run.output); // kept in the surefire report
        List<String> lines = run.output.lines().toList();
        assertThat(lines).as("node output:\n%s", run.output).noneMatch(line -> line.startsWith("FAIL"));
        assertThat(run.exitCode).as("node exit code; output:\n%s", run.output).isZero();
        // 4 transports (HTTP/1.1 and h2c, JSON and proto) x 12 checks.
        assertThat(lines).as("node output:\n%s", run.output).contains("DONE 48/48");
    }

    private record Run(int exitCode, String output) {}

    /** Runs a command in the node folder; a missing executable or a hang fails the test with a clear message. */
    private static Run run(List<String> command, int timeoutSeconds) throws Exception {
        Path log = Files.createTempFile("connect-node-", ".log");
        try {
            Process process;
            try {
                process = new ProcessBuilder(command).directory(NODE_DIR.toFile()).redirectErrorStream(true)
                        .redirectOutput(log.toFile()).start();
            } catch (IOException e) {
                throw new AssertionError("cannot run '" + String.join(" ", command) + "': install Node.js 20+ and npm"
                        + " (this interop test is required, not optional): " + e.getMessage(), e);
            }
            if (!process.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
                process.descendants().forEach(ProcessHandle::destroyForcibly);
                process.destroyForcibly();
                process.waitFor(30, TimeUnit.SECONDS);
                fail("'" + String.join(" ", command) + "' did not finish within " + timeoutSeconds + " s; output:\n"
                        + Files.readString(log, StandardCharsets.UTF_8));
            }
            return new Run(process.exitValue(), Files.readString(log, StandardCharsets.UTF_8));
        } finally {
            Files.deleteIfExists(log);
        }
    }
}
