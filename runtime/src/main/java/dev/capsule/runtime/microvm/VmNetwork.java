package dev.capsule.runtime.microvm;

import dev.capsule.runtime.host.Command;
import dev.capsule.runtime.network.SandboxNetwork;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * Puts a VM on a sandbox network made by {@link dev.capsule.runtime.network.SandboxNetworks}: inside the sandbox's
 * namespace, a bridge joins the namespace's {@code eth0} (the veth whose other end is the host's gateway) and the
 * tap QEMU opens, and the sandbox's address moves from the namespace to the guest's own {@code eth0}. The host
 * then sees the guest exactly where it would see a container (same address, same veth), so NAT, isolation and
 * egress policy are the network code's, unchanged. The namespace itself holds no address. Everything here goes
 * with the namespace when the network is released.
 */
final class VmNetwork {

    private static final String BRIDGE = "br0";

    private VmNetwork() {
    }

    /** Adds the bridge and the tap to the sandbox's namespace, unless they are there already. */
    static void attach(SandboxNetwork network) {
        if (Command.run(List.of(Tools.path("ip"), "-n", network.namespace(), "link", "show", Qemu.TAP), 30).ok()) {
            return;
        }
        String sandbox = network.sandboxInterface();
        batch(network.namespace(), String.join("\n",
                "route del default",
                "addr flush dev " + sandbox,
                "link add " + BRIDGE + " type bridge",
                "link set " + sandbox + " master " + BRIDGE,
                "tuntap add dev " + Qemu.TAP + " mode tap",
                "link set " + Qemu.TAP + " master " + BRIDGE,
                "link set " + Qemu.TAP + " up",
                "link set " + BRIDGE + " up", ""));
    }

    /**
     * Aborts the host's TCP connections to a VM that ended without its memory (killed or stopped). Its guest could
     * not close them, and a client that pools connections (the gateway) would otherwise send its next request on
     * one of them to whatever next has that address, and get a reset. Needs the kernel's socket destroy support
     * (Debian's has it); where it is missing, such a connection fails once.
     */
    static void abortConnections(SandboxNetwork network) {
        Command.run(List.of(Tools.path("ss"), "-K", "-t", "dst", network.addressText()), 30);
    }

    private static void batch(String namespace, String script) {
        Path file = null;
        try {
            file = Files.createTempFile("capsule-vmnet", ".ip");
            Files.writeString(file, script);
            Command.run(List.of(Tools.path("ip"), "-n", namespace, "-batch", file.toString()), 30).orThrow();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the ip batch for namespace " + namespace + ": "
                    + e.getMessage(), e);
        } finally {
            if (file != null) {
                try {
                    Files.deleteIfExists(file);
                } catch (IOException ignored) {
                    // a temp file left behind is harmless
                }
            }
        }
    }
}
