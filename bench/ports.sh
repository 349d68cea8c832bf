# Free loopback ports for the bench scripts (sourced by compare.sh and soak.sh).
#
# Other servers may be running on this machine, so each server takes the next
# free ports from a random starting point, or from $COMPARE_PORT_BASE when set.

NEXT_PORT=${COMPARE_PORT_BASE:-$((20000 + RANDOM % 20000))}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Sets REPLY to a port nobody listens on.
alloc_port() {
    local tries
    for ((tries = 0; tries < 1000; tries++)); do
        NEXT_PORT=$((NEXT_PORT + 1))
        if ! port_busy "$NEXT_PORT"; then REPLY=$NEXT_PORT; return 0; fi
    done
    echo "${0##*/}: no free port found" >&2
    exit 1
}
