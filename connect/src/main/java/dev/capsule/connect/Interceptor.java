package dev.capsule.connect;

/** Runs before every handler of a router, e.g. to authenticate; throw {@link ConnectException} to refuse the call. */
@FunctionalInterface
public interface Interceptor {
    void intercept(CallContext context) throws ConnectException;
}
