package dev.capsule.runtime.network.egress;

import org.xbill.DNS.Flags;
import org.xbill.DNS.Message;
import org.xbill.DNS.Opcode;
import org.xbill.DNS.Rcode;
import org.xbill.DNS.Record;
import org.xbill.DNS.Section;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.DatagramChannel;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;

/**
 * The DNS server every sandbox's queries end at: nftables redirects all UDP and TCP port 53 traffic from sandbox
 * interfaces to it, whatever address the sandbox sent it to, so editing resolv.conf changes nothing. It answers only
 * sandboxes (by source address, which the host's anti-spoofing rule guarantees) and forwards their queries to
 * {@link UpstreamDns}; for a sandbox whose policy denies everything not allowed, names outside its allowed domains
 * get NXDOMAIN without leaving the host, so DNS cannot be used to leak data to an outside name server.
 */
final class DnsServer implements AutoCloseable {

    private static final System.Logger LOG = System.getLogger(DnsServer.class.getName());
    private static final int MAX_UDP = 65_535;
    private static final int TCP_IDLE_MILLIS = 10_000;

    private final UpstreamDns upstream;
    private final EgressDirectory directory;
    private final DatagramChannel udp;
    private final ServerSocketChannel tcp;
    private final Thread udpLoop;
    private final Thread tcpLoop;
    private volatile boolean closed;

    DnsServer(UpstreamDns upstream, EgressDirectory directory) throws IOException {
        this.upstream = upstream;
        this.directory = directory;
        this.udp = DatagramChannel.open().bind(new InetSocketAddress(0));
        try {
            this.tcp = ServerSocketChannel.open().bind(new InetSocketAddress(0), 256);
        } catch (IOException e) {
            udp.close();
            throw e;
        }
        this.udpLoop = Thread.ofVirtual().name("capsule-dns-udp").start(this::serveUdp);
        this.tcpLoop = Thread.ofVirtual().name("capsule-dns-tcp").start(this::serveTcp);
    }

    int udpPort() {
        return udp.socket().getLocalPort();
    }

    int tcpPort() {
        return tcp.socket().getLocalPort();
    }

    private void serveUdp() {
        while (!closed) {
            ByteBuffer packet = ByteBuffer.allocate(MAX_UDP);
            InetSocketAddress client;
            try {
                client = (InetSocketAddress) udp.receive(packet);
            } catch (ClosedChannelException e) {
                return;
            } catch (IOException e) {
                LOG.log(System.Logger.Level.WARNING, "sandbox DNS: receiving failed", e);
                continue;
            }
            packet.flip();
            byte[] query = new byte[packet.remaining()];
            packet.get(query);
            Thread.ofVirtual().start(() -> {
                Message reply = answer(query, client.getAddress());
                if (reply != null) {
                    try {
                        udp.send(ByteBuffer.wrap(reply.toWire(maxUdpSize(query))), client);
                    } catch (IOException e) {
                        LOG.log(System.Logger.Level.DEBUG, "sandbox DNS: cannot answer " + client, e);
                    }
                }
            });
        }
    }

    private void serveTcp() {
        while (!closed) {
            SocketChannel connection;
            try {
                connection = tcp.accept();
            } catch (ClosedChannelException e) {
                return;
            } catch (IOException e) {
                LOG.log(System.Logger.Level.WARNING, "sandbox DNS: accepting failed", e);
                continue;
            }
            Thread.ofVirtual().start(() -> serveTcpConnection(connection));
        }
    }

    /** RFC 7766: two-byte length, message; several queries may follow on one connection. */
    private void serveTcpConnection(SocketChannel connection) {
        try (connection) {
            Socket socket = connection.socket();
            socket.setSoTimeout(TCP_IDLE_MILLIS);
            InetAddress client = ((InetSocketAddress) connection.getRemoteAddress()).getAddress();
            DataInputStream in = new DataInputStream(socket.getInputStream());
            DataOutputStream out = new DataOutputStream(socket.getOutputStream());
            while (!closed) {
                byte[] query = new byte[in.readUnsignedShort()];
                in.readFully(query);
                Message reply = answer(query, client);
                if (reply == null) {
                    return;
                }
                byte[] wire = reply.toWire(65_535);
                out.writeShort(wire.length);
                out.write(wire);
                out.flush();
            }
        } catch (EOFException | SocketTimeoutException e) {
            // the client is done
        } catch (IOException e) {
            LOG.log(System.Logger.Level.DEBUG, "sandbox DNS over TCP failed", e);
        }
    }

    /** The reply to one query from {@code client}; null to drop it (not from a sandbox, or not a DNS query). */
    Message answer(byte[] wire, InetAddress client) {
        EgressRules rules = directory.rulesFor(client);
        if (rules == null) {
            return null;
        }
        Message query;
        try {
            query = new Message(wire);
        } catch (IOException e) {
            return null;
        }
        if (query.getHeader().getFlag(Flags.QR)) {
            return null;
        }
        Record question = query.getQuestion();
        if (query.getHeader().getOpcode() != Opcode.QUERY) {
            return error(query, Rcode.NOTIMP);
        }
        if (question == null) {
            return error(query, Rcode.FORMERR);
        }
        String name = question.getName().toString(true);
        if (rules.denyAll() && !rules.allowsName(name)) {
            return error(query, Rcode.NXDOMAIN);
        }
        try {
            Message reply = upstream.forward(query.clone());
            reply.getHeader().setID(query.getHeader().getID());
            return reply;
        } catch (IOException e) {
            LOG.log(System.Logger.Level.DEBUG, "sandbox DNS: " + name + ": " + e.getMessage());
            return error(query, Rcode.SERVFAIL);
        }
    }

    private static Message error(Message query, int rcode) {
        Message reply = new Message(query.getHeader().getID());
        reply.getHeader().setFlag(Flags.QR);
        reply.getHeader().setOpcode(query.getHeader().getOpcode());
        if (query.getHeader().getFlag(Flags.RD)) {
            reply.getHeader().setFlag(Flags.RD);
        }
        reply.getHeader().setFlag(Flags.RA);
        reply.getHeader().setRcode(rcode);
        if (query.getQuestion() != null) {
            reply.addRecord(query.getQuestion(), Section.QUESTION);
        }
        return reply;
    }

    /** What the client can take over UDP: 512 bytes, or its EDNS payload size (RFC 6891). */
    private static int maxUdpSize(byte[] wire) {
        try {
            var opt = new Message(wire).getOPT();
            return opt == null ? 512 : Math.max(512, Math.min(MAX_UDP, opt.getPayloadSize()));
        } catch (IOException e) {
            return 512;
        }
    }

    @Override
    public void close() {
        closed = true;
        try {
            udp.close();
            tcp.close();
            udpLoop.join();
            tcpLoop.join();
        } catch (IOException e) {
            LOG.log(System.Logger.Level.WARNING, "closing the sandbox DNS server failed", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
