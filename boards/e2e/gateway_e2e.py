#!/usr/bin/env python3
"""End-to-end checks of a gatehouse firmware board, over real sockets with raw bytes.

The board's e2e.sh starts the board (QEMU, or the host-tap binary in a network namespace) and
runs this driver beside it:

    gateway_e2e.py --gateway HOST:PORT [--upstream-listen HOST:PORT]

With --upstream-listen, the driver also plays the app behind the gateway: a recording upstream
that keeps every request head it receives, so a check asserts what the app *saw*.

Every wait is bounded; the driver exits 0 only when every check passed, and prints
"N passed, N failed".
"""

import argparse
import socket
import sys
import threading
import time

CONNECT_RETRIES = 100
RETRY_PAUSE = 0.1
IO_TIMEOUT = 10.0


def parse_addr(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


class Response:
    def __init__(self, status, headers, body, raw_head):
        self.status = status
        self.headers = headers  # list of (lower-case name, value)
        self.body = body
        self.raw_head = raw_head

    def header(self, name):
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def __repr__(self):
        return f"<{self.status} {self.headers!r} {self.body[:200]!r}>"


class Client:
    """One TCP connection to the gateway, reading responses framed by Content-Length."""

    def __init__(self, addr):
        self.sock = socket.create_connection(addr, timeout=IO_TIMEOUT)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed by the gateway")
        self.buf += chunk

    def read_response(self, head_request=False):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers.append((name.strip().lower().decode(), value.strip().decode()))
        resp = Response(status, headers, b"", head)
        if head_request or status in (204, 304) or 100 <= status < 200:
            return resp
        if (resp.header("transfer-encoding") or "").lower() == "chunked":
            resp.body = self._read_chunked()
            return resp
        length = resp.header("content-length")
        if length is not None:
            length = int(length)
            while len(self.buf) < length:
                self._fill()
            resp.body, self.buf = self.buf[:length], self.buf[length:]
        else:
            try:
                while True:
                    self._fill()
            except ConnectionError:
                pass
            resp.body, self.buf = self.buf, b""
        return resp

    def _read_chunked(self):
        body = b""
        while True:
            while b"\r\n" not in self.buf:
                self._fill()
            line, _, self.buf = self.buf.partition(b"\r\n")
            size = int(line.split(b";")[0], 16)
            while len(self.buf) < size + 2:
                self._fill()
            body += self.buf[:size]
            self.buf = self.buf[size + 2 :]
            if size == 0:
                return body

    def closed_by_peer(self):
        """True when the gateway closed the connection (EOF) within the I/O timeout."""
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, socket.timeout):
            return False

    def close(self):
        self.sock.close()


def request(addr, raw):
    client = Client(addr)
    try:
        client.send(raw)
        return client.read_response(head_request=raw.startswith(b"HEAD "))
    finally:
        client.close()


class RecordingUpstream:
    """The app: answers 200 with a small body and records the head of every request."""

    def __init__(self, addr):
        self.addr = addr
        self.heads = []
        self.lock = threading.Lock()
        self.listener = None
        self.thread = None
        self.stopping = threading.Event()

    def start(self):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(self.addr)
        self.listener.listen(16)
        self.listener.settimeout(0.1)
        self.stopping.clear()
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=IO_TIMEOUT)
        if self.listener is not None:
            self.listener.close()
            self.listener = None

    def recorded(self):
        with self.lock:
            return list(self.heads)

    def _accept_loop(self):
        listener = self.listener
        while not self.stopping.is_set():
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(IO_TIMEOUT)
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                while len(buf) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                body, buf = buf[:length], buf[length:]
                with self.lock:
                    self.heads.append((head, body))
                reply = b"upstream saw: " + head.split(b"\r\n")[0] + b"\n"
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                    + b"Content-Length: " + str(len(reply)).encode() + b"\r\n\r\n" + reply
                )
        except OSError:
            return
        finally:
            conn.close()


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def run(self, name, fn):
        try:
            fn()
        except Exception as e:  # a failed check, whatever raised it
            self.failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
        else:
            self.passed += 1
            print(f"ok   {name}", flush=True)


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def wait_for_gateway(addr):
    """The port may accept before the board listens (QEMU's forwarding): retry, bounded."""
    last = None
    for _ in range(CONNECT_RETRIES):
        try:
            resp = request(addr, b"GET /_gatehouse/health HTTP/1.1\r\nHost: gw\r\n\r\n")
            if resp.status == 200:
                return
            last = resp
        except OSError as e:
            last = e
        time.sleep(RETRY_PAUSE)
    raise SystemExit(f"gateway at {addr} never answered its health check: {last!r}")


HEALTH = b"GET /_gatehouse/health HTTP/1.1\r\nHost: gw\r\n\r\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", required=True, type=parse_addr)
    parser.add_argument("--upstream-listen", type=parse_addr)
    args = parser.parse_args()
    gw = args.gateway

    upstream = None
    if args.upstream_listen:
        upstream = RecordingUpstream(args.upstream_listen)
        upstream.start()

    wait_for_gateway(gw)
    checks = Checks()

    def health_answers():
        resp = request(gw, HEALTH)
        expect(resp.status == 200, f"health: {resp!r}")

    def keep_alive_serves_several_requests():
        client = Client(gw)
        try:
            for _ in range(3):
                client.send(HEALTH)
                resp = client.read_response()
                expect(resp.status == 200, f"request on kept-alive connection: {resp!r}")
        finally:
            client.close()

    def pipelined_requests_all_answered():
        client = Client(gw)
        try:
            client.send(HEALTH + HEALTH)
            for i in range(2):
                resp = client.read_response()
                expect(resp.status == 200, f"pipelined request {i + 1}: {resp!r}")
        finally:
            client.close()

    def head_split_across_writes():
        client = Client(gw)
        try:
            for piece in (HEALTH[:5], HEALTH[5:17], HEALTH[17:]):
                client.send(piece)
                time.sleep(0.05)
            resp = client.read_response()
            expect(resp.status == 200, f"split head: {resp!r}")
        finally:
            client.close()

    def more_clients_than_tasks_all_served():
        clients = [Client(gw) for _ in range(3)]
        try:
            for c in clients:
                c.send(HEALTH)
            for c in clients:
                expect(c.read_response().status == 200, "concurrent client not served")
        finally:
            for c in clients:
                c.close()

    checks.run("health answers", health_answers)
    checks.run("keep-alive serves several requests", keep_alive_serves_several_requests)
    checks.run("pipelined requests all answered", pipelined_requests_all_answered)
    checks.run("head split across writes", head_split_across_writes)
    checks.run("concurrent clients served", more_clients_than_tasks_all_served)

    if upstream is not None:
        upstream.stop()
    print(f"{checks.passed} passed, {checks.failed} failed", flush=True)
    return 0 if checks.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
