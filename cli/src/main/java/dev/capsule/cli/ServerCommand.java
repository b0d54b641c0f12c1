package dev.capsule.cli;

import dev.capsule.runtime.Drivers;
import dev.capsule.runtime.SandboxRuntime;
import dev.capsule.runtime.microvm.MicroVmConfig;
import dev.capsule.runtime.microvm.MicroVmRuntime;
import dev.capsule.runtime.network.NetworkConfig;
import dev.capsule.runtime.oci.OciRuntime;
import dev.capsule.runtime.oci.OciRuntimeConfig;
import dev.capsule.server.CapsuleServer;
import dev.capsule.server.config.Config;
import dev.capsule.server.config.ConfigException;
import dev.capsule.server.config.ConfigLoader;
import dev.capsule.server.logging.ServerLogging;
import picocli.CommandLine.Command;
import picocli.CommandLine.Unmatched;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;

/**
 * {@code capsule server}: the control plane — E2B REST API, lifecycle, gateway — with the configured runtime
 * driver. Settings come from flags, {@code CAPSULE_*} variables and the config file (see the README's table).
 */
@Command(name = "server",
        description = {"Run the Capsule server: the E2B API and the sandbox gateway on one port (default 3000).",
                "Flags: --port, --host, --data-dir, --domain, --runtime, --cache-dir, --database-url,",
                "--database-user, --database-password, --default-timeout, --max-timeout, --warm-pool-size,",
                "--metrics-interval, --metrics-retention, --logs-retention, --events-retention, --log-format,",
                "--metrics-endpoint, --config.",
                "Each also reads CAPSULE_<NAME> from the environment; see the README for the table."})
final class ServerCommand implements Callable<Integer> {
    private static final System.Logger LOG = System.getLogger(ServerCommand.class.getName());

    @Unmatched
    List<String> args = new ArrayList<>();

    @Override
    public Integer call() throws Exception {
        Config config;
        try {
            config = ConfigLoader.load(args);
        } catch (ConfigException e) {
            System.err.println("capsule server: " + e.getMessage());
            return 2;
        }
        ServerLogging.install(config.observability().logFormat());
        SandboxRuntime runtime = runtime(config);
        CapsuleServer server;
        try {
            server = CapsuleServer.start(config, runtime);
        } catch (RuntimeException e) {
            runtime.close();
            throw e;
        }
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            // Sandboxes keep running: the next start re-adopts them.
            server.close();
            runtime.close();
            stopped.countDown();
        }, "capsule-shutdown"));
        LOG.log(System.Logger.Level.INFO, "capsule server listening on " + config.host() + ":" + server.port()
                + " (runtime " + runtime.name() + ", data " + config.dataDir() + ")");
        stopped.await();
        return 0;
    }

    /**
     * The configured drivers, each with its template and runtime bundle ready (built on the first start, minutes):
     * the default one ({@code runtime}) alone, or it and the others {@code runtimes} names side by side, each on
     * its own share of the sandbox network.
     */
    static SandboxRuntime runtime(Config config) {
        List<SandboxRuntime> opened = new ArrayList<>();
        try {
            for (int i = 0; i < config.runtimes().size(); i++) {
                opened.add(driver(config, config.runtimes().get(i), i, config.runtimes().size()));
            }
        } catch (RuntimeException e) {
            opened.forEach(SandboxRuntime::close);
            throw e;
        }
        return opened.size() == 1 ? opened.getFirst() : new Drivers(opened);
    }

    private static SandboxRuntime driver(Config config, String name, int index, int count) {
        return switch (name) {
            case "oci" -> {
                OciRuntimeConfig c = isolated(OciRuntimeConfig.defaults()
                        .withDirectories(config.dataDir(), config.cacheDir()), System.getenv());
                OciRuntime oci = new OciRuntime(c.withNetwork(c.network().share(index, count, name)));
                LOG.log(System.Logger.Level.INFO, "preparing the base template and runtime bundle in " + config.cacheDir()
                        + " (built once; the first start takes a few minutes)");
                try {
                    oci.prepare();
                } catch (RuntimeException e) {
                    oci.close();
                    throw e;
                }
                yield oci;
            }
            case "microvm" -> {
                MicroVmConfig defaults = MicroVmConfig.defaults().withDirectories(config.dataDir(), config.cacheDir());
                MicroVmRuntime microvm = new MicroVmRuntime(defaults.withNetwork(network(defaults.network(),
                        System.getenv()).share(index, count, name)));
                System.out.println("preparing the base template, runtime bundle, guest kernel and the template's VM"
                        + " snapshot in " + config.cacheDir() + " (built once; the first start takes a few minutes)");
                System.out.flush();
                try {
                    microvm.prepare();
                } catch (RuntimeException e) {
                    microvm.close();
                    throw e;
                }
                yield microvm;
            }
            default -> throw new ConfigException("runtime '" + name + "' is not available in this build;"
                    + " use oci or microvm (--runtime, --runtimes)");
        };
    }

    /**
     * A second server on the same host needs its own runc root and sandbox network (namespace/table name, veth
     * prefix, address pool): a server's start adopts every container in its runc root and removes every network
     * of its name that its own data directory does not know — the other server's sandboxes. CAPSULE_RUNC_ROOT,
     * CAPSULE_NETWORK_NAME, CAPSULE_NETWORK_INTERFACE_PREFIX and CAPSULE_NETWORK_POOL (a CIDR) set them; unset,
     * the defaults apply. Used by the benchmark, which runs next to other servers.
     */
    static OciRuntimeConfig isolated(OciRuntimeConfig c, java.util.Map<String, String> env) {
        String root = env.get("CAPSULE_RUNC_ROOT");
        if (root != null && !root.isBlank()) c = c.withRunc(java.nio.file.Path.of(root), c.cgroupParent());
        return c.withNetwork(network(c.network(), env));
    }

    /** The sandbox network with CAPSULE_NETWORK_NAME, _INTERFACE_PREFIX and _POOL applied (see {@link #isolated}). */
    static NetworkConfig network(NetworkConfig net, java.util.Map<String, String> env) {
        String name = env.get("CAPSULE_NETWORK_NAME");
        String prefix = env.get("CAPSULE_NETWORK_INTERFACE_PREFIX");
        if (name != null || prefix != null) {
            if (name == null || prefix == null) {
                throw new ConfigException("set CAPSULE_NETWORK_NAME and CAPSULE_NETWORK_INTERFACE_PREFIX together"
                        + " (a second server needs both distinct from the first's)");
            }
            net = net.withName(name, prefix);
        }
        String pool = env.get("CAPSULE_NETWORK_POOL");
        if (pool != null && !pool.isBlank()) net = net.withPool(dev.capsule.runtime.network.Ipv4Cidr.parse(pool));
        // Where Capsule's DNS server forwards the sandboxes' queries: comma-separated ip or ip:port.
        String dns = env.get("CAPSULE_NETWORK_UPSTREAM_DNS");
        if (dns != null && !dns.isBlank()) {
            try {
                net = net.withNameservers(java.util.Arrays.stream(dns.split(",")).map(String::strip).toList());
            } catch (IllegalArgumentException e) {
                throw new ConfigException("CAPSULE_NETWORK_UPSTREAM_DNS: " + e.getMessage());
            }
        }
        return net;
    }
}
