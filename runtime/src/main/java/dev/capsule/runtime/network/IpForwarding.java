package dev.capsule.runtime.network;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The host's {@code net.ipv4.ip_forward}, which NAT egress needs. When Capsule is the one turning it on, it
 * leaves a marker under the run directory, adds a guard rule so only sandbox traffic is forwarded, and turns
 * forwarding off again once no sandbox veth of any instance is left. If forwarding was already on, it belongs
 * to someone else (Docker, a router set-up) and Capsule neither guards nor resets it.
 */
final class IpForwarding {

    private static final Path SYSCTL = Path.of("/proc/sys/net/ipv4/ip_forward");
    private static final Path LINKS = Path.of("/sys/class/net");

    private final Path marker;

    IpForwarding(Path runDirectory) {
        this.marker = runDirectory.resolve("ip_forward-enabled-by-capsule");
    }

    /** Whether forwarding rules must carry the guard: forwarding is off now, or Capsule turned it on. */
    boolean needsGuard() {
        return !enabled() || Files.exists(marker);
    }

    /** Turns forwarding on, remembering that Capsule did. Call after the guard is in place. */
    void enable() {
        if (enabled()) {
            return;
        }
        try {
            Files.createDirectories(marker.getParent());
            Files.writeString(marker, "Capsule set net.ipv4.ip_forward=1; it resets it when no sandbox is left\n");
            Files.writeString(SYSCTL, "1\n");
        } catch (IOException e) {
            throw new NetworkException("cannot enable IPv4 forwarding (" + SYSCTL + "): " + e.getMessage()
                    + "; Capsule must run as root", e);
        }
    }

    /** Turns forwarding off if Capsule turned it on and no Capsule sandbox veth exists on the host any more. */
    void restoreIfUnused() {
        if (!Files.exists(marker) || anySandboxLink()) {
            return;
        }
        try {
            Files.writeString(SYSCTL, "0\n");
            Files.deleteIfExists(marker);
        } catch (IOException e) {
            throw new NetworkException("cannot reset IPv4 forwarding (" + SYSCTL + "): " + e.getMessage(), e);
        }
    }

    static boolean enabled() {
        try {
            return Files.readString(SYSCTL).strip().equals("1");
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + SYSCTL, e);
        }
    }

    private static boolean anySandboxLink() {
        try (DirectoryStream<Path> links = Files.newDirectoryStream(LINKS)) {
            for (Path link : links) {
                try {
                    if (Integer.parseInt(Files.readString(link.resolve("netdev_group")).strip())
                            == NftRuleset.LINK_GROUP) {
                        return true;
                    }
                } catch (IOException | NumberFormatException e) {
                    // The link went away while we looked, or has no group: not a sandbox link.
                }
            }
            return false;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list " + LINKS, e);
        }
    }
}
