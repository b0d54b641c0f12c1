package dev.capsule.server.auth;

import dev.capsule.server.store.ApiKeyRecord;
import dev.capsule.server.store.Store;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.SecureRandom;
import java.time.Clock;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;
import java.util.regex.Pattern;

/**
 * API keys: {@code e2b_} + 40 hex digits, the format E2B's older SDKs check client-side. Only the SHA-256 of a key
 * is stored, under the key's id — its first 8 hex digits — so a check looks the id up and compares the hashes in
 * constant time; no plain key is ever stored or logged. These are the methods behind {@code capsule keys
 * create|list|revoke}.
 */
public final class ApiKeys {

    private static final Pattern FORMAT = Pattern.compile("e2b_[0-9a-f]{40}");
    private static final int ID_LENGTH = 8;
    private static final SecureRandom RANDOM = new SecureRandom();

    private final Store store;
    private final Clock clock;

    public ApiKeys(Store store, Clock clock) {
        this.store = store;
        this.clock = clock;
    }

    /** A key as listed: never the key itself. */
    public record KeyInfo(String id, String name, java.time.Instant createdAt, boolean revoked, ApiKeyRecord.Limits limits) {}

    /** A freshly created key: the only moment its plain text exists. */
    public record CreatedKey(String id, String name, String key) {}

    /** Creates a key named {@code name} (a label for people) and returns it in clear, once. */
    public CreatedKey create(String name) {
        if (name == null || name.isBlank() || name.length() > 200) {
            throw new IllegalArgumentException("a key needs a name of 1 to 200 characters, e.g. 'ci' or 'laptop'");
        }
        for (int attempt = 0; ; attempt++) {
            byte[] raw = new byte[20];
            RANDOM.nextBytes(raw);
            String key = "e2b_" + HexFormat.of().formatHex(raw);
            String id = idOf(key);
            if (store.findApiKey(id).isPresent()) {
                if (attempt > 10) throw new IllegalStateException("cannot find a free key id");
                continue; // 32-bit id collision: draw again
            }
            store.insertApiKey(new ApiKeyRecord(id, sha256(key), name.strip(), clock.instant(), null, null));
            return new CreatedKey(id, name.strip(), key);
        }
    }

    public List<KeyInfo> list() {
        return store.listApiKeys().stream().map(ApiKeys::info).toList();
    }

    /** The key with this id (or this whole key). */
    public Optional<KeyInfo> find(String idOrKey) {
        return store.findApiKey(idFrom(idOrKey)).map(ApiKeys::info);
    }

    private static KeyInfo info(ApiKeyRecord k) {
        return new KeyInfo(k.id(), k.name(), k.createdAt(), k.revoked(), k.limits());
    }

    /** Revokes the key with this id (or the whole key); false when no active key matches. */
    public boolean revoke(String idOrKey) {
        return store.revokeApiKey(idFrom(idOrKey), clock.instant());
    }

    /** The stored key {@code presented} is, when it is an active key. Blocks on the store: call it off the event loop. */
    public Optional<ApiKeyRecord> authenticate(String presented) {
        if (presented == null || !FORMAT.matcher(presented).matches()) return Optional.empty();
        Optional<ApiKeyRecord> record = store.findApiKey(idOf(presented));
        if (record.isEmpty() || record.get().revoked()) return Optional.empty();
        boolean same = MessageDigest.isEqual(
                record.get().keyHash().getBytes(StandardCharsets.US_ASCII),
                sha256(presented).getBytes(StandardCharsets.US_ASCII));
        return same ? record : Optional.empty();
    }

    /**
     * Gives the key with this id (or the whole key) its own limits, replacing the server's settings where a field
     * is set; false when there is no such key.
     */
    public boolean setLimits(String idOrKey, ApiKeyRecord.Limits limits) {
        return store.setApiKeyLimits(idFrom(idOrKey), limits);
    }

    /**
     * On a first start (no active key in the store) creates a key, writes it to {@code keyFile} (0600) and returns
     * it so the caller can print it; otherwise returns empty and leaves the file alone.
     */
    public Optional<CreatedKey> ensureInitialKey(Path keyFile) {
        if (store.hasActiveApiKey()) return Optional.empty();
        CreatedKey created = create("initial");
        try {
            Files.createDirectories(keyFile.toAbsolutePath().getParent());
            Files.deleteIfExists(keyFile);
            Files.createFile(keyFile, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
            Files.writeString(keyFile, created.key() + "\n", StandardOpenOption.TRUNCATE_EXISTING);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the initial API key to " + keyFile
                    + "; check that the data directory is writable", e);
        }
        return Optional.of(created);
    }

    private static String idFrom(String idOrKey) {
        return FORMAT.matcher(idOrKey).matches() ? idOf(idOrKey) : idOrKey;
    }

    private static String idOf(String key) {
        return key.substring(4, 4 + ID_LENGTH);
    }

    static String sha256(String key) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(key.getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
