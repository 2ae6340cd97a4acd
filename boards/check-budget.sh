#!/usr/bin/env bash
# Checks a Cortex-M gatehouse image against the firmware budgets and prints its figures:
#   flash (.vector_table + .text + .rodata + .data) <= 160 KiB
#   static RAM (.data + .bss + .uninit)             <=  96 KiB
#   no heap: no __rust_alloc / __rg_alloc symbols
# Usage: check-budget.sh ELF
set -euo pipefail
elf=${1:?usage: check-budget.sh ELF}
flash_budget=$((160 * 1024))
ram_budget=$((96 * 1024))

arm-none-eabi-size -A "$elf" >/dev/null
read -r flash ram < <(arm-none-eabi-size -A "$elf" | awk '
    $1 == ".vector_table" || $1 == ".text" || $1 == ".rodata" { flash += $2 }
    $1 == ".data" { flash += $2; ram += $2 }
    $1 == ".bss" || $1 == ".uninit" { ram += $2 }
    END { print flash + 0, ram + 0 }')
echo "$(basename "$elf"): flash ${flash} B ($((flash / 1024)) KiB, budget 160 KiB), static RAM ${ram} B ($((ram / 1024)) KiB, budget 96 KiB)"
arm-none-eabi-size -B "$elf"

fail=0
if ((flash > flash_budget)); then echo "flash over budget" >&2; fail=1; fi
if ((ram > ram_budget)); then echo "static RAM over budget" >&2; fail=1; fi
if arm-none-eabi-nm "$elf" | grep -E '__rust_alloc|__rg_alloc'; then
    echo "an allocator is linked" >&2
    fail=1
fi
exit "$fail"
