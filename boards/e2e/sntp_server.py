#!/usr/bin/env python3
"""A tiny SNTP server for the boards' end-to-end runs: answers every SNTPv4 client request
with this host's time (plus --offset seconds, to play a server that lies).

    sntp_server.py --listen 192.0.2.1:123 [--offset -3600] [--lifetime 600]

It answers as a stratum-2 server, echoing the request's transmit timestamp as the originate
timestamp, as RFC 4330 asks. It exits after --lifetime seconds at the latest; the caller
stops it by its PID before that.
"""

import argparse
import socket
import struct
import sys
import time

NTP_TO_UNIX = 2_208_988_800
PACKET_LEN = 48


def answer(request, offset):
    now = time.time() + offset
    seconds = int(now) + NTP_TO_UNIX
    fraction = int((now % 1) * (1 << 32))
    timestamp = struct.pack("!II", seconds & 0xFFFF_FFFF, fraction)
    version = (request[0] >> 3) & 7
    head = bytes([(version << 3) | 4, 2, request[2], 0xEC])  # leap 0, mode 4; stratum 2
    # Root delay, root dispersion, reference ID; reference, originate, receive, transmit.
    return head + bytes(8) + b"LOCL" + timestamp + request[40:48] + timestamp + timestamp


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True)
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--lifetime", type=float, default=600.0)
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, int(port)))
    deadline = time.monotonic() + args.lifetime
    print(f"sntp_server: on {args.listen}, offset {args.offset} s", flush=True)
    while time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            request, peer = sock.recvfrom(512)
        except socket.timeout:
            continue
        if len(request) < PACKET_LEN or request[0] & 7 != 3:
            continue
        sock.sendto(answer(request, args.offset), peer)
        print(f"sntp_server: answered {peer[0]}:{peer[1]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
