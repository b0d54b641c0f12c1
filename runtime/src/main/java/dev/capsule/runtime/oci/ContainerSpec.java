package dev.capsule.runtime.oci;

import dev.capsule.runtime.bundle.RuntimeBundle;
import dev.capsule.runtime.template.Template;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Everything needed to start one sandbox container.
 *
 * @param id               sandbox id; also the container id, the hostname and the cgroup's name
 * @param template         read-only lowest layer of the root filesystem
 * @param layers           read-only layers above the template (snapshots), top first; the sandbox's writable
 *                         layer goes above them
 * @param bundle           mounted read-only at /opt/capsule
 * @param networkNamespace path of an existing network namespace to join (e.g. /run/netns/x); empty: a new one
 *                         with only loopback
 * @param command          what the init (PID 1) runs, e.g. {@link RuntimeBundle#envdCommand}
 * @param env              environment of the command (PATH and HOME have defaults)
 * @param limits           cgroup limits
 * @param nameservers      written to the sandbox's /etc/resolv.conf
 */
public record ContainerSpec(String id, Template template, List<Path> layers, RuntimeBundle bundle,
                            Optional<Path> networkNamespace, List<String> command, Map<String, String> env,
                            ResourceLimits limits, List<String> nameservers) {

    public static final List<String> DEFAULT_NAMESERVERS = List.of("1.1.1.1", "8.8.8.8");

    public ContainerSpec {
        if (id == null || !id.matches("[a-z0-9][a-z0-9-]{0,62}")) {
            throw new IllegalArgumentException("sandbox id must be 1-63 lower-case letters, digits or '-', starting with"
                    + " a letter or digit (it is the hostname): " + id);
        }
        if (command.isEmpty()) {
            throw new IllegalArgumentException("sandbox " + id + ": command must not be empty");
        }
        layers = List.copyOf(layers);
        command = List.copyOf(command);
        env = Map.copyOf(env);
        nameservers = List.copyOf(nameservers);
    }

    /** A sandbox running {@code command}, with the template's resources, in a new loopback-only network. */
    public static ContainerSpec of(String id, Template template, RuntimeBundle bundle, List<String> command) {
        return new ContainerSpec(id, template, List.of(), bundle, Optional.empty(), command, Map.of(),
                ResourceLimits.of(template.resources()), DEFAULT_NAMESERVERS);
    }

    /** The lower dirs of the sandbox's overlay, top first: the layers, then the template's root filesystem. */
    public List<Path> lowerDirs() {
        List<Path> lowers = new java.util.ArrayList<>(layers);
        lowers.add(template.rootfs());
        return lowers;
    }

    public ContainerSpec withNetworkNamespace(Path path) {
        return new ContainerSpec(id, template, layers, bundle, Optional.of(path), command, env, limits, nameservers);
    }

    public ContainerSpec withLimits(ResourceLimits newLimits) {
        return new ContainerSpec(id, template, layers, bundle, networkNamespace, command, env, newLimits, nameservers);
    }

    public ContainerSpec withEnv(Map<String, String> newEnv) {
        return new ContainerSpec(id, template, layers, bundle, networkNamespace, command, newEnv, limits, nameservers);
    }
}
