#!/usr/bin/env bash
# Runs a gatehouse image under QEMU's mps2-an386 machine (this board's cargo runner).
#
#   cargo run --release                  serve on a free 127.0.0.1 port (printed)
#   GATEHOUSE_HTTP_PORT=8080 cargo run --release
#   GATEHOUSE_UPSTREAM_PORT=4533 ...     the app on the host's 127.0.0.1:4533
#
# defmt logs come out over semihosting and are decoded by defmt-print when it is installed
# (`cargo install defmt-print`); without it the raw frames go to target/qemu-defmt.raw.
set -euo pipefail
elf=${1:?usage: run-qemu.sh ELF}
here=$(cd "$(dirname "$0")" && pwd)
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
port=${GATEHOUSE_HTTP_PORT:-$(free_port)}
upstream_port=${GATEHOUSE_UPSTREAM_PORT:-}
# shellcheck source=qemu-args.sh
source "$here/qemu-args.sh"
echo "gatehouse (qemu mps2-an386): http://127.0.0.1:${port}/" >&2

if command -v defmt-print >/dev/null 2>&1; then
    qemu-system-arm "${qemu_args[@]}" | defmt-print -e "$elf"
    exit "${PIPESTATUS[0]}"
fi
raw=$here/target/qemu-defmt.raw
echo "defmt-print not found: raw defmt log in $raw" >&2
exec qemu-system-arm "${qemu_args[@]}" >"$raw"
