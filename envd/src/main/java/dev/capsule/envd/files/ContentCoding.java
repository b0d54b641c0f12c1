package dev.capsule.envd.files;

import dev.capsule.connect.Code;
import dev.capsule.connect.ConnectException;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;

/**
 * The content codings /files speaks: gzip or none. Picks the response coding from {@code Accept-Encoding} (RFC 9110:
 * highest quality first; identity is acceptable unless refused with q=0) and checks a request's
 * {@code Content-Encoding}.
 */
enum ContentCoding {
    IDENTITY, GZIP;

    /** Thrown when the client accepts neither gzip nor identity; answered with 406. */
    static final class NotAcceptable extends Exception {
        NotAcceptable(String message) {
            super(message);
        }
    }

    static ContentCoding negotiate(String acceptEncoding) throws NotAcceptable {
        if (acceptEncoding == null || acceptEncoding.isBlank()) {
            return IDENTITY;
        }
        record Choice(String coding, double quality) {}
        List<Choice> choices = new ArrayList<>();
        for (String item : acceptEncoding.split(",")) {
            String[] parts = item.split(";");
            String coding = parts[0].trim().toLowerCase(Locale.ROOT);
            if (coding.isEmpty()) {
                continue;
            }
            double q = 1.0;
            for (int i = 1; i < parts.length; i++) {
                String p = parts[i].trim();
                if (p.regionMatches(true, 0, "q=", 0, 2)) {
                    try {
                        q = Double.parseDouble(p.substring(2).trim());
                    } catch (NumberFormatException e) {
                        q = 0;
                    }
                }
            }
            choices.add(new Choice(coding, q));
        }
        boolean identityRefused = choices.stream().anyMatch(c -> c.coding().equals("identity") && c.quality() == 0)
                || (choices.stream().anyMatch(c -> c.coding().equals("*") && c.quality() == 0)
                && choices.stream().noneMatch(c -> c.coding().equals("identity") && c.quality() > 0));
        choices.sort(Comparator.comparingDouble(Choice::quality).reversed());
        for (Choice c : choices) {
            if (c.quality() <= 0) {
                continue;
            }
            switch (c.coding()) {
                case "gzip", "x-gzip" -> {
                    return GZIP;
                }
                case "identity" -> {
                    return IDENTITY;
                }
                case "*" -> {
                    return identityRefused ? GZIP : IDENTITY;
                }
                default -> { }
            }
        }
        if (!identityRefused) {
            return IDENTITY;
        }
        throw new NotAcceptable("no acceptable encoding in Accept-Encoding '" + acceptEncoding
                + "': this server sends gzip or identity");
    }

    /** The coding of a request body from its Content-Encoding header. */
    static ContentCoding ofRequest(String contentEncoding) {
        if (contentEncoding == null || contentEncoding.isBlank()) {
            return IDENTITY;
        }
        String coding = contentEncoding.split(";")[0].trim().toLowerCase(Locale.ROOT);
        return switch (coding) {
            case "identity" -> IDENTITY;
            case "gzip", "x-gzip" -> GZIP;
            default -> throw new ConnectException(Code.INVALID_ARGUMENT, "unsupported Content-Encoding: "
                    + contentEncoding + ", send the body as gzip or without Content-Encoding");
        };
    }
}
