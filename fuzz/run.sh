#!/usr/bin/env bash
# Runs every fuzz target for a bounded time, starting from the committed corpus, and fails
# on the first crash (the input that crashed is kept in fuzz/artifacts/<target>/).
#
#   fuzz/run.sh [seconds per target] [targets running at once]
#
# New inputs the fuzzer finds go to a scratch directory, so the committed corpus is left as
# it is; `cargo +nightly fuzz cmin` merges them in deliberately (see README "Fuzzing").
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-20}
jobs=${2:-2}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

cargo +nightly fuzz build -a

run_one() {
    local target=$1 seconds=$2 scratch=$3
    mkdir -p "$scratch/$target"
    local log="$scratch/$target.log"
    if cargo +nightly fuzz run -a "$target" "$scratch/$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -max_len=16384 -print_final_stats=1 \
        >"$log" 2>&1; then
        local runs
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        printf 'fuzz %-16s ok: %s executions in %ss\n' "$target" "${runs:-?}" "$seconds"
    else
        printf 'fuzz %-16s FAILED; its log:\n' "$target"
        tail -n 60 "$log"
        return 1
    fi
}
export -f run_one

cargo +nightly fuzz list | xargs -P "$jobs" -I{} bash -c 'run_one "$@"' _ {} "$seconds" "$scratch"
