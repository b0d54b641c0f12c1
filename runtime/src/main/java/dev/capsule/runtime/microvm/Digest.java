package dev.capsule.runtime.microvm;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;

/** A short SHA-256 over texts and file contents: the names of the driver's build cache entries. */
final class Digest {

    private final MessageDigest digest;

    Digest() {
        try {
            digest = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    Digest text(String text) {
        digest.update((text + "\n").getBytes(StandardCharsets.UTF_8));
        return this;
    }

    Digest bytes(byte[] bytes) {
        text("bytes " + bytes.length);
        digest.update(bytes);
        return this;
    }

    Digest file(Path file) {
        text("file " + file.getFileName());
        try (InputStream in = new DigestInputStream(Files.newInputStream(file), digest)) {
            in.transferTo(OutputStream.nullOutputStream());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
        }
        return this;
    }

    /** The first 8 bytes of the digest in hex. */
    String hex() {
        return HexFormat.of().formatHex(digest.digest(), 0, 8);
    }
}
