package dev.capsule.cli;

import dev.capsule.server.auth.ApiKeys;
import dev.capsule.server.config.Config;
import dev.capsule.server.config.ConfigException;
import dev.capsule.server.config.ConfigLoader;
import dev.capsule.server.store.ApiKeyRecord;
import dev.capsule.server.store.SecretBox;
import dev.capsule.server.store.Store;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Unmatched;

import java.io.PrintWriter;
import java.time.Clock;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

/**
 * {@code capsule keys create|list|revoke|limits}: API keys in the server's store (the same settings as the server).
 */
@Command(name = "keys", description = "Create, list, revoke API keys or set their limits (uses the server's --data-dir / database settings).",
        subcommands = {KeysCommand.Create.class, KeysCommand.ListKeys.class, KeysCommand.Revoke.class,
                KeysCommand.Limits.class})
final class KeysCommand implements Runnable {
    @Override
    public void run() {
        System.err.println("capsule keys: name a command: create, list, revoke or limits");
    }

    /**
     * What every keys subcommand shares: the server's settings (flags such as --data-dir, read like the server
     * reads them), the store they name, and the command line's output streams.
     */
    abstract static class KeyCommand implements Callable<Integer> {
        @Unmatched
        List<String> settings = new ArrayList<>();
        @Spec
        CommandSpec spec;

        abstract int run(ApiKeys keys, PrintWriter out, PrintWriter err);

        @Override
        public Integer call() {
            PrintWriter out = spec.commandLine().getOut();
            PrintWriter err = spec.commandLine().getErr();
            Config config;
            try {
                config = ConfigLoader.load(settings);
            } catch (ConfigException e) {
                err.println("capsule keys: " + e.getMessage());
                return 2;
            }
            try (Store store = Store.open(config.databaseUrl(), config.databaseUser(), config.databasePassword(),
                    SecretBox.fromKeyFile(config.dataDir().resolve("store.key")))) {
                return run(new ApiKeys(store, Clock.systemUTC()), out, err);
            }
        }
    }

    @Command(name = "create", description = "Create a key and print it (it is shown only this once).")
    static final class Create extends KeyCommand {
        @Option(names = "--name", defaultValue = "cli", description = "a name to recognise the key by")
        String name;

        @Override
        int run(ApiKeys keys, PrintWriter out, PrintWriter err) {
            ApiKeys.CreatedKey key = keys.create(name);
            out.println(key.key());
            err.println("created key " + key.id() + " (" + key.name() + "); use it as E2B_API_KEY");
            return 0;
        }
    }

    @Command(name = "list", description = "List keys (ids and names, never the keys themselves).")
    static final class ListKeys extends KeyCommand {
        @Override
        int run(ApiKeys keys, PrintWriter out, PrintWriter err) {
            for (ApiKeys.KeyInfo k : keys.list()) {
                out.println(k.id() + "\t" + k.name() + "\t" + k.createdAt() + (k.revoked() ? "\trevoked" : "")
                        + (k.limits().equals(ApiKeyRecord.Limits.SERVER_SETTINGS) ? "" : "\t" + describe(k.limits())));
            }
            return 0;
        }
    }

    /** A key's own limits as {@code limits} prints them; "server" where the server's setting applies. */
    static String describe(ApiKeyRecord.Limits l) {
        return "requests=" + value(l.requests()) + " creates-per-second=" + value(l.createsPerSecond())
                + " sandboxes=" + value(l.sandboxes());
    }

    private static String value(Integer limit) {
        return limit == null ? "server" : limit == 0 ? "unlimited" : limit.toString();
    }

    @Command(name = "limits", description = {"Give a key its own rate limits and sandbox quota, in place of the server's"
            + " rate_limit_requests, rate_limit_creates and max_sandboxes_per_key (0 = no limit); options not given"
            + " stay as they are. Prints the key's limits. A running server applies them to the key's next request."})
    static final class Limits extends KeyCommand {
        @Parameters(index = "0", paramLabel = "ID_OR_KEY")
        String idOrKey;
        @Option(names = "--requests", paramLabel = "N", description = "API requests per rate_limit_interval")
        Integer requests;
        @Option(names = "--creates-per-second", paramLabel = "N", description = "sandbox creates per second")
        Integer createsPerSecond;
        @Option(names = "--sandboxes", paramLabel = "N", description = "sandboxes at once, running or paused")
        Integer sandboxes;
        @Option(names = "--server-settings", description = "drop the key's own limits: the server's settings apply")
        boolean serverSettings;

        @Override
        int run(ApiKeys keys, PrintWriter out, PrintWriter err) {
            var current = keys.find(idOrKey);
            if (current.isEmpty()) {
                err.println("capsule keys: no key '" + idOrKey + "'; 'capsule keys list' shows the ids");
                return 1;
            }
            ApiKeyRecord.Limits was = serverSettings ? ApiKeyRecord.Limits.SERVER_SETTINGS : current.get().limits();
            ApiKeyRecord.Limits now;
            try {
                now = new ApiKeyRecord.Limits(requests != null ? requests : was.requests(),
                        createsPerSecond != null ? createsPerSecond : was.createsPerSecond(),
                        sandboxes != null ? sandboxes : was.sandboxes());
            } catch (IllegalArgumentException e) {
                err.println("capsule keys: " + e.getMessage());
                return 2;
            }
            keys.setLimits(current.get().id(), now);
            out.println(current.get().id() + "\t" + describe(now));
            return 0;
        }
    }

    @Command(name = "revoke", description = "Revoke a key, given its id or the key itself.")
    static final class Revoke extends KeyCommand {
        @Parameters(index = "0", paramLabel = "ID_OR_KEY")
        String idOrKey;

        @Override
        int run(ApiKeys keys, PrintWriter out, PrintWriter err) {
            if (keys.revoke(idOrKey)) {
                out.println("revoked " + idOrKey);
                return 0;
            }
            err.println("capsule keys: no key '" + idOrKey + "'; 'capsule keys list' shows the ids");
            return 1;
        }
    }
}
