# What the guest init and the agent share: giving the sandbox its identity (address, gateway, hostname,
# nameservers). Run at boot with the kernel command line's values, and after every restore with the new ones.

# configure ADDRESS/PREFIX GATEWAY HOSTNAME NAMESERVERS (comma-separated)
configure() {
    ip link set lo up
    ip link set eth0 up
    ip addr flush dev eth0
    ip addr add "$1" dev eth0
    ip route replace default via "$2" dev eth0
    # a restored guest remembers the MAC of the gateway it had when the snapshot was taken
    ip neigh flush dev eth0 >/dev/null 2>&1
    hostname "$3"
    echo "$3" > /etc/hostname
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t%s\n' "$3" > /etc/hosts
    : > /etc/resolv.conf
    for server in $(echo "$4" | tr , ' '); do
        echo "nameserver $server" >> /etc/resolv.conf
    done
}
