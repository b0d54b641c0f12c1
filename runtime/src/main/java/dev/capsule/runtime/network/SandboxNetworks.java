package dev.capsule.runtime.network;

import dev.capsule.runtime.NetworkPolicy;
import dev.capsule.runtime.network.egress.EgressRules;
import dev.capsule.runtime.network.egress.EgressServices;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.Inet4Address;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Per-sandbox networks on this host: a named network namespace with {@code eth0} on a veth pair, a /30 from
 * the pool, NAT egress and isolation rules in one capsule-owned nftables table. State is derived from the host
 * (namespaces under {@code /run/netns}, veths named {@code <prefix><block>} carrying the sandbox id as their
 * alias), so a restarted server finds what is there with {@link #open} and settles it with {@link #adopt}.
 *
 * <p>Egress policies ({@link NetworkPolicy}) are enforced on the host: address rules by each sandbox's nftables
 * chain, domain rules and egress proxies by Capsule's DNS server and transparent proxy ({@link EgressServices}),
 * which run in this JVM while this instance has sandboxes and to which the table redirects sandbox traffic.
 * {@link #close()} stops them; a sandbox then has no DNS and, when proxied, no TCP until a new instance adopts it.
 *
 * <p>Thread-safe. Allocations run their {@code ip} commands in parallel; nftables changes are serialized.
 */
public final class SandboxNetworks implements AutoCloseable {

    private static final Path NETNS_DIR = Path.of("/run/netns");
    private static final Path LINKS_DIR = Path.of("/sys/class/net");
    private static final Pattern SANDBOX_ID = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_.-]{0,127}");
    static final String SANDBOX_INTERFACE = "eth0";

    private final NetworkConfig config;
    private final HostCommands commands = new HostCommands();
    private final NftRuleset ruleset;
    private final IpForwarding forwarding;
    private final Pattern hostInterfaceName;

    private final Object lock = new Object();
    /** Networks this instance allocated or adopted, including ones whose links are being made. */
    private final Map<String, SandboxNetwork> networks = new LinkedHashMap<>();
    /** Found on the host by {@link #open}, neither adopted nor released yet: their blocks stay reserved. */
    private final Map<String, Found> unadopted = new LinkedHashMap<>();
    private final Set<Integer> strayBlocks = new HashSet<>();
    private int nextBlock;
    private boolean tableReady;
    /** Each sandbox's rules by its address, for the egress listeners (read without the lock). */
    private final Map<String, EgressRules> rulesByAddress = new ConcurrentHashMap<>();
    /** Running while the table exists. */
    private EgressServices egress;

    private SandboxNetworks(NetworkConfig config) {
        this.config = config;
        this.ruleset = new NftRuleset(config);
        this.forwarding = new IpForwarding(config.runDirectory());
        this.hostInterfaceName = Pattern.compile(Pattern.quote(config.interfacePrefix()) + "(0|[1-9][0-9]{0,5})");
    }

    /**
     * Looks at the host and remembers the sandbox networks already there (see {@link #unadopted()}) so their
     * addresses are not handed out again. Changes nothing on the host.
     */
    public static SandboxNetworks open(NetworkConfig config) {
        SandboxNetworks networks = new SandboxNetworks(config);
        HostState host = networks.scan();
        networks.unadopted.putAll(host.sandboxes());
        networks.strayBlocks.addAll(host.strayLinks().values());
        return networks;
    }

    public NetworkConfig config() {
        return config;
    }

    /**
     * Creates the sandbox's namespace, veth pair, addresses, routes and rules. The namespace is at
     * {@link SandboxNetwork#namespacePath()}; nothing runs in it yet.
     *
     * @throws IllegalArgumentException the id is not usable in namespace and interface names, or no policy
     * @throws IllegalStateException    the sandbox already has a network, or the pool is exhausted
     * @throws NetworkException         a host command failed; everything made for this call is removed again
     */
    public SandboxNetwork allocate(String sandboxId, NetworkPolicy policy) {
        validateId(sandboxId);
        if (policy == null) {
            throw new IllegalArgumentException("a network policy is required (NetworkPolicy.OPEN or NO_INTERNET)");
        }
        SandboxNetwork network;
        synchronized (lock) {
            if (networks.containsKey(sandboxId) || unadopted.containsKey(sandboxId)
                    || Files.exists(NETNS_DIR.resolve(namespaceName(sandboxId)))) {
                throw new IllegalStateException("sandbox " + sandboxId + " already has a network on this host; "
                        + "release it first (or adopt it after a restart)");
            }
            requireSupported(policy);
            network = network(sandboxId, reserveBlock(), policy);
            networks.put(sandboxId, network);
            rulesByAddress.put(network.addressText(), EgressRules.of(policy));
            try {
                applyWithTable(ruleset.addSandbox(network));
                forwarding.enable();
            } catch (RuntimeException e) {
                networks.remove(sandboxId);
                rulesByAddress.remove(network.addressText());
                dropTableIfUnused();
                throw e;
            }
        }
        try {
            createLinks(network);
        } catch (RuntimeException e) {
            try {
                removeLinks(network.hostInterface(), network.namespace());
            } catch (RuntimeException cleanup) {
                e.addSuppressed(cleanup);
            }
            synchronized (lock) {
                if (networks.remove(sandboxId) != null) {
                    rulesByAddress.remove(network.addressText());
                    removeRules(network.hostInterface(), network.addressText());
                }
            }
            throw e;
        }
        return network;
    }

    /**
     * Replaces a running sandbox's policy in one nftables transaction. New connections follow it at once; open ones
     * that it no longer allows are cut (by the sandbox's chain, or closed by the proxy).
     */
    public SandboxNetwork updatePolicy(String sandboxId, NetworkPolicy policy) {
        if (policy == null) {
            throw new IllegalArgumentException("a network policy is required (NetworkPolicy.OPEN or NO_INTERNET)");
        }
        synchronized (lock) {
            SandboxNetwork current = networks.get(sandboxId);
            if (current == null) {
                throw new NoSuchElementException("sandbox " + sandboxId + " has no network managed here; "
                        + "allocate or adopt it first");
            }
            requireSupported(policy);
            SandboxNetwork updated = current.withPolicy(policy);
            // The listeners see the new rules before nftables starts redirecting by them.
            EgressRules previous = rulesByAddress.put(current.addressText(), EgressRules.of(policy));
            try {
                applyWithTable(ruleset.updatePolicy(updated));
            } catch (RuntimeException e) {
                rulesByAddress.put(current.addressText(), previous);
                throw e;
            }
            networks.put(sandboxId, updated);
            if (egress != null) {
                egress.policyChanged(current.address());
            }
            return updated;
        }
    }

    /**
     * Removes the sandbox's veth pair, namespace and rules; the whole table goes with the last sandbox.
     * Idempotent: also removes leftovers of a sandbox this instance never knew, and returns false when
     * there was nothing at all.
     */
    public boolean release(String sandboxId) {
        validateId(sandboxId);
        String hostInterface;
        String address;
        synchronized (lock) {
            SandboxNetwork known = networks.get(sandboxId);
            Found found = unadopted.get(sandboxId);
            if (known != null) {
                hostInterface = known.hostInterface();
                address = known.addressText();
            } else if (found != null && found.block() != null) {
                hostInterface = interfaceName(found.block());
                address = sandboxAddress(found.block()).getHostAddress();
            } else {
                Found onHost = scan().sandboxes().get(sandboxId);
                hostInterface = onHost == null || onHost.block() == null ? null : interfaceName(onHost.block());
                address = hostInterface == null ? null : sandboxAddress(onHost.block()).getHostAddress();
            }
        }
        boolean removedLinks = removeLinks(hostInterface, namespaceName(sandboxId));
        synchronized (lock) {
            if (!removedLinks && !networks.containsKey(sandboxId) && !unadopted.containsKey(sandboxId)) {
                return false;
            }
            boolean known = networks.remove(sandboxId) != null;
            boolean found = unadopted.remove(sandboxId) != null;
            if (address != null) {
                rulesByAddress.remove(address);
                if (egress != null) {
                    egress.policyChanged(Ipv4Cidr.parseInet(address));
                }
            }
            if (networks.isEmpty() && unadopted.isEmpty()) {
                dropTableIfUnused();
            } else if (hostInterface != null) {
                removeRules(hostInterface, address);
            }
            return known || found || removedLinks;
        }
    }

    public Optional<SandboxNetwork> find(String sandboxId) {
        synchronized (lock) {
            return Optional.ofNullable(networks.get(sandboxId));
        }
    }

    /** Networks allocated or adopted by this instance. */
    public List<SandboxNetwork> list() {
        synchronized (lock) {
            return List.copyOf(networks.values());
        }
    }

    /** Ids of sandbox networks {@link #open} found on the host that are neither adopted nor released yet. */
    public Set<String> unadopted() {
        synchronized (lock) {
            return Set.copyOf(unadopted.keySet());
        }
    }

    /**
     * Settles the host after a restart: keeps the networks of {@code live} sandboxes (with the policy given,
     * which the caller's store holds), removes every other network of this configuration from the host, and
     * rewrites the nftables table to exactly the kept ones in one transaction. Call it before allocating.
     */
    public Adoption adopt(Map<String, NetworkPolicy> live) {
        synchronized (lock) {
            HostState host = scan();
            List<SandboxNetwork> adopted = new ArrayList<>();
            List<String> removed = new ArrayList<>();
            StringBuilder teardown = new StringBuilder();
            for (Found found : host.sandboxes().values()) {
                NetworkPolicy policy = live.get(found.sandboxId());
                if (policy != null && found.namespace() && found.block() != null) {
                    adopted.add(network(found.sandboxId(), found.block(), policy));
                } else {
                    removed.add(found.sandboxId());
                    if (found.block() != null) {
                        teardown.append("link del ").append(interfaceName(found.block())).append('\n');
                    }
                    if (found.namespace()) {
                        teardown.append("netns del ").append(namespaceName(found.sandboxId())).append('\n');
                    }
                }
            }
            for (String stray : host.strayLinks().keySet()) {
                teardown.append("link del ").append(stray).append('\n');
            }
            if (!teardown.isEmpty()) {
                commands.ipBatch(null, true, teardown.toString());
            }
            networks.clear();
            unadopted.clear();
            strayBlocks.clear();
            rulesByAddress.clear();
            adopted.forEach(network -> {
                networks.put(network.sandboxId(), network);
                rulesByAddress.put(network.addressText(), EgressRules.of(network.policy()));
            });
            boolean guard = forwarding.needsGuard();
            commands.nft(ruleset.replaceTable(guard, adopted.isEmpty() ? null : egressPorts(), adopted))
                    .orThrow("rewriting the nftables table");
            tableReady = !adopted.isEmpty();
            if (tableReady) {
                forwarding.enable();
            } else {
                stopEgress();
                forwarding.restoreIfUnused();
            }
            HostState after = scan();
            List<String> left = new ArrayList<>(after.sandboxes().keySet());
            left.removeAll(networks.keySet());
            left.addAll(after.strayLinks().keySet());
            if (!left.isEmpty()) {
                throw new NetworkException("could not remove sandbox networks " + left + " from the host; "
                        + "check `ip netns list` and `ip link` and remove them by hand");
            }
            List<String> missing = live.keySet().stream().filter(id -> !networks.containsKey(id)).toList();
            return new Adoption(adopted, removed, missing);
        }
    }

    /** Removes every sandbox network of this configuration from the host, and the table. */
    public void releaseAll() {
        adopt(Map.of());
    }

    /**
     * Stops this instance's DNS server and egress proxy; the sandboxes' networks and rules stay on the host (fail
     * closed: their DNS and proxied connections fail) for the next instance to {@link #adopt}.
     */
    @Override
    public void close() {
        synchronized (lock) {
            stopEgress();
        }
    }

    // --- host state ---------------------------------------------------------------------------------------

    /** A sandbox network seen on the host: its namespace and/or its host veth (null block: no veth). */
    record Found(String sandboxId, boolean namespace, Integer block) {}

    /** Sandbox networks by id, and veths of our prefix that belong to no sandbox (name to block). */
    record HostState(Map<String, Found> sandboxes, Map<String, Integer> strayLinks) {}

    private HostState scan() {
        Map<String, Found> sandboxes = new TreeMap<>();
        Map<String, Integer> strays = new TreeMap<>();
        for (String name : list(LINKS_DIR)) {
            Matcher matcher = hostInterfaceName.matcher(name);
            if (!matcher.matches()) {
                continue;
            }
            int block = Integer.parseInt(matcher.group(1));
            String alias = read(LINKS_DIR.resolve(name).resolve("ifalias"));
            if (block >= config.blockCount() || !SANDBOX_ID.matcher(alias).matches()
                    || sandboxes.containsKey(alias)) {
                strays.put(name, block);
            } else {
                sandboxes.put(alias, new Found(alias, false, block));
            }
        }
        for (String name : list(NETNS_DIR)) {
            if (name.startsWith(config.namespacePrefix())) {
                String id = name.substring(config.namespacePrefix().length());
                Found link = sandboxes.get(id);
                sandboxes.put(id, new Found(id, true, link == null ? null : link.block()));
            }
        }
        return new HostState(sandboxes, strays);
    }

    private static List<String> list(Path dir) {
        if (!Files.isDirectory(dir)) {
            return List.of();
        }
        List<String> names = new ArrayList<>();
        try (DirectoryStream<Path> entries = Files.newDirectoryStream(dir)) {
            entries.forEach(entry -> names.add(entry.getFileName().toString()));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list " + dir, e);
        }
        return names;
    }

    private static String read(Path file) {
        try {
            return Files.readString(file).strip();
        } catch (IOException e) {
            return ""; // the link went away while we looked
        }
    }

    // --- links and namespaces -----------------------------------------------------------------------------

    private void createLinks(SandboxNetwork network) {
        String host = network.hostInterface();
        commands.ipBatch(null, false,
                "netns add " + network.namespace() + "\n"
                        + "link add " + host + " group " + NftRuleset.LINK_GROUP + " type veth peer name "
                        + SANDBOX_INTERFACE + " netns " + network.namespace() + "\n"
                        + "link set " + host + " alias " + network.sandboxId() + "\n"
                        + "addr add " + network.gateway().getHostAddress() + "/" + network.prefixLength()
                        + " dev " + host + "\n"
                        + "link set " + host + " up\n")
                .orThrow("creating the network of sandbox " + network.sandboxId());
        commands.ipBatch(network.namespace(), false,
                "addr add " + network.addressText() + "/" + network.prefixLength() + " dev " + SANDBOX_INTERFACE + "\n"
                        + "link set lo up\n"
                        + "link set " + SANDBOX_INTERFACE + " up\n"
                        + "route add default via " + network.gateway().getHostAddress() + "\n")
                .orThrow("configuring eth0 in the namespace of sandbox " + network.sandboxId());
    }

    /** Deletes the host veth (its peer goes with it) and the namespace; returns whether either existed. */
    private boolean removeLinks(String hostInterface, String namespace) {
        StringBuilder script = new StringBuilder();
        if (hostInterface != null && Files.exists(LINKS_DIR.resolve(hostInterface))) {
            script.append("link del ").append(hostInterface).append('\n');
        }
        if (Files.exists(NETNS_DIR.resolve(namespace))) {
            script.append("netns del ").append(namespace).append('\n');
        }
        if (script.isEmpty()) {
            return false;
        }
        HostCommands.Result result = commands.ipBatch(null, true, script.toString());
        if ((hostInterface != null && Files.exists(LINKS_DIR.resolve(hostInterface)))
                || Files.exists(NETNS_DIR.resolve(namespace))) {
            result.orThrow("removing " + namespace);
            throw new NetworkException("removing " + namespace + " left it on the host: " + result.stderr());
        }
        return true;
    }

    // --- nftables (callers hold the lock) -----------------------------------------------------------------

    private void applyWithTable(String script) {
        if (!tableReady) {
            commands.nft(ruleset.ensureTable(forwarding.needsGuard(), egressPorts()) + script)
                    .orThrow("installing sandbox rules");
            tableReady = true;
            return;
        }
        HostCommands.Result result = commands.nft(script);
        if (!result.ok()) {
            // Someone removed or damaged the table behind our back: restore the fixed part and retry once.
            commands.nft(ruleset.ensureTable(forwarding.needsGuard(), egressPorts()) + script)
                    .orThrow("installing sandbox rules");
        }
    }

    /** The ports of the running egress listeners, starting them first if needed. */
    private NftRuleset.EgressPorts egressPorts() {
        if (egress == null) {
            List<java.net.InetSocketAddress> upstreams = config.nameservers().stream()
                    .map(EgressServices::parseServer).toList();
            egress = EgressServices.start(upstreams, address -> rulesByAddress.get(address.getHostAddress()),
                    NftRuleset.PROXY_MARK);
        }
        return new NftRuleset.EgressPorts(egress.dnsUdpPort(), egress.dnsTcpPort(), egress.proxyPort());
    }

    private void stopEgress() {
        if (egress != null) {
            egress.close();
            egress = null;
        }
    }

    private void removeRules(String hostInterface, String address) {
        String script = ruleset.removeSandbox(hostInterface, address);
        if (!commands.nft(script).ok()) {
            // Part of it was never there (a half-made network): remove what exists, line by line.
            for (String line : script.split("\n")) {
                commands.nft(line + "\n");
            }
        }
    }

    private void dropTableIfUnused() {
        if (networks.isEmpty() && unadopted.isEmpty()) {
            commands.nft(ruleset.deleteTable()).orThrow("removing the nftables table");
            tableReady = false;
            stopEgress();
            forwarding.restoreIfUnused();
        }
    }

    // --- names and addresses ------------------------------------------------------------------------------

    private int reserveBlock() {
        Set<Integer> used = new HashSet<>(strayBlocks);
        for (SandboxNetwork network : networks.values()) {
            used.add(blockOf(network.hostInterface()));
        }
        for (Found found : unadopted.values()) {
            if (found.block() != null) {
                used.add(found.block());
            }
        }
        int count = config.blockCount();
        for (int i = 0; i < count; i++) {
            // Next-fit, so a just-released address (and its stale conntrack entries) is not reused at once.
            int block = (nextBlock + i) % count;
            if (!used.contains(block) && !Files.exists(LINKS_DIR.resolve(interfaceName(block)))) {
                nextBlock = (block + 1) % count;
                return block;
            }
        }
        throw new IllegalStateException("the sandbox address pool " + config.pool() + " is exhausted ("
                + count + " sandboxes); configure a larger pool");
    }

    private SandboxNetwork network(String sandboxId, int block, NetworkPolicy policy) {
        String namespace = namespaceName(sandboxId);
        return new SandboxNetwork(sandboxId, namespace, NETNS_DIR.resolve(namespace), interfaceName(block),
                SANDBOX_INTERFACE, gatewayAddress(block), sandboxAddress(block), NetworkConfig.BLOCK_PREFIX, policy);
    }

    private Inet4Address gatewayAddress(int block) {
        return config.pool().address((long) block * NetworkConfig.BLOCK_SIZE + 1);
    }

    private Inet4Address sandboxAddress(int block) {
        return config.pool().address((long) block * NetworkConfig.BLOCK_SIZE + 2);
    }

    private String interfaceName(int block) {
        return config.interfacePrefix() + block;
    }

    private int blockOf(String hostInterface) {
        return Integer.parseInt(hostInterface.substring(config.interfacePrefix().length()));
    }

    private String namespaceName(String sandboxId) {
        return config.namespacePrefix() + sandboxId;
    }

    /** Domain rules and egress proxies need the transparent proxy, which needs a JVM flag: refuse, never ignore. */
    private static void requireSupported(NetworkPolicy policy) {
        if (EgressRules.of(policy).proxied()) {
            try {
                EgressServices.requireProxySupport();
            } catch (IllegalStateException e) {
                throw new IllegalArgumentException("this server cannot enforce domain rules or egress proxies: "
                        + e.getMessage(), e);
            }
        }
    }

    private static void validateId(String sandboxId) {
        if (sandboxId == null || !SANDBOX_ID.matcher(sandboxId).matches()) {
            throw new IllegalArgumentException("sandbox id must be 1-128 letters, digits, '_', '.' or '-' "
                    + "starting with a letter or digit, got " + sandboxId);
        }
    }
}
