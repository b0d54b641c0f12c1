# The guest init of a Capsule microVM, run by busybox sh under the bundle's init (PID 1, which reaps orphans):
# mounts the kernel file systems, configures the sandbox from the kernel command line (capsule.ip, capsule.gw,
# capsule.host, capsule.dns), starts the agent that the driver talks to over the serial console after a restore
# (both are capsule-guest, see its source), and becomes envd. envd's end ends the VM (PID 1's child is gone), which
# the driver sees as the sandbox's end.
export PATH=/opt/capsule/vm/bin

mount -t proc -o nosuid,noexec,nodev proc /proc
mount -t sysfs -o nosuid,noexec,nodev sysfs /sys
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o nosuid,noexec,gid=5,mode=0620,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o nosuid,nodev,mode=1777 shm /dev/shm
mount -t mqueue -o nosuid,noexec,nodev mqueue /dev/mqueue
mount -t cgroup2 -o nosuid,noexec,nodev cgroup2 /sys/fs/cgroup 2>/dev/null
mount -t tmpfs -o nosuid,nodev,mode=0755 run /run
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr

for word in $(cat /proc/cmdline); do
    case "$word" in
        capsule.ip=*) ip_address=${word#*=} ;;
        capsule.gw=*) gateway=${word#*=} ;;
        capsule.host=*) host_name=${word#*=} ;;
        capsule.dns=*) nameservers=${word#*=} ;;
    esac
done
capsule-guest configure "$ip_address" "$gateway" "$host_name" "$nameservers"

# From a subshell that exits at once, so the agent's parent is PID 1, which reaps it should it end (this shell
# becomes envd, which would not).
(capsule-guest agent /dev/ttyS0 </dev/null >/dev/null 2>&1 &)

cd /
exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 @ENVD_COMMAND@
