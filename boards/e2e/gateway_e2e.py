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
import base64
import socket
import sys
import threading
import time
import urllib.parse

CONNECT_RETRIES = 100
# The firmware's connection tasks (gatehouse_firmware::MAX_CONNECTIONS).
MAX_CONNECTIONS = 4
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

    def __init__(self, addr, source=None):
        source_addr = (source, 0) if source else None
        self.sock = socket.create_connection(addr, timeout=IO_TIMEOUT, source_address=source_addr)
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
USER, PASSWORD = "alice", "wonderland"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


def get(path, *headers):
    lines = [f"GET {path} HTTP/1.1", "Host: gw", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def identity_lines(head):
    """The identity-looking header lines of a recorded head, lower-cased."""
    out = []
    for line in head.split(b"\r\n")[1:]:
        name = line.split(b":", 1)[0].strip().lower().replace(b"_", b"-")
        if name.startswith(b"remote-"):
            out.append(line.decode(errors="replace").lower())
    return out


def cookie_from(resp, name):
    for key, value in resp.headers:
        if key == "set-cookie" and value.startswith(name + "="):
            return value.split(";", 1)[0]
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", required=True, type=parse_addr)
    parser.add_argument("--upstream-listen", required=True, type=parse_addr)
    parser.add_argument(
        "--trusted-peer",
        help="a local address the gateway trusts as a proxy (its identity header is believed)",
    )
    parser.add_argument(
        "--session-file",
        help="where the first run keeps alice's session cookie for the run after a restart",
    )
    parser.add_argument(
        "--after-restart",
        action="store_true",
        help="only check that what the first run wrote back survived a restart of the gateway",
    )
    args = parser.parse_args()
    gw = args.gateway

    upstream = RecordingUpstream(args.upstream_listen)
    upstream.start()
    wait_for_gateway(gw)
    checks = Checks()

    def seen_since(mark):
        return upstream.recorded()[mark:]

    if args.after_restart:
        # The session signing key was made at the first boot and written back: a cookie issued
        # before the restart still opens the app after it (a new key would refuse it).
        def sessions_survive_a_restart():
            with open(args.session_file) as f:
                session = f.read().strip()
            mark = len(upstream.recorded())
            resp = request(gw, get("/app/after-restart", f"Cookie: {session}"))
            expect(resp.status == 200, f"the old session after the restart: {resp!r}")
            ids = identity_lines(seen_since(mark)[0][0])
            expect(ids == ["remote-user: alice"], f"identity the app saw: {ids}")

        checks.run("sessions survive a restart (the key was written back)", sessions_survive_a_restart)
        upstream.stop()
        print(f"{checks.passed} passed, {checks.failed} failed", flush=True)
        return 0 if checks.failed == 0 else 1

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

    def concurrent_clients_served():
        clients = [Client(gw) for _ in range(3)]
        try:
            for c in clients:
                c.send(HEALTH)
            for c in clients:
                expect(c.read_response().status == 200, "concurrent client not served")
        finally:
            for c in clients:
                c.close()

    def anonymous_client_gets_401_and_app_sees_nothing():
        mark = len(upstream.recorded())
        resp = request(gw, get("/app/anon"))
        expect(resp.status == 401, f"anonymous: {resp!r}")
        expect("basic" in (resp.header("www-authenticate") or "").lower(), f"{resp!r}")
        expect(not seen_since(mark), "an anonymous request reached the app")

    def anonymous_browser_is_sent_to_login():
        resp = request(gw, get("/app/browser", "Accept: text/html"))
        expect(resp.status == 302, f"browser: {resp!r}")
        expect((resp.header("location") or "").startswith("/_gatehouse/login"), f"{resp!r}")

    def basic_reaches_app_as_the_user_and_spoofs_do_not():
        mark = len(upstream.recorded())
        resp = request(
            gw,
            get(
                "/app/basic",
                f"Authorization: {BASIC}",
                "Remote-User: admin",
                "remote_user: admin",
                "REMOTE-USER: admin",
                "Remote-Groups: admins",
            ),
        )
        expect(resp.status == 200, f"basic: {resp!r}")
        seen = seen_since(mark)
        expect(len(seen) == 1, f"app saw {len(seen)} requests")
        ids = identity_lines(seen[0][0])
        expect("remote-user: alice" in ids, f"identity the app saw: {ids}")
        expect(not any("admin" in line for line in ids), f"a spoofed header got through: {ids}")
        expect(b"authorization" not in seen[0][0].lower(), "Authorization reached the app")

    def wrong_basic_password_is_refused():
        bad = "Basic " + base64.b64encode(f"{USER}:nope".encode()).decode()
        mark = len(upstream.recorded())
        resp = request(gw, get("/app/badpw", f"Authorization: {bad}"))
        expect(resp.status == 401, f"wrong password: {resp!r}")
        expect(not seen_since(mark), "a wrong password reached the app")

    def login_form_then_cookie():
        page = request(gw, get("/_gatehouse/login?return=/app/after", "Accept: text/html"))
        expect(page.status == 200, f"login page: {page!r}")
        csrf_cookie = cookie_from(page, "gatehouse_csrf")
        expect(csrf_cookie is not None, f"no CSRF cookie: {page!r}")
        marker = b'name="csrf" value="'
        at = page.body.index(marker) + len(marker)
        token = page.body[at : page.body.index(b'"', at)].decode()
        form = urllib.parse.urlencode(
            {"username": USER, "password": PASSWORD, "csrf": token, "return": "/app/after"}
        ).encode()
        post = (
            "POST /_gatehouse/login HTTP/1.1\r\nHost: gw\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Cookie: {csrf_cookie}\r\nContent-Length: {len(form)}\r\n\r\n"
        ).encode() + form
        resp = request(gw, post)
        expect(resp.status in (302, 303), f"login: {resp!r}")
        expect(resp.header("location") == "/app/after", f"return target: {resp!r}")
        session = cookie_from(resp, "gatehouse_session")
        expect(session is not None, f"no session cookie: {resp!r}")
        mark = len(upstream.recorded())
        resp = request(gw, get("/app/cookie", f"Cookie: {session}; theme=dark", "Remote-User: bob"))
        expect(resp.status == 200, f"with the cookie: {resp!r}")
        seen = seen_since(mark)
        expect(len(seen) == 1, f"app saw {len(seen)} requests")
        ids = identity_lines(seen[0][0])
        expect(ids == ["remote-user: alice"], f"identity the app saw: {ids}")
        expect(b"gatehouse_session" not in seen[0][0], "the session cookie reached the app")
        expect(b"theme=dark" in seen[0][0], "the app's own cookie was lost")
        if args.session_file:
            with open(args.session_file, "w") as f:
                f.write(session)

    def spoofed_remote_user_alone_never_reaches_the_app():
        mark = len(upstream.recorded())
        for spelling in ("Remote-User", "remote-user", "REMOTE_USER", "Remote_User"):
            resp = request(gw, get("/app/spoof", f"{spelling}: admin"))
            expect(resp.status == 401, f"{spelling}: {resp!r}")
        expect(not seen_since(mark), "a spoofed request reached the app")

    def public_path_without_login_and_without_identity():
        mark = len(upstream.recorded())
        resp = request(gw, get("/share/song", "Remote-User: admin"))
        expect(resp.status == 200, f"public path: {resp!r}")
        seen = seen_since(mark)
        expect(len(seen) == 1, f"app saw {len(seen)} requests")
        expect(identity_lines(seen[0][0]) == [], f"identity on a public path: {seen[0][0]!r}")
        resp = request(gw, get("/share/../app/escape"))
        expect(resp.status == 401, f"/share/../app/ must be protected: {resp!r}")

    def pipelined_second_request_is_judged():
        mark = len(upstream.recorded())
        client = Client(gw)
        try:
            client.send(
                get("/app/first", f"Authorization: {BASIC}")
                + get("/app/second", "Remote-User: admin")
            )
            first = client.read_response()
            second = client.read_response()
        finally:
            client.close()
        expect(first.status == 200, f"first: {first!r}")
        expect(second.status == 401, f"second: {second!r}")
        seen = seen_since(mark)
        expect([h.split(b"\r\n")[0] for h, _ in seen] == [b"GET /app/first HTTP/1.1"], f"{seen!r}")

    def request_body_reaches_the_app():
        mark = len(upstream.recorded())
        body = b"x" * 3000
        raw = (
            f"POST /app/upload HTTP/1.1\r\nHost: gw\r\nAuthorization: {BASIC}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        resp = request(gw, raw)
        expect(resp.status == 200, f"upload: {resp!r}")
        seen = seen_since(mark)
        expect(len(seen) == 1 and seen[0][1] == body, "the app did not get the body intact")

    def upstream_down_gives_502_then_recovers():
        upstream.stop()
        try:
            resp = request(gw, get("/app/down", f"Authorization: {BASIC}"))
            expect(resp.status == 502, f"app down: {resp!r}")
        finally:
            upstream.start()
        resp = request(gw, get("/app/back", f"Authorization: {BASIC}"))
        expect(resp.status == 200, f"app back: {resp!r}")

    def trusted_proxy_header_is_believed_only_from_the_trusted_peer():
        mark = len(upstream.recorded())
        client = Client(gw, source=args.trusted_peer)
        try:
            client.send(get("/app/proxied", "Remote-User: carol"))
            resp = client.read_response()
        finally:
            client.close()
        expect(resp.status == 200, f"from the trusted proxy: {resp!r}")
        seen = seen_since(mark)
        expect(len(seen) == 1, f"app saw {len(seen)} requests")
        ids = identity_lines(seen[0][0])
        expect(ids == ["remote-user: carol"], f"identity the app saw: {ids}")
        mark = len(upstream.recorded())
        resp = request(gw, get("/app/not-proxied", "Remote-User: carol"))
        expect(resp.status == 401, f"from an untrusted peer: {resp!r}")
        expect(not seen_since(mark), "an untrusted peer's header reached the app")

    def connect_with_retries():
        # A connection task between two clients (closing the last one) is not listening for
        # a moment, and the board's TCP stack keeps no backlog: a connection may be refused
        # then, so held connections are opened with bounded retries.
        for _ in range(CONNECT_RETRIES):
            try:
                return Client(gw)
            except ConnectionRefusedError:
                time.sleep(RETRY_PAUSE)
        return Client(gw)

    def hold_a_connection_task():
        # A connection counts as held only once a connection task has answered it: one that
        # reached the overflow socket (a task was still finishing its last client) got 503
        # and was closed, and is opened again. Keep-alive then binds the task to this client.
        last = None
        for _ in range(CONNECT_RETRIES):
            client = connect_with_retries()
            try:
                client.send(HEALTH)
                last = client.read_response()
                if last.status == 200:
                    return client
            except OSError as e:
                last = e
            client.close()
            time.sleep(RETRY_PAUSE)
        raise AssertionError(f"could not hold a connection task: {last!r}")

    def clients_beyond_the_limit_get_503_then_service_resumes():
        held = []
        try:
            for _ in range(MAX_CONNECTIONS):
                held.append(hold_a_connection_task())
            last = None
            for _ in range(CONNECT_RETRIES):
                try:
                    last = request(gw, HEALTH)
                    if last.status == 503:
                        break
                except OSError as e:
                    last = e
                time.sleep(RETRY_PAUSE)
            expect(isinstance(last, Response) and last.status == 503, f"over the limit: {last!r}")
        finally:
            for c in held:
                c.close()
        last = None
        for _ in range(CONNECT_RETRIES):
            try:
                last = request(gw, HEALTH)
                if last.status == 200:
                    break
            except OSError as e:
                last = e
            time.sleep(RETRY_PAUSE)
        expect(isinstance(last, Response) and last.status == 200, f"after the limit: {last!r}")

    checks.run("health answers", health_answers)
    checks.run("keep-alive serves several requests", keep_alive_serves_several_requests)
    checks.run("head split across writes", head_split_across_writes)
    checks.run("concurrent clients served", concurrent_clients_served)
    checks.run("anonymous client gets 401, app sees nothing", anonymous_client_gets_401_and_app_sees_nothing)
    checks.run("anonymous browser is sent to the login page", anonymous_browser_is_sent_to_login)
    checks.run("Basic reaches the app as the user; spoofs do not", basic_reaches_app_as_the_user_and_spoofs_do_not)
    checks.run("wrong Basic password is refused", wrong_basic_password_is_refused)
    checks.run("login form, then the session cookie", login_form_then_cookie)
    checks.run("spoofed Remote-User never reaches the app", spoofed_remote_user_alone_never_reaches_the_app)
    checks.run("public path without login and without identity", public_path_without_login_and_without_identity)
    checks.run("pipelined second request is judged", pipelined_second_request_is_judged)
    checks.run("request body reaches the app", request_body_reaches_the_app)
    checks.run("app down gives 502, then recovers", upstream_down_gives_502_then_recovers)
    checks.run(
        "clients beyond the limit get 503, then service resumes",
        clients_beyond_the_limit_get_503_then_service_resumes,
    )
    if args.trusted_peer:
        checks.run(
            "trusted proxy's header believed only from the trusted peer",
            trusted_proxy_header_is_believed_only_from_the_trusted_peer,
        )

    upstream.stop()
    print(f"{checks.passed} passed, {checks.failed} failed", flush=True)
    return 0 if checks.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
