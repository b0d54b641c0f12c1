package dev.capsule.runtime.layer;

import dev.capsule.runtime.Resources;

import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;

/**
 * A read-only filesystem layer in a {@link LayerStore}: the writable layer of a sandbox as it was when snapshot
 * {@code snapshotId} was taken, in overlayfs's format (deleted files are whiteouts, replaced directories are
 * opaque). It only means something stacked on the layers it was taken over: {@code parents} (top first), then
 * the template build {@code templateName}-{@code templateHash}.
 *
 * @param name       its directory's name in the store; unique, never reused (an id can be taken again after
 *                   a delete while sandboxes still use the old layer)
 * @param resources  the limits of the sandbox it was taken from, the default of sandboxes started from it
 * @param sizeBytes  what its files take on disk
 * @param dir        its directory: {@code fs/} and {@code layer.json}
 */
public record Layer(String name, String snapshotId, String templateName, String templateHash, List<String> parents,
                    Resources resources, long sizeBytes, Instant createdAt, Path dir) {

    public Layer {
        parents = List.copyOf(parents);
    }

    /** The files: what an overlay stacks as a lower dir. */
    public Path fs() {
        return dir.resolve("fs");
    }

    /** This layer and the ones below it, top first, by name: the layers a sandbox started from it stacks. */
    public List<String> chain() {
        List<String> chain = new ArrayList<>();
        chain.add(name);
        chain.addAll(parents);
        return chain;
    }
}
