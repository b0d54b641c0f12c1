package dev.capsule.runtime.network;

import java.util.List;

/**
 * What {@link SandboxNetworks#adopt} found after a restart.
 *
 * @param adopted networks of live sandboxes, kept and managed again with the policy the caller gave
 * @param removed sandbox ids whose networks were on the host but were removed: not live, or half-made (a
 *                live sandbox listed here lost its network and should be killed)
 * @param missing live sandbox ids with no network on the host
 */
public record Adoption(List<SandboxNetwork> adopted, List<String> removed, List<String> missing) {

    public Adoption {
        adopted = List.copyOf(adopted);
        removed = List.copyOf(removed);
        missing = List.copyOf(missing);
    }
}
