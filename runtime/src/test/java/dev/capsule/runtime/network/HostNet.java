package dev.capsule.runtime.network;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * Test helpers that look at and act on the host with the real tools: run commands, start tiny TCP servers in
 * namespaces, and try connections from inside a namespace. Only loopback and test-made namespaces are used.
 */
public final class HostNet {

    static final String PYTHON = Files.isExecutable(Path.of("/usr/bin/python3")) ? "/usr/bin/python3" : "python3";

    /** Listens on all addresses of its namespace, says "ready", answers every connection with a greeting. */
    private static final String SERVER = """
            import socket, sys, threading
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16)
            print("ready", flush=True)
            def answer(c):
                c.sendall(b"hello from " + sys.argv[3].encode() + b"\\n"); c.close()
            while True:
                c, _ = s.accept(); threading.Thread(target=answer, args=(c,), daemon=True).start()
            """;

    /** Exit 0 and prints the greeting if a connection to host:port got one within the timeout. */
    private static final String CLIENT = """
            import socket, sys
            try:
                c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
                print(c.recv(100).decode().strip()); sys.exit(0)
            except OSError as e:
                print(e, file=sys.stderr); sys.exit(1)
            """;

    /** Prints "ready", then the payload of every UDP datagram it receives, one per line. */
    private static final String UDP_SINK = """
            import socket, sys
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", int(sys.argv[1])))
            print("ready", flush=True)
            while True:
                data, _ = s.recvfrom(100); print(data.decode(), flush=True)
            """;

    private static final String UDP_SEND = """
            import socket, sys
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])))
            """;

    private HostNet() {}

    /** Sends one UDP datagram from inside {@code namespace}. */
    static void sendUdpFrom(String namespace, String host, int port, String payload) {
        ok("ip", "netns", "exec", namespace, PYTHON, "-c", UDP_SEND, host, Integer.toString(port), payload);
    }

    /** Collects the payloads of UDP datagrams arriving at a port in {@code namespace}. */
    static final class UdpSink implements AutoCloseable {
        private final Process process;
        private final java.util.concurrent.BlockingQueue<String> received =
                new java.util.concurrent.LinkedBlockingQueue<>();

        UdpSink(String namespace, int port) {
            try {
                process = new ProcessBuilder("ip", "netns", "exec", namespace, PYTHON, "-u", "-c", UDP_SINK,
                        Integer.toString(port)).redirectError(ProcessBuilder.Redirect.DISCARD).start();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            BufferedReader out = new BufferedReader(new InputStreamReader(process.getInputStream(),
                    StandardCharsets.UTF_8));
            Thread.ofVirtual().start(() -> {
                try {
                    for (String line; (line = out.readLine()) != null; ) {
                        received.add(line);
                    }
                } catch (IOException e) {
                    // the sink was closed
                }
            });
            String ready = next(20);
            if (!"ready".equals(ready)) {
                process.destroyForcibly();
                throw new IllegalStateException("UDP sink in " + namespace + " did not start");
            }
        }

        /** The next payload, or null if none arrives within the timeout. */
        String next(double timeoutSeconds) {
            try {
                return received.poll((long) (timeoutSeconds * 1000), TimeUnit.MILLISECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return null;
            }
        }

        @Override
        public void close() throws InterruptedException {
            process.destroy();
            if (!process.waitFor(5, TimeUnit.SECONDS)) {
                process.destroyForcibly();
                process.waitFor();
            }
        }
    }

    public record Run(int exitCode, String stdout, String stderr) {}

    public static Run run(String... command) {
        try {
            Process process = new ProcessBuilder(command).start();
            CompletableFuture<String> err = CompletableFuture.supplyAsync(() -> readAll(process, true));
            String out = readAll(process, false);
            if (!process.waitFor(30, TimeUnit.SECONDS)) {
                process.destroyForcibly();
                throw new IllegalStateException("timed out: " + String.join(" ", command));
            }
            return new Run(process.exitValue(), out, err.join());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    public static String ok(String... command) {
        Run run = run(command);
        if (run.exitCode() != 0) {
            throw new IllegalStateException(String.join(" ", command) + " failed: " + run.stderr());
        }
        return run.stdout();
    }

    private static String readAll(Process process, boolean error) {
        try {
            return new String((error ? process.getErrorStream() : process.getInputStream()).readAllBytes(),
                    StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** A greeting server in {@code namespace}; closing it ends the process (by its own handle). */
    public static final class Server implements AutoCloseable {
        private final Process process;

        public Server(String namespace, String bind, int port, String name) {
            List<String> command = new ArrayList<>(List.of("ip", "netns", "exec", namespace));
            command.addAll(List.of(PYTHON, "-u", "-c", SERVER, bind, Integer.toString(port), name));
            try {
                process = new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.DISCARD).start();
                BufferedReader out = new BufferedReader(new InputStreamReader(process.getInputStream(),
                        StandardCharsets.UTF_8));
                String line = CompletableFuture.supplyAsync(() -> {
                    try {
                        return out.readLine();
                    } catch (IOException e) {
                        throw new UncheckedIOException(e);
                    }
                }).get(20, TimeUnit.SECONDS);
                if (!"ready".equals(line)) {
                    process.destroyForcibly();
                    throw new IllegalStateException("server in " + namespace + " did not start: " + line);
                }
            } catch (Exception e) {
                throw new IllegalStateException("cannot start a server in " + namespace, e);
            }
        }

        @Override
        public void close() throws InterruptedException {
            process.destroy();
            if (!process.waitFor(5, TimeUnit.SECONDS)) {
                process.destroyForcibly();
                process.waitFor();
            }
        }
    }

    /** The greeting read from host:port by a client inside {@code namespace}, or null if it could not connect. */
    static String connectFrom(String namespace, String host, int port, double timeoutSeconds) {
        Run run = run("ip", "netns", "exec", namespace, PYTHON, "-c", CLIENT, host, Integer.toString(port),
                Double.toString(timeoutSeconds));
        return run.exitCode() == 0 ? run.stdout().strip() : null;
    }

    /** The greeting read from host:port by the host itself, or null. */
    static String connectFromHost(String host, int port) {
        try (java.net.Socket socket = new java.net.Socket()) {
            socket.connect(new java.net.InetSocketAddress(host, port), 2000);
            socket.setSoTimeout(2000);
            return new String(socket.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
        } catch (IOException e) {
            return null;
        }
    }

    public static List<String> namespaces(String prefix) {
        return ok("ip", "netns", "list").lines()
                .map(line -> line.split(" ")[0])
                .filter(name -> name.startsWith(prefix))
                .toList();
    }

    public static List<String> links(String prefix) {
        return ok("ip", "-o", "link", "show").lines()
                .map(line -> line.split(":")[1].strip().split("@")[0])
                .filter(name -> name.startsWith(prefix))
                .toList();
    }

    public static List<String> nftTables() {
        return ok("nft", "list", "tables").lines().map(String::strip).toList();
    }
}
