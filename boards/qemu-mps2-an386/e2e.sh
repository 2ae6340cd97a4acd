#!/usr/bin/env bash
# End-to-end run of the QEMU board: builds the release image, provisions a configuration
# region, boots the image under qemu-system-arm with its user-mode network (restrict=on,
# loopback forwarding only), runs the e2e checks against it; then boots a second region whose
# sessions last 20 s, logs in, lets the session expire, logs in again, resets the machine (a
# reboot that keeps the write-back store) and checks that the fresh session still opens the app
# while the expired one stays expired. QEMU is stopped by its PID
# on every exit path. Exit status: the checks' result, or 1 if QEMU died on its own (a panic
# exits it with status 1).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
cargo build --release
elf=${CARGO_TARGET_DIR:-$here/target}/thumbv7em-none-eabihf/release/gatehouse-qemu

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
port=$(free_port)
upstream_port=$(free_port)
logdir=$(mktemp -d)

# The board's configuration region: the app is what QEMU forwards 192.0.2.100:8080 to. Every
# client reaches the guest from QEMU's own address, so no source is trusted here (the host-tap
# run covers trusted proxies). A low PBKDF2 count keeps the emulated run short.
cat >"$logdir/config.json" <<'JSON'
{"upstream":"192.0.2.100:8080","address":"192.0.2.15/24","gateway":"192.0.2.2",
 "password_iterations":1000}
JSON
python3 "$here/../provision.py" --config "$logdir/config.json" --user alice:wonderland \
    --iterations 1000 -o "$logdir/region.bin"
export GATEHOUSE_CONFIG_BLOB=$logdir/region.bin
# shellcheck source=qemu-args.sh
source "$here/qemu-args.sh"
qemu_pid=
cleanup() {
    if [[ -n "$qemu_pid" ]] && kill -0 "$qemu_pid" 2>/dev/null; then
        kill "$qemu_pid" 2>/dev/null || true
        wait "$qemu_pid" 2>/dev/null || true
    fi
    echo "--- board log (defmt) ---"
    if command -v defmt-print >/dev/null 2>&1; then
        defmt-print -e "$elf" <"$logdir/defmt.raw" 2>&1 | tail -n 60 || true
    else
        echo "(defmt-print not installed; raw log kept in $logdir/defmt.raw)"
    fi
    [[ -f "$logdir/qemu.err" ]] && cat "$logdir/qemu.err"
}
trap cleanup EXIT

qemu-system-arm "${qemu_args[@]}" >"$logdir/defmt.raw" 2>"$logdir/qemu.err" &
qemu_pid=$!

status=0
timeout 300 python3 "$here/../e2e/gateway_e2e.py" \
    --gateway "127.0.0.1:$port" --upstream-listen "127.0.0.1:$upstream_port" || status=$?
if ! kill -0 "$qemu_pid" 2>/dev/null; then
    wait "$qemu_pid" || true
    echo "QEMU exited during the run (panic or fault)" >&2
    exit 1
fi
kill "$qemu_pid"
wait "$qemu_pid" 2>/dev/null || true

# Sessions across a reboot: this machine's real-time clock is the host's (semihosting), so an
# expired session must stay expired after a reset, however long the board has been up.
ttl=20
cat >"$logdir/expiry.json" <<JSON
{"upstream":"192.0.2.100:8080","address":"192.0.2.15/24","gateway":"192.0.2.2",
 "password_iterations":1000,"session_ttl_secs":$ttl}
JSON
python3 "$here/../provision.py" --config "$logdir/expiry.json" --user alice:wonderland \
    --iterations 1000 -o "$logdir/expiry.bin"
GATEHOUSE_CONFIG_BLOB=$logdir/expiry.bin
qmp_socket=$logdir/qmp.sock
source "$here/qemu-args.sh"
qemu-system-arm "${qemu_args[@]}" >>"$logdir/defmt.raw" 2>>"$logdir/qemu.err" &
qemu_pid=$!
expiry() {
    timeout 120 python3 "$here/../e2e/expiry_e2e.py" --gateway "127.0.0.1:$port" \
        --upstream-listen "127.0.0.1:$upstream_port" --session-file "$logdir/session" \
        --ttl "$ttl" --fresh-session "$@"
}
if expiry --phase before; then
    timeout 30 python3 "$here/qmp-reset.py" "$qmp_socket" || status=1
    expiry --phase after || status=1
else
    status=1
fi
if ! kill -0 "$qemu_pid" 2>/dev/null; then
    wait "$qemu_pid" || true
    echo "QEMU exited during the run (panic or fault)" >&2
    status=1
fi
exit "$status"
