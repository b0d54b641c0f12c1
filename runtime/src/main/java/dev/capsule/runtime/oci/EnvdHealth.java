package dev.capsule.runtime.oci;

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
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

/** Waiting for a just-started sandbox's envd to answer {@code GET /health}, as a cold start and a cold boot do. */
final class EnvdHealth {

    private static final long POLL_MILLIS = 10;

    private EnvdHealth() {
    }

    /** Waits until envd answers 204 at {@code /health}, failing early with the console log if the sandbox dies. */
    static void await(Sandbox container, InetAddress address, Duration timeout) throws InterruptedException {
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
            if (!alive(container.pid())) {
                throw new RuntimeFailure("envd in sandbox " + container.id() + " exited before answering /health ("
                        + last + "); console log: " + RuncRuntime.logTail(container.directory()));
            }
            if (System.nanoTime() > deadline) {
                throw new RuntimeFailure("envd in sandbox " + container.id() + " did not answer /health at " + envd
                        + " within " + timeout.toSeconds() + " s (" + last + "); console log: "
                        + RuncRuntime.logTail(container.directory()));
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

    /** Whether the host process {@code pid} (the sandbox's init) still runs: not gone, not a zombie. */
    private static boolean alive(int pid) {
        try {
            String stat = Files.readString(Path.of("/proc", String.valueOf(pid), "stat"));
            char state = stat.charAt(stat.lastIndexOf(')') + 2);
            return state != 'Z' && state != 'X';
        } catch (IOException | RuntimeException e) {
            return false;
        }
    }
}
