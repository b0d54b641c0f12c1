package dev.capsule.runtime.template;

import dev.capsule.runtime.Resources;

import java.nio.file.Path;

/**
 * A built template: its root filesystem (a read-only lower layer shared by every sandbox made from it; nothing
 * may write to it) and the resources sandboxes get by default.
 */
public record Template(String name, String hash, Path rootfs, Resources resources) {
}
