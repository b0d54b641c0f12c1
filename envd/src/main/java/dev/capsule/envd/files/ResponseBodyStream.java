package dev.capsule.envd.files;

import io.vertx.core.buffer.Buffer;
import io.vertx.core.http.HttpServerResponse;

import java.io.IOException;
import java.io.OutputStream;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * A response body as a blocking {@link OutputStream}, for code on a virtual thread: bytes go out in chunks of
 * {@link #CHUNK} and a write blocks while Vert.x's write queue is full, so a slow client slows the reader of the file
 * instead of growing the heap. {@link #close()} ends the response.
 */
final class ResponseBodyStream extends OutputStream {
    static final int CHUNK = 64 * 1024;

    private final HttpServerResponse response;
    private Buffer pending = Buffer.buffer(CHUNK);
    private boolean closed;

    ResponseBodyStream(HttpServerResponse response) {
        this.response = response;
    }

    @Override
    public void write(int b) throws IOException {
        pending.appendByte((byte) b);
        if (pending.length() >= CHUNK) {
            flushChunk();
        }
    }

    @Override
    public void write(byte[] b, int off, int len) throws IOException {
        while (len > 0) {
            int n = Math.min(len, CHUNK - pending.length());
            pending.appendBytes(b, off, n);
            off += n;
            len -= n;
            if (pending.length() >= CHUNK) {
                flushChunk();
            }
        }
    }

    @Override
    public void flush() throws IOException {
        if (pending.length() > 0) {
            flushChunk();
        }
    }

    private void flushChunk() throws IOException {
        awaitWritable();
        Buffer chunk = pending;
        pending = Buffer.buffer(CHUNK);
        try {
            response.write(chunk);
        } catch (IllegalStateException e) {
            throw new IOException("the client went away: " + e.getMessage(), e);
        }
    }

    private void awaitWritable() throws IOException {
        while (true) {
            if (response.closed()) {
                throw new IOException("the client closed the connection");
            }
            if (!response.writeQueueFull()) {
                return;
            }
            CountDownLatch drained = new CountDownLatch(1);
            response.drainHandler(v -> drained.countDown());
            // The queue may have drained between the check and installing the handler; re-check periodically.
            try {
                drained.await(100, TimeUnit.MILLISECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted while sending the response", e);
            }
        }
    }

    @Override
    public void close() throws IOException {
        if (closed) {
            return;
        }
        closed = true;
        flush();
        if (!response.ended() && !response.closed()) {
            response.end();
        }
    }
}
