package dev.capsule.envd.files;

import io.vertx.core.Context;
import io.vertx.core.Vertx;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.http.HttpServerRequest;

import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayDeque;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A request body as a blocking {@link InputStream}, for code on a virtual thread. The event loop queues what arrives;
 * when more than {@link #HIGH_WATER} bytes wait unread it pauses the request (TCP back-pressure reaches the client)
 * and resumes once the reader has drained to {@link #LOW_WATER}, so memory stays bounded whatever the body's size.
 *
 * <p>Create it on the event loop inside the request handler, before anything asynchronous happens.
 */
final class RequestBodyStream extends InputStream {
    static final int HIGH_WATER = 1024 * 1024;
    static final int LOW_WATER = 256 * 1024;

    private final HttpServerRequest request;
    private final Context context;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition changed = lock.newCondition();
    private final ArrayDeque<Buffer> queue = new ArrayDeque<>();
    private long queuedBytes;
    private boolean ended;
    private boolean paused;
    private boolean closed;
    private IOException failure;
    private Buffer current;
    private int position;

    RequestBodyStream(HttpServerRequest request) {
        this.request = request;
        Context ctx = Vertx.currentContext();
        if (ctx == null) {
            throw new IllegalStateException("create the body stream on the request's event loop");
        }
        this.context = ctx;
        request.handler(this::onData);
        request.endHandler(v -> signal(() -> ended = true));
        request.exceptionHandler(e -> signal(() -> {
            if (!ended && failure == null) {
                failure = new IOException("the upload was interrupted: " + e.getMessage(), e);
            }
        }));
    }

    /** Fails pending and later reads, e.g. because the connection closed before the body ended. */
    void abort(String reason) {
        signal(() -> {
            if (!ended && failure == null) {
                failure = new IOException(reason);
            }
        });
    }

    private void onData(Buffer buffer) {
        lock.lock();
        try {
            if (closed || buffer.length() == 0) {
                return;
            }
            queue.add(buffer);
            queuedBytes += buffer.length();
            if (queuedBytes >= HIGH_WATER && !paused) {
                paused = true;
                request.pause();
            }
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    private void signal(Runnable change) {
        lock.lock();
        try {
            change.run();
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    @Override
    public int read() throws IOException {
        byte[] one = new byte[1];
        int n = read(one, 0, 1);
        return n < 0 ? -1 : one[0] & 0xff;
    }

    @Override
    public int read(byte[] b, int off, int len) throws IOException {
        if (len == 0) {
            return 0;
        }
        lock.lock();
        try {
            while (current == null || position >= current.length()) {
                if (closed) {
                    throw new IOException("the body stream is closed");
                }
                Buffer next = queue.poll();
                if (next != null) {
                    current = next;
                    position = 0;
                    queuedBytes -= next.length();
                    if (paused && queuedBytes <= LOW_WATER) {
                        paused = false;
                        context.runOnContext(v -> request.resume());
                    }
                    break;
                }
                if (failure != null) {
                    throw failure;
                }
                if (ended) {
                    return -1;
                }
                try {
                    changed.await(1, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IOException("interrupted while waiting for the request body", e);
                }
            }
            int n = Math.min(len, current.length() - position);
            current.getBytes(position, position + n, b, off);
            position += n;
            return n;
        } finally {
            lock.unlock();
        }
    }

    /** Drops what is queued and lets the rest of the body flow (to be discarded), so the connection stays usable. */
    @Override
    public void close() {
        lock.lock();
        try {
            if (closed) {
                return;
            }
            closed = true;
            queue.clear();
            queuedBytes = 0;
            current = null;
            if (paused) {
                paused = false;
                context.runOnContext(v -> request.resume());
            }
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }
}
