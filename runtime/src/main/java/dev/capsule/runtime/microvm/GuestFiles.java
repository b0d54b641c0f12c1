package dev.capsule.runtime.microvm;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;

/** The guest-side files shipped in this package: scripts, and the static {@code capsule-guest} the build compiles. */
final class GuestFiles {

    private GuestFiles() {
    }

    static byte[] bytes(String name) {
        try (InputStream in = GuestFiles.class.getResourceAsStream(name)) {
            if (in == null) {
                throw new IllegalStateException("resource " + name + " is missing from the runtime's classes;"
                        + " build the runtime module with ./mvnw (it compiles capsule-guest with gcc)");
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read resource " + name + ": " + e.getMessage(), e);
        }
    }

    static String text(String name) {
        return new String(bytes(name), StandardCharsets.UTF_8);
    }
}
