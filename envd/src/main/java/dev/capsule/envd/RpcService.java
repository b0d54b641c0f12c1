package dev.capsule.envd;

import dev.capsule.connect.ConnectRouter;

/** One of envd's Connect services (process, filesystem): registers its procedures and releases what it holds. */
public interface RpcService extends AutoCloseable {

    /** Adds this service's procedures to the router. */
    void register(ConnectRouter.Builder router);

    /** Releases watchers, timers and threads; processes started through the service keep running. */
    @Override
    void close();
}
