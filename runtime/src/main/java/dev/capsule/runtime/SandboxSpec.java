package dev.capsule.runtime;

/**
 * What to start: a sandbox id (20 chars [a-z0-9] as E2B's; also its hostname), its template, resources and network
 * policy, and the driver to run it on. A null {@code resources} means the template's; a null {@code network} means
 * {@link NetworkPolicy#OPEN}; a null {@code runtime} means the default driver (see {@link Drivers}; a single driver
 * ignores it).
 */
public record SandboxSpec(String sandboxId, String templateId, Resources resources, NetworkPolicy network,
                          String runtime) {

    /** On the default driver. */
    public SandboxSpec(String sandboxId, String templateId, Resources resources, NetworkPolicy network) {
        this(sandboxId, templateId, resources, network, null);
    }
}
