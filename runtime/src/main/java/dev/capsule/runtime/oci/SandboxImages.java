package dev.capsule.runtime.oci;

import dev.capsule.runtime.RuntimeFailure;
import dev.capsule.runtime.UnknownTemplate;
import dev.capsule.runtime.bundle.BundleCache;
import dev.capsule.runtime.bundle.BundleInputs;
import dev.capsule.runtime.bundle.RuntimeBundle;
import dev.capsule.runtime.layer.Layer;
import dev.capsule.runtime.layer.LayerStore;
import dev.capsule.runtime.template.Template;
import dev.capsule.runtime.template.TemplateCache;

import java.util.List;
import java.util.Optional;

/**
 * What the oci driver makes sandboxes from: template builds (only {@value OciRuntime#BASE_TEMPLATE} for now, built
 * the first time it is needed: minutes), the snapshot layers stacked on them, and the runtime bundle mounted into
 * every sandbox. A template id names a template or a snapshot.
 */
final class SandboxImages {

    private final OciRuntimeConfig config;
    private final TemplateCache templates;
    private final BundleCache bundles;
    private final LayerStore layers;
    private final Object resolveLock = new Object();
    private volatile RuntimeBundle bundle;

    SandboxImages(OciRuntimeConfig config, LayerStore layers) {
        this.config = config;
        this.templates = new TemplateCache(config.cacheDir().resolve("templates"));
        this.bundles = new BundleCache(config.cacheDir().resolve("bundles"));
        this.layers = layers;
    }

    /**
     * The root filesystem of a new sandbox from {@code templateId}: a template, or a snapshot taken on this host.
     *
     * @throws UnknownTemplate there is neither
     */
    Rootfs rootfs(String templateId) {
        if (OciRuntime.BASE_TEMPLATE.equals(templateId)) {
            Template template = template(templateId);
            return new Rootfs(template, List.of(), template.resources());
        }
        Optional<Layer> snapshot = templateId == null || templateId.isBlank() ? Optional.empty()
                : layers.find(templateId);
        Layer top = snapshot.orElseThrow(() -> new UnknownTemplate(templateId, "template '" + templateId
                + "' does not exist: the oci driver has template '" + OciRuntime.BASE_TEMPLATE + "' and the "
                + "snapshots taken on this host; create the sandbox from one of them"));
        return new Rootfs(templateBuild(top.templateName(), top.templateHash(), "snapshot '" + templateId + "'"),
                layers.layers(top.chain()), top.resources());
    }

    /** The root filesystem a sandbox was made with, as its record says. */
    Rootfs rootfs(SandboxManifest manifest) {
        return new Rootfs(templateBuild(manifest.templateName(), manifest.templateHash(),
                "sandbox " + manifest.sandboxId()), layers.layers(manifest.layers()), manifest.resources());
    }

    /** The current build of template {@code name}, built now if it is not in the cache. */
    Template template(String name) {
        if (!OciRuntime.BASE_TEMPLATE.equals(name)) {
            throw new UnknownTemplate(name, "template '" + name + "' does not exist: the oci driver has only '"
                    + OciRuntime.BASE_TEMPLATE + "' for now; create the sandbox from '" + OciRuntime.BASE_TEMPLATE
                    + "'");
        }
        return templates.base();
    }

    /**
     * The template build {@code what} (a sandbox or a snapshot) rests on: the current build of its template, or
     * the earlier one it was made from while that is still in the template cache. An empty hash means the current.
     */
    private Template templateBuild(String name, String hash, String what) {
        Template current = template(name);
        if (hash.isEmpty() || hash.equals(current.hash())) {
            return current;
        }
        try {
            return templates.find(name, hash).orElseThrow(() -> new RuntimeFailure(what + " was made from template "
                    + "build " + name + "-" + hash + ", which is no longer in " + templates.dir() + "; it cannot be "
                    + "started again"));
        } catch (IllegalStateException e) {
            throw new RuntimeFailure(e.getMessage(), e);
        }
    }

    /** The runtime bundle of the configured envd build, built now if it is not in the cache. */
    RuntimeBundle bundle() {
        RuntimeBundle current = bundle;
        if (current == null) {
            synchronized (resolveLock) {
                if (bundle == null) {
                    BundleInputs inputs = BundleInputs.ofBuild(config.envdJar(), config.execHelper());
                    try {
                        bundle = bundles.ensure(inputs);
                    } catch (RuntimeException e) {
                        throw new RuntimeFailure("cannot build the runtime bundle in " + bundles.dir() + ": "
                                + e.getMessage(), e);
                    }
                }
                current = bundle;
            }
        }
        return current;
    }
}
