package dev.capsule.server.store;

import java.util.Locale;

/** A sandbox row's state. Killed sandboxes have no row; {@code CREATING} rows are never listed or routed to. */
public enum SandboxState {
    CREATING, RUNNING, PAUSED;

    /** The spelling in the database and in E2B's API. */
    public String wire() {
        return name().toLowerCase(Locale.ROOT);
    }

    public static SandboxState fromWire(String s) {
        return valueOf(s.toUpperCase(Locale.ROOT));
    }
}
