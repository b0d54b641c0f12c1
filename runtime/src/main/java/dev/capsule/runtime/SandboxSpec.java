package dev.capsule.runtime;

/**
 * What to start: a sandbox id (20 chars [a-z0-9] as E2B's; also its hostname), its template, resources and network
 * policy. A null {@code resources} means the template's; a null {@code network} means {@link NetworkPolicy#OPEN}.
 */
public record SandboxSpec(String sandboxId, String templateId, Resources resources, NetworkPolicy network) {}
