package dev.capsule.connect;

import dev.capsule.connect.testing.CountRequest;
import dev.capsule.connect.testing.CountResponse;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * What happens when the client misbehaves on a raw HTTP/1.1 connection: it stops reading (the handler's send must
 * block, not buffer), or it hangs up mid-stream (the handler must be cancelled and end).
 */
class FlowControlTest {
    private EchoServer server;

    @BeforeEach
    void start() throws Exception {
        server = new EchoServer();
    }

    @AfterEach
    void stop() throws Exception {
        server.close();
    }

    private Socket openCount(CountRequest request, int receiveBuffer) throws IOException {
        Socket socket = new Socket();
        socket.setReceiveBufferSize(receiveBuffer);
        socket.connect(new InetSocketAddress("127.0.0.1", server.port()));
        byte[] body = Wire.envelope(0, request.toByteArray());
        String head = "POST /test.Echo/Count HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + "Content-Type: application/connect+proto\r\nConnect-Protocol-Version: 1\r\n"
                + "Content-Length: " + body.length + "\r\n\r\n";
        OutputStream out = socket.getOutputStream();
        out.write(head.getBytes(StandardCharsets.US_ASCII));
        out.write(body);
        out.flush();
        return socket;
    }

    @Test
    void sendBlocksWhileTheClientDoesNotReadAndResumesWhenItDoes() throws Exception {
        int messages = 100;
        int messageBytes = 1024 * 1024;
        try (Socket socket = openCount(CountRequest.newBuilder().setUpTo(messages).setPayloadBytes(messageBytes)
                .build(), 64 * 1024)) {
            // Wait until the handler is stuck: started, and no further send completes between two polls.
            int[] last = {-1};
            await().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(500)).until(() -> {
                int now = server.sent.get();
                boolean stuck = now == last[0] && now > 0;
                last[0] = now;
                return stuck;
            });
            // Kernel socket buffers hold a few MB at most; had send() not blocked, all 100 MB would be queued.
            // (+1: send() hands a message over and returns; the next one waits until that one was written.)
            assertThat(server.sent.get()).isLessThan(20 + 1);
            assertThat(server.running.get()).isEqualTo(1);

            InputStream in = new BufferedInputStream(socket.getInputStream());
            assertThat(readHead(in)).startsWith("HTTP/1.1 200").contains("application/connect+proto");
            InputStream body = new ChunkedInputStream(in);
            for (int i = 1; i <= messages; i++) {
                Wire.Frame frame = Wire.readFrame(body);
                assertThat(frame.isEnd()).isFalse();
                CountResponse message = CountResponse.parseFrom(frame.payload());
                assertThat(message.getNumber()).isEqualTo(i);
                assertThat(message.getPayload().size()).isEqualTo(messageBytes);
            }
            Wire.Frame end = Wire.readFrame(body);
            assertThat(end.isEnd()).isTrue();
            assertThat(end.text()).isEqualTo("{}");
        }
        assertThat(server.handlerOutcomes.poll(30, TimeUnit.SECONDS)).isEqualTo("ok");
    }

    @Test
    void aClientThatNeverReadsAndHangsUpCancelsTheBlockedHandler() throws Exception {
        Socket socket = openCount(CountRequest.newBuilder().setUpTo(100).setPayloadBytes(1024 * 1024).build(),
                64 * 1024);
        int[] last = {-1};
        await().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(500)).until(() -> {
            int now = server.sent.get();
            boolean stuck = now == last[0] && now > 0;
            last[0] = now;
            return stuck;
        });

        socket.close();

        ConnectException reason = server.cancellations.poll(30, TimeUnit.SECONDS);
        assertThat(reason).isNotNull();
        assertThat(reason.code()).isEqualTo(Code.CANCELED);
        assertThat(server.handlerOutcomes.poll(30, TimeUnit.SECONDS)).isEqualTo("canceled");
        await().atMost(Duration.ofSeconds(30)).until(() -> server.running.get() == 0);
    }

    @Test
    void aClientThatHangsUpMidStreamCancelsTheHandler() throws Exception {
        try (Socket socket = openCount(CountRequest.newBuilder().setUpTo(1_000_000).setDelayMs(5).build(),
                64 * 1024)) {
            InputStream in = new BufferedInputStream(socket.getInputStream());
            assertThat(readHead(in)).startsWith("HTTP/1.1 200");
            InputStream body = new ChunkedInputStream(in);
            for (int i = 1; i <= 3; i++) {
                assertThat(CountResponse.parseFrom(Wire.readFrame(body).payload()).getNumber()).isEqualTo(i);
            }
        }

        ConnectException reason = server.cancellations.poll(30, TimeUnit.SECONDS);
        assertThat(reason).isNotNull();
        assertThat(reason.code()).isEqualTo(Code.CANCELED);
        // The handler's next send() threw CANCELED and it returned: nothing keeps running for a gone client.
        assertThat(server.handlerOutcomes.poll(30, TimeUnit.SECONDS)).isEqualTo("canceled");
        await().atMost(Duration.ofSeconds(30)).until(() -> server.running.get() == 0);
    }

    @Test
    void aClientThatHangsUpDuringAClientStreamCancelsTheHandler() throws Exception {
        try (Socket socket = new Socket("127.0.0.1", server.port())) {
            OutputStream out = socket.getOutputStream();
            out.write(("POST /test.Echo/Collect HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    + "Content-Type: application/connect+json\r\nTransfer-Encoding: chunked\r\n\r\n")
                    .getBytes(StandardCharsets.US_ASCII));
            byte[] frame = Wire.envelope(0, Wire.utf8("{\"text\":\"a\"}"));
            out.write((Integer.toHexString(frame.length) + "\r\n").getBytes(StandardCharsets.US_ASCII));
            out.write(frame);
            out.write("\r\n".getBytes(StandardCharsets.US_ASCII));
            out.flush();
            await().atMost(Duration.ofSeconds(30)).until(() -> server.running.get() == 1);
        }

        assertThat(server.handlerOutcomes.poll(30, TimeUnit.SECONDS)).isEqualTo("canceled");
        await().atMost(Duration.ofSeconds(30)).until(() -> server.running.get() == 0);
    }

    private static String readHead(InputStream in) throws IOException {
        ByteArrayOutputStream head = new ByteArrayOutputStream();
        int matched = 0;
        while (matched < 4) {
            int b = in.read();
            if (b < 0) {
                throw new IOException("connection closed inside the response head");
            }
            head.write(b);
            matched = (b == (matched % 2 == 0 ? '\r' : '\n')) ? matched + 1 : (b == '\r' ? 1 : 0);
        }
        return head.toString(StandardCharsets.US_ASCII);
    }

    /** Decodes an HTTP/1.1 chunked body. */
    private static final class ChunkedInputStream extends InputStream {
        private final InputStream in;
        private long remaining;
        private boolean done;

        ChunkedInputStream(InputStream in) {
            this.in = in;
        }

        @Override
        public int read() throws IOException {
            byte[] one = new byte[1];
            return read(one, 0, 1) < 0 ? -1 : one[0] & 0xff;
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            if (done) {
                return -1;
            }
            if (remaining == 0) {
                String line = readLine();
                if (line.isEmpty()) {
                    line = readLine(); // the CRLF that ends the previous chunk
                }
                remaining = Long.parseLong(line.split(";")[0].trim(), 16);
                if (remaining == 0) {
                    done = true;
                    return -1;
                }
            }
            int n = in.read(b, off, (int) Math.min(len, remaining));
            if (n < 0) {
                throw new IOException("connection closed inside a chunk");
            }
            remaining -= n;
            return n;
        }

        private String readLine() throws IOException {
            StringBuilder line = new StringBuilder();
            for (int c = in.read(); c != '\n'; c = in.read()) {
                if (c < 0) {
                    throw new IOException("connection closed inside a chunk header");
                }
                if (c != '\r') {
                    line.append((char) c);
                }
            }
            return line.toString();
        }
    }
}
