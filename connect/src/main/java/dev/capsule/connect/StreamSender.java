package dev.capsule.connect;

import com.google.protobuf.Message;

/** The response side of a server stream. */
public interface StreamSender<O extends Message> {
    /**
     * Sends one message. Blocks while the client is slower than the sender (back-pressure), so the server never
     * buffers without bound. Throws {@link ConnectException} with {@link Code#CANCELED} or
     * {@link Code#DEADLINE_EXCEEDED} once the call is over; handlers should let it propagate.
     */
    void send(O message);
}
