package dev.capsule.connect;

import com.google.protobuf.Message;

/** The request side of a client stream. */
public interface StreamReceiver<I extends Message> {
    /** The next message, blocking until it arrives; null at the end of the stream. */
    I receive();
}
