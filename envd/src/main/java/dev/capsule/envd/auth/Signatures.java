package dev.capsule.envd.auth;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Base64;

/**
 * E2B's pre-signed /files URLs: {@code "v1_" + base64(sha256("<path>:<read|write>:<username>:<token>[:<exp>]"))}
 * (standard alphabet, no padding), where path and username are the query values exactly as sent ('' for no user)
 * and exp is the {@code signature_expiration} unix time in seconds, when the URL has one.
 */
public final class Signatures {
    private Signatures() {}

    /** What a signed URL allows. */
    public enum Operation {
        READ("read"), WRITE("write");

        private final String wire;

        Operation(String wire) {
            this.wire = wire;
        }

        public String wire() {
            return wire;
        }
    }

    /** The signature for these values; {@code expiration} may be null for a URL that never expires. */
    public static String sign(String path, Operation operation, String username, String token, Long expiration) {
        String material = path + ":" + operation.wire() + ":" + (username == null ? "" : username) + ":" + token
                + (expiration == null ? "" : ":" + expiration);
        return "v1_" + Base64.getEncoder().withoutPadding().encodeToString(sha256(material));
    }

    static byte[] sha256(String s) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("the JVM has no SHA-256", e);
        }
    }

    /** Compares two secrets in time that depends on neither their contents nor their lengths. */
    public static boolean constantTimeEquals(String a, String b) {
        if (a == null || b == null) {
            return false;
        }
        return MessageDigest.isEqual(sha256(a), sha256(b));
    }
}
