package dev.capsule.connect;

import com.google.protobuf.Message;

/** Serves a unary procedure. Runs on a virtual thread: blocking is fine. */
@FunctionalInterface
public interface UnaryHandler<I extends Message, O extends Message> {
    O handle(I request, CallContext context) throws Exception;
}
