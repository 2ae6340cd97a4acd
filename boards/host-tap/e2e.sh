#!/usr/bin/env bash
# End-to-end run of the host-tap board, as root: provisions a configuration region, makes a
# network namespace of its own with a TAP device in it, runs the gateway on that TAP
# (192.0.2.15), and runs the e2e checks from inside the namespace (clients from 192.0.2.1, a
# trusted proxy on 192.0.2.3, the recording app on 192.0.2.1:8080). Then, as a board without a
# real-time clock (--no-rtc) whose time comes from an SNTP server in the namespace
# (192.0.2.1:123): no login while the time is unknown, a session that expires, a reboot while
# the time server lies (an hour back: refused, as it is below the time floor kept in flash),
# and the expired session staying expired once the time is known again. The gateway and the
# time server are stopped by their PIDs and the namespace removed on every exit path.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
cargo build --release
bin=${CARGO_TARGET_DIR:-$here/target}/release/gatehouse-host-tap

ns=gatehouse-e2e-$$
tap=ghtap0
logdir=$(mktemp -d)
gw_pid=
sntp_pid=
cleanup() {
    for pid in "$gw_pid" "$sntp_pid"; do
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    ip netns del "$ns" 2>/dev/null || true
    echo "--- board log ---"
    tail -n 60 "$logdir/gateway.log" 2>/dev/null || true
}
trap cleanup EXIT

# The board's configuration region: the app on 192.0.2.1:8080, 192.0.2.3 a trusted proxy,
# one user (a low PBKDF2 count keeps the run short; the default is 10000).
cat >"$logdir/config.json" <<'JSON'
{"upstream":"192.0.2.1:8080","address":"192.0.2.15/24","gateway":"192.0.2.1",
 "trusted_sources":"192.0.2.3/32","password_iterations":1000}
JSON
python3 "$here/../provision.py" --config "$logdir/config.json" --user alice:wonderland \
    --iterations 1000 -o "$logdir/region.bin"

ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" tuntap add dev "$tap" mode tap
ip -n "$ns" addr add 192.0.2.1/24 dev "$tap"
ip -n "$ns" addr add 192.0.2.3/24 dev "$tap"
ip -n "$ns" link set "$tap" up

ip netns exec "$ns" "$bin" --tap "$tap" --config "$logdir/region.bin" --state "$logdir/store.bin" \
    >"$logdir/gateway.log" 2>&1 &
gw_pid=$!

status=0
ip netns exec "$ns" timeout 300 python3 "$here/../e2e/gateway_e2e.py" \
    --gateway 192.0.2.15:80 --upstream-listen 192.0.2.1:8080 --trusted-peer 192.0.2.3 \
    --session-file "$logdir/session" || status=$?

# Restart on the same region and store: what was written back must still be there.
if kill -0 "$gw_pid" 2>/dev/null; then
    kill "$gw_pid"
    wait "$gw_pid" 2>/dev/null || true
    ip netns exec "$ns" "$bin" --tap "$tap" --config "$logdir/region.bin" \
        --state "$logdir/store.bin" >>"$logdir/gateway.log" 2>&1 &
    gw_pid=$!
    ip netns exec "$ns" timeout 120 python3 "$here/../e2e/gateway_e2e.py" --after-restart \
        --gateway 192.0.2.15:80 --upstream-listen 192.0.2.1:8080 \
        --session-file "$logdir/session" || status=1
    # carol, provisioned from the proxy's header in the first run, was written back.
    if grep -q "users: 2 from the write-back store" "$logdir/gateway.log"; then
        echo "ok   provisioned users survive a restart"
    else
        echo "FAIL provisioned users survive a restart: the restarted gateway did not load them"
        status=1
    fi
fi
if ! kill -0 "$gw_pid" 2>/dev/null; then
    wait "$gw_pid" || true
    echo "the gateway exited during the run" >&2
    exit 1
fi
kill "$gw_pid"
wait "$gw_pid" 2>/dev/null || true

# Sessions across a reboot on a board without a real-time clock. clock_unix says "not before a
# day ago"; the time floor the board writes to flash after a login is later than that.
ttl=10
cat >"$logdir/expiry.json" <<JSON
{"upstream":"192.0.2.1:8080","address":"192.0.2.15/24","gateway":"192.0.2.1",
 "password_iterations":1000,"session_ttl_secs":$ttl,"ntp_server":"192.0.2.1",
 "clock_unix":$(($(date +%s) - 86400))}
JSON
python3 "$here/../provision.py" --config "$logdir/expiry.json" --user alice:wonderland \
    --iterations 1000 -o "$logdir/expiry.bin"
start_board() {
    ip netns exec "$ns" "$bin" --tap "$tap" --config "$logdir/expiry.bin" \
        --state "$logdir/expiry-store.bin" --no-rtc >>"$logdir/gateway.log" 2>&1 &
    gw_pid=$!
}
stop_board() {
    kill "$gw_pid"
    wait "$gw_pid" 2>/dev/null || true
    gw_pid=
}
start_sntp() {
    ip netns exec "$ns" python3 "$here/../e2e/sntp_server.py" --listen 192.0.2.1:123 "$@" \
        >>"$logdir/sntp.log" 2>&1 &
    sntp_pid=$!
}
stop_sntp() {
    kill "$sntp_pid"
    wait "$sntp_pid" 2>/dev/null || true
    sntp_pid=
}
expiry() {
    ip netns exec "$ns" timeout 120 python3 "$here/../e2e/expiry_e2e.py" \
        --gateway 192.0.2.15:80 --upstream-listen 192.0.2.1:8080 \
        --session-file "$logdir/expiry-session" --ttl "$ttl" "$@"
}
# Waits (bounded) for a line matching $2 in the board's log after line $1.
log_shows() {
    for _ in $(seq 120); do
        if tail -n "+$(($1 + 1))" "$logdir/gateway.log" | grep -q "$2"; then
            echo "ok   the board logged: $2"
            return 0
        fi
        sleep 0.5
    done
    echo "FAIL the board never logged: $2"
    return 1
}

mark=$(wc -l <"$logdir/gateway.log")
start_board
expiry --phase unknown || status=1
start_sntp
expiry --phase before || status=1
log_shows "$mark" "time floor .* written to flash" || status=1
stop_sntp
start_sntp --offset -3600
mark=$(wc -l <"$logdir/gateway.log")
stop_board
start_board
log_shows "$mark" "earlier than the .* this board already counts" || status=1
expiry --phase unknown || status=1
stop_sntp
start_sntp
expiry --phase after || status=1

if ! kill -0 "$gw_pid" 2>/dev/null; then
    wait "$gw_pid" || true
    echo "the gateway exited during the run" >&2
    status=1
fi
exit "$status"
