#!/usr/bin/env python3
"""Resets the QEMU machine listening on a QMP socket (a reboot of the board: code RAM, and with
it the write-back store, is kept; the uptime starts again from 0).

    qmp-reset.py SOCKET
"""

import json
import socket
import sys


def main():
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(sys.argv[1])
    stream = sock.makefile("rw")
    json.loads(stream.readline())  # the greeting
    for command in ("qmp_capabilities", "system_reset"):
        stream.write(json.dumps({"execute": command}) + "\n")
        stream.flush()
        for _ in range(100):  # events may come before the reply
            reply = json.loads(stream.readline())
            if "return" in reply or "error" in reply:
                break
        else:
            raise SystemExit(f"QMP {command}: no reply")
        if "error" in reply:
            raise SystemExit(f"QMP {command}: {reply['error']}")
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
