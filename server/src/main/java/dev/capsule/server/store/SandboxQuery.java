package dev.capsule.server.store;

import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.Base64;
import java.util.Map;
import java.util.Set;

/**
 * One page of a sandbox listing: states to include, metadata every result must carry (AND), order by start time,
 * the cursor from the previous page (null for the first) and the page size.
 */
public record SandboxQuery(Set<SandboxState> states, Map<String, String> metadata, boolean ascending, Cursor after, int limit) {

    public SandboxQuery {
        states = Set.copyOf(states);
        metadata = Map.copyOf(metadata);
        if (limit < 1) throw new IllegalArgumentException("limit must be >= 1");
    }

    /**
     * A position in the (started_at, id) order of sandboxes — or the (created_at, id) order of snapshots, which
     * page the same way; opaque to clients as base64url text.
     */
    public record Cursor(Instant startedAt, String id) {

        public String encode() {
            return Base64.getUrlEncoder().withoutPadding()
                    .encodeToString((startedAt.toEpochMilli() + "__" + id).getBytes(StandardCharsets.UTF_8));
        }

        /** Decodes a token from {@link #encode()}; throws IllegalArgumentException for anything else. */
        public static Cursor decode(String token) {
            String text = new String(Base64.getUrlDecoder().decode(token), StandardCharsets.UTF_8);
            int sep = text.indexOf("__");
            if (sep <= 0) throw new IllegalArgumentException("not a cursor");
            return new Cursor(Instant.ofEpochMilli(Long.parseLong(text.substring(0, sep))), text.substring(sep + 2));
        }
    }

    /** A page and the cursor of the next one (null on the last page). */
    public record Page(java.util.List<SandboxRecord> items, Cursor next) {}
}
