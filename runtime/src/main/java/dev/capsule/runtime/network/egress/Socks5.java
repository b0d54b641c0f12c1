package dev.capsule.runtime.network.egress;

import dev.capsule.runtime.NetworkPolicy;

import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Inet4Address;
import java.nio.charset.StandardCharsets;

/**
 * The client side of a SOCKS5 CONNECT (RFC 1928) with optional username/password authentication (RFC 1929), on a
 * connection already open to the proxy. Afterwards the connection carries the tunnelled stream.
 */
final class Socks5 {

    private static final int VERSION = 5;
    private static final int NO_AUTH = 0;
    private static final int USER_PASS = 2;
    private static final int CONNECT = 1;
    private static final int IPV4 = 1;
    private static final int DOMAIN = 3;
    private static final int IPV6 = 4;

    private Socks5() {}

    /**
     * Asks the proxy to connect to {@code host} (a name the proxy resolves) or {@code address}, at {@code port}.
     *
     * @throws IOException the proxy refused, needs credentials we lack, or does not speak SOCKS5
     */
    static void connect(InputStream in, OutputStream out, NetworkPolicy.EgressProxy proxy, String host,
                        Inet4Address address, int port) throws IOException {
        DataInputStream reply = new DataInputStream(in);
        boolean credentials = proxy.username() != null;
        out.write(credentials ? new byte[] {VERSION, 2, NO_AUTH, USER_PASS} : new byte[] {VERSION, 1, NO_AUTH});
        out.flush();
        int version = reply.readUnsignedByte();
        int method = reply.readUnsignedByte();
        if (version != VERSION) {
            throw new IOException("egress proxy " + proxy.address() + " does not speak SOCKS5 (answered version "
                    + version + ")");
        }
        if (method == USER_PASS && credentials) {
            authenticate(reply, out, proxy);
        } else if (method != NO_AUTH) {
            throw new IOException("egress proxy " + proxy.address() + " accepts none of our authentication methods"
                    + (credentials ? "" : " (it may need a username and password)"));
        }
        ByteArrayOutputStream request = new ByteArrayOutputStream();
        request.write(new byte[] {VERSION, CONNECT, 0});
        if (host != null) {
            byte[] name = host.getBytes(StandardCharsets.US_ASCII);
            request.write(DOMAIN);
            request.write(name.length);
            request.write(name);
        } else {
            request.write(IPV4);
            request.write(address.getAddress());
        }
        request.write(port >> 8);
        request.write(port & 0xff);
        out.write(request.toByteArray());
        out.flush();
        if (reply.readUnsignedByte() != VERSION) {
            throw new IOException("egress proxy " + proxy.address() + " sent a malformed CONNECT reply");
        }
        int status = reply.readUnsignedByte();
        reply.readUnsignedByte(); // reserved
        int type = reply.readUnsignedByte();
        int addressLength = switch (type) {
            case IPV4 -> 4;
            case IPV6 -> 16;
            case DOMAIN -> reply.readUnsignedByte();
            default -> throw new IOException("egress proxy " + proxy.address() + " sent address type " + type);
        };
        reply.readFully(new byte[addressLength + 2]); // bound address and port
        if (status != 0) {
            throw new IOException("egress proxy " + proxy.address() + " refused CONNECT to "
                    + (host != null ? host : address.getHostAddress()) + ":" + port + " (SOCKS5 status " + status
                    + ")");
        }
    }

    private static void authenticate(DataInputStream reply, OutputStream out, NetworkPolicy.EgressProxy proxy)
            throws IOException {
        byte[] user = proxy.username().getBytes(StandardCharsets.UTF_8);
        byte[] password = proxy.password() == null ? new byte[0] : proxy.password().getBytes(StandardCharsets.UTF_8);
        ByteArrayOutputStream request = new ByteArrayOutputStream();
        request.write(1);
        request.write(user.length);
        request.write(user);
        request.write(password.length);
        request.write(password);
        out.write(request.toByteArray());
        out.flush();
        reply.readUnsignedByte(); // sub-negotiation version
        if (reply.readUnsignedByte() != 0) {
            throw new IOException("egress proxy " + proxy.address() + " rejected the username and password");
        }
    }
}
