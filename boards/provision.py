#!/usr/bin/env python3
"""Makes the configuration region a gatehouse board reads at boot.

    provision.py --config config.json --users users.json -o region.bin
    provision.py --config config.json --user alice:secret:admin --user bob:pw -o region.bin

The configuration JSON's keys are those of firmware/src/config.rs; `trusted_sources` (identity
trust: the peer's identity header is believed) and `trusted_proxies` (forwarding trust only:
its X-Forwarded-For and forward-auth headers are believed) are comma-separated strings.

The region is a 20-byte header (magic "GHCF", format version 1, the two lengths, the CRC-32 of
what follows), the configuration JSON, then the users JSON (gatehouse's users file format,
as the daemon writes it). `--user NAME:PASSWORD[:admin]` builds the users JSON here, with
PBKDF2-SHA256 hashes in PHC format (`--iterations`, default 10000: what a microcontroller
verifies in a fraction of a second). Either way the users get a users table id of their own
(`table_id`, random): a board provisioned again refuses the sessions of the table it held
before, whose log-outs and password changes the new region does not carry.

The configuration's keys are documented in firmware/src/config.rs. A board without a real-time
clock (the Nucleo-H743ZI) needs "ntp_server" (an SNTP server, "A.B.C.D" or "A.B.C.D:PORT") to
know the time: until it does, it issues and accepts no session. "clock_unix" is a time the real
time is known not to be below (now, when provisioning): the board never believes a time source
that goes back before it.

Write the result where the board expects it: QEMU loads it with `-device loader` (see
boards/qemu-mps2-an386/qemu-args.sh, GATEHOUSE_CONFIG_BLOB); the host-tap board reads it with
`--config`; on the Nucleo-H743ZI, flash it to 0x08100000:
`probe-rs download --chip STM32H743ZITx --binary-format bin --base-address 0x08100000 region.bin`.
"""

import argparse
import base64
import hashlib
import json
import os
import struct
import sys
import zlib

MAGIC = b"GHCF"
FORMAT_VERSION = 1
MAX_REGION_LEN = 16 * 1024
# The keys a board reads (firmware/src/config.rs); it refuses any other.
CONFIG_KEYS = {
    "upstream", "address", "gateway", "listen_port", "trusted_sources", "trusted_proxies",
    "user_header", "public_paths", "subsonic_paths", "session_ttl_secs", "secure_cookies",
    "logout_url", "password_iterations", "clock_unix", "ntp_server", "head_read_timeout_secs",
    "idle_timeout_secs", "upstream_connect_timeout_secs",
}


def region(config_json: bytes, users_json: bytes) -> bytes:
    body = config_json + users_json
    header = MAGIC + struct.pack(
        "<HHIII", FORMAT_VERSION, 0, len(config_json), len(users_json), zlib.crc32(body)
    )
    blob = header + body
    if len(blob) > MAX_REGION_LEN:
        raise SystemExit(f"region is {len(blob)} bytes; a board holds at most {MAX_REGION_LEN}")
    return blob


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def phc_pbkdf2(password: str, iterations: int, salt: bytes = b"") -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations, 32)
    return f"$pbkdf2-sha256$i={iterations},l=32${b64(salt)}${b64(digest)}"


def fresh_table_id() -> int:
    """A random users table id, never 0 (the id of files written before table ids)."""
    return int.from_bytes(os.urandom(8), "little") or 1


def with_fresh_table_id(users: bytes) -> bytes:
    doc = json.loads(users)
    doc["table_id"] = fresh_table_id()
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def users_json(specs, iterations: int) -> bytes:
    users = []
    for generation, spec in enumerate(specs, start=1):
        parts = spec.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "admin"):
            raise SystemExit(f"--user {spec!r}: expected NAME:PASSWORD or NAME:PASSWORD:admin")
        users.append(
            {
                "name": parts[0],
                "admin": len(parts) == 3,
                "password": phc_pbkdf2(parts[1], iterations),
                "generation": generation,
            }
        )
    doc = {
        "version": 2,
        "table_id": fresh_table_id(),
        "admin_assigned": any(u["admin"] for u in users),
        "next_generation": len(users) + 1,
        "users": users,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the configuration JSON file")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--users", help="a users JSON file (the daemon's users file)")
    source.add_argument("--user", action="append", default=[], help="NAME:PASSWORD[:admin]")
    parser.add_argument("--iterations", type=int, default=10_000)
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args()

    with open(args.config, "rb") as f:
        config = f.read().strip()
    parsed = json.loads(config)  # a JSON error here names the line, before the board has to
    unknown = sorted(set(parsed) - CONFIG_KEYS) if isinstance(parsed, dict) else []
    if unknown:
        raise SystemExit(f"{args.config}: unknown key(s) {', '.join(unknown)}; a board refuses them")
    if args.users:
        with open(args.users, "rb") as f:
            users = with_fresh_table_id(f.read().strip())
    else:
        users = users_json(args.user, args.iterations)
    with open(args.output, "wb") as f:
        f.write(region(config, users))
    return 0


if __name__ == "__main__":
    sys.exit(main())
