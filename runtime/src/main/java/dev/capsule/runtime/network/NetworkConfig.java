package dev.capsule.runtime.network;

import dev.capsule.runtime.network.egress.EgressServices;

import java.nio.file.Path;
import java.util.List;
import java.util.regex.Pattern;

/**
 * How sandbox networks are laid out on this host. {@code name} names what Capsule owns: namespaces are
 * {@code <name>-<sandboxId>} and the nftables table is {@code inet <name>}. Host-side veths are
 * {@code <interfacePrefix><block>}; two configurations on one host need distinct names, prefixes that are
 * not prefixes of each other, and pools that do not overlap. Each sandbox gets a /30 of {@code pool}: the
 * first host address is the gateway (host side), the second the sandbox's {@code eth0}.
 *
 * @param hostServices ports on the host that sandboxes may connect to; every other host port is closed to them
 * @param nameservers  upstream resolvers ({@code ip} or {@code ip:port}) that Capsule's DNS server forwards the
 *                     sandboxes' queries to; each sandbox's resolv.conf names its gateway, where that server answers
 * @param runDirectory host-wide state that lives until reboot (the marker saying Capsule turned on IPv4
 *                     forwarding); instances that should coordinate share it
 */
public record NetworkConfig(
        String name,
        String interfacePrefix,
        Ipv4Cidr pool,
        List<HostService> hostServices,
        List<String> nameservers,
        Path runDirectory) {

    /** Each sandbox's block: network, gateway, sandbox, broadcast. */
    static final int BLOCK_PREFIX = 30;
    static final int BLOCK_SIZE = 1 << (32 - BLOCK_PREFIX);

    private static final Pattern NAME = Pattern.compile("[a-z][a-z0-9_]{0,31}");
    private static final Pattern INTERFACE_PREFIX = Pattern.compile("[a-z][a-z0-9]{0,9}");

    public NetworkConfig {
        if (name == null || !NAME.matcher(name).matches()) {
            throw new IllegalArgumentException("network name must match " + NAME + " (it names the nftables "
                    + "table and the namespaces), got " + name);
        }
        if (interfacePrefix == null || !INTERFACE_PREFIX.matcher(interfacePrefix).matches()) {
            throw new IllegalArgumentException("interface prefix must match " + INTERFACE_PREFIX + ", got "
                    + interfacePrefix);
        }
        if (pool == null || pool.prefixLength() > BLOCK_PREFIX) {
            throw new IllegalArgumentException("the sandbox pool must be a CIDR of /" + BLOCK_PREFIX
                    + " or larger (each sandbox takes a /30), got " + pool);
        }
        int digits = Long.toString(pool.size() / BLOCK_SIZE - 1).length();
        if (interfacePrefix.length() + digits > 15) {
            throw new IllegalArgumentException("interface prefix '" + interfacePrefix + "' plus " + digits
                    + " digits of block number exceeds Linux's 15-character interface names; shorten it");
        }
        hostServices = List.copyOf(hostServices);
        nameservers = List.copyOf(nameservers);
        if (nameservers.isEmpty()) {
            throw new IllegalArgumentException("at least one upstream DNS server is required for the sandboxes' "
                    + "resolver");
        }
        nameservers.forEach(EgressServices::parseServer); // validates
        if (runDirectory == null) {
            throw new IllegalArgumentException("run directory is required");
        }
    }

    /**
     * Namespaces {@code capsule-<id>}, table {@code inet capsule}, veths {@code csb<n>}, pool 10.11.0.0/16, the
     * host's own resolvers upstream ({@link EgressServices#hostResolvers()}).
     */
    public static NetworkConfig defaults() {
        return new NetworkConfig("capsule", "csb", Ipv4Cidr.parse("10.11.0.0/16"), List.of(),
                EgressServices.hostResolvers(), Path.of("/run/capsule"));
    }

    public NetworkConfig withName(String newName, String newInterfacePrefix) {
        return new NetworkConfig(newName, newInterfacePrefix, pool, hostServices, nameservers, runDirectory);
    }

    public NetworkConfig withPool(Ipv4Cidr newPool) {
        return new NetworkConfig(name, interfacePrefix, newPool, hostServices, nameservers, runDirectory);
    }

    public NetworkConfig withHostServices(List<HostService> services) {
        return new NetworkConfig(name, interfacePrefix, pool, services, nameservers, runDirectory);
    }

    public NetworkConfig withNameservers(List<String> servers) {
        return new NetworkConfig(name, interfacePrefix, pool, hostServices, servers, runDirectory);
    }

    public NetworkConfig withRunDirectory(Path directory) {
        return new NetworkConfig(name, interfacePrefix, pool, hostServices, nameservers, directory);
    }

    /**
     * Share {@code index} of {@code count} of this network, for drivers side by side on one server (each removes
     * the sandbox networks it does not know, so they must not share one): an equal part of the pool, the first
     * share under this name and interface prefix, each other one under {@code <name>_<driver>} and the prefix with
     * its first letter replaced by the driver's ({@code msb} for {@code csb} and {@code microvm}).
     */
    public NetworkConfig share(int index, int count, String driver) {
        if (count == 1) {
            return this;
        }
        int bits = 32 - Integer.numberOfLeadingZeros(count - 1);
        if (pool.prefixLength() + bits > BLOCK_PREFIX) {
            throw new IllegalArgumentException("the sandbox pool " + pool + " is too small to share between " + count
                    + " drivers; use a larger CAPSULE_NETWORK_POOL");
        }
        Ipv4Cidr part = new Ipv4Cidr(pool.network() + (int) (index * (pool.size() >> bits)), pool.prefixLength() + bits);
        if (index == 0) {
            return withPool(part);
        }
        // same length, another first letter: the nftables rules match interfaces by prefix ("csb*"), so neither
        // prefix may start the other
        char first = driver.charAt(0) != interfacePrefix.charAt(0) ? driver.charAt(0) : 'z';
        return new NetworkConfig(name + "_" + driver, first + interfacePrefix.substring(1), part, hostServices,
                nameservers, runDirectory);
    }

    int blockCount() {
        return (int) (pool.size() / BLOCK_SIZE);
    }

    String namespacePrefix() {
        return name + "-";
    }
}
