# The guest agent of a Capsule microVM: reads the driver's commands, one per line, from the serial console (the
# only channel that works before the guest has its new address) and answers "capsule-ok <nonce>" or
# "capsule-failed <nonce>" on it. Commands:
#   restore NONCE SECONDS NANOS SEED_HEX ADDRESS/PREFIX GATEWAY HOSTNAME NAMESERVERS
#       after every restore of a memory snapshot: set the clock (it stood still while the VM was saved), mix the
#       host's entropy into the kernel's pool and reseed its generator (every clone of a snapshot would otherwise
#       draw the same random numbers), then take the sandbox's own address and name
#   sync NONCE
#       write the page cache to disk, before the VM is stopped without its memory
export PATH=/opt/capsule/vm/bin
. /opt/capsule/vm/lib.sh

console=/dev/ttyS0
# No echo: the host's commands carry entropy, which must not end up in the console log.
stty -F "$console" -echo
while read -r command nonce rest; do
    case "$command" in
        restore)
            set -- $rest
            if capsule-guest clock "$1" "$2" && capsule-guest seed "$3" \
                    && configure "$4" "$5" "$6" "$7" >/dev/null 2>&1; then
                echo "capsule-ok $nonce" > "$console"
            else
                echo "capsule-failed $nonce" > "$console"
            fi
            ;;
        sync)
            sync
            echo "capsule-ok $nonce" > "$console"
            ;;
        "") ;;
        *) echo "capsule-failed $nonce unknown command" > "$console" ;;
    esac
done < "$console"
