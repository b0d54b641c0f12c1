package dev.capsule.runtime;

/** What to start: a sandbox id (20 chars [a-z0-9], also its hostname), its template, resources and network policy. */
public record SandboxSpec(String sandboxId, String templateId, Resources resources, NetworkPolicy network) {}
