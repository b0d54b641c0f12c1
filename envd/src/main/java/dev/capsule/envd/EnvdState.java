package dev.capsule.envd;

import java.util.Map;

/**
 * What the control plane tells envd through {@code /init}: the sandbox's env vars, its access token, the default
 * user and working directory. Read by every request; replaced whole on each {@code /init}.
 */
public final class EnvdState {
    /** E2B's default user, the one templates create with home /home/user. */
    public static final String DEFAULT_USER = "user";

    private volatile Map<String, String> envVars = Map.of();
    private volatile String accessToken;
    private volatile String defaultUser;
    private volatile String defaultWorkdir;

    public EnvdState(String defaultUser) {
        this.defaultUser = defaultUser;
    }

    /** Env vars every started process gets (its request's own envs win over these). */
    public Map<String, String> envVars() {
        return envVars;
    }

    public void setEnvVars(Map<String, String> envVars) {
        this.envVars = Map.copyOf(envVars);
    }

    /** The token requests must carry in {@code X-Access-Token}, or null when access is open. */
    public String accessToken() {
        return accessToken;
    }

    public void setAccessToken(String accessToken) {
        this.accessToken = accessToken == null || accessToken.isEmpty() ? null : accessToken;
    }

    /** The user a request acts as when it names none. */
    public String defaultUser() {
        return defaultUser;
    }

    public void setDefaultUser(String defaultUser) {
        if (defaultUser != null && !defaultUser.isEmpty()) {
            this.defaultUser = defaultUser;
        }
    }

    /** The working directory of processes started without a cwd, or null for the user's home. */
    public String defaultWorkdir() {
        return defaultWorkdir;
    }

    public void setDefaultWorkdir(String defaultWorkdir) {
        this.defaultWorkdir = defaultWorkdir == null || defaultWorkdir.isEmpty() ? null : defaultWorkdir;
    }
}
