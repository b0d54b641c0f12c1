package dev.capsule.runtime.network;

/**
 * A port on the host that sandboxes may open connections to (for example a DNS resolver or an egress proxy
 * run by Capsule). Everything else on the host is closed to sandboxes.
 */
public record HostService(Protocol protocol, int port) {

    public enum Protocol { TCP, UDP }

    public HostService {
        if (protocol == null) {
            throw new IllegalArgumentException("host service protocol is required (TCP or UDP)");
        }
        if (port < 1 || port > 65535) {
            throw new IllegalArgumentException("host service port must be 1..65535, got " + port);
        }
    }

    public static HostService tcp(int port) {
        return new HostService(Protocol.TCP, port);
    }

    public static HostService udp(int port) {
        return new HostService(Protocol.UDP, port);
    }
}
