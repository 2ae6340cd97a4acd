#!/usr/bin/env python3
"""End-to-end checks that a board's sessions end when they should, across a reboot.

The board's e2e.sh runs it in phases around a reboot of the board (a QEMU system reset, or a
restart of the host-tap process on the same store), with a configuration whose sessions last
--ttl seconds:

    expiry_e2e.py --phase unknown ...   the board does not know the time: no login, no session
                                        page; HTTP Basic still works
    expiry_e2e.py --phase before ...    log in, keep the session in --session-file, wait until
                                        it has expired (with --fresh-session, then log in again
                                        and keep that session too)
    (reboot)
    expiry_e2e.py --phase after ...     once the board knows the time again, the session from
                                        before the reboot stays expired, for longer than it
                                        ever lived (with --fresh-session, first: the fresh
                                        session still opens the app, so the board kept its key
                                        and its sessions, and the expired one is refused for
                                        its expiry, not for a new key)

A board that counts time from its boot (and not from a real clock) accepts that session again
after the reboot: its issue time lies in the board's new future, then inside its lifetime.

Every wait is bounded; exit 0 only when every check passed.
"""

import argparse
import sys
import time
import urllib.parse

from gateway_e2e import (
    BASIC,
    PASSWORD,
    USER,
    Checks,
    RecordingUpstream,
    cookie_from,
    expect,
    get,
    identity_lines,
    parse_addr,
    request,
    wait_for_gateway,
)

POLL = 0.5
# How long a board may take to learn the time (SNTP retries every 5 s).
TIME_KNOWN_WITHIN = 60.0


def login_page(gw):
    return request(gw, get("/_gatehouse/login?return=/app/after", "Accept: text/html"))


def wait_time_known(gw):
    deadline = time.monotonic() + TIME_KNOWN_WITHIN
    page = None
    while time.monotonic() < deadline:
        page = login_page(gw)
        if page.status == 200:
            return page
        time.sleep(POLL)
    raise AssertionError(f"the board did not learn the time in {TIME_KNOWN_WITHIN} s: {page!r}")


def log_in(gw, page):
    csrf_cookie = cookie_from(page, "gatehouse_csrf")
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
    session = cookie_from(resp, "gatehouse_session")
    expect(session is not None, f"no session cookie: {resp!r}")
    return session


def with_session(gw, session):
    return request(gw, get("/app/session", f"Cookie: {session}"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", required=True, type=parse_addr)
    parser.add_argument("--upstream-listen", required=True, type=parse_addr)
    parser.add_argument("--phase", required=True, choices=["unknown", "before", "after"])
    parser.add_argument("--session-file", required=True)
    parser.add_argument("--ttl", required=True, type=int, help="the board's session_ttl_secs")
    parser.add_argument(
        "--fresh-session",
        action="store_true",
        help="also carry a session still valid across the reboot (a reboot much shorter than --ttl)",
    )
    args = parser.parse_args()
    gw = args.gateway

    upstream = RecordingUpstream(args.upstream_listen)
    upstream.start()
    wait_for_gateway(gw)
    checks = Checks()

    def no_login_while_the_time_is_unknown():
        page = login_page(gw)
        expect(page.status == 503, f"login page: {page!r}")
        expect(b"does not know the time" in page.body, f"login page: {page!r}")
        browser = request(gw, get("/app/", "Accept: text/html"))
        expect(browser.status == 503, f"a browser: {browser!r}")
        mark = len(upstream.recorded())
        resp = request(gw, get("/app/basic", f"Authorization: {BASIC}"))
        expect(resp.status == 200, f"HTTP Basic: {resp!r}")
        ids = identity_lines(upstream.recorded()[mark][0])
        expect(ids == ["remote-user: alice"], f"identity the app saw: {ids}")
        expect(cookie_from(resp, "gatehouse_session") is None, "Basic turned into a session")

    def a_session_ends_at_its_expiry():
        session = log_in(gw, wait_time_known(gw))
        with open(args.session_file, "w") as f:
            f.write(session)
        resp = with_session(gw, session)
        expect(resp.status == 200, f"the fresh session: {resp!r}")
        deadline = time.monotonic() + args.ttl + 30
        while time.monotonic() < deadline:
            resp = with_session(gw, session)
            if resp.status == 401:
                break
            expect(resp.status == 200, f"the session before its expiry: {resp!r}")
            time.sleep(POLL)
        else:
            raise AssertionError(f"the session outlived its {args.ttl} s: {resp!r}")
        if args.fresh_session:
            fresh = log_in(gw, wait_time_known(gw))
            resp = with_session(gw, fresh)
            expect(resp.status == 200, f"the fresh session: {resp!r}")
            with open(args.session_file + ".fresh", "w") as f:
                f.write(fresh)

    def a_fresh_session_survives_the_reboot():
        with open(args.session_file + ".fresh") as f:
            fresh = f.read().strip()
        wait_time_known(gw)
        resp = with_session(gw, fresh)
        expect(resp.status == 200, f"the fresh session after the reboot: {resp!r}")

    def an_expired_session_stays_expired_after_the_reboot():
        with open(args.session_file) as f:
            session = f.read().strip()
        wait_time_known(gw)
        mark = len(upstream.recorded())
        # Longer than the session ever lived: a board counting from its boot would accept it
        # somewhere in this window.
        deadline = time.monotonic() + args.ttl + 5
        while time.monotonic() < deadline:
            resp = with_session(gw, session)
            expect(resp.status == 401, f"the expired session after the reboot: {resp!r}")
            time.sleep(POLL)
        expect(not upstream.recorded()[mark:], "the expired session reached the app")

    if args.phase == "unknown":
        checks.run(
            "no login while the time is unknown; HTTP Basic works",
            no_login_while_the_time_is_unknown,
        )
    elif args.phase == "before":
        checks.run("a session ends at its expiry", a_session_ends_at_its_expiry)
    else:
        if args.fresh_session:
            checks.run("a fresh session survives the reboot", a_fresh_session_survives_the_reboot)
        checks.run(
            "an expired session stays expired after the reboot",
            an_expired_session_stays_expired_after_the_reboot,
        )
    upstream.stop()
    print(f"{checks.passed} passed, {checks.failed} failed", flush=True)
    return 0 if checks.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
