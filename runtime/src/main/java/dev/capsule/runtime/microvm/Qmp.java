package dev.capsule.runtime.microvm;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.ConnectException;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * A connection to a QEMU's QMP socket (its JSON control protocol): one command at a time, each answered by
 * {@code return} or {@code error}; asynchronous events are skipped. A reader thread hands answers over, so every
 * command waits at most its timeout even when QEMU hangs.
 */
final class Qmp implements AutoCloseable {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final JsonNode CLOSED = JSON.createObjectNode().put("closed", true);

    private final Path socket;
    private final SocketChannel channel;
    private final OutputStream out;
    private final BlockingQueue<JsonNode> answers = new LinkedBlockingQueue<>();

    private Qmp(Path socket, SocketChannel channel) {
        this.socket = socket;
        this.channel = channel;
        this.out = Channels.newOutputStream(channel);
        BufferedReader in = new BufferedReader(new InputStreamReader(Channels.newInputStream(channel),
                StandardCharsets.UTF_8));
        Thread.ofVirtual().name("qmp-" + socket.getFileName()).start(() -> {
            try {
                String line;
                while ((line = in.readLine()) != null) {
                    JsonNode message = JSON.readTree(line);
                    if (!message.has("event")) {
                        answers.add(message);
                    }
                }
            } catch (IOException e) {
                // closed by us or by QEMU's exit: the waiting command learns it from CLOSED
            }
            answers.add(CLOSED);
        });
    }

    /**
     * Connects, reads the greeting and leaves capabilities negotiation, so commands can be sent. A starting QEMU
     * has its socket file a moment before it listens: refused connections are retried until {@code timeout}.
     */
    static Qmp connect(Path socket, Duration timeout) throws IOException {
        long deadline = System.nanoTime() + timeout.toNanos();
        SocketChannel channel;
        while (true) {
            try {
                channel = SocketChannel.open(UnixDomainSocketAddress.of(socket));
                break;
            } catch (ConnectException e) {
                if (System.nanoTime() > deadline) {
                    throw e;
                }
                Qemu.sleep(5);
            }
        }
        Qmp qmp = new Qmp(socket, channel);
        try {
            JsonNode greeting = qmp.next(timeout);
            if (!greeting.has("QMP")) {
                throw new IOException("QEMU's monitor at " + socket + " did not greet with QMP: " + greeting);
            }
            qmp.execute("qmp_capabilities", null, timeout);
            return qmp;
        } catch (IOException | RuntimeException e) {
            qmp.close();
            throw e;
        }
    }

    /** Runs {@code command} with {@code arguments} (null: none) and returns its {@code return} value. */
    JsonNode execute(String command, ObjectNode arguments, Duration timeout) throws IOException {
        ObjectNode request = JSON.createObjectNode().put("execute", command);
        if (arguments != null) {
            request.set("arguments", arguments);
        }
        out.write((request + "\n").getBytes(StandardCharsets.UTF_8));
        out.flush();
        JsonNode answer = next(timeout);
        if (answer.has("error")) {
            throw new IOException("QEMU refused " + command + ": " + answer.path("error").path("desc").asText());
        }
        return answer.path("return");
    }

    JsonNode execute(String command, Duration timeout) throws IOException {
        return execute(command, null, timeout);
    }

    static ObjectNode arguments() {
        return JSON.createObjectNode();
    }

    private JsonNode next(Duration timeout) throws IOException {
        try {
            JsonNode answer = answers.poll(timeout.toMillis(), TimeUnit.MILLISECONDS);
            if (answer == null) {
                throw new IOException("QEMU's monitor at " + socket + " did not answer within " + timeout.toMillis()
                        + " ms");
            }
            if (answer == CLOSED) {
                answers.add(CLOSED);
                throw new IOException("QEMU closed its monitor at " + socket + " (it exited)");
            }
            return answer;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while waiting for QEMU's monitor at " + socket, e);
        }
    }

    @Override
    public void close() {
        try {
            channel.close();
        } catch (IOException ignored) {
            // closing a socket that is already gone
        }
    }
}
