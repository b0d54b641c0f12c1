package dev.capsule.runtime;

/**
 * The result of {@link SandboxRuntime#resume}: the sandbox as it runs now (its address may differ after a cold
 * boot), and whether its memory was kept — false when it was cold-booted from its filesystem, so its processes
 * started afresh.
 */
public record Resumed(SandboxInstance instance, boolean memoryKept) {}
