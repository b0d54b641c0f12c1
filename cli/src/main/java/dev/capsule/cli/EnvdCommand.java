package dev.capsule.cli;

import dev.capsule.envd.Envd;
import dev.capsule.envd.EnvdServer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.util.concurrent.Callable;

/** {@code capsule envd}: runs the in-sandbox agent standalone on this machine (as root, like in a sandbox). */
@Command(name = "envd", mixinStandardHelpOptions = true,
        description = {"Run envd, the in-sandbox agent (process and filesystem RPC, /files), on this machine.",
                "Prints 'envd listening on <host>:<port>' once it accepts connections; stop it with Ctrl-C."})
final class EnvdCommand implements Callable<Integer> {
    @Option(names = "--port", defaultValue = "" + EnvdServer.DEFAULT_PORT,
            description = "TCP port (default: ${DEFAULT-VALUE}; 0 picks a free one)")
    int port;

    @Option(names = "--host", defaultValue = "0.0.0.0", description = "address to listen on (default: ${DEFAULT-VALUE})")
    String host;

    @Option(names = "--default-user",
            description = "user for requests that name none (default: 'user' if this machine has one, else root)")
    String defaultUser;

    @Override
    public Integer call() throws Exception {
        if (port < 0 || port > 65535) {
            System.err.println("capsule envd: --port must be between 0 and 65535, got " + port);
            return 2;
        }
        try {
            Envd.run(new Envd.Options(host, port, defaultUser));
            return 0;
        } catch (IllegalArgumentException | IllegalStateException e) {
            System.err.println("capsule envd: " + e.getMessage());
            return 1;
        }
    }
}
