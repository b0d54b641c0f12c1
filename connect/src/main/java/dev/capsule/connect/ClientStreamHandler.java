package dev.capsule.connect;

import com.google.protobuf.Message;

/** Serves a client-streaming procedure: reads the request messages, then returns one response. Runs on a virtual thread. */
@FunctionalInterface
public interface ClientStreamHandler<I extends Message, O extends Message> {
    O handle(StreamReceiver<I> in, CallContext context) throws Exception;
}
