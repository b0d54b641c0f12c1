package dev.capsule.envd.process;

import dev.capsule.connect.Code;
import dev.capsule.connect.ConnectException;
import dev.capsule.envd.rpc.process.ProcessEvent;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;

/**
 * Fans one process's output out to every stream attached to it (its Start call and any Connect calls), each from the
 * moment it attaches, then its end event.
 *
 * <p>Each subscriber has its own bounded queue ({@value #QUEUE_EVENTS} events of at most 32 KiB). The output reader
 * waits for a full queue, which is back-pressure: the process blocks on its pipe, as it does under E2B's envd. But it
 * waits at most {@link #slowLimit} per event: a subscriber that takes no event for that long is dropped (its stream
 * ends with {@code resource_exhausted}) so that one stuck client cannot stall the process or the other clients
 * forever. A client that goes away is unsubscribed at once (see {@link Subscription#close}), so it never holds
 * anything up.
 */
final class OutputHub {
    static final int QUEUE_EVENTS = 256;
    /** Marks "stop waiting" in a subscriber's queue: it was closed or dropped. */
    private static final ProcessEvent WAKE = ProcessEvent.newBuilder().build();

    private final Duration slowLimit;
    private final List<Subscription> subscribers = new CopyOnWriteArrayList<>();
    private ProcessEvent end;

    OutputHub(Duration slowLimit) {
        this.slowLimit = slowLimit;
    }

    /** Attaches a subscriber: it gets every event published from now on, or just the end if the process ended. */
    Subscription subscribe() {
        Subscription s = new Subscription();
        synchronized (this) {
            if (end != null) {
                s.queue.add(end);
            } else {
                subscribers.add(s);
            }
        }
        return s;
    }

    /** Delivers an output event to every subscriber; called by the process's one output reader. */
    void publish(ProcessEvent event) {
        for (Subscription s : subscribers) {
            s.deliver(event);
        }
    }

    /** Delivers the end event and detaches everyone; later publishes are ignored. */
    void finish(ProcessEvent endEvent) {
        List<Subscription> last;
        synchronized (this) {
            if (end != null) {
                return;
            }
            end = endEvent;
            last = List.copyOf(subscribers);
            subscribers.clear();
        }
        for (Subscription s : last) {
            s.deliver(endEvent);
        }
    }

    /** One attached stream's view of the output. */
    final class Subscription implements AutoCloseable {
        private final ArrayBlockingQueue<ProcessEvent> queue = new ArrayBlockingQueue<>(QUEUE_EVENTS + 1);
        private volatile ConnectException stopped;

        private void deliver(ProcessEvent event) {
            if (stopped != null) {
                return;
            }
            try {
                if (!queue.offer(event, slowLimit.toMillis(), TimeUnit.MILLISECONDS) && stopped == null) {
                    stop(new ConnectException(Code.RESOURCE_EXHAUSTED, "the client read the process output too "
                            + "slowly (nothing taken for " + slowLimit.toSeconds() + " s), so this stream was "
                            + "dropped to keep the process running; reconnect with Connect to follow it again"));
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }

        /**
         * The next event, waiting at most {@code timeout}; null when none came in time. Throws the reason once the
         * subscription was closed or dropped.
         */
        ProcessEvent next(Duration timeout) {
            ProcessEvent event;
            try {
                event = queue.poll(timeout.toMillis(), TimeUnit.MILLISECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new ConnectException(Code.CANCELED, "interrupted while waiting for process output");
            }
            ConnectException reason = stopped;
            if (reason != null) {
                throw reason;
            }
            return event == WAKE ? null : event;
        }

        /** Detaches with a reason (e.g. the client went away); a waiting {@link #next} throws it. */
        void close(ConnectException reason) {
            stop(reason);
        }

        @Override
        public void close() {
            stop(new ConnectException(Code.CANCELED, "the stream is closed"));
        }

        private void stop(ConnectException reason) {
            synchronized (this) {
                if (stopped != null) {
                    return;
                }
                stopped = reason;
            }
            subscribers.remove(this);
            queue.clear();
            queue.offer(WAKE);
        }
    }
}
