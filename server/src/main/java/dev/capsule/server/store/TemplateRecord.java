package dev.capsule.server.store;

import dev.capsule.runtime.Resources;
import java.util.List;

/** A template the server can start sandboxes from: its id, the aliases that name it, and sandbox resources. */
public record TemplateRecord(String id, List<String> aliases, Resources resources) {
    public TemplateRecord {
        aliases = List.copyOf(aliases);
    }
}
