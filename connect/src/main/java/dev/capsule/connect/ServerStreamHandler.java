package dev.capsule.connect;

import com.google.protobuf.Message;

/**
 * Serves a server-streaming procedure: sends any number of messages, then returns (the stream ends cleanly) or throws
 * (the stream ends with that error). Runs on a virtual thread: blocking is fine.
 */
@FunctionalInterface
public interface ServerStreamHandler<I extends Message, O extends Message> {
    void handle(I request, CallContext context, StreamSender<O> out) throws Exception;
}
