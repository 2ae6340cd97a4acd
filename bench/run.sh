#!/usr/bin/env bash
# gatehouse against nginx and Caddy, on this machine, in one command.
#
#   bench/run.sh                 # the full run (about 15 minutes); writes docs/performance.md
#   bench/run.sh --quick         # 2 s per measurement, 1 round: to try the harness
#   bench/run.sh --smoke         # correctness checks and one short load each, under a minute;
#                                # writes nothing
#   bench/run.sh --help          # every option (durations, rounds, output, which parts run)
#
# Installs its peers from Debian when they are missing (nginx, caddy, wrk, apache2-utils for
# the bcrypt file), builds gatehouse in release mode, then hands over to bench/bench.py, which
# runs every process on 127.0.0.1 with ports chosen at run time and stops each by its PID.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"

for arg in "$@"; do
    if [[ "$arg" == -h || "$arg" == --help ]]; then
        exec python3 "$here/bench.py" --help
    fi
done

missing=()
command -v nginx >/dev/null || missing+=(nginx)
command -v caddy >/dev/null || missing+=(caddy)
command -v wrk >/dev/null || missing+=(wrk)
command -v htpasswd >/dev/null || missing+=(apache2-utils)
command -v python3 >/dev/null || missing+=(python3)
if ((${#missing[@]})); then
    echo "installing from Debian: ${missing[*]}"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"; then
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    fi
fi
# nginx from Debian starts a system-wide instance on port 80 when installed; the benchmark
# never uses it, and starts its own.

# 1,000 connections need more than the default 1,024 descriptors for every process involved.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

echo "building gatehouse (release)"
cargo build --release --locked -p gatehouse-daemon
target=${CARGO_TARGET_DIR:-$root/target}
exec python3 "$here/bench.py" --gatehouse "$target/release/gatehouse" "$@"
