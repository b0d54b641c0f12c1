package dev.capsule.runtime.network;

import dev.capsule.runtime.NetworkPolicy;

import java.net.Inet4Address;
import java.nio.file.Path;

/**
 * One sandbox's network as it exists on the host: a named network namespace holding {@code eth0} with
 * {@code address}, whose default route points at {@code gateway}, the host end of a veth pair called
 * {@code hostInterface}. A runtime joins the namespace by its path (runc: {@code "path"} of the network
 * namespace); the gateway reaches the sandbox's ports at {@code address}.
 */
public record SandboxNetwork(
        String sandboxId,
        String namespace,
        Path namespacePath,
        String hostInterface,
        String sandboxInterface,
        Inet4Address gateway,
        Inet4Address address,
        int prefixLength,
        NetworkPolicy policy) {

    /** The sandbox's address as {@code 10.11.0.2}, for URLs and logs. */
    public String addressText() {
        return address.getHostAddress();
    }

    /**
     * The sandbox's resolv.conf: its gateway, where Capsule's DNS server answers (all the sandbox's DNS ends there
     * anyway, whatever server it names).
     */
    public String resolvConf() {
        return "nameserver " + gateway.getHostAddress() + "\n";
    }

    /** The name servers the sandbox's resolv.conf lists: its gateway. */
    public java.util.List<String> nameservers() {
        return java.util.List.of(gateway.getHostAddress());
    }

    SandboxNetwork withPolicy(NetworkPolicy newPolicy) {
        return new SandboxNetwork(sandboxId, namespace, namespacePath, hostInterface, sandboxInterface, gateway,
                address, prefixLength, newPolicy);
    }
}
