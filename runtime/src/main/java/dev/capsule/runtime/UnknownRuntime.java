package dev.capsule.runtime;

import java.util.List;

/** A sandbox was asked for on a driver this server does not run; the API answers 400 naming the ones it does. */
public final class UnknownRuntime extends RuntimeFailure {

    public UnknownRuntime(String runtime, List<String> available) {
        super("runtime '" + runtime + "' does not run on this server; it runs " + String.join(" and ", available)
                + " (start the server with --runtimes " + String.join(",", available) + "," + runtime
                + " to add it)");
    }
}
