#!/usr/bin/env bash
# End-to-end run of the host-tap board, as root: provisions a configuration region, makes a
# network namespace of its own with a TAP device in it, runs the gateway on that TAP
# (192.0.2.15), and runs the e2e checks from inside the namespace (clients from 192.0.2.1, a
# trusted proxy on 192.0.2.3, the recording app on 192.0.2.1:8080). The gateway is stopped by
# its PID and the namespace removed on every exit path.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
cargo build --release
bin=${CARGO_TARGET_DIR:-$here/target}/release/gatehouse-host-tap

ns=gatehouse-e2e-$$
tap=ghtap0
logdir=$(mktemp -d)
gw_pid=
cleanup() {
    if [[ -n "$gw_pid" ]] && kill -0 "$gw_pid" 2>/dev/null; then
        kill "$gw_pid" 2>/dev/null || true
        wait "$gw_pid" 2>/dev/null || true
    fi
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
    status=1
fi
exit "$status"
