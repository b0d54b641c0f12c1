package dev.capsule.envd;

import dev.capsule.envd.filesystem.FilesystemService;
import dev.capsule.envd.ports.LoopbackForwarder;
import dev.capsule.envd.process.ProcessService;
import dev.capsule.envd.users.UserResolver;
import dev.capsule.envd.users.Users;

import java.util.List;
import java.util.concurrent.CountDownLatch;

/**
 * Runs envd: the composition point (users, state, services, server) and the {@code main} of the envd-only jar that
 * goes into every sandbox. {@code java -jar capsule-envd.jar [--port 49983] [--host 0.0.0.0] [--default-user user]
 * [--forward-loopback]}.
 */
public final class Envd {
    private Envd() {}

    /**
     * How to run envd. {@code defaultUser} null means "user" when the machine has one, else root.
     * {@code forwardLoopback}: relay servers that listen on loopback only to the machine's other addresses
     * ({@link LoopbackForwarder}); only inside a sandbox, never on a host.
     */
    public record Options(String host, int port, String defaultUser, boolean forwardLoopback) {
        public Options(String host, int port, String defaultUser) {
            this(host, port, defaultUser, false);
        }

        public static Options defaults() {
            return new Options("0.0.0.0", EnvdServer.DEFAULT_PORT, null);
        }
    }

    /** Builds envd's parts from the machine's /etc/passwd and /etc/group and starts serving. */
    public static EnvdServer start(Options options) {
        Users users = new Users();
        String defaultUser = options.defaultUser();
        if (defaultUser == null) {
            defaultUser = users.find(EnvdState.DEFAULT_USER).isPresent() ? EnvdState.DEFAULT_USER : "root";
        } else if (users.find(defaultUser).isEmpty()) {
            throw new IllegalArgumentException("default user '" + defaultUser + "' does not exist on this machine: "
                    + "choose an existing user with --default-user");
        }
        EnvdState state = new EnvdState(defaultUser);
        UserResolver resolver = new UserResolver(users, state);
        return EnvdServer.start(options.host(), options.port(), state, resolver, services(resolver, state));
    }

    /** The Connect services envd serves. */
    static List<RpcService> services(UserResolver users, EnvdState state) {
        return List.of(new ProcessService(users, state), new FilesystemService(users, state));
    }

    /** Runs envd until the process is stopped; prints one line with the port once it accepts connections. */
    public static void run(Options options) throws InterruptedException {
        EnvdServer server = start(options);
        LoopbackForwarder forwarder = options.forwardLoopback()
                ? LoopbackForwarder.forSandbox(server.port()).start() : null;
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            if (forwarder != null) forwarder.close();
            server.close();
            stopped.countDown();
        }, "envd-shutdown"));
        System.out.println("envd listening on " + options.host() + ":" + server.port());
        System.out.flush();
        stopped.await();
    }

    public static void main(String[] args) throws InterruptedException {
        Options options = Options.defaults();
        String host = options.host();
        int port = options.port();
        String defaultUser = null;
        boolean forwardLoopback = false;
        for (int i = 0; i < args.length; i++) {
            String arg = args[i];
            String value = i + 1 < args.length ? args[i + 1] : null;
            switch (arg) {
                case "--port" -> {
                    port = parsePort(value);
                    i++;
                }
                case "--host" -> {
                    host = require(arg, value);
                    i++;
                }
                case "--default-user" -> {
                    defaultUser = require(arg, value);
                    i++;
                }
                case "--forward-loopback" -> forwardLoopback = true;
                case "-h", "--help" -> {
                    System.out.println("usage: envd [--port 49983] [--host 0.0.0.0] [--default-user user]"
                            + " [--forward-loopback]");
                    return;
                }
                default -> fail("unknown option '" + arg + "'; usage: envd [--port N] [--host H] [--default-user U]");
            }
        }
        try {
            run(new Options(host, port, defaultUser, forwardLoopback));
        } catch (IllegalArgumentException | IllegalStateException e) {
            fail(e.getMessage());
        }
    }

    private static int parsePort(String value) {
        try {
            int port = Integer.parseInt(require("--port", value));
            if (port < 0 || port > 65535) {
                fail("--port must be between 0 and 65535, got " + port);
            }
            return port;
        } catch (NumberFormatException e) {
            fail("--port must be a number, got '" + value + "'");
            return -1;
        }
    }

    private static String require(String option, String value) {
        if (value == null) {
            fail(option + " needs a value");
        }
        return value;
    }

    private static void fail(String message) {
        System.err.println("envd: " + message);
        System.exit(2);
    }
}
