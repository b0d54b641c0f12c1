package dev.capsule.runtime.network.egress;

import java.util.Locale;
import java.util.regex.Pattern;

/**
 * A domain in {@code allowOut}: {@code example.com} matches that name only; {@code *.example.com} matches its
 * subdomains at any depth ({@code a.example.com}, {@code a.b.example.com}) but not {@code example.com} itself, as
 * E2B's wildcards do. Names compare case-insensitively and without a trailing dot.
 */
public record DomainPattern(String domain, boolean wildcard) {

    private static final Pattern LABEL = Pattern.compile("[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?");

    /**
     * Parses {@code example.com} or {@code *.example.com}.
     *
     * @throws IllegalArgumentException not a domain name; the message names the entry
     */
    public static DomainPattern parse(String entry) {
        String text = entry.strip().toLowerCase(Locale.ROOT);
        boolean wildcard = text.startsWith("*.");
        String domain = normalize(wildcard ? text.substring(2) : text);
        if (domain == null) {
            throw new IllegalArgumentException("'" + entry + "' is neither an IPv4 address, a CIDR nor a domain name "
                    + "(letters, digits, '-' and '_' in dot-separated labels, optionally starting with '*.')");
        }
        return new DomainPattern(domain, wildcard);
    }

    /** Whether {@code host} (from DNS, TLS SNI or an HTTP Host header) is covered by this pattern. */
    public boolean matches(String host) {
        String name = normalize(host.toLowerCase(Locale.ROOT));
        if (name == null) {
            return false;
        }
        return wildcard ? name.endsWith("." + domain) : name.equals(domain);
    }

    /** The lower-case name without a trailing dot, or null when it is not a valid DNS host name. */
    static String normalize(String name) {
        String text = name.endsWith(".") ? name.substring(0, name.length() - 1) : name;
        if (text.isEmpty() || text.length() > 253) {
            return null;
        }
        for (String label : text.split("\\.", -1)) {
            if (!LABEL.matcher(label).matches()) {
                return null;
            }
        }
        return text;
    }

    @Override
    public String toString() {
        return wildcard ? "*." + domain : domain;
    }
}
