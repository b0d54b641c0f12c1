package dev.capsule.envd.auth;

import dev.capsule.connect.Code;
import dev.capsule.connect.ConnectException;
import dev.capsule.connect.Interceptor;
import dev.capsule.envd.EnvdState;

/**
 * Who may call envd. Until {@code /init} sets an access token everything is open (a standalone envd, or the SDK's
 * debug mode); after that every request needs {@code X-Access-Token}, except {@code GET /health}, {@code POST /init}
 * and {@code /files}, which also accepts a signed URL (see {@link Signatures}). Tokens are compared in constant time.
 * Refusals are {@link Code#UNAUTHENTICATED} with E2B's own messages, which the SDKs show to users.
 */
public final class AccessControl {
    public static final String TOKEN_HEADER = "X-Access-Token";

    private final EnvdState state;

    public AccessControl(EnvdState state) {
        this.state = state;
    }

    /** True when the request may skip the general token check: E2B exempts exactly these four. */
    public static boolean exempt(String method, String path) {
        return switch (method + " " + path) {
            case "GET /health", "GET /files", "POST /files", "POST /init" -> true;
            default -> false;
        };
    }

    /** Whether a token was set by /init. */
    public boolean tokenRequired() {
        return state.accessToken() != null;
    }

    /** True when {@code presented} is the sandbox's access token. */
    public boolean tokenMatches(String presented) {
        String token = state.accessToken();
        return token != null && Signatures.constantTimeEquals(token, presented);
    }

    /** Refuses a request whose {@code X-Access-Token} header is missing or wrong, when a token is set. */
    public void checkToken(String headerValue) {
        if (tokenRequired() && !tokenMatches(headerValue)) {
            throw new ConnectException(Code.UNAUTHENTICATED,
                    "unauthorized access, please provide a valid access token or method signing if supported");
        }
    }

    /**
     * Checks a /files request: the token header when present, else the URL's signature over the raw {@code path} and
     * {@code username} query values. {@code expiration} is the raw {@code signature_expiration} value, may be null.
     */
    public void checkFileAccess(String headerValue, String signature, String expiration, String username,
                                String path, Signatures.Operation operation) {
        String token = state.accessToken();
        if (token == null) {
            return;
        }
        if (headerValue != null && !headerValue.isEmpty()) {
            if (!Signatures.constantTimeEquals(token, headerValue)) {
                throw new ConnectException(Code.UNAUTHENTICATED, "access token present in header but does not match");
            }
            return;
        }
        if (signature == null) {
            throw new ConnectException(Code.UNAUTHENTICATED, "missing signature query parameter");
        }
        Long expires = null;
        if (expiration != null) {
            try {
                expires = Long.parseLong(expiration.trim());
            } catch (NumberFormatException e) {
                throw new ConnectException(Code.INVALID_ARGUMENT, "invalid signature_expiration '" + expiration
                        + "': it must be a unix time in seconds");
            }
        }
        String expected = Signatures.sign(path == null ? "" : path, operation, username, token, expires);
        if (!Signatures.constantTimeEquals(expected, signature)) {
            throw new ConnectException(Code.UNAUTHENTICATED, "invalid signature");
        }
        if (expires != null && expires < System.currentTimeMillis() / 1000) {
            throw new ConnectException(Code.UNAUTHENTICATED, "signature is already expired");
        }
    }

    /** Refuses Connect calls without the token, once one is set. */
    public Interceptor interceptor() {
        return context -> checkToken(context.header(TOKEN_HEADER));
    }
}
