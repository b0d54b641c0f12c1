package dev.capsule.envd;

import dev.capsule.connect.Code;
import dev.capsule.connect.ConnectException;
import io.vertx.core.http.HttpServerResponse;
import io.vertx.core.json.JsonObject;

/**
 * The plain-HTTP edge of envd: E2B's REST error body {@code {"code": <status>, "message": "..."}} and the one mapping
 * from envd's error vocabulary (Connect codes) to HTTP statuses.
 */
public final class EnvdHttp {
    private EnvdHttp() {}

    /** The HTTP status a REST endpoint answers for a Connect code (Connect's own unary mapping). */
    public static int status(Code code) {
        return code.httpStatus();
    }

    /** Writes a failed {@link ConnectException} as E2B's REST error JSON. */
    public static void error(HttpServerResponse response, ConnectException e) {
        error(response, status(e.code()), e.getMessage());
    }

    /** Writes {@code {"code": status, "message": message}} with that status, unless the response already started. */
    public static void error(HttpServerResponse response, int status, String message) {
        if (response.headWritten() || response.ended() || response.closed()) {
            return;
        }
        response.setStatusCode(status)
                .putHeader("Content-Type", "application/json")
                .end(new JsonObject().put("code", status).put("message", message).encode());
    }
}
