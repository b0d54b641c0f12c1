package dev.capsule.envd.users;

import dev.capsule.connect.Code;
import dev.capsule.connect.ConnectException;
import dev.capsule.envd.EnvdState;

import java.nio.charset.StandardCharsets;
import java.util.Base64;

/**
 * Decides which user a request acts as: the name in {@code Authorization: Basic base64("<user>:")} on RPC calls, the
 * {@code username} query parameter on /files, else the sandbox's default user. An unknown user is refused with
 * {@link Code#UNAUTHENTICATED} (envd's error vocabulary is Connect's codes; the HTTP edge maps them to statuses).
 */
public final class UserResolver {
    private final Users users;
    private final EnvdState state;

    public UserResolver(Users users, EnvdState state) {
        this.users = users;
        this.state = state;
    }

    public Users users() {
        return users;
    }

    /** The user named by an {@code Authorization} header value (may be null: the default user). */
    public User fromAuthorization(String authorization) {
        if (authorization == null || authorization.isBlank()) {
            return byName(null);
        }
        String value = authorization.trim();
        if (!value.regionMatches(true, 0, "Basic ", 0, 6)) {
            throw new ConnectException(Code.UNAUTHENTICATED,
                    "unsupported Authorization scheme: send 'Basic base64(<username>:)' to choose the user");
        }
        String decoded;
        try {
            decoded = new String(Base64.getDecoder().decode(value.substring(6).trim()), StandardCharsets.UTF_8);
        } catch (IllegalArgumentException e) {
            throw new ConnectException(Code.UNAUTHENTICATED,
                    "invalid Authorization header: the Basic credentials are not valid base64");
        }
        int colon = decoded.indexOf(':');
        return byName(colon >= 0 ? decoded.substring(0, colon) : decoded);
    }

    /** The user with this name, or the default user when the name is null or empty. */
    public User byName(String name) {
        String wanted = name == null || name.isEmpty() ? state.defaultUser() : name;
        return users.find(wanted).orElseThrow(() -> new ConnectException(Code.UNAUTHENTICATED,
                "invalid user: '" + wanted + "' does not exist in this sandbox; use an existing user such as '"
                        + EnvdState.DEFAULT_USER + "' or 'root'"));
    }
}
