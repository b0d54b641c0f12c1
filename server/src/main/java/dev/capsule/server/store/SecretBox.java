package dev.capsule.server.store;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.GeneralSecurityException;
import java.security.SecureRandom;
import java.util.Base64;
import javax.crypto.Cipher;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.SecretKeySpec;

/**
 * Encrypts the secrets the store must give back in clear (envd access tokens — {@code GET /sandboxes/{id}} returns
 * them — and env vars, which envd's {@code /init} needs again after a cold resume) with AES-256-GCM under a key kept
 * in a 0600 file in the data directory, outside the database. A database dump or a shared PostgreSQL then holds no
 * usable token; whoever can read the data directory can, as they can reach the sandboxes anyway. Several API nodes
 * on one PostgreSQL need the same key file.
 */
public final class SecretBox {

    private static final String PREFIX = "v1:";
    private static final SecureRandom RANDOM = new SecureRandom();
    private final SecretKeySpec key;

    public SecretBox(byte[] key) {
        if (key.length != 32) throw new IllegalArgumentException("AES-256 key must be 32 bytes, got " + key.length);
        this.key = new SecretKeySpec(key, "AES");
    }

    /** Loads the key from {@code file}, creating it (0600) with a fresh random key on first use. */
    public static SecretBox fromKeyFile(Path file) {
        try {
            if (!Files.exists(file)) {
                byte[] fresh = new byte[32];
                RANDOM.nextBytes(fresh);
                Files.createDirectories(file.toAbsolutePath().getParent());
                try {
                    Files.createFile(file, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
                    Files.write(file, Base64.getEncoder().encode(fresh));
                } catch (FileAlreadyExistsException raced) {
                    // another process created it first; use theirs
                }
            }
            byte[] k = Base64.getDecoder().decode(Files.readString(file).strip());
            return new SecretBox(k);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read or create the store key " + file
                    + "; check that the data directory is writable", e);
        } catch (IllegalArgumentException e) {
            throw new IllegalStateException("the store key " + file + " is corrupt (" + e.getMessage()
                    + "); restore it from a backup — without it stored access tokens cannot be read", e);
        }
    }

    public String seal(String plain) {
        try {
            byte[] iv = new byte[12];
            RANDOM.nextBytes(iv);
            Cipher c = Cipher.getInstance("AES/GCM/NoPadding");
            c.init(Cipher.ENCRYPT_MODE, key, new GCMParameterSpec(128, iv));
            byte[] ct = c.doFinal(plain.getBytes(StandardCharsets.UTF_8));
            return PREFIX + Base64.getEncoder().encodeToString(ByteBuffer.allocate(12 + ct.length).put(iv).put(ct).array());
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("AES-GCM unavailable", e);
        }
    }

    public String open(String sealed) {
        if (!sealed.startsWith(PREFIX)) {
            throw new IllegalStateException("stored secret has an unknown format; was the database written by a newer Capsule?");
        }
        try {
            byte[] all = Base64.getDecoder().decode(sealed.substring(PREFIX.length()));
            Cipher c = Cipher.getInstance("AES/GCM/NoPadding");
            c.init(Cipher.DECRYPT_MODE, key, new GCMParameterSpec(128, all, 0, 12));
            return new String(c.doFinal(all, 12, all.length - 12), StandardCharsets.UTF_8);
        } catch (GeneralSecurityException | IllegalArgumentException e) {
            throw new IllegalStateException("cannot decrypt a stored secret: the store key file does not match this"
                    + " database; use the data directory's original store.key", e);
        }
    }
}
