package dev.capsule.envd.fuzz;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * HTTP/1.1 over a plain socket, for requests no well-behaved client would send: any method, any bytes in the target
 * and headers, bodies that do not match their length. Every request asks for {@code Connection: close}, so the
 * response is whatever arrives until the server closes.
 */
public final class RawHttp {

    private RawHttp() {}

    /** A parsed response; status 0 when the server closed without answering, -1 when it did not answer in time. */
    public record Response(int status, Map<String, List<String>> headers, byte[] body) {
        public String header(String name) {
            List<String> v = headers.get(name.toLowerCase(java.util.Locale.ROOT));
            return v == null || v.isEmpty() ? null : v.getFirst();
        }

        public String text() {
            return new String(body, StandardCharsets.UTF_8);
        }
    }

    /** The bytes of a request: request line, the headers given (in order), Connection: close, the body as is. */
    public static byte[] request(String method, String target, List<String[]> headers, byte[] body, boolean contentLength) {
        var out = new ByteArrayOutputStream();
        out.writeBytes((method + " " + target + " HTTP/1.1\r\n").getBytes(StandardCharsets.UTF_8));
        for (String[] h : headers) out.writeBytes((h[0] + ": " + h[1] + "\r\n").getBytes(StandardCharsets.UTF_8));
        if (contentLength && body != null) out.writeBytes(("Content-Length: " + body.length + "\r\n").getBytes(StandardCharsets.US_ASCII));
        out.writeBytes("Connection: close\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
        if (body != null) out.writeBytes(body);
        return out.toByteArray();
    }

    /** Sends {@code raw} to host:port and reads the response until the server closes or {@code timeout} passes. */
    public static Response exchange(String host, int port, byte[] raw, Duration timeout) throws IOException {
        try (Socket socket = new Socket()) {
            socket.connect(new InetSocketAddress(host, port), (int) timeout.toMillis());
            socket.setSoTimeout((int) timeout.toMillis());
            try {
                socket.getOutputStream().write(raw);
                socket.getOutputStream().flush();
            } catch (IOException e) {
                // the server may answer (e.g. 413) and close before the whole body is written
            }
            boolean head = raw.length >= 5 && new String(raw, 0, 5, StandardCharsets.ISO_8859_1).equals("HEAD ");
            var received = new ByteArrayOutputStream();
            InputStream in = socket.getInputStream();
            byte[] buf = new byte[16 * 1024];
            try {
                for (int n; (n = in.read(buf)) > 0; ) {
                    received.write(buf, 0, n);
                    if (received.size() > 64 * 1024 * 1024 || complete(received.toByteArray(), head)) break;
                }
            } catch (SocketTimeoutException e) {
                if (received.size() == 0) return new Response(-1, Map.of(), new byte[0]);
            } catch (IOException e) {
                // reset after a partial answer: parse what came
            }
            return parse(received.toByteArray());
        }
    }

    /**
     * Whether {@code bytes} hold a whole response already: a server may keep the connection open after answering
     * (say, a 413 while the client still owes it the body it announced), so waiting for the close is not enough.
     */
    static boolean complete(byte[] bytes, boolean head) {
        int headEnd = indexOf(bytes, "\r\n\r\n".getBytes(StandardCharsets.US_ASCII), 0);
        if (headEnd < 0) return false;
        Response r = parse(bytes);
        if (r.status() == 0) return false;
        if (head || r.status() / 100 == 1 || r.status() == 204 || r.status() == 304) return true;
        String length = r.header("content-length");
        if (length != null) {
            try {
                return bytes.length - headEnd - 4 >= Long.parseLong(length);
            } catch (NumberFormatException e) {
                return false;
            }
        }
        String te = r.header("transfer-encoding");
        return te != null && te.equalsIgnoreCase("chunked")
                && indexOf(bytes, "\r\n0\r\n\r\n".getBytes(StandardCharsets.US_ASCII), headEnd) >= 0;
    }

    static Response parse(byte[] bytes) {
        int headEnd = indexOf(bytes, "\r\n\r\n".getBytes(StandardCharsets.US_ASCII), 0);
        if (headEnd < 0) return new Response(0, Map.of(), bytes);
        String[] lines = new String(bytes, 0, headEnd, StandardCharsets.ISO_8859_1).split("\r\n");
        String[] statusLine = lines[0].split(" ", 3);
        int status;
        try {
            status = Integer.parseInt(statusLine[1]);
        } catch (RuntimeException e) {
            return new Response(0, Map.of(), bytes);
        }
        var headers = new LinkedHashMap<String, List<String>>();
        for (int i = 1; i < lines.length; i++) {
            int colon = lines[i].indexOf(':');
            if (colon <= 0) continue;
            headers.computeIfAbsent(lines[i].substring(0, colon).strip().toLowerCase(java.util.Locale.ROOT),
                    k -> new ArrayList<>()).add(lines[i].substring(colon + 1).strip());
        }
        byte[] body = java.util.Arrays.copyOfRange(bytes, headEnd + 4, bytes.length);
        List<String> te = headers.get("transfer-encoding");
        if (te != null && te.getFirst().equalsIgnoreCase("chunked")) body = dechunk(body);
        return new Response(status, headers, body);
    }

    private static byte[] dechunk(byte[] chunked) {
        var out = new ByteArrayOutputStream();
        int pos = 0;
        while (pos < chunked.length) {
            int lineEnd = indexOf(chunked, new byte[] {'\r', '\n'}, pos);
            if (lineEnd < 0) break;
            String size = new String(chunked, pos, lineEnd - pos, StandardCharsets.US_ASCII).split(";")[0].strip();
            int n;
            try {
                n = Integer.parseInt(size, 16);
            } catch (NumberFormatException e) {
                break;
            }
            if (n == 0) break;
            int start = lineEnd + 2;
            out.write(chunked, start, Math.min(n, chunked.length - start));
            pos = start + n + 2;
        }
        return out.toByteArray();
    }

    private static int indexOf(byte[] haystack, byte[] needle, int from) {
        outer:
        for (int i = from; i <= haystack.length - needle.length; i++) {
            for (int j = 0; j < needle.length; j++) if (haystack[i + j] != needle[j]) continue outer;
            return i;
        }
        return -1;
    }
}
