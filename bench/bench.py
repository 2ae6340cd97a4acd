#!/usr/bin/env python3
"""gatehouse against nginx and Caddy: throughput, latency, connection scaling, memory,
start-up time and the firmware's figures, written to docs/performance.md with its plots.

Every configuration sits in front of one fixed app (an nginx returning about 1 KiB and the
identity header it saw, in `X-Seen-Remote-User`) and gets the same load (wrk, 2 threads, 32
keep-alive connections). Before any timing, each configuration must pass the correctness
checks: an anonymous request is refused without reaching the app, a spoofed `Remote-User`
never reaches the app, the authenticated user does. A failed check stops the run.

The configurations are measured interleaved (A B C ... A B C ...) over several rounds; the
table shows medians, and each ratio to `direct` is taken within a round before the median.

Run it through bench/run.sh (which installs the peers and builds gatehouse); `--help` lists
the options. Everything listens on 127.0.0.1 on ports chosen at run time; every process the
run starts is stopped by its PID when the run ends, whatever the reason.
"""

import argparse
import base64
import datetime
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import plots  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
USER = "alice"
PASSWORD = "correct horse battery staple"
SPOOF = "mallory"
BCRYPT_COST = 5  # what `htpasswd -B` writes by default
BODY = ("gatehouse benchmark app. " * 42)[:1024]

CONFIGS = [
    ("direct", "the app itself: the ceiling"),
    ("nginx-proxy", "nginx reverse proxy, no authentication"),
    ("nginx-basic-bcrypt", f"nginx `auth_basic`, bcrypt cost {BCRYPT_COST}"),
    ("caddy-basic", f"Caddy `basicauth`, bcrypt cost {BCRYPT_COST}, its hash cache on"),
    ("nginx-auth-request", "nginx `auth_request` to a trivial endpoint (nginx, cookie check)"),
    ("gatehouse-cookie", "gatehouse, session cookie"),
    ("gatehouse-basic", "gatehouse, HTTP Basic (verified-credential cache)"),
    ("nginx→gatehouse-forward-auth", "nginx `auth_request` to gatehouse's `/_gatehouse/auth/nginx`"),
]
SCALING_CONFIGS = ["direct", "nginx-proxy", "caddy-basic", "gatehouse-cookie", "gatehouse-basic"]


class Failure(Exception):
    """A check failed: the run stops and says which and why."""


def log(msg):
    print(msg, flush=True)


# --- processes -----------------------------------------------------------------------------


class Processes:
    """Every process the run starts, so that each is stopped by its PID at the end."""

    def __init__(self):
        self.procs = []

    def start(self, name, argv, log_path, env=None, cwd=None):
        out = open(log_path, "ab")
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        out.close()
        proc.bench_name = name
        proc.bench_log = log_path
        self.procs.append(proc)
        return proc

    def stop(self, proc, timeout=5.0):
        if proc.poll() is None:
            try:
                # nginx stops its workers on SIGTERM; the others just exit.
                os.kill(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self):
        for proc in reversed(list(self.procs)):
            self.stop(proc)

    def check_alive(self):
        for proc in self.procs:
            if proc.poll() is not None:
                tail = Path(proc.bench_log).read_text(errors="replace")[-2000:]
                raise Failure(f"{proc.bench_name} exited ({proc.returncode}):\n{tail}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port, path="/", timeout=20.0, proc=None, expect=None):
    """Waits until `GET path` on the port answers; returns the seconds it took."""
    start = time.monotonic()
    while True:
        if proc is not None and proc.poll() is not None:
            tail = Path(proc.bench_log).read_text(errors="replace")[-2000:]
            raise Failure(f"{proc.bench_name} exited while starting:\n{tail}")
        try:
            status, _, _ = request(port, path, timeout=1.0)
            if expect is None or status == expect:
                return time.monotonic() - start
        except OSError:
            pass
        if time.monotonic() - start > timeout:
            raise Failure(f"nothing answered on 127.0.0.1:{port}{path} within {timeout}s")
        time.sleep(0.005)


def request(port, path="/", headers=(), method="GET", body=None, timeout=10.0):
    """One request on a new connection; returns (status, headers as a list, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, resp.getheaders(), data
    finally:
        conn.close()


def header(headers, name):
    values = [v for k, v in headers if k.lower() == name.lower()]
    return values[0] if values else None


def set_cookie(headers, name):
    for k, v in headers:
        if k.lower() == "set-cookie" and v.startswith(name + "="):
            return v.split(";", 1)[0].split("=", 1)[1]
    return None


# --- the peers' configurations --------------------------------------------------------------

NGINX_COMMON = """
worker_processes {workers};
worker_rlimit_nofile 65536;
error_log {dir}/error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections {connections}; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    underscores_in_headers off;
{body}
}}
"""


def nginx_conf(dir_, body, workers="auto", connections=16384):
    return NGINX_COMMON.format(dir=dir_, body=body, workers=workers, connections=connections)


def app_conf(app_port, trivial_auth_port):
    """The fixed app, and the trivial auth endpoint nginx-auth-request asks."""
    return f"""
    server {{
        listen 127.0.0.1:{app_port};
        location / {{
            default_type text/plain;
            add_header X-Seen-Remote-User "$http_remote_user" always;
            add_header X-Bench-App "1" always;
            return 200 "{BODY}";
        }}
    }}
    server {{
        listen 127.0.0.1:{trivial_auth_port};
        location / {{
            if ($http_cookie !~ "bench_session=ok") {{ return 401; }}
            add_header Remote-User "{USER}";
            return 200;
        }}
    }}
"""


def front_conf(ports, app_port, trivial_auth_port, gh_fa_port, htpasswd):
    """One nginx with a server per nginx configuration, each tuned as people run them:
    keep-alive to the app and to the auth endpoint, identity header overwritten."""
    proxy = """
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;"""
    auth_location = """
        location = /_bench_auth {{
            internal;
            proxy_pass http://{upstream}{uri};
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Original-Method $request_method;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}"""
    return f"""
    upstream app {{ server 127.0.0.1:{app_port}; keepalive 64; }}
    upstream trivial_auth {{ server 127.0.0.1:{trivial_auth_port}; keepalive 64; }}
    upstream gatehouse_auth {{ server 127.0.0.1:{gh_fa_port}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{ports["nginx-proxy"]};
        location / {{ proxy_pass http://app; {proxy} }}
    }}
    server {{
        listen 127.0.0.1:{ports["nginx-basic-bcrypt"]};
        location / {{
            auth_basic "bench";
            auth_basic_user_file {htpasswd};
            proxy_set_header Remote-User $remote_user;
            proxy_pass http://app; {proxy}
        }}
    }}
    server {{
        listen 127.0.0.1:{ports["nginx-auth-request"]};
        {auth_location.format(upstream="trivial_auth", uri="/auth")}
        location / {{
            auth_request /_bench_auth;
            auth_request_set $user $upstream_http_remote_user;
            proxy_set_header Remote-User $user;
            proxy_pass http://app; {proxy}
        }}
    }}
    server {{
        listen 127.0.0.1:{ports["nginx→gatehouse-forward-auth"]};
        {auth_location.format(upstream="gatehouse_auth", uri="/_gatehouse/auth/nginx")}
        location / {{
            auth_request /_bench_auth;
            auth_request_set $user $upstream_http_remote_user;
            proxy_set_header Remote-User $user;
            proxy_pass http://app; {proxy}
        }}
    }}
"""


def caddyfile(port, app_port, bcrypt_hash):
    return f"""{{
	admin off
	auto_https off
}}
http://127.0.0.1:{port} {{
	basicauth {{
		{USER} {base64.b64encode(bcrypt_hash.encode()).decode()}
	}}
	reverse_proxy 127.0.0.1:{app_port} {{
		header_up Remote-User {{http.auth.user.id}}
	}}
}}
"""


# --- the world: every process of a run -----------------------------------------------------


class World:
    def __init__(self, args, procs, workdir):
        self.args = args
        self.procs = procs
        self.dir = Path(workdir)
        self.ports = {}
        self.headers = {}  # configuration -> the credential header wrk sends
        self.pids = {}  # configuration -> the PIDs whose memory is its cost

    def path(self, *parts):
        p = self.dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def start_nginx(self, name, body, workers="auto", connections=16384):
        d = self.path(name, "x").parent
        os.chmod(self.dir, 0o755)
        os.chmod(d, 0o755)
        conf = d / "nginx.conf"
        conf.write_text(nginx_conf(d, body, workers, connections))
        argv = ["nginx", "-p", str(d), "-c", str(conf), "-g", "daemon off; master_process on;"]
        return self.procs.start(name, argv, str(d / "stdout.log"))

    def start_gatehouse(self, name, port, extra=()):
        state = self.path(name, "state", "x").parent
        argv = [
            self.args.gatehouse,
            "serve",
            "--allow-root",
            "--listen",
            f"127.0.0.1:{port}",
            "--upstream",
            f"http://127.0.0.1:{self.app_port}",
            "--state-dir",
            str(state),
            *extra,
        ]
        env = dict(os.environ, RUST_LOG=self.args.gatehouse_log)
        return self.procs.start(name, argv, str(self.path(name, "gatehouse.log")), env=env)

    def add_user(self, name):
        state = self.path(name, "state", "x").parent
        subprocess.run(
            [self.args.gatehouse, "users", "add", USER, "--password-stdin", "--state-dir", str(state)],
            input=(PASSWORD + "\n").encode(),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def up(self):
        a = self.args
        self.app_port = free_port()
        self.trivial_auth_port = free_port()
        for name, _ in CONFIGS:
            self.ports[name] = free_port()
        self.ports["direct"] = self.app_port
        self.gh_port = self.ports["gatehouse-cookie"]
        self.ports["gatehouse-basic"] = self.gh_port
        self.gh_fa_port = free_port()

        # The password file nginx and Caddy check: one bcrypt hash for both.
        htpasswd = self.path("htpasswd")
        subprocess.run(
            ["htpasswd", "-b", "-B", "-C", str(BCRYPT_COST), "-c", str(htpasswd), USER, PASSWORD],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        bcrypt_hash = htpasswd.read_text().strip().split(":", 1)[1]
        self.bcrypt_hash = bcrypt_hash

        app = self.start_nginx("app", app_conf(self.app_port, self.trivial_auth_port), a.app_workers)
        wait_http(self.app_port, proc=app)
        self.pids["direct"] = [app.pid]

        for name in ("gatehouse-cookie", "gatehouse-forward-auth"):
            self.add_user(name)
        gh = self.start_gatehouse("gatehouse-cookie", self.gh_port)
        # The forward-auth gatehouse trusts nginx (on 127.0.0.1) for the original URI
        # (forwarding trust only); that is why it is a second instance: the first must not
        # trust the benchmark's clients.
        gh_fa = self.start_gatehouse(
            "gatehouse-forward-auth", self.gh_fa_port, ["--trusted-proxies", "127.0.0.1/32"]
        )
        self.gatehouse = gh
        wait_http(self.gh_port, "/_gatehouse/health", proc=gh, expect=200)
        wait_http(self.gh_fa_port, "/_gatehouse/health", proc=gh_fa, expect=200)
        self.pids["gatehouse-cookie"] = [gh.pid]
        self.pids["gatehouse-basic"] = [gh.pid]

        front = self.start_nginx(
            "front",
            front_conf(self.ports, self.app_port, self.trivial_auth_port, self.gh_fa_port, htpasswd),
        )
        for name in ("nginx-proxy", "nginx-basic-bcrypt", "nginx-auth-request", "nginx→gatehouse-forward-auth"):
            wait_http(self.ports[name], proc=front)
            self.pids[name] = [front.pid]
        self.pids["nginx→gatehouse-forward-auth"] = [front.pid, gh_fa.pid]
        self.front = front

        cdir = self.path("caddy", "x").parent
        (cdir / "Caddyfile").write_text(caddyfile(self.ports["caddy-basic"], self.app_port, bcrypt_hash))
        cenv = dict(os.environ, HOME=str(cdir), XDG_DATA_HOME=str(cdir / "data"), XDG_CONFIG_HOME=str(cdir / "config"))
        caddy = self.procs.start(
            "caddy",
            ["caddy", "run", "--config", str(cdir / "Caddyfile"), "--adapter", "caddyfile"],
            str(cdir / "caddy.log"),
            env=cenv,
        )
        wait_http(self.ports["caddy-basic"], proc=caddy)
        self.pids["caddy-basic"] = [caddy.pid]
        self.caddy = caddy

        # Credentials.
        basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        self.headers = {
            "direct": [],
            "nginx-proxy": [],
            "nginx-basic-bcrypt": [("Authorization", basic)],
            "caddy-basic": [("Authorization", basic)],
            "nginx-auth-request": [("Cookie", "bench_session=ok")],
            "gatehouse-basic": [("Authorization", basic)],
            "gatehouse-cookie": [("Cookie", "gatehouse_session=" + login(self.gh_port))],
            "nginx→gatehouse-forward-auth": [("Cookie", "gatehouse_session=" + login(self.gh_fa_port))],
        }


def login(port):
    """Logs in through gatehouse's login form and returns the session cookie's value."""
    status, headers, page = request(port, "/_gatehouse/login", [("Accept", "text/html")])
    if status != 200:
        raise Failure(f"login page on port {port}: status {status}")
    csrf_cookie = set_cookie(headers, "gatehouse_csrf")
    m = re.search(rb'name="csrf" value="([^"]+)"', page)
    if not csrf_cookie or not m:
        raise Failure("the login page has no CSRF cookie or field")
    from urllib.parse import quote

    form = f"csrf={quote(m.group(1).decode())}&return=%2F&username={quote(USER)}&password={quote(PASSWORD)}"
    status, headers, _ = request(
        port,
        "/_gatehouse/login",
        [
            ("Origin", f"http://127.0.0.1:{port}"),
            ("Sec-Fetch-Site", "same-origin"),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", f"gatehouse_csrf={csrf_cookie}"),
        ],
        method="POST",
        body=form.encode(),
    )
    session = set_cookie(headers, "gatehouse_session")
    if status != 303 or not session:
        raise Failure(f"login on port {port}: status {status}, no session cookie")
    return session


# --- correctness before timing --------------------------------------------------------------


def check_config(world, name):
    """The checks every configuration passes before it is timed. Returns a line saying what
    was checked."""
    port = world.ports[name]
    creds = world.headers[name]

    def expect_app(headers_, what, user):
        status, hdrs, body = request(port, "/", headers_)
        if status != 200 or header(hdrs, "X-Bench-App") != "1" or len(body) != len(BODY):
            raise Failure(f"{name}: {what}: expected the app's 200 with {len(BODY)} bytes, got {status}, {len(body)} bytes")
        seen = header(hdrs, "X-Seen-Remote-User") or ""
        if seen != user:
            raise Failure(f"{name}: {what}: the app saw Remote-User {seen!r}, expected {user!r}")

    def expect_refused(headers_, what):
        status, hdrs, _ = request(port, "/", headers_)
        if status == 200 or header(hdrs, "X-Bench-App") is not None:
            raise Failure(f"{name}: {what}: reached the app (status {status})")

    if not creds:
        expect_app([], "plain request", "")
        return "answers 200 with the app's 1 KiB (no authentication)"
    expect_refused([], "anonymous request")
    expect_refused([("Remote-User", SPOOF)], "anonymous request with a spoofed Remote-User")
    wrong = "Basic " + base64.b64encode(f"{USER}:wrong".encode()).decode()
    if creds[0][0] == "Authorization":
        expect_refused([("Authorization", wrong)], "wrong password")
    expect_app(creds, "authenticated request", USER)
    for spoof in ("Remote-User", "remote-user", "Remote_User"):
        expect_app(creds + [(spoof, SPOOF)], f"authenticated request with a spoofed {spoof}", USER)
    return "anonymous refused; spoofed Remote-User never reaches the app; the app sees alice"


# --- load -----------------------------------------------------------------------------------

LAT_RE = re.compile(r"^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)


def to_ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(world, name, connections, duration, threads=2):
    port = world.ports[name]
    argv = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s", "--latency", "--timeout", "5s"]
    for k, v in world.headers[name]:
        argv += ["-H", f"{k}: {v}"]
    argv.append(f"http://127.0.0.1:{port}/")
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration * 3 + 60).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise Failure(f"{name}: wrk printed no rate:\n{out}")
    lat = {int(p): to_ms(v, u) for p, v, u in LAT_RE.findall(out)}
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    return {
        "rps": float(m.group(1)),
        "lat": lat,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "errors": sum(int(x) for x in errors.groups()) if errors else 0,
        "requests": int(total.group(1)) if total else 0,
        "raw": out,
    }


def run_throughput(world, names):
    a = world.args
    rounds = []
    for r in range(a.rounds):
        row = {}
        for name in names:
            world.procs.check_alive()
            if a.warmup > 0:
                wrk(world, name, a.connections, a.warmup)
            cpu0 = cpu_seconds(world.pids[name])
            res = wrk(world, name, a.connections, a.duration)
            cpu1 = cpu_seconds(world.pids[name])
            if res["non2xx"]:
                raise Failure(f"{name}: {res['non2xx']} responses were not 2xx under load:\n{res['raw']}")
            res["cpu_us"] = (cpu1 - cpu0) / max(res["requests"], 1) * 1e6
            row[name] = res
            log(f"  round {r + 1}/{a.rounds} {name:30s} {res['rps']:10.0f} req/s  p50 {res['lat'].get(50, 0):.2f} ms  p99 {res['lat'].get(99, 0):.2f} ms  CPU {res['cpu_us']:.1f} µs/req  errors {res['errors']}")
        rounds.append(row)
    return rounds


def summarize(rounds, names):
    out = {}
    for name in names:
        rps = [r[name]["rps"] for r in rounds]
        ratio = [r[name]["rps"] / r["direct"]["rps"] for r in rounds if "direct" in r]
        out[name] = {
            "rps": statistics.median(rps),
            "rps_all": rps,
            "ratio": statistics.median(ratio) if ratio else None,
            "lat": {p: statistics.median(r[name]["lat"].get(p, 0.0) for r in rounds) for p in (50, 75, 90, 99)},
            "errors": sum(r[name]["errors"] for r in rounds),
            "cpu_us": statistics.median(r[name]["cpu_us"] for r in rounds),
        }
    return out


def run_scaling(world, names):
    a = world.args
    results = {n: {} for n in names}
    for c in a.scaling:
        for name in names:
            world.procs.check_alive()
            if a.warmup > 0:
                wrk(world, name, c, a.warmup)
            res = wrk(world, name, c, a.duration)
            if res["non2xx"]:
                raise Failure(f"{name} at {c} connections: {res['non2xx']} responses were not 2xx:\n{res['raw']}")
            results[name][c] = res
            log(f"  {c:5d} connections {name:30s} {res['rps']:10.0f} req/s  p99 {res['lat'].get(99, 0):.2f} ms  errors {res['errors']}")
    return results


# --- memory and start-up --------------------------------------------------------------------


def family(pids):
    """The processes and their children (nginx's workers)."""
    out = set(pids)
    for child in Path("/proc").glob("[0-9]*"):
        try:
            stat = (child / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) in pids:
                out.add(int(child.name))
        except (OSError, ValueError, IndexError):
            pass
    return out


def cpu_seconds(pids):
    """User + system CPU time used so far by the processes, their threads and children."""
    total = 0
    for pid in family(pids):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def memory_kib(pids):
    """(RSS, PSS) in KiB of the processes and their children (nginx's workers)."""
    rss = pss = 0
    for pid in family(pids):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            pass
    return rss, pss


def open_keepalive(port, headers, n):
    """Opens n connections, each completing one request and staying open."""
    req = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    socks = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.sendall(req.encode())
            socks.append(s)
        for s in socks:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(65536)
                if not chunk:
                    raise Failure(f"port {port}: a keep-alive connection closed")
                data += chunk
            if not data.startswith(b"HTTP/1.1 200"):
                raise Failure(f"port {port}: a keep-alive request got {data[:40]!r}")
            clen = int(re.search(rb"(?i)content-length:\s*(\d+)", data).group(1))
            body = data.split(b"\r\n\r\n", 1)[1]
            while len(body) < clen:
                body += s.recv(65536)
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


def run_memory(world):
    """RSS and PSS of a fresh instance of each gateway: idle after its first answer, then with
    `--memory-connections` keep-alive connections open, each having completed one
    authenticated request; and of the benchmarked gatehouse, idle after all the load."""
    n = world.args.memory_connections
    app = world.app_port
    out = {}

    def measure(name, proc, port, headers):
        try:
            # One request first: gatehouse's Basic cache or Caddy's hash cache is then warm,
            # and the thousand requests below do not each hash a password.
            status, _, _ = request(port, "/", headers)
            if status != 200:
                raise Failure(f"{name}: the first request got {status}")
            time.sleep(0.3)
            idle = memory_kib([proc.pid])
            socks = open_keepalive(port, headers, n)
            time.sleep(0.5)
            loaded = memory_kib([proc.pid])
            for s_ in socks:
                s_.close()
            out[name] = {"idle": idle, "loaded": loaded}
            log(f"  {name:20s} idle RSS {idle[0] / 1024:.1f} MiB (PSS {idle[1] / 1024:.1f}); with {len(socks)} connections RSS {loaded[0] / 1024:.1f} MiB (PSS {loaded[1] / 1024:.1f})")
        finally:
            world.procs.stop(proc)

    port = free_port()
    world.add_user("memory-gatehouse")
    proc = world.start_gatehouse("memory-gatehouse", port)
    wait_http(port, "/_gatehouse/health", proc=proc, expect=200)
    measure("gatehouse", proc, port, [("Cookie", "gatehouse_session=" + login(port))])

    port = free_port()
    body = f"""
    upstream app {{ server 127.0.0.1:{app}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }}
    }}"""
    # Room for the clients and a connection to the app each, and no more: nginx allocates
    # its connection table up front.
    proc = world.start_nginx("memory-nginx", body, connections=max(1024, 2 * n + 64))
    wait_http(port, proc=proc, expect=200)
    measure("nginx (proxy)", proc, port, [])

    port = free_port()
    d = world.path("memory-caddy", "x").parent
    (d / "Caddyfile").write_text(caddyfile(port, app, world.bcrypt_hash))
    env = dict(os.environ, HOME=str(d), XDG_DATA_HOME=str(d / "data"), XDG_CONFIG_HOME=str(d / "config"))
    proc = world.procs.start("memory-caddy", ["caddy", "run", "--config", str(d / "Caddyfile"), "--adapter", "caddyfile"], str(d / "caddy.log"), env=env)
    wait_http(port, proc=proc)
    measure("Caddy (basicauth)", proc, port, world.headers["caddy-basic"])

    after = memory_kib([world.gatehouse.pid])
    out["gatehouse after the benchmark"] = {"idle": after, "loaded": None}
    log(f"  gatehouse after all the load above, idle: RSS {after[0] / 1024:.1f} MiB (PSS {after[1] / 1024:.1f})")
    return out


def run_startup(world):
    """Seconds from spawning each gateway to its first answer, median of several starts."""
    a = world.args
    app = world.app_port
    results = {}

    def gatehouse_once(i):
        port = free_port()
        name = f"startup-gatehouse-{i}"
        world.add_user(name)
        t0 = time.monotonic()
        proc = world.start_gatehouse(name, port)
        try:
            wait_http(port, "/_gatehouse/health", proc=proc, expect=200)
            return time.monotonic() - t0
        finally:
            world.procs.stop(proc)

    def nginx_once(i):
        port = free_port()
        body = f"""
    upstream app {{ server 127.0.0.1:{app}; keepalive 64; }}
    server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://app; }} }}"""
        t0 = time.monotonic()
        proc = world.start_nginx(f"startup-nginx-{i}", body)
        try:
            wait_http(port, proc=proc, expect=200)
            return time.monotonic() - t0
        finally:
            world.procs.stop(proc)

    def caddy_once(i):
        port = free_port()
        d = world.path(f"startup-caddy-{i}", "x").parent
        (d / "Caddyfile").write_text(
            "{\n\tadmin off\n\tauto_https off\n}\n"
            f"http://127.0.0.1:{port} {{\n\treverse_proxy 127.0.0.1:{app}\n}}\n"
        )
        env = dict(os.environ, HOME=str(d), XDG_DATA_HOME=str(d / "data"), XDG_CONFIG_HOME=str(d / "config"))
        t0 = time.monotonic()
        proc = world.procs.start(f"startup-caddy-{i}", ["caddy", "run", "--config", str(d / "Caddyfile"), "--adapter", "caddyfile"], str(d / "caddy.log"), env=env)
        try:
            wait_http(port, proc=proc, expect=200)
            return time.monotonic() - t0
        finally:
            world.procs.stop(proc)

    for label, fn in (("gatehouse", gatehouse_once), ("nginx", nginx_once), ("caddy", caddy_once)):
        times = [fn(i) for i in range(a.startup_runs)]
        results[label] = statistics.median(times)
        log(f"  {label:10s} {results[label] * 1000:.0f} ms to the first answer (median of {len(times)})")
    return results


# --- firmware -------------------------------------------------------------------------------

BOARDS = [("qemu-mps2-an386", "gatehouse-qemu"), ("nucleo-h743zi", "gatehouse-nucleo-h743zi")]


def boards_target():
    return Path(os.environ.get("GATEHOUSE_BOARDS_TARGET", ROOT / "target" / "boards"))


def build_board(board):
    env = dict(os.environ, CARGO_TARGET_DIR=str(boards_target()))
    r = subprocess.run(["cargo", "build", "--release", "--locked"], cwd=ROOT / "boards" / board, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise Failure(f"building boards/{board} failed:\n{r.stderr[-3000:]}")


def run_firmware_sizes(world):
    out = {}
    for board, binary in BOARDS:
        elf = boards_target() / "thumbv7em-none-eabihf" / "release" / binary
        if world.args.build_firmware:
            log(f"  building boards/{board} (cargo does nothing if it is up to date)")
            build_board(board)
        if not elf.exists():
            out[board] = None
            log(f"  {board}: no image at {elf} (build it, or run with --build-firmware)")
            continue
        r = subprocess.run([str(ROOT / "boards" / "check-budget.sh"), str(elf)], capture_output=True, text=True)
        m = re.search(r"flash (\d+) B .* static RAM (\d+) B", r.stdout)
        if not m:
            raise Failure(f"check-budget.sh printed no figures for {board}:\n{r.stdout}{r.stderr}")
        out[board] = {"flash": int(m.group(1)), "ram": int(m.group(2)), "within_budget": r.returncode == 0}
        log(f"  {board}: flash {int(m.group(1)) / 1024:.1f} KiB, static RAM {int(m.group(2)) / 1024:.1f} KiB, within budget: {r.returncode == 0}")
    return out


def run_host_tap(world):
    """Requests/s through the firmware on the host-tap board, in a network namespace of its own:
    wrk and the app on the namespace's side of the TAP device, the board on 192.0.2.15."""
    a = world.args
    binary = boards_target() / "release" / "gatehouse-host-tap"
    if a.build_firmware:
        log("  building boards/host-tap (cargo does nothing if it is up to date)")
        build_board("host-tap")
    if not binary.exists():
        return {"skipped": f"no host-tap binary at {binary} (run with --build-firmware)"}
    if os.geteuid() != 0 or not shutil.which("ip"):
        return {"skipped": "needs root and iproute2 for a network namespace and a TAP device"}
    ns = f"gatehouse-bench-{os.getpid()}"
    d = world.path("host-tap", "x").parent
    app_port = 8080
    (d / "config.json").write_text(json.dumps({
        "upstream": f"192.0.2.1:{app_port}", "address": "192.0.2.15/24", "gateway": "192.0.2.1",
        "trusted_sources": "", "password_iterations": 1000,
    }))
    subprocess.run(["python3", str(ROOT / "boards" / "provision.py"), "--config", str(d / "config.json"),
                    "--user", f"{USER}:{PASSWORD}", "--iterations", "1000", "-o", str(d / "region.bin")],
                   check=True, stdout=subprocess.DEVNULL)
    app_dir = d / "app"
    app_dir.mkdir(exist_ok=True)
    os.chmod(app_dir, 0o755)
    (app_dir / "nginx.conf").write_text(nginx_conf(app_dir, f"""
    server {{
        listen 192.0.2.1:{app_port};
        location / {{
            default_type text/plain;
            add_header X-Seen-Remote-User "$http_remote_user" always;
            add_header X-Bench-App "1" always;
            return 200 "{BODY}";
        }}
    }}""", workers=1))
    nsx = ["ip", "netns", "exec", ns]
    created = False
    board = app = None
    try:
        for cmd in (["ip", "netns", "add", ns], ["ip", "-n", ns, "link", "set", "lo", "up"],
                    ["ip", "-n", ns, "tuntap", "add", "dev", "ghbench0", "mode", "tap"],
                    ["ip", "-n", ns, "addr", "add", "192.0.2.1/24", "dev", "ghbench0"],
                    ["ip", "-n", ns, "link", "set", "ghbench0", "up"]):
            subprocess.run(cmd, check=True)
            created = True
        app = world.procs.start("host-tap-app", nsx + ["nginx", "-p", str(app_dir), "-c", str(app_dir / "nginx.conf"), "-g", "daemon off; master_process on;"], str(app_dir / "stdout.log"))
        board = world.procs.start("host-tap", nsx + [str(binary), "--tap", "ghbench0", "--config", str(d / "region.bin"), "--state", str(d / "store.bin")], str(d / "board.log"))
        basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        probe = (
            "import http.client,sys,time\n"
            "t=time.time()\n"
            "while True:\n"
            "  try:\n"
            "    c=http.client.HTTPConnection('192.0.2.15',80,timeout=2);c.request('GET','/',headers={'Authorization':sys.argv[1],'Remote-User':'mallory'});r=c.getresponse();b=r.read()\n"
            "    print(r.status, r.getheader('X-Seen-Remote-User'), len(b));break\n"
            "  except OSError:\n"
            "    if time.time()-t>30: raise\n"
            "    time.sleep(0.2)\n"
        )
        r = subprocess.run(nsx + ["python3", "-c", probe, basic], capture_output=True, text=True, timeout=60)
        if r.stdout.split() != ["200", USER, str(len(BODY))]:
            raise Failure(f"host-tap: the authenticated request with a spoofed Remote-User got {r.stdout!r} {r.stderr[-500:]}")
        r = subprocess.run(nsx + ["python3", "-c", probe.replace("'Authorization':sys.argv[1],", ""), basic], capture_output=True, text=True, timeout=60)
        if r.stdout.split()[:1] != ["401"]:
            raise Failure(f"host-tap: an anonymous request got {r.stdout!r}")
        results = []
        for _ in range(a.rounds):
            out = subprocess.run(nsx + ["wrk", "-t", "2", "-c", str(a.host_tap_connections), "-d", f"{a.duration}s", "--latency", "-H", f"Authorization: {basic}", "http://192.0.2.15/"],
                                 capture_output=True, text=True, timeout=a.duration * 3 + 60).stdout
            m = re.search(r"Requests/sec:\s+([\d.]+)", out)
            lat = {int(p): to_ms(v, u) for p, v, u in LAT_RE.findall(out)}
            non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
            if not m or non2xx:
                raise Failure(f"host-tap under load:\n{out}")
            results.append((float(m.group(1)), lat.get(99, 0.0)))
        rps = statistics.median(x[0] for x in results)
        p99 = statistics.median(x[1] for x in results)
        log(f"  host-tap: {rps:.0f} req/s with {a.host_tap_connections} connections (HTTP Basic), p99 {p99:.2f} ms")
        return {"rps": rps, "p99": p99, "connections": a.host_tap_connections}
    finally:
        for p in (board, app):
            if p is not None:
                world.procs.stop(p)
        if created:
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)


# --- the core alone (Criterion) ---------------------------------------------------------------


def run_criterion(world):
    """`cargo bench` of core's decision beside httparse, and of the trusted-sources match;
    returns {benchmark id: median ns}."""
    a = world.args
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    crit_dir = target / "criterion"
    argv = ["cargo", "bench", "--locked", "-p", "gatehouse-core", "--bench", "decision", "--",
            "--warm-up-time", "1", "--measurement-time", str(a.criterion_seconds), "--noplot"]
    r = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        raise Failure(f"cargo bench failed:\n{r.stderr[-3000:]}")
    head_len = re.search(r"request head: (\d+) bytes", r.stderr)
    out = {"head_len": int(head_len.group(1)) if head_len else None, "ns": {}}
    for est in crit_dir.glob("**/new/estimates.json"):
        meta = est.parent / "benchmark.json"
        if not meta.exists():
            continue
        full_id = json.loads(meta.read_text())["full_id"]
        if not (full_id.startswith("browser_request") or full_id.startswith("decision_parts") or full_id.startswith("trusted_sources_match")):
            continue
        out["ns"][full_id] = json.loads(est.read_text())["median"]["point_estimate"]
    for k in sorted(out["ns"]):
        log(f"  {k:60s} {out['ns'][k]:10.1f} ns")
    return out


# --- the machine ----------------------------------------------------------------------------


def first_line(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def machine_facts(world):
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = "?"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": f"{int(mem) / 1024 / 1024:.0f} GiB",
        "kernel": platform.release(),
        "load": open("/proc/loadavg").read().split()[:3],
        "gatehouse": first_line([world.args.gatehouse, "--version"]) + f" (commit {commit})",
        "rustc": first_line(["rustc", "--version"]),
        "nginx": first_line(["nginx", "-v"]),
        "caddy": first_line(["caddy", "version"]),
        "wrk": first_line(["wrk", "--version"]).split(" [")[0],
        "python": platform.python_version(),
    }


# --- main -----------------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="bench/run.sh",
        description="Measures gatehouse against nginx and Caddy in front of one app, and "
        "writes docs/performance.md with its plots.",
    )
    p.add_argument("--gatehouse", default=str(ROOT / "target" / "release" / "gatehouse"), help="the gatehouse binary")
    p.add_argument("--duration", type=int, default=10, help="seconds of each measurement [10]")
    p.add_argument("--warmup", type=int, default=2, help="seconds of load before each measurement [2]")
    p.add_argument("--rounds", type=int, default=5, help="rounds over every configuration [5]")
    p.add_argument("--connections", type=int, default=32, help="wrk connections for the main table [32]")
    p.add_argument("--scaling", type=lambda s: [int(x) for x in s.split(",")], default=[10, 100, 1000], help="connection counts for the scaling runs [10,100,1000]")
    p.add_argument("--memory-connections", type=int, default=1000, help="keep-alive connections held open for the memory figure [1000]")
    p.add_argument("--startup-runs", type=int, default=5, help="starts per gateway for the start-up time [5]")
    p.add_argument("--host-tap-connections", type=int, default=4, help="connections to the host-tap board (its limit is 4) [4]")
    p.add_argument("--app-workers", default="auto", help="nginx worker processes of the app [auto]")
    p.add_argument("--criterion-seconds", type=int, default=5, help="Criterion measurement time per benchmark [5]")
    p.add_argument("--gatehouse-log", default="warn", help="RUST_LOG of the gatehouse under test [warn: no per-request lines, as nginx runs with access_log off]")
    p.add_argument("--only", help="comma-separated configurations to run (default: all)")
    p.add_argument("--skip", default="", help="comma-separated parts to skip: scaling, memory, startup, criterion, firmware, host-tap")
    p.add_argument("--build-firmware", action="store_true", help="build the board images if needed (else the images found are used)")
    p.add_argument("--out", default=str(ROOT / "docs" / "performance.md"), help="the report [docs/performance.md]; its plots go beside it")
    p.add_argument("--no-report", action="store_true", help="print the results only")
    p.add_argument("--quick", action="store_true", help="2 s per measurement, 1 s warm-up, 1 round, fewer starts")
    p.add_argument("--smoke", action="store_true", help="correctness checks and a 2 s load per configuration after 1 s of warm-up; no report (under a minute)")
    p.add_argument("--keep", action="store_true", help="keep the working directory (configs and logs)")
    p.add_argument("--render", metavar="JSON", help="write the report again from a run's saved results (after editing bench/notes.md), without measuring")
    a = p.parse_args(argv)
    if a.quick:
        a.duration, a.warmup, a.rounds, a.startup_runs, a.criterion_seconds = 2, 1, 1, 2, 1
    if a.smoke:
        a.duration, a.warmup, a.rounds, a.no_report = 2, 1, 1, True
        a.skip = "scaling,memory,startup,criterion,firmware,host-tap"
    a.skip = set(filter(None, a.skip.split(",")))
    return a


def int_keys(x):
    """JSON turned the integer keys (percentiles, connection counts) into strings: undo it."""
    if isinstance(x, dict):
        return {(int(k) if isinstance(k, str) and k.isdigit() else k): int_keys(v) for k, v in x.items()}
    if isinstance(x, list):
        return [int_keys(v) for v in x]
    return x


def main(argv):
    a = parse_args(argv)
    if a.render:
        results = int_keys(json.loads(Path(a.render).read_text()))
        write_report(results, Path(a.out), results["argv"])
        return 0
    names = [n for n, _ in CONFIGS]
    if a.only:
        wanted = a.only.split(",")
        unknown = [w for w in wanted if w not in names]
        if unknown:
            raise SystemExit(f"unknown configuration(s): {unknown}; known: {names}")
        names = [n for n in names if n in wanted or n == "direct"]
    procs = Processes()
    workdir = tempfile.mkdtemp(prefix="gatehouse-bench-")

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    started = time.monotonic()
    try:
        world = World(a, procs, workdir)
        facts = machine_facts(world)
        log(f"machine: {facts['cpu']}, {facts['cores']} cores, load {' '.join(facts['load'])}")
        log("starting the app and the gateways")
        world.up()
        log("correctness checks")
        checks = {}
        for name in names:
            checks[name] = check_config(world, name)
            log(f"  {name:30s} ok: {checks[name]}")
        log(f"throughput: wrk 2 threads, {a.connections} connections, {a.duration} s after {a.warmup} s warm-up, {a.rounds} round(s)")
        rounds = run_throughput(world, names)
        summary = summarize(rounds, names)
        def shown(v):
            # Paths inside the checkout are saved relative to it.
            if isinstance(v, set):
                return sorted(v)
            if isinstance(v, str) and v.startswith(str(ROOT) + "/"):
                return v[len(str(ROOT)) + 1:]
            return v

        results = {"facts": facts, "args": {k: shown(v) for k, v in vars(a).items()},
                   "checks": checks, "summary": summary, "configs": names,
                   "rounds": [{n: {k: v for k, v in r[n].items() if k != "raw"} for n in r} for r in rounds]}
        if "scaling" not in a.skip:
            log(f"connection scaling: {a.scaling}")
            sc = run_scaling(world, [n for n in SCALING_CONFIGS if n in names])
            results["scaling"] = {n: {c: {k: v for k, v in r.items() if k != "raw"} for c, r in d.items()} for n, d in sc.items()}
        if "memory" not in a.skip:
            log("memory")
            results["memory"] = run_memory(world)
        if "startup" not in a.skip:
            log("start-up time")
            results["startup"] = run_startup(world)
        if "criterion" not in a.skip:
            log("core decision (Criterion)")
            results["criterion"] = run_criterion(world)
        if "firmware" not in a.skip:
            log("firmware sizes")
            results["firmware"] = run_firmware_sizes(world)
        if "host-tap" not in a.skip:
            log("host-tap board")
            try:
                results["host_tap"] = run_host_tap(world)
            except (Failure, OSError, subprocess.SubprocessError) as e:
                # The board is measured when it can run here; its failure is reported, and
                # does not throw away the rest of the run.
                log(f"  host-tap not measured: {e}")
                results["host_tap"] = {"skipped": f"the run failed: {str(e).splitlines()[0]}"}
        procs.check_alive()
        results["facts"]["load_end"] = open("/proc/loadavg").read().split()[:3]
        results["elapsed_s"] = time.monotonic() - started
        results["argv"] = [shown(x) for x in argv]
        print_table(results)
        if not a.no_report:
            write_report(results, Path(a.out), argv)
        log(f"done in {results['elapsed_s']:.0f} s")
        return 0
    except Failure as e:
        print(f"\nFAILED: {e}", file=sys.stderr)
        return 1
    finally:
        procs.stop_all()
        if a.keep:
            log(f"working directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def print_table(results):
    s = results["summary"]
    log("\nconfiguration                    req/s   × direct   p50 ms   p99 ms  CPU µs/req")
    for n in results["configs"]:
        r = s[n]
        log(f"{n:30s} {r['rps']:9.0f} {r['ratio'] or 0:9.3f} {r['lat'][50]:8.2f} {r['lat'][99]:8.2f} {r['cpu_us']:10.1f}")


# --- the report -----------------------------------------------------------------------------

TARGETS_NOTE = """Targets: `gatehouse-cookie` ≥ 1.0× `nginx-proxy` requests/s with p99 no worse than
nginx's; `gatehouse-basic` ≥ 0.9× `nginx-proxy` and ≥ 10× `caddy-basic`;
`nginx→gatehouse-forward-auth` ≥ 1.0× `nginx-auth-request`; RSS ≤ 8 MiB idle and ≤ 24 MiB with
1,000 open keep-alive connections; the core decision ≤ 2× `httparse` alone (Criterion, below)."""


def targets(results):
    """Each target: (what, measured, holds)."""
    s = results["summary"]
    out = []

    def ratio(a, b):
        # Within each round, then the median: both ran within seconds of each other.
        rs = [r[a]["rps"] / r[b]["rps"] for r in results["rounds"] if a in r and b in r]
        return statistics.median(rs) if rs else None

    if "gatehouse-cookie" in s and "nginx-proxy" in s:
        r = ratio("gatehouse-cookie", "nginx-proxy")
        p_g, p_n = s["gatehouse-cookie"]["lat"][99], s["nginx-proxy"]["lat"][99]
        out.append(("`gatehouse-cookie` ≥ 1.0× `nginx-proxy` req/s", f"{r:.2f}×", r >= 1.0))
        out.append(("`gatehouse-cookie` p99 ≤ `nginx-proxy` p99", f"{p_g:.2f} ms vs {p_n:.2f} ms", p_g <= p_n))
    if "gatehouse-basic" in s and "nginx-proxy" in s:
        r = ratio("gatehouse-basic", "nginx-proxy")
        out.append(("`gatehouse-basic` ≥ 0.9× `nginx-proxy`", f"{r:.2f}×", r >= 0.9))
    if "gatehouse-basic" in s and "caddy-basic" in s:
        r = ratio("gatehouse-basic", "caddy-basic")
        out.append(("`gatehouse-basic` ≥ 10× `caddy-basic`", f"{r:.2f}×", r >= 10))
    if "nginx→gatehouse-forward-auth" in s and "nginx-auth-request" in s:
        r = ratio("nginx→gatehouse-forward-auth", "nginx-auth-request")
        out.append(("`nginx→gatehouse-forward-auth` ≥ 1.0× `nginx-auth-request`", f"{r:.2f}×", r >= 1.0))
    ns = results.get("criterion", {}).get("ns", {})
    d, h = ns.get("browser_request_with_session_cookie/gatehouse_decision"), ns.get("browser_request_with_session_cookie/httparse_alone")
    if d and h:
        out.append(("core decision ≤ 2× `httparse` alone (same head)", f"{d / h:.2f}× ({d:,.0f} ns vs {h:,.0f} ns)", d / h <= 2))
    mem = results.get("memory", {}).get("gatehouse")
    if mem:
        n = results["args"]["memory_connections"]
        rss = mem["idle"][0] / 1024
        out.append(("gatehouse RSS idle ≤ 8 MiB", f"{rss:.1f} MiB", rss <= 8))
        rss = mem["loaded"][0] / 1024
        out.append((f"gatehouse RSS with {n:,} keep-alive connections ≤ 24 MiB", f"{rss:.1f} MiB", rss <= 24))
    return out


def fmt_int(x):
    return f"{x:,.0f}"


def write_report(results, out, argv):
    out.parent.mkdir(parents=True, exist_ok=True)
    stem = out.stem
    s = results["summary"]
    names = results["configs"]
    f = results["facts"]
    a = results["args"]
    descr = dict(CONFIGS)

    pics = []
    svg = plots.bars(
        "Requests per second (median of rounds)",
        [(n, s[n]["rps"]) for n in names],
        unit="req/s",
        highlight=lambda n: n.startswith("gatehouse") or "gatehouse" in n,
    )
    pics.append((f"{stem}-throughput.svg", svg, "Throughput by configuration"))
    svg = plots.grouped(
        "Latency percentiles (ms, median of rounds)",
        [n for n in names],
        ["p50", "p75", "p90", "p99"],
        [[s[n]["lat"][p] for p in (50, 75, 90, 99)] for n in names],
        unit="ms",
    )
    pics.append((f"{stem}-latency.svg", svg, "Latency percentiles"))
    if "scaling" in results:
        sc = results["scaling"]
        svg = plots.lines(
            "Requests per second by concurrent connections",
            [str(c) for c in a["scaling"]],
            [(n, [sc[n][c]["rps"] for c in a["scaling"]]) for n in sc],
            unit="req/s",
        )
        pics.append((f"{stem}-scaling.svg", svg, "Connection scaling"))
    for fname, text, _ in pics:
        (out.parent / fname).write_text(text)

    L = []
    L.append("# Performance")
    L.append("")
    L.append("<!-- Generated by bench/run.sh from a real run; rerun it rather than editing this file. -->")
    L.append("")
    L.append(
        "gatehouse against what people run instead, in front of the same app, under the same load, on "
        "one machine. Every number below comes from one run of `bench/run.sh`, which also drew the plots."
    )
    L.append("")
    L.append("## How it was measured")
    L.append("")
    # bench/run.sh passes the binary it built; the reader runs bench/run.sh itself.
    shown = [x for i, x in enumerate(argv) if x != "--gatehouse" and (i == 0 or argv[i - 1] != "--gatehouse")]
    L.append(f"- **Command**: `{' '.join(['bench/run.sh'] + shown)}`")
    L.append(f"- **Date**: {f['date']}; the run took {results['elapsed_s'] / 60:.0f} minutes.")
    L.append(f"- **Machine**: {f['cpu']}, {f['cores']} cores, {f['memory']}, Linux {f['kernel']}; load average {' '.join(f['load'])} at the start, {' '.join(f.get('load_end', ['?']))} at the end.")
    L.append(f"- **Versions**: {f['gatehouse']}, built with {f['rustc']} (release profile); {f['nginx']}; Caddy {f['caddy']}; {f['wrk']}; Python {f['python']}.")
    L.append(
        f"- **The app**: nginx ({a['app_workers']} workers) answering `GET /` with {len(BODY)} bytes and the "
        "identity header it saw in `X-Seen-Remote-User`. Everything on 127.0.0.1, ports chosen at run time."
    )
    L.append(
        f"- **Load**: `wrk -t 2 -c {a['connections']} -d {a['duration']}s --latency` with the configuration's "
        f"credential header, after {a['warmup']} s of warm-up, the configurations interleaved over "
        f"{a['rounds']} rounds (A B C … A B C …). Tables show medians over the rounds; each ratio to "
        "`direct` (and between two configurations) is taken within a round, then the median."
    )
    L.append(
        "- **Fairness**: request logs off everywhere (nginx `access_log off`, Caddy's default, gatehouse "
        f"`RUST_LOG={a['gatehouse_log']}`); nginx and Caddy keep keep-alive connections to the app (and to "
        "the auth endpoint) as gatehouse does; one worker per core for nginx (`auto`), Caddy and gatehouse "
        "use their defaults (Go: one thread per core; gatehouse: one single-threaded tokio runtime per core, `workers = \"auto\"`). The load generator, the app and the "
        "gateway share the same cores: this measures what each gateway costs, not what it could do alone."
    )
    L.append(
        "- **Before any timing** every configuration passed: "
        "an anonymous request (also one with a spoofed `Remote-User`, and a wrong password where Basic is used) "
        "is refused without reaching the app; an authenticated request with a spoofed `Remote-User`, "
        "`remote-user` or `Remote_User` reaches the app as `alice` and never as the spoofed name. Any "
        "non-2xx response under load fails the run."
    )
    L.append("")
    L.append("## Throughput and latency")
    L.append("")
    L.append("| configuration | what it is | req/s | × direct | p50 ms | p90 ms | p99 ms | CPU µs/req | socket errors |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for n in names:
        r = s[n]
        L.append(
            f"| `{n}` | {descr[n]} | {fmt_int(r['rps'])} | {r['ratio']:.2f} | {r['lat'][50]:.2f} | "
            f"{r['lat'][90]:.2f} | {r['lat'][99]:.2f} | {r['cpu_us']:.1f} | {r['errors']} |"
        )
    L.append("")
    L.append(
        "*CPU µs/req*: user + system CPU time of the gateway's processes (all threads, nginx's "
        "master and workers) during the measurement, divided by the requests served: what each "
        "request costs the gateway, less sensitive to what else runs on the machine than req/s. For "
        "`direct` it is the app's own cost; for `nginx-auth-request` the trivial endpoint's share "
        "(it runs in the app's nginx) is not counted; for `nginx→gatehouse-forward-auth` it is "
        "nginx's and gatehouse's together."
    )
    L.append("")
    for fname, _, title in pics[:2]:
        L.append(f"![{title}]({fname})")
        L.append("")
    L.append("Requests/s of each round, to see the spread:")
    L.append("")
    L.append("| configuration | " + " | ".join(f"round {i + 1}" for i in range(len(results["rounds"]))) + " |")
    L.append("|---|" + "---:|" * len(results["rounds"]))
    for n in names:
        L.append(f"| `{n}` | " + " | ".join(fmt_int(r[n]["rps"]) for r in results["rounds"]) + " |")
    L.append("")
    if "scaling" in results:
        sc = results["scaling"]
        L.append("## Connection scaling")
        L.append("")
        L.append(f"`wrk -t 2 -c N -d {a['duration']}s`, one round, same credentials as above.")
        L.append("")
        L.append("| configuration | " + " | ".join(f"{c} conns req/s (p99 ms)" for c in a["scaling"]) + " |")
        L.append("|---|" + "---:|" * len(a["scaling"]))
        for n in sc:
            L.append(f"| `{n}` | " + " | ".join(f"{fmt_int(sc[n][c]['rps'])} ({sc[n][c]['lat'].get(99, 0):.1f})" for c in a["scaling"]) + " |")
        L.append("")
        L.append(f"![Connection scaling]({pics[2][0]})")
        L.append("")
    if "memory" in results:
        m = results["memory"]
        n_conn = a["memory_connections"]
        L.append("## Memory")
        L.append("")
        L.append(
            f"A fresh instance of each gateway in front of the same app: idle after its first answer, then "
            f"with {n_conn:,} keep-alive connections open, each having completed one authenticated request "
            "(gatehouse: session cookie; nginx: plain proxy; Caddy: `basicauth`). RSS counts shared pages in "
            "every process; PSS shares them out, which is the fair sum for nginx's master and workers."
        )
        L.append("")
        L.append(f"| gateway | idle RSS MiB | idle PSS MiB | {n_conn:,} conns RSS MiB | {n_conn:,} conns PSS MiB |")
        L.append("|---|---:|---:|---:|---:|")
        for n, v in m.items():
            if v["loaded"] is None:
                continue
            L.append(f"| {n} | {v['idle'][0] / 1024:.1f} | {v['idle'][1] / 1024:.1f} | {v['loaded'][0] / 1024:.1f} | {v['loaded'][1] / 1024:.1f} |")
        after = m.get("gatehouse after the benchmark")
        if after:
            peak = max(a["scaling"]) if "scaling" in results else a["connections"]
            L.append("")
            L.append(
                f"The gatehouse that served all the load above (up to {peak:,} concurrent connections), "
                f"idle afterwards: RSS {after['idle'][0] / 1024:.1f} MiB, PSS {after['idle'][1] / 1024:.1f} MiB "
                "(buffers kept for reuse and memory the allocator keeps after a peak)."
            )
        L.append("")
    if "startup" in results:
        st = results["startup"]
        L.append("## Start-up time")
        L.append("")
        L.append(f"From spawning the process to its first answer over HTTP, median of {a['startup_runs']} starts:")
        L.append("")
        L.append("| gateway | ms |")
        L.append("|---|---:|")
        for n, v in st.items():
            L.append(f"| {n} | {v * 1000:.0f} |")
        L.append("")
    if "firmware" in results or "host_tap" in results:
        L.append("## Firmware")
        L.append("")
        fw = results.get("firmware") or {}
        if fw:
            L.append("Figures of `boards/check-budget.sh` (flash = vector table + text + rodata + data; static RAM = data + bss + uninit; budgets 160 KiB and 96 KiB):")
            L.append("")
            L.append("| board | flash KiB | static RAM KiB | within budget |")
            L.append("|---|---:|---:|---|")
            for b, v in fw.items():
                if v is None:
                    L.append(f"| `{b}` | – | – | image not built |")
                else:
                    L.append(f"| `{b}` | {v['flash'] / 1024:.1f} | {v['ram'] / 1024:.1f} | {'yes' if v['within_budget'] else '**no**'} |")
            L.append("")
        ht = results.get("host_tap")
        if ht:
            if "skipped" in ht:
                L.append(f"host-tap requests/s: not measured ({ht['skipped']}).")
            else:
                L.append(
                    f"The firmware on the `host-tap` board (embassy's std executor, smoltcp over a TAP device in a "
                    f"network namespace, the app on the other side of the TAP): **{fmt_int(ht['rps'])} req/s**, "
                    f"p99 {ht['p99']:.2f} ms, with `wrk -t 2 -c {ht['connections']}` (the board serves "
                    "4 connections at once) and HTTP Basic. This is the firmware's code path on a PC, through "
                    "a TAP device and a user-space TCP stack: a measure of its cost, not of a board's speed."
                )
            L.append("")
    L.append("## Targets")
    L.append("")
    L.append("| target | measured | holds |")
    L.append("|---|---|---|")
    for what, measured, holds in targets(results):
        L.append(f"| {what} | {measured} | {'yes' if holds else '**no**'} |")
    L.append("")
    notes = ROOT / "bench" / "notes.md"
    if notes.exists():
        L.append(notes.read_text().strip())
        L.append("")
    crit = results.get("criterion")
    if crit:
        ns = crit["ns"]
        L.append("## The core alone (Criterion)")
        L.append("")
        L.append(
            f"`cargo bench -p gatehouse-core --bench decision` (Criterion, median of its samples): the whole "
            f"per-request decision for a {crit['head_len']}-byte browser request with a session cookie "
            "(parse, canonicalise, classify, verify the HMAC-signed session, rewrite the head for the app) "
            "beside `httparse` alone parsing the same head, the floor; then the parts of the decision; then "
            "the trusted-sources match (`TrustedSources::trusts`) for lists of 1, 16 and 64 entries."
        )
        L.append("")
        L.append("| benchmark | ns | × httparse alone |")
        L.append("|---|---:|---:|")
        floor = ns.get("browser_request_with_session_cookie/httparse_alone")
        for k in sorted(ns, key=lambda k: (not k.startswith("browser"), not k.startswith("decision"), k)):
            rel = f"{ns[k] / floor:.2f}" if floor and not k.startswith("trusted") else ""
            L.append(f"| `{k}` | {ns[k]:,.0f} | {rel} |")
        L.append("")
    L.append("## Rerunning")
    L.append("")
    L.append("```sh")
    L.append("bench/run.sh                        # everything, as above (about 15 minutes)")
    L.append("bench/run.sh --quick                # 2 s per measurement, one round")
    L.append("bench/run.sh --smoke                # correctness checks and a 1 s load each; writes nothing")
    L.append("bench/run.sh --only gatehouse-cookie,nginx-proxy --skip scaling,memory,startup,firmware,host-tap")
    L.append("```")
    L.append("")
    L.append("Raw results of this run are in `" + f"{stem}.json" + "` beside this file.")
    L.append("")
    out.write_text("\n".join(L))
    (out.parent / f"{stem}.json").write_text(json.dumps(results, indent=1, default=str))
    log(f"wrote {out} and its plots")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
