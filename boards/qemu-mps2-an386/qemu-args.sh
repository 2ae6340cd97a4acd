# Sourced by run-qemu.sh and e2e.sh: the QEMU command line of this board, in the array
# `qemu_args`, for the ELF in $elf and the loopback port in $port.
#
# QEMU's user-mode network with restrict=on: the guest (192.0.2.15) can reach nothing outside;
# a connection to 127.0.0.1:$port is forwarded to its port 80, and, when $upstream_port is set,
# a connection from the guest to 192.0.2.100:8080 is handed to a new `nc 127.0.0.1 $upstream_port`
# (the app behind the gateway, on the host's loopback). When $qmp_socket is set, QEMU's
# machine protocol listens on that UNIX socket (e2e.sh resets the board through it).
qemu_args=(
    -M mps2-an386 -cpu cortex-m4
    -display none -monitor none -serial null
    -semihosting-config enable=on,target=native
)
nic="user,model=lan9118,restrict=on,net=192.0.2.0/24,host=192.0.2.2"
nic+=",hostfwd=tcp:127.0.0.1:${port}-192.0.2.15:80"
if [[ -n "${upstream_port:-}" ]]; then
    nic+=",guestfwd=tcp:192.0.2.100:8080-cmd:nc 127.0.0.1 ${upstream_port}"
fi
qemu_args+=(-nic "$nic" -kernel "$elf")
if [[ -n "${qmp_socket:-}" ]]; then
    qemu_args+=(-qmp "unix:${qmp_socket},server=on,wait=off")
fi
if [[ -n "${GATEHOUSE_CONFIG_BLOB:-}" ]]; then
    # The configuration region, where a real board's flash partition would hold it.
    qemu_args+=(-device "loader,file=${GATEHOUSE_CONFIG_BLOB},addr=0x00380000,force-raw=on")
fi
