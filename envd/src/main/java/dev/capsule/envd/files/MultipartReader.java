package dev.capsule.envd.files;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * Reads a {@code multipart/form-data} body part by part, streaming each part's content, so a multi-gigabyte upload
 * never sits in memory. Unlike most form parsers it keeps a part's {@code filename} exactly as sent, directories
 * included: without a {@code path} query, E2B clients put each file's full target path there.
 */
final class MultipartReader {
    private static final int MAX_HEADER_BYTES = 16 * 1024;

    private final InputStream in;
    private final byte[] delimiter;
    /** Boyer-Moore-Horspool shifts for {@link #delimiter}: how far the search may jump past a mismatch. */
    private final int[] delimiterShift = new int[256];
    private final byte[] buf;
    private int pos;
    private int lim;
    private boolean eof;
    private Part current;
    private boolean finished;

    MultipartReader(InputStream in, String boundary) {
        if (boundary == null || boundary.isEmpty() || boundary.length() > 200) {
            throw new IllegalArgumentException("the multipart boundary must be 1 to 200 characters");
        }
        this.in = in;
        this.delimiter = ("\r\n--" + boundary).getBytes(StandardCharsets.ISO_8859_1);
        this.buf = new byte[64 * 1024 + delimiter.length];
        java.util.Arrays.fill(delimiterShift, delimiter.length);
        for (int i = 0; i < delimiter.length - 1; i++) {
            delimiterShift[delimiter[i] & 0xff] = delimiter.length - 1 - i;
        }
        // Pretend the body starts with CRLF, so the first boundary looks like every other delimiter.
        buf[0] = '\r';
        buf[1] = '\n';
        lim = 2;
        current = new Part(null); // the preamble, skipped by the first next()
    }

    /** The boundary parameter of a multipart Content-Type, or null. */
    static String boundaryOf(String contentType) {
        Map<String, String> params = HeaderParams.parse(contentType);
        return params.get("boundary");
    }

    /** The next part, or null after the closing boundary. The previous part's unread content is skipped. */
    Part next() throws IOException {
        if (finished) {
            return null;
        }
        if (current != null) {
            byte[] skip = new byte[8192];
            InputStream body = current.body();
            try {
                while (body.read(skip, 0, skip.length) >= 0) {
                    // discard
                }
            } catch (IOException e) {
                if (current.isPreamble()) {
                    // No boundary at all (e.g. an empty body): a form without parts, as Go's reader sees it.
                    finished = true;
                    current = null;
                    return null;
                }
                throw e;
            }
        }
        fill(2);
        if (lim - pos >= 2 && buf[pos] == '-' && buf[pos + 1] == '-') {
            finished = true;
            current = null;
            return null;
        }
        // Transport padding after the boundary, then CRLF.
        while (true) {
            fill(1);
            if (lim - pos < 1) {
                throw new IOException("the multipart body ended right after a boundary");
            }
            if (buf[pos] == ' ' || buf[pos] == '\t') {
                pos++;
            } else {
                break;
            }
        }
        fill(2);
        if (lim - pos < 2 || buf[pos] != '\r' || buf[pos + 1] != '\n') {
            throw new IOException("malformed multipart body: a boundary line must end with CRLF");
        }
        pos += 2;
        current = new Part(readHeaders());
        return current;
    }

    private Map<String, String> readHeaders() throws IOException {
        Map<String, String> headers = new LinkedHashMap<>();
        // Headers end at an empty line; a part with no headers starts straight with CRLF.
        fill(2);
        if (lim - pos >= 2 && buf[pos] == '\r' && buf[pos + 1] == '\n') {
            pos += 2;
            return headers;
        }
        int end;
        while (true) {
            end = indexOf(new byte[] {'\r', '\n', '\r', '\n'});
            if (end >= 0) {
                break;
            }
            if (lim - pos >= MAX_HEADER_BYTES) {
                throw new IOException("multipart part headers are larger than " + MAX_HEADER_BYTES + " bytes");
            }
            int before = lim - pos;
            fill(before + 1);
            if (lim - pos == before) {
                throw new IOException("the multipart body ended inside a part's headers");
            }
        }
        String block = new String(buf, pos, end - pos, StandardCharsets.UTF_8);
        pos = end + 4;
        for (String line : block.split("\r\n")) {
            int colon = line.indexOf(':');
            if (colon > 0) {
                headers.put(line.substring(0, colon).trim().toLowerCase(Locale.ROOT), line.substring(colon + 1).trim());
            }
        }
        return headers;
    }

    /** Makes at least {@code needed} bytes available from {@code pos}, unless the input ends first. */
    private void fill(int needed) throws IOException {
        if (lim - pos >= needed || eof) {
            return;
        }
        if (pos > 0) {
            System.arraycopy(buf, pos, buf, 0, lim - pos);
            lim -= pos;
            pos = 0;
        }
        while (lim - pos < needed && !eof) {
            int n = in.read(buf, lim, buf.length - lim);
            if (n < 0) {
                eof = true;
            } else {
                lim += n;
            }
        }
    }

    /**
     * Where the delimiter starts in {@code buf[pos, end)}, or -1. Horspool's search looks at about one byte in
     * delimiter-length of the content (boundaries are 20 to 70 characters), where a plain scan looks at every one.
     */
    private int indexOfDelimiter(int end) {
        int last = delimiter.length - 1;
        for (int i = pos; i <= end - delimiter.length; i += delimiterShift[buf[i + last] & 0xff]) {
            int j = last;
            while (j >= 0 && buf[i + j] == delimiter[j]) {
                j--;
            }
            if (j < 0) {
                return i;
            }
        }
        return -1;
    }

    private int indexOf(byte[] pattern) {
        return indexOf(pattern, lim);
    }

    /** Where {@code pattern} starts in {@code buf[pos, end)}, or -1. */
    private int indexOf(byte[] pattern, int end) {
        byte first = pattern[0];
        outer:
        for (int i = pos; i <= end - pattern.length; i++) {
            if (buf[i] != first) {
                continue;
            }
            for (int j = 1; j < pattern.length; j++) {
                if (buf[i + j] != pattern[j]) {
                    continue outer;
                }
            }
            return i;
        }
        return -1;
    }

    /** One part: its headers (names lower-case) and its content, readable once, up to the next boundary. */
    final class Part {
        private final Map<String, String> headers;
        private final Map<String, String> disposition;
        private final InputStream body = new PartBody();
        private boolean done;

        private Part(Map<String, String> headers) {
            this.headers = headers == null ? Map.of() : headers;
            this.disposition = HeaderParams.parse(this.headers.get("content-disposition"));
            this.preamble = headers == null;
        }

        private final boolean preamble;

        boolean isPreamble() {
            return preamble;
        }

        Map<String, String> headers() {
            return headers;
        }

        /** The form field name, or null. */
        String name() {
            return disposition.get("name");
        }

        /** The filename exactly as sent (directories kept), or null. */
        String filename() {
            return disposition.get("filename");
        }

        InputStream body() {
            return body;
        }

        private final class PartBody extends InputStream {
            @Override
            public int read() throws IOException {
                byte[] one = new byte[1];
                int n = read(one, 0, 1);
                return n < 0 ? -1 : one[0] & 0xff;
            }

            @Override
            public int read(byte[] b, int off, int len) throws IOException {
                if (done) {
                    return -1;
                }
                if (len == 0) {
                    return 0;
                }
                fill(delimiter.length);
                // Search only as far as this read can reach, so small reads do not rescan the whole buffer.
                int searchEnd = (int) Math.min(lim, (long) pos + len + delimiter.length - 1);
                int at = indexOfDelimiter(searchEnd);
                int available;
                if (at == pos) {
                    done = true;
                    pos += delimiter.length;
                    return -1;
                } else if (at > pos) {
                    available = at - pos;
                } else {
                    // Keep the last delimiter.length - 1 bytes searched: they may be the start of a delimiter.
                    available = searchEnd - pos - (delimiter.length - 1);
                    if (available <= 0) {
                        // fill() guarantees a delimiter's worth of bytes unless the input ended.
                        throw new IOException("the multipart body ended before its closing boundary");
                    }
                }
                int n = Math.min(len, available);
                System.arraycopy(buf, pos, b, off, n);
                pos += n;
                return n;
            }
        }
    }
}
