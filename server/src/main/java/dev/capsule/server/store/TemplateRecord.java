package dev.capsule.server.store;

import dev.capsule.runtime.Resources;
import java.util.List;

/**
 * A template the server can start sandboxes from: its id, the aliases that name it, sandbox resources, and the
 * driver its sandboxes run on ({@code runtime}; null: the server's default).
 */
public record TemplateRecord(String id, List<String> aliases, Resources resources, String runtime) {
    public TemplateRecord {
        aliases = List.copyOf(aliases);
    }

    /** On the server's default driver. */
    public TemplateRecord(String id, List<String> aliases, Resources resources) {
        this(id, aliases, resources, null);
    }
}
