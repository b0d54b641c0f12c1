package dev.capsule.runtime.oci;

import dev.capsule.runtime.Resources;
import dev.capsule.runtime.layer.Layer;
import dev.capsule.runtime.template.Template;

import java.nio.file.Path;
import java.util.List;

/**
 * What a sandbox's root filesystem stacks below its own writable layer: snapshot layers (top first) over a template
 * build; and the resources a sandbox made from it gets unless asked for others.
 */
record Rootfs(Template template, List<Layer> layers, Resources resources) {

    Rootfs {
        layers = List.copyOf(layers);
    }

    List<String> layerNames() {
        return layers.stream().map(Layer::name).toList();
    }

    List<Path> layerDirs() {
        return layers.stream().map(Layer::fs).toList();
    }
}
