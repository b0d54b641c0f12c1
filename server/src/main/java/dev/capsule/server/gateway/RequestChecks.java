package dev.capsule.server.gateway;

import io.vertx.core.http.HttpHeaders;
import io.vertx.core.http.HttpServerRequest;

/**
 * Refusals at the edge, before a request is routed: what HTTP libraries further in would otherwise trip over (a Host
 * header they cannot parse, a path or API query with broken percent-encoding) is answered 400 here with a message,
 * instead of an exception deep in a router. Go's net/http, which E2B's proxy runs on, refuses the same requests.
 */
public final class RequestChecks {

    private RequestChecks() {}

    /** What is wrong with the request line or Host header of any request, or null when nothing is. */
    public static String problem(HttpServerRequest req) {
        String host = req.getHeader(HttpHeaders.HOST);
        if (host != null && !validHost(host)) {
            return "the Host header is not a host name, IP address or [IPv6] literal with an optional port";
        }
        String path = req.path();
        if (path == null || !validEscapes(path)) {
            return "the request path has a '%' that is not followed by two hex digits; percent-encode it as %25";
        }
        return null;
    }

    /** What is wrong with an API request's query (the API decodes it; sandbox traffic passes it on untouched). */
    public static String queryProblem(HttpServerRequest req) {
        String query = req.query();
        return query == null || validEscapes(query) ? null
                : "the query has a '%' that is not followed by two hex digits; percent-encode it as %25";
    }

    /** RFC 3986 host (reg-name, IPv4, or [IP-literal]) with an optional port; at most 255 characters. */
    static boolean validHost(String host) {
        if (host.isEmpty() || host.length() > 255) return false;
        String name = host;
        if (host.startsWith("[")) {
            int close = host.indexOf(']');
            if (close < 0) return false;
            for (char c : host.substring(1, close).toCharArray()) {
                if (!(Character.digit(c, 16) >= 0 || c == ':' || c == '.')) return false;
            }
            name = "";
            host = host.substring(close + 1);
            if (!host.isEmpty() && !host.startsWith(":")) return false;
        }
        int colon = host.lastIndexOf(':');
        if (colon >= 0) {
            String port = host.substring(colon + 1);
            if (port.length() > 5 || !port.chars().allMatch(Character::isDigit)) return false;
            if (!name.isEmpty()) name = host.substring(0, colon);
        }
        for (char c : name.toCharArray()) {
            boolean ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || "-._~".indexOf(c) >= 0;
            if (!ok) return false;
        }
        return true;
    }

    static boolean validEscapes(String s) {
        for (int i = 0; i < s.length(); i++) {
            if (s.charAt(i) == '%') {
                if (i + 2 >= s.length() || Character.digit(s.charAt(i + 1), 16) < 0 || Character.digit(s.charAt(i + 2), 16) < 0) {
                    return false;
                }
                i += 2;
            }
        }
        return true;
    }
}
