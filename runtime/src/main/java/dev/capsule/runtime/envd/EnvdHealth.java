package dev.capsule.runtime.envd;

import dev.capsule.runtime.RuntimeFailure;
import dev.capsule.runtime.SandboxInstance;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;

/**
 * Waiting for a just-started sandbox's envd to answer {@code GET /health} with 204: a container's cold start, a
 * VM's boot or restore. Every driver waits the same way.
 */
public final class EnvdHealth {

    private static final long POLL_MILLIS = 10;

    private EnvdHealth() {
    }

    /**
     * Polls until envd at {@code address} is healthy; fails early when {@code alive} says the sandbox (its init, its
     * VM) is gone, and after {@code timeout}. {@code console} gives the console's tail for the message.
     *
     * @throws RuntimeFailure the sandbox ended first, or envd did not answer in time
     */
    public static void await(String sandboxId, InetAddress address, Duration timeout, BooleanSupplier alive,
                             Supplier<String> console) throws InterruptedException {
        InetSocketAddress envd = new InetSocketAddress(address, SandboxInstance.ENVD_PORT);
        long deadline = System.nanoTime() + timeout.toNanos();
        String last = "no answer yet";
        while (true) {
            try {
                int status = status(envd);
                if (status == 204) {
                    return;
                }
                last = "GET /health answered " + status;
            } catch (IOException e) {
                last = e.getMessage();
            }
            if (!alive.getAsBoolean()) {
                // a VM ends when its envd does, so for both drivers it is envd that exited
                throw new RuntimeFailure("envd in sandbox " + sandboxId + " exited before answering /health (" + last
                        + "); console log: " + console.get());
            }
            if (System.nanoTime() > deadline) {
                throw new RuntimeFailure("envd in sandbox " + sandboxId + " did not answer /health at " + envd
                        + " within " + timeout.toSeconds() + " s (" + last + "); console log: " + console.get());
            }
            Thread.sleep(POLL_MILLIS);
        }
    }

    /** One plain HTTP/1.1 request on a fresh connection: nothing pooled that outlives the sandbox. */
    private static int status(InetSocketAddress envd) throws IOException {
        try (Socket socket = new Socket()) {
            socket.connect(envd, 1000);
            socket.setSoTimeout(2000);
            OutputStream out = socket.getOutputStream();
            out.write(("GET /health HTTP/1.1\r\nHost: " + envd.getHostString() + ":" + envd.getPort()
                    + "\r\nConnection: close\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            out.flush();
            String statusLine = new BufferedReader(new InputStreamReader(socket.getInputStream(),
                    StandardCharsets.US_ASCII)).readLine();
            if (statusLine == null || !statusLine.startsWith("HTTP/1.") || statusLine.length() < 12) {
                throw new IOException("envd closed the connection without an HTTP status (" + statusLine + ")");
            }
            return Integer.parseInt(statusLine.substring(9, 12));
        }
    }
}
