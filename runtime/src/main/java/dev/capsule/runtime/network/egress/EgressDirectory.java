package dev.capsule.runtime.network.egress;

import java.net.InetAddress;

/** How the egress services find the policy of the sandbox a packet came from, by its (anti-spoofed) address. */
@FunctionalInterface
public interface EgressDirectory {

    /** The rules of the sandbox at {@code address}, or null when no sandbox has it. */
    EgressRules rulesFor(InetAddress address);
}
