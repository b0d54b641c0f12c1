package dev.capsule.server.api;

import dev.capsule.server.store.SandboxRecord;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;

/** E2B's {@code Sandbox}, {@code SandboxDetail} and {@code ListedSandbox} shapes (E2B-PROTOCOL.md §1.2). */
final class SandboxJson {

    /** E2B's legacy constant client id. */
    static final String CLIENT_ID = "6532622b";
    /** The envd version we report: the SDKs gate features on it and need at least 0.6.4 for all of ours. */
    static final String ENVD_VERSION = "0.6.13";

    private SandboxJson() {}

    static JsonObject sandbox(SandboxRecord s, String domain) {
        return new JsonObject()
                .put("templateID", s.templateId())
                .put("sandboxID", s.id())
                .put("alias", s.alias())
                .put("clientID", CLIENT_ID)
                .put("envdVersion", ENVD_VERSION)
                .put("envdAccessToken", s.envdAccessToken())
                .put("trafficAccessToken", s.trafficAccessToken())
                .put("domain", domain);
    }

    static JsonObject listed(SandboxRecord s) {
        return new JsonObject()
                .put("templateID", s.templateId())
                .put("alias", s.alias())
                .put("sandboxID", s.id())
                .put("clientID", CLIENT_ID)
                .put("startedAt", s.startedAt().toString())
                .put("endAt", s.endAt().toString())
                .put("cpuCount", s.resources().cpuCount())
                .put("memoryMB", s.resources().memoryMB())
                .put("diskSizeMB", s.resources().diskSizeMB())
                .put("metadata", new JsonObject(new java.util.LinkedHashMap<>(s.metadata())))
                .put("state", s.state().wire())
                .put("envdVersion", ENVD_VERSION)
                .put("volumeMounts", new JsonArray());
    }

    /**
     * {@code SandboxDetail}, plus Capsule's {@code memoryKept} (SDKs ignore fields they do not know): false while the
     * sandbox is paused without its memory, and after a resume or restart that cold-booted it (its processes
     * started afresh from its files); true otherwise.
     */
    static JsonObject detail(SandboxRecord s, String domain) {
        JsonObject o = listed(s)
                .put("memoryKept", s.memoryKept())
                .put("envdAccessToken", s.envdAccessToken())
                .put("allowInternetAccess", s.allowInternetAccess())
                .put("domain", domain)
                // not E2B's: which driver runs the sandbox (oci or microvm); the SDKs ignore fields they do not know
                .put("runtime", s.runtime())
                .put("lifecycle", new JsonObject()
                        .put("autoResume", s.lifecycle().autoResume())
                        .put("onTimeout", s.lifecycle().onTimeout()));
        if (s.network() != null) o.put("network", new JsonObject(s.network()));
        return o;
    }
}
