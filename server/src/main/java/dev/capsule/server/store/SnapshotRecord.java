package dev.capsule.server.store;

import java.time.Instant;
import java.util.List;

/**
 * A snapshot: a template made from a sandbox's files. {@code id} is its template id and the driver's snapshot id;
 * {@code name} is the optional name it was given (unique; null when unnamed); {@code sourceSandboxId} the sandbox it
 * was taken from; {@code sizeBytes} what the driver reported it takes on disk.
 */
public record SnapshotRecord(String id, String name, String sourceSandboxId, Instant createdAt, long sizeBytes) {

    /** The tag every snapshot has, as E2B's {@code <template>:<tag>} references spell it. */
    public static final String TAG = "default";

    /**
     * E2B's {@code snapshotID}: {@code <name>:default} for a named snapshot (stable across re-snapshots under that
     * name), {@code <id>:default} for an unnamed one. Both work as a create's {@code templateID} and in
     * {@code DELETE /templates/{id}}.
     */
    public String snapshotId() {
        return (name == null ? id : name) + ":" + TAG;
    }

    /** E2B's {@code names}: the name, or none. */
    public List<String> names() {
        return name == null ? List.of() : List.of(name);
    }

    /** One page of a snapshot listing and the cursor of the next (null on the last page). */
    public record Page(List<SnapshotRecord> items, SandboxQuery.Cursor next) {
        public Page {
            items = List.copyOf(items);
        }
    }
}
