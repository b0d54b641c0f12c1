#!/bin/busybox sh
# PID 1 of a Capsule microVM while it boots, from the initramfs the microvm driver builds: loads the virtio drivers
# the Debian cloud kernel has as modules (their order, dependencies first, is in /modules.order), mounts the
# sandbox's disk (virtio serial "root") and the runtime bundle (serial "bundle", read-only) at /opt/capsule, and
# hands PID 1 over to the bundle's init, which runs the guest init (/opt/capsule/vm/init.sh).
/bin/busybox mkdir -p /proc /sys /dev /newroot
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox --install -s /bin
export PATH=/bin

fail() {
    echo "capsule-initramfs: $*" >&2
    # PID 1 exiting panics the kernel; with panic=-1 and -no-reboot QEMU exits and the driver reports the log
    exit 1
}

while read -r module; do
    insmod "/lib/modules/$module.ko" || fail "cannot load kernel module $module"
done < /modules.order

# The disks appear asynchronously once virtio-mmio has probed them; find them by the serial QEMU gives each.
root=
bundle=
tries=0
while [ -z "$root" ] || [ -z "$bundle" ]; do
    for block in /sys/block/vd*; do
        [ -r "$block/serial" ] || continue
        case "$(cat "$block/serial")" in
            root) root=/dev/${block##*/} ;;
            bundle) bundle=/dev/${block##*/} ;;
        esac
    done
    tries=$((tries + 1))
    [ "$tries" -lt 1000 ] || fail "the disks did not appear (root: '$root', bundle: '$bundle')"
    [ -n "$root" ] && [ -n "$bundle" ] || sleep 0.01
done

mount -t ext4 -o rw,noatime "$root" /newroot || fail "cannot mount the sandbox disk $root"
mkdir -p /newroot/opt/capsule
mount -t ext4 -o ro,noatime "$bundle" /newroot/opt/capsule || fail "cannot mount the runtime bundle $bundle"
mount -o move /dev /newroot/dev || fail "cannot move /dev"
umount /proc /sys
exec switch_root /newroot /opt/capsule/bin/init -- /opt/capsule/vm/bin/sh /opt/capsule/vm/init.sh
