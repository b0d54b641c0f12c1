package dev.capsule.runtime.oci;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.capsule.runtime.NetworkPolicy;
import dev.capsule.runtime.Resources;
import dev.capsule.runtime.RuntimeFailure;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * What the oci driver records about a sandbox in {@code <data>/sandboxes/<id>/sandbox.json}: what the host does not
 * tell a restarted driver, and all a cold boot needs besides the sandbox's files. A sandbox without it was never
 * fully created. Written atomically (a temp file renamed over it).
 *
 * @param templateId   what the sandbox was started from as the caller named it: a template or a snapshot id
 * @param templateName the template build its root filesystem rests on ({@code base}) ...
 * @param templateHash ... and that build's recipe hash; empty in records written before it was recorded (then the
 *                     current build is meant)
 * @param layers       the snapshot layers between the template and the sandbox's own writes, top first, by name
 * @param resources    the limits it runs with; a cold boot gives it the same
 * @param startedAt    when it was first started (a cold boot does not change it)
 * @param network      its egress policy, re-applied when its network is re-made (after a restart or a cold boot)
 */
record SandboxManifest(String sandboxId, String templateId, String templateName, String templateHash,
                       List<String> layers, Resources resources, Instant startedAt, NetworkPolicy network) {

    private static final ObjectMapper JSON = new ObjectMapper();

    SandboxManifest {
        layers = List.copyOf(layers);
    }

    SandboxManifest withNetwork(NetworkPolicy policy) {
        return new SandboxManifest(sandboxId, templateId, templateName, templateHash, layers, resources, startedAt,
                policy);
    }

    void write(SandboxDirectory dir) {
        ObjectNode json = JSON.createObjectNode();
        json.put("sandboxId", sandboxId);
        json.put("templateId", templateId);
        ObjectNode template = json.putObject("template");
        template.put("name", templateName);
        template.put("hash", templateHash);
        layers.forEach(json.putArray("layers")::add);
        json.set("resources", JSON.valueToTree(resources));
        json.put("startedAt", startedAt.toString());
        ObjectNode policy = json.putObject("network");
        policy.put("internetAccess", network.internetAccess());
        network.allowOut().forEach(policy.putArray("allowOut")::add);
        network.denyOut().forEach(policy.putArray("denyOut")::add);
        Path temp = dir.dir().resolve(".sandbox.json.tmp");
        try {
            JSON.writerWithDefaultPrettyPrinter().writeValue(temp.toFile(), json);
            Files.move(temp, dir.metadata(), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            throw new RuntimeFailure("cannot record sandbox " + sandboxId + " in " + dir.metadata() + ": "
                    + e.getMessage(), e);
        }
    }

    /**
     * The record of the sandbox in {@code dir}, or empty when there is none (half-created) or it cannot be read.
     * {@code defaults} are the resources of records written before they were recorded.
     */
    static Optional<SandboxManifest> read(SandboxDirectory dir, Resources defaults) {
        Path file = dir.metadata();
        if (!Files.isRegularFile(file)) {
            return Optional.empty();
        }
        try {
            JsonNode json = JSON.readTree(file.toFile());
            JsonNode policy = json.path("network");
            List<String> allow = new ArrayList<>();
            policy.path("allowOut").forEach(node -> allow.add(node.asText()));
            List<String> deny = new ArrayList<>();
            policy.path("denyOut").forEach(node -> deny.add(node.asText()));
            List<String> layers = new ArrayList<>();
            json.path("layers").forEach(node -> layers.add(node.asText()));
            String templateId = json.path("templateId").asText();
            JsonNode limits = json.path("resources");
            Resources resources = limits.isObject() ? JSON.treeToValue(limits, Resources.class) : defaults;
            return Optional.of(new SandboxManifest(json.path("sandboxId").asText(), templateId,
                    json.path("template").path("name").asText(templateId),
                    json.path("template").path("hash").asText(""), layers, resources,
                    Instant.parse(json.path("startedAt").asText()),
                    new NetworkPolicy(policy.path("internetAccess").asBoolean(true), allow, deny)));
        } catch (IOException | RuntimeException e) {
            return Optional.empty(); // damaged: not a usable sandbox
        }
    }
}
