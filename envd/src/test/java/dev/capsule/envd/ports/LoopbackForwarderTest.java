package dev.capsule.envd.ports;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import dev.capsule.envd.ports.LoopbackForwarder.Listener;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The loopback forwarder against real sockets: a server on 127.0.0.1 only becomes reachable on another address. */
class LoopbackForwarderTest {

    @Test
    void parsesListenersFromProcNetTcp() {
        String tcp = """
                  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
                   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
                   1: 00000000:C35F 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1
                   2: 0100007F:1F40 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 3 1
                   3: 0B0A0B0A:1F41 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4 1
                   4: 0200007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4 1
                garbage line
                """;
        assertThat(LoopbackForwarder.parse(tcp, false)).containsExactly(
                new Listener(8000, true, false), new Listener(50015, false, false),
                new Listener(8001, false, false), new Listener(80, true, false));
        String tcp6 = """
                  sl  local_address                         remote_address                        st
                   0: 00000000000000000000000001000000:0BB8 00000000000000000000000000000000:0000 0A 0 0 0 0
                   1: 0000000000000000FFFF00000100007F:0BB9 00000000000000000000000000000000:0000 0A 0 0 0 0
                   2: 00000000000000000000000000000000:0BBA 00000000000000000000000000000000:0000 0A 0 0 0 0
                """;
        assertThat(LoopbackForwarder.parse(tcp6, true)).containsExactly(
                new Listener(3000, true, true), new Listener(3001, true, false), new Listener(3002, false, true));
    }

    @Test
    void thisMachinesTableListsALoopbackServer() throws IOException {
        try (ServerSocket server = new ServerSocket(0, 10, InetAddress.getByName("127.0.0.1"))) {
            assertThat(LoopbackForwarder.procNetTcp()).contains(new Listener(server.getLocalPort(), true, false));
        }
    }

    @Test
    void relaysALoopbackOnlyServerOnAnotherAddressAndStopsWhenItGoes() throws Exception {
        InetAddress outside = LoopbackForwarder.sandboxAddresses().stream().findFirst()
                .orElseThrow(() -> new AssertionError("this test needs a non-loopback IPv4 address"));
        ServerSocket server = new ServerSocket(0, 10, InetAddress.getByName("127.0.0.1"));
        int port = server.getLocalPort();
        Thread echo = Thread.ofVirtual().start(() -> serveUppercase(server));
        // Only this test's port is forwardable: the host's own loopback services stay private.
        try (var forwarder = new LoopbackForwarder(LoopbackForwarder::procNetTcp, () -> List.of(outside),
                p -> p == port, Duration.ofMillis(50)).start()) {
            await().atMost(Duration.ofSeconds(10)).until(() -> forwarder.forwardedPorts().contains(port));
            assertThat(forwarder.forwardedPorts()).containsExactly(port);
            for (int i = 0; i < 3; i++) {
                assertThat(roundTrip(new InetSocketAddress(outside, port), "hello " + i)).isEqualTo("HELLO " + i);
            }

            server.close();
            echo.join();
            await().atMost(Duration.ofSeconds(10)).until(() -> forwarder.forwardedPorts().isEmpty());
            assertThatThrownBy(() -> roundTrip(new InetSocketAddress(outside, port), "x")).isInstanceOf(IOException.class);
        }
    }

    @Test
    void leavesPortsAloneThatAlsoListenElsewhere() {
        var forwarder = new LoopbackForwarder(
                () -> List.of(new Listener(7000, true, false), new Listener(7000, false, true)),
                () -> { throw new AssertionError("must not bind anything"); }, p -> true, Duration.ofSeconds(1));
        forwarder.scanOnce();
        assertThat(forwarder.forwardedPorts()).isEmpty();
        forwarder.close();
    }

    /** Sends one line, half-closes, and reads the answer until the peer closes. */
    private static String roundTrip(InetSocketAddress address, String line) throws IOException {
        try (Socket s = new Socket()) {
            s.connect(address, 2000);
            s.setSoTimeout(5000);
            s.getOutputStream().write(line.getBytes(StandardCharsets.UTF_8));
            s.shutdownOutput();
            String answer = new String(s.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (answer.isEmpty()) throw new IOException("connection closed without an answer");
            return answer;
        }
    }

    /** Answers each connection with its input upper-cased, until the server socket closes. */
    private static void serveUppercase(ServerSocket server) {
        while (!server.isClosed()) {
            try (Socket s = server.accept()) {
                InputStream in = s.getInputStream();
                OutputStream out = s.getOutputStream();
                out.write(new String(in.readAllBytes(), StandardCharsets.UTF_8).toUpperCase().getBytes(StandardCharsets.UTF_8));
            } catch (IOException e) {
                return;
            }
        }
    }
}
