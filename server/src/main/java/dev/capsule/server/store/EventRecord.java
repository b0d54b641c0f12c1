package dev.capsule.server.store;

import java.time.Instant;

/** A sandbox lifecycle event ({@code sandbox.lifecycle.created}, {@code ...killed}, ...) with optional JSON data. */
public record EventRecord(String id, String sandboxId, String type, String data, Instant createdAt) {}
