package dev.capsule.runtime.microvm;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.capsule.runtime.NetworkPolicy;
import dev.capsule.runtime.network.PolicyJson;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Instant;
import java.util.Optional;

/**
 * What the driver records about a sandbox in its {@code vm.json}, for itself after a restart and for a resume after
 * a reboot: its template, start time and network policy (as the oci driver records them), how it was paused, its
 * machine size, the kernel command line its memory was booted with (a restore must repeat it), the snapshot
 * whose disk its own disk is stacked on, if any (so a deleted snapshot's files stay while sandboxes use them).
 */
record VmRecord(String sandboxId, String templateId, Instant startedAt, NetworkPolicy network, Status status,
                int cpus, int memoryMb, String append, String snapshot) {

    /** How the sandbox is, as far as the driver put it there (a VM recorded running may have died since). */
    enum Status {
        /** QEMU runs (or should: if it is gone, the sandbox only has its disk). */
        RUNNING,
        /** Saved with its memory ({@link VmDirectory#ram()} and {@link VmDirectory#state()}); no process. */
        FROZEN,
        /** Only its disk is kept. */
        STOPPED
    }

    private static final ObjectMapper JSON = new ObjectMapper();

    VmRecord with(Status newStatus) {
        return new VmRecord(sandboxId, templateId, startedAt, network, newStatus, cpus, memoryMb, append, snapshot);
    }

    VmRecord with(NetworkPolicy newPolicy) {
        return new VmRecord(sandboxId, templateId, startedAt, newPolicy, status, cpus, memoryMb, append, snapshot);
    }

    VmRecord withAppend(String newAppend) {
        return new VmRecord(sandboxId, templateId, startedAt, network, status, cpus, memoryMb, newAppend, snapshot);
    }

    void write(VmDirectory dir) {
        ObjectNode json = JSON.createObjectNode();
        json.put("sandboxId", sandboxId);
        json.put("templateId", templateId);
        json.put("startedAt", startedAt.toString());
        PolicyJson.write(json, "network", network);
        json.put("status", status.name().toLowerCase(java.util.Locale.ROOT));
        json.put("cpus", cpus);
        json.put("memoryMb", memoryMb);
        json.put("append", append);
        if (snapshot != null) {
            json.put("snapshot", snapshot);
        }
        Path temp = dir.dir().resolve(".vm.json.tmp");
        try {
            JSON.writeValue(temp.toFile(), json);
            Files.move(temp, dir.record(), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot record sandbox " + sandboxId + " in " + dir.record() + ": "
                    + e.getMessage(), e);
        }
    }

    /** The record, or empty when there is none or it is damaged (a half-created sandbox). */
    static Optional<VmRecord> read(VmDirectory dir) {
        try {
            JsonNode json = JSON.readTree(dir.record().toFile());
            JsonNode snapshot = json.get("snapshot");
            return Optional.of(new VmRecord(json.path("sandboxId").asText(), json.path("templateId").asText(),
                    Instant.parse(json.path("startedAt").asText()),
                    PolicyJson.read(json.path("network")),
                    Status.valueOf(json.path("status").asText().toUpperCase(java.util.Locale.ROOT)),
                    json.path("cpus").asInt(), json.path("memoryMb").asInt(), json.path("append").asText(),
                    snapshot == null ? null : snapshot.asText()));
        } catch (IOException | RuntimeException e) {
            return Optional.empty();
        }
    }
}
