package dev.capsule.envd.files;

import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * Parameters of a header value such as {@code form-data; name="file"; filename="/home/user/a b.txt"} or
 * {@code multipart/form-data; boundary=xyz}: names lower-cased, quoted strings unquoted (backslash escapes honoured),
 * and RFC 5987 {@code filename*=UTF-8''...} decoded into {@code filename}.
 */
final class HeaderParams {
    private HeaderParams() {}

    static Map<String, String> parse(String value) {
        Map<String, String> params = new LinkedHashMap<>();
        if (value == null) {
            return params;
        }
        int i = value.indexOf(';');
        if (i < 0) {
            return params;
        }
        i++;
        int n = value.length();
        String extendedFilename = null;
        while (i < n) {
            while (i < n && (value.charAt(i) == ' ' || value.charAt(i) == '\t' || value.charAt(i) == ';')) {
                i++;
            }
            int nameStart = i;
            while (i < n && value.charAt(i) != '=' && value.charAt(i) != ';') {
                i++;
            }
            String name = value.substring(nameStart, i).trim().toLowerCase(Locale.ROOT);
            if (i >= n || value.charAt(i) == ';') {
                continue;
            }
            i++; // '='
            StringBuilder v = new StringBuilder();
            if (i < n && value.charAt(i) == '"') {
                i++;
                while (i < n && value.charAt(i) != '"') {
                    char c = value.charAt(i);
                    if (c == '\\' && i + 1 < n) {
                        c = value.charAt(++i);
                    }
                    v.append(c);
                    i++;
                }
                i++; // closing quote
                while (i < n && value.charAt(i) != ';') {
                    i++;
                }
            } else {
                while (i < n && value.charAt(i) != ';') {
                    v.append(value.charAt(i++));
                }
            }
            String text = name.endsWith("*") ? v.toString().trim() : (v.toString());
            if (name.equals("filename*")) {
                extendedFilename = decodeExtended(text);
            } else if (!name.isEmpty()) {
                params.putIfAbsent(name, name.equals("boundary") ? text.trim() : text);
            }
        }
        if (extendedFilename != null) {
            params.put("filename", extendedFilename);
        }
        return params;
    }

    private static String decodeExtended(String value) {
        int first = value.indexOf('\'');
        int second = first < 0 ? -1 : value.indexOf('\'', first + 1);
        if (second < 0) {
            return null;
        }
        String encoded = value.substring(second + 1).replace("+", "%2B");
        try {
            return URLDecoder.decode(encoded, StandardCharsets.UTF_8);
        } catch (IllegalArgumentException e) {
            return null;
        }
    }
}
