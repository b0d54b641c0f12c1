package dev.capsule.runtime;

import java.security.SecureRandom;

/** Sandbox ids as E2B makes them: 20 characters of [a-z0-9], so they fit a host name label with no '-' or '.'. */
public final class SandboxIds {
    private static final SecureRandom RANDOM = new SecureRandom();
    private static final String ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";
    private static final int LENGTH = 20;

    private SandboxIds() {}

    /** A new random id. */
    public static String newId() {
        StringBuilder id = new StringBuilder(LENGTH);
        for (int i = 0; i < LENGTH; i++) {
            id.append(ALPHABET.charAt(RANDOM.nextInt(ALPHABET.length())));
        }
        return id.toString();
    }

    /** Whether {@code id} has the form of a sandbox id. */
    public static boolean isValid(String id) {
        if (id == null || id.length() != LENGTH) {
            return false;
        }
        for (int i = 0; i < id.length(); i++) {
            char c = id.charAt(i);
            if (!(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9')) {
                return false;
            }
        }
        return true;
    }
}
