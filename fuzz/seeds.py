#!/usr/bin/env python3
"""Writes the hand-written seed inputs of the fuzz targets into fuzz/corpus/<target>/.

Each target's input layout (option bytes, then the bytes under test) is described at the top
of its file in fuzz_targets/. Run from anywhere: `python3 fuzz/seeds.py`. Existing files of
the same name are overwritten; inputs the fuzzer added are left alone.
"""

import base64
import hashlib
import hmac
import os
import struct

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def crlf(text):
    return text.replace("\n", "\r\n").encode()


# --- requests -------------------------------------------------------------------------------

FIREFOX = crlf("""GET /app/ HTTP/1.1
Host: music.example.org
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8
Accept-Language: en-US,en;q=0.5
Accept-Encoding: gzip, deflate, br, zstd
Connection: keep-alive
Cookie: gatehouse_session=AQAAAAMAAAAAZVPxAAAAAABlVNKABWFsaWNl; theme=dark
Upgrade-Insecure-Requests: 1
Sec-Fetch-Dest: document
Sec-Fetch-Mode: navigate
Sec-Fetch-Site: none
Sec-Fetch-User: ?1
Priority: u=0, i

""")

CHROME = crlf("""GET /share/abc123?format=raw HTTP/1.1
Host: music.example.org:4533
sec-ch-ua: "Chromium";v="131", "Not_A Brand";v="24"
sec-ch-ua-mobile: ?0
sec-ch-ua-platform: "Linux"
Upgrade-Insecure-Requests: 1
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8
Sec-Fetch-Site: same-origin
Sec-Fetch-Mode: navigate
Referer: https://music.example.org/app/
Accept-Encoding: gzip, deflate, br
Accept-Language: en-GB,en;q=0.9

""")

CURL_BASIC = crlf("""GET /rest/ping.view?u=alice&t=26719a1196d2a940705a59634eb18eab&s=c19b2d&v=1.16.1&c=DSub&f=json HTTP/1.1
Host: localhost:8080
User-Agent: curl/8.11.0
Accept: */*
Authorization: Basic YWxpY2U6c2VjcmV0

""")

LOGIN_POST = crlf("""POST /_gatehouse/login HTTP/1.1
Host: music.example.org
Content-Type: application/x-www-form-urlencoded
Content-Length: 47
Origin: https://music.example.org
Cookie: a=1; gatehouse_session="old"; b=2

""") + b"username=alice&password=secret&return=%2Fapp%2F"

CHUNKED_UPLOAD = crlf("""PUT /api/playlist/1 HTTP/1.1
Host: music
Transfer-Encoding: chunked
Expect: 100-continue
Content-Type: application/json

""") + b"7\r\n{\"a\":1}\r\n0\r\n\r\n"

WEBSOCKET = crlf("""GET /ws/events?x=1 HTTP/1.1
Host: music.example.org
Upgrade: websocket
Connection: keep-alive, Upgrade
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==
Sec-WebSocket-Version: 13
Origin: https://music.example.org

""")

HTTP10_ABSOLUTE = crlf("""GET http://music.example.org/app/index.html HTTP/1.0
Connection: keep-alive

""")

SPOOF = crlf("""GET /app/ HTTP/1.1
Host: music
Remote-User: admin
remote_user: admin
REMOTE-GROUPS: admins
Remote-Email: root@example.org
X-Forwarded-User: admin
X-Remote-User: admin
X-Auth-Request-User: admin
x_webauth_user: admin
X-Forwarded-For: 127.0.0.1
X-Forwarded-Proto: https
X-Forwarded-Host: internal
X-Real-IP: 127.0.0.1
Forwarded: for=127.0.0.1;proto=https
X-Original-URL: /admin
Connection: Remote-Name, X-Custom, keep-alive
X-Custom: drop-me
Trailer: Remote-User
TE: trailers
Keep-Alive: timeout=5
Proxy-Authorization: Basic eDp5
Cookie: gatehouse_session=forged; other=1

""")

TRAVERSAL = [
    b"GET /share/../app/ HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /share/%2e%2e/app/ HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /share/..;/app/ HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /share%2fx HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET //evil/../_gatehouse/login HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /rest/%7Euser/./x//y?q=%2F HTTP/1.1\r\nHost: a\r\n\r\n",
]

SMUGGLING = [
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
    b"GET / HTTP/1.1\nHost: a\n\n",
    b"GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET http://b/ HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET http://user@a/ HTTP/1.1\r\nHost: a\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
    b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n",
    b"GET /#frag HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
    b"GET / HTTP/1.1\r\nRemote User: x\r\nHost: a\r\n\r\n",
    b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\nRemote-User: admin\r\n\r\n",
]


def padded(total):
    start = b"GET /app/ HTTP/1.1\r\nHost: a\r\nX-Pad: "
    end = b"\r\nRemote-User: admin\r\n\r\n"
    return start + b"p" * (total - len(start) - len(end)) + end


def fields(n):
    return b"GET /app/ HTTP/1.1\r\nHost: a\r\n" + b"".join(
        b"X-F%d: v\r\n" % i for i in range(n - 2)) + b"Remote-User: admin\r\n\r\n"


LIMITS = [
    ("limit-head-8191", padded(8191)),
    ("limit-head-8193", padded(8193)),
    ("limit-fields-64", fields(64)),
    ("limit-fields-65", fields(65)),
]


def requests():
    plain = [
        ("firefox", FIREFOX),
        ("chrome-share", CHROME),
        ("curl-basic-subsonic", CURL_BASIC),
        ("login-post", LOGIN_POST),
        ("chunked-upload", CHUNKED_UPLOAD),
        ("websocket", WEBSOCKET),
        ("http10-absolute", HTTP10_ABSOLUTE),
        ("spoof", SPOOF),
    ]
    # Option byte: 0 trusted, 1 TLS, 2 strip Authorization, 3 tunnel, 4 identity, 5 UNIX peer,
    # 6-7 user header. Then two 16-bit cut points.
    flags = [0x16, 0x1F, 0x00, 0x5E, 0x3D, 0x96, 0xD4, 0x12]
    for i, (name, req) in enumerate(plain):
        cut = struct.pack(">HH", len(req) // 3, len(req) - 1)
        write("request_head", name, bytes([flags[i % len(flags)]]) + cut + req)
    for i, req in enumerate(TRAVERSAL):
        write("request_head", "traversal-%d" % i, bytes([0x16]) + struct.pack(">HH", 7, 20) + req)
    for i, req in enumerate(SMUGGLING):
        write("request_head", "hostile-%d" % i, bytes([0x17]) + struct.pack(">HH", 3, 30) + req)
    # At the limits: a head just under MAX_HEAD_LEN (8 KiB), one over it, the most header
    # fields allowed (64) and one more.
    for name, req in LIMITS:
        write("request_head", name, bytes([0x1E]) + struct.pack(">HH", 100, len(req) - 2) + req)


# --- responses and bodies -------------------------------------------------------------------

RESPONSES = [
    ("ok-length", 0x08, b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 12\r\n\r\nhello world!"),
    ("chunked-trailers", 0x08, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Remote-User\r\n\r\n5;x=y\r\nhello\r\n0\r\nRemote-User: admin\r\n\r\n"),
    ("chunked-http10-client", 0x04, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
    ("not-modified", 0x08, b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 1234\r\n\r\n"),
    ("no-content", 0x08, b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"),
    ("head", 0x09, b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\nContent-Type: audio/mpeg\r\n\r\n"),
    ("switching", 0x0A, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x05hello"),
    ("unexpected-101", 0x08, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n"),
    ("continue-then-ok", 0x08, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    ("http10-close", 0x00, b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end"),
    ("te-gzip", 0x08, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b"),
    ("cl-and-te", 0x08, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("connection-names", 0x08, b"HTTP/1.1 200 OK\r\nConnection: X-Secret, close\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nSet-Cookie: a=b\r\nContent-Length: 0\r\n\r\n"),
    ("double-length", 0x08, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n"),
    ("navidrome-json", 0x08, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nVary: Accept-Encoding\r\nX-Content-Type-Options: nosniff\r\nDate: Thu, 26 Nov 2026 19:00:00 GMT\r\nContent-Length: 58\r\n\r\n{\"subsonic-response\":{\"status\":\"ok\",\"version\":\"1.16.1\"}}\n\n"),
]

BODIES = [
    ("chunked", 0, b"1a; name=\"v\"\r\nabcdefghijklmnopqrstuvwxyz\r\n03\r\nxyz\r\n0\r\nRemote-User: admin\r\nX-A: b\r\n\r\nNEXT"),
    ("chunked-data-only", 4, b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET / HTTP/1.1\r\n"),
    ("chunked-zeros", 1, b"00002\r\nab\r\n000\r\n\r\n"),
    ("chunked-ws-ext", 0, b"2 ;a=b\r\nab\r\n0;last\r\n\r\n"),
    ("chunked-huge", 0, b"FFFFFFFFFFFFFFFF\r\nab"),
    ("chunked-overflow", 0, b"10000000000000000\r\n"),
    ("chunked-bare-lf", 0, b"3\nabc\r\n0\r\n\r\n"),
    ("chunked-missing-crlf", 0, b"3\r\nabcX0\r\n\r\n"),
    ("chunked-folded-trailer", 0, b"0\r\nX: a\r\n b\r\n\r\n"),
    ("length", 2, b"helloGET /next HTTP/1.1\r\n"),
    ("until-close", 3, b"everything until the connection closes"),
]


def responses():
    big = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Pad: " + b"p" * 8100 + b"\r\n\r\nok"
    many = b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-F%d: v\r\n" % i for i in range(63)) + b"Content-Length: 2\r\n\r\nok"
    RESPONSES.extend([("limit-head", 0x08, big), ("limit-head-over", 0x08, big.replace(b"pp", b"ppp" * 60, 1)), ("limit-fields-64", 0x08, many)])
    for name, flags, resp in RESPONSES:
        write("response", name, bytes([flags, 7]) + struct.pack(">HH", len(resp) // 2, 40) + resp)
    for name, flags, body in BODIES:
        opts = bytes([flags, 5]) + struct.pack(">H", 5) + struct.pack(">HH", 3, len(body) // 2)
        write("body", name, opts + body)


# --- paths ----------------------------------------------------------------------------------

PATHS = [
    "/", "", "?a=b", "/app/", "/share/abc123", "/share", "/shared/x", "/SHARE/x",
    "/share/../app/", "/share/%2e%2e/app/", "/share/%2E%2e/app", "/share/..;/app/",
    "/share/.;x/a", "/a/b/../../..", "/a/./b/.//c/", "/%7euser/%7Ex", "/a%2fb", "/a%2Fb",
    "/a%5cb", "/a\\b", "/a%00", "/a%zz", "/a%4", "/a%e2%82%ac", "/caf\u00e9/\u6587",
    "/rest/ping.view?u=alice&p=enc:736563726574&v=1.16.1&c=x&f=json",
    "/_gatehouse/login?return=%2Fapp%2F", "/_gatehouse", "/_gatehouse/", "/_gatehousex",
    "//_gatehouse//logout", "/a?b?c#d", "/a b", "/a%20b", "/a%3Fb?x=%3F", "/a/%2e/b",
    "/a/.%2e/b", "/;x/a", "/a;jsessionid=1/b", "/~-._", "/%41%42%43", "/a%7F",
]


def paths():
    for i, p in enumerate(PATHS):
        write("path", "%02d" % i, p)


# --- trusted sources and peers --------------------------------------------------------------

TRUSTED = [
    "10.0.0.0/8, 192.168.1.1, ::1, @\n192.168.1.1\n10.2.3.4:5678\n[::1]:80\n@\n::ffff:10.0.0.1",
    "127.0.0.1/32,172.16.0.0/12 , fd00::/8\n172.31.255.255\n[fd12::1]\nfd00::1%eth0",
    "0.0.0.0/0\n203.0.113.7\n::ffff:203.0.113.7\n2001:db8::7",
    "::/0, ::ffff:0:0/96\n::ffff:192.0.2.1\n192.0.2.1",
    "192.168.1.77/24\n192.168.1.200\n192.168.2.1",
    "2001:db8:abcd:12::1/64, 2001:db8::/129\n2001:db8:abcd:12::ffff",
    "10.0.0.0/33",
    " , ,10.0.0.1 ,\t@ ,, 1.2.3.4/0032\n1.2.3.4",
    "fe80::1%eth0\nfe80::1",
    "example.org\n[192.0.2.1]:80\n[::1\n::1]:80\n1.2.3.4:99999\n::1:80",
    "1.1.1.1,2.2.2.2,3.3.3.3,4.4.4.4,5.5.5.5,6.6.6.6,7.7.7.7,8.8.8.8,9.9.9.9",
    "10.0.0.300/8",
    "::ffff:10.0.0.0/104\n10.1.2.3\n::ffff:10.1.2.3",
    "@\n@",
]


def trusted():
    for i, t in enumerate(TRUSTED):
        write("trusted_sources", "%02d" % i, t)


# --- sessions -------------------------------------------------------------------------------

ISSUED_AT = 1_700_000_000
CURRENT = b"\x22" * 32
PREVIOUS = b"\x11" * 32


# The users table id the session target verifies for (its `TABLE`); the gateway target's
# table is made with `UserTable::new()`, table 0.
SESSION_TABLE = 0x5EED


def token(key, name, generation, issued_at, ttl, table=SESSION_TABLE):
    raw = bytes([2]) + struct.pack(">QIQQ", table, generation, issued_at, issued_at + ttl)
    raw += bytes([len(name.encode())]) + name.encode()
    mac = hmac.new(key, b"gatehouse session\0" + raw, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(raw + mac).rstrip(b"=")


def sessions():
    day = 86400
    cases = [
        ("current", 1, b"gatehouse_session=" + token(CURRENT, "alice", 3, ISSUED_AT, 7 * day)),
        ("previous", 2, b"theme=dark; gatehouse_session=" + token(PREVIOUS, "bob", 0, ISSUED_AT, day)),
        ("quoted", 0, b"gatehouse_session=\"" + token(CURRENT, "Jos\u00e9", 7, ISSUED_AT, day) + b"\""),
        ("expired", 30, b"gatehouse_session=" + token(CURRENT, "alice", 3, ISSUED_AT, 3600)),
        ("revoked", 1, b"gatehouse_session=" + token(CURRENT, "alice", 2, ISSUED_AT, day)),
        ("unknown", 1, b"gatehouse_session=" + token(CURRENT, "mallory", 0, ISSUED_AT, day)),
        ("future", 0, b"gatehouse_session=" + token(CURRENT, "alice", 3, ISSUED_AT + 3600, day)),
        ("planted", 1, b"gatehouse_session=forged; gatehouse_session=" + token(CURRENT, "ALICE", 3, ISSUED_AT, day)),
        ("wrong-key", 1, b"gatehouse_session=" + token(b"\x33" * 32, "alice", 3, ISSUED_AT, day)),
        ("padded", 1, b"gatehouse_session=" + token(CURRENT, "alice", 3, ISSUED_AT, day) + b"=="),
        ("name", 5, b"alice"),
        ("long-name", 9, ("x" * 64).encode()),
    ]
    for name, hours, header in cases:
        write("session", name, bytes([hours]) + header)


# --- the gateway decision ------------------------------------------------------------------


def csrf(nonce):
    tag = hmac.new(CURRENT, b"gatehouse csrf v1\0" + nonce, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(nonce + tag).rstrip(b"=")


def gateway():
    day = 86400
    alice = b"gatehouse_session=" + token(CURRENT, "alice", 0, ISSUED_AT, day, table=0)
    bob_old = b"gatehouse_session=" + token(PREVIOUS, "bob", 1, ISSUED_AT - day + 3600, day, table=0)
    basic = lambda creds: b"Basic " + base64.b64encode(creds)
    c = csrf(b"0123456789abcdef")
    form = b"csrf=" + c + b"&username=alice&password=wonderland&return=%2Fapp%2F"
    wrong = b"csrf=" + c + b"&username=bob&password=nope&return=//evil.example/"
    host = b"Host: music.example.org\r\n"
    relogin = b"csrf=" + c + b"&username=alice&password=looking+glass&return=%2F"

    def account_post(fields, prefix=b""):
        body = b"csrf=" + c + b"&" + fields
        return (b"POST /_gatehouse/account HTTP/1.1\r\n" + host
                + b"Origin: https://music.example.org\r\nSec-Fetch-Site: same-origin\r\n"
                + b"Content-Type: application/x-www-form-urlencoded\r\nCookie: " + prefix + alice
                + b"; " + prefix + b"gatehouse_csrf=" + c + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    cases = [
        # (name, peer and TLS bits, hours after ISSUED_AT, bytes)
        ("browser-anonymous", 0, 1, FIREFOX),
        ("api-anonymous", 0, 1, CURL_BASIC.replace(b"Authorization: Basic YWxpY2U6c2VjcmV0\r\n", b"")),
        ("basic-right", 4, 1, b"GET /rest/ping.view HTTP/1.1\r\n" + host + b"Authorization: " + basic(b"alice:wonderland") + b"\r\n\r\nGET /rest/x HTTP/1.1\r\n" + host + b"Authorization: " + basic(b"alice:wonderland") + b"\r\n\r\n"),
        ("basic-wrong", 0, 1, b"GET /app/ HTTP/1.1\r\n" + host + b"Authorization: " + basic(b"bob:wonderland") + b"\r\n\r\n"),
        ("basic-unknown", 0, 1, b"GET /app/ HTTP/1.1\r\n" + host + b"Authorization: " + basic(b"mallory:x") + b"\r\n\r\n"),
        ("session", 0, 1, b"GET /app/ HTTP/1.1\r\n" + host + b"Cookie: theme=dark; " + alice + b"\r\nRemote-User: bob\r\n\r\n"),
        ("session-renew", 0, 0, b"GET /app/ HTTP/1.1\r\n" + host + b"Cookie: " + bob_old + b"\r\n\r\n"),
        ("trusted-header", 1, 1, b"GET /app/ HTTP/1.1\r\n" + host + b"Remote-User: alice\r\nX-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: https\r\n\r\n"),
        ("trusted-provision", 2, 1, b"GET /app/ HTTP/1.1\r\n" + host + b"Remote-User: carol\r\n\r\n"),
        ("trusted-repeated", 3, 1, b"GET /app/ HTTP/1.1\r\n" + host + b"Remote-User: alice\r\nremote_user: admin\r\n\r\n"),
        ("untrusted-header", 0, 1, SPOOF),
        ("public-spoof", 1, 1, b"GET /share/abc HTTP/1.1\r\n" + host + b"Remote-User: alice\r\n\r\n"),
        ("traversal", 0, 1, b"GET /share/%2e%2e/app/ HTTP/1.1\r\n" + host + b"\r\n"),
        ("login-page", 0, 1, b"GET /_gatehouse/login?return=%2Fapp%2F HTTP/1.1\r\n" + host + b"Accept: text/html\r\n\r\n"),
        ("login-head", 0, 1, b"HEAD /_gatehouse/login HTTP/1.1\r\n" + host + b"\r\n"),
        ("login-post", 4, 1, b"POST /_gatehouse/login HTTP/1.1\r\n" + host + b"Origin: https://music.example.org\r\nSec-Fetch-Site: same-origin\r\nContent-Type: application/x-www-form-urlencoded\r\nCookie: gatehouse_csrf=" + c + b"\r\nContent-Length: %d\r\n\r\n" % len(form) + form),
        ("login-post-wrong", 0, 1, b"POST /_gatehouse/login HTTP/1.1\r\n" + host + b"Cookie: gatehouse_csrf=" + c + b"\r\nContent-Length: %d\r\n\r\n" % len(wrong) + wrong),
        ("login-post-csrf", 0, 1, b"POST /_gatehouse/login HTTP/1.1\r\n" + host + b"Origin: https://evil.example\r\nContent-Length: 33\r\n\r\nusername=alice&password=wonderland"),
        ("login-post-continue", 0, 1, b"POST /_gatehouse/login HTTP/1.1\r\n" + host + b"Expect: 100-continue\r\nContent-Length: 100\r\n\r\n"),
        ("login-post-chunked", 0, 1, b"POST /_gatehouse/login HTTP/1.1\r\n" + host + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("logout", 0, 1, b"POST /_gatehouse/logout HTTP/1.1\r\n" + host + b"Cookie: " + alice + b"\r\n\r\n"),
        ("health", 0, 1, b"GET /_gatehouse/health HTTP/1.1\r\n" + host + b"\r\nHEAD /_gatehouse/health HTTP/1.0\r\n\r\n"),
        ("not-found", 0, 1, b"DELETE /_gatehouse/nothing HTTP/1.1\r\n" + host + b"\r\n"),
        ("forward-auth-nginx", 1, 1, b"GET /_gatehouse/auth/nginx HTTP/1.1\r\n" + host + b"X-Original-URI: /app/x?y=1\r\nX-Original-Method: GET\r\nRemote-User: alice\r\nCookie: " + alice + b"\r\n\r\n"),
        ("forward-auth-traefik", 1, 1, b"GET /_gatehouse/auth HTTP/1.1\r\n" + host + b"X-Forwarded-Method: GET\r\nX-Forwarded-Uri: /rest/ping.view\r\nX-Forwarded-Host: music\r\nAuthorization: " + basic(b"bob:builder") + b"\r\n\r\n"),
        ("forward-auth-caddy-header", 1, 1, b"GET /_gatehouse/auth HTTP/1.1\r\n" + host + b"X-Forwarded-Uri: /app/\r\nAccept: text/html\r\nRemote-User: alice\r\n\r\n"),
        ("forward-auth-public", 0, 1, b"GET /_gatehouse/auth HTTP/1.1\r\n" + host + b"X-Forwarded-Uri: /share/x\r\n\r\n"),
        ("forward-auth-mixed-kinds", 1, 1, b"GET /_gatehouse/auth HTTP/1.1\r\n" + host + b"X-Forwarded-Uri: /app/\r\nX-Original-URI: /share/x\r\n\r\n"),
        ("reserved-any-case", 1, 1, b"GET /_GATEHOUSE/x HTTP/1.1\r\n" + host + b"Remote-User: mallory\r\n\r\n"),
        ("forwarding-proxy-header", 8, 1, b"GET /app/ HTTP/1.1\r\n" + host + b"Remote-User: mallory\r\nX-Forwarded-For: 198.51.100.7\r\n\r\n"),
        ("websocket", 0, 1, WEBSOCKET.replace(b"Origin:", b"Cookie: " + alice + b"\r\nOrigin:")),
        ("upload", 0, 1, CHUNKED_UPLOAD.replace(b"Expect:", b"Authorization: " + basic(b"bob:builder") + b"\r\nExpect:")),
        ("hostile", 0, 1, SMUGGLING[0]),
        ("subsonic-p", 0, 1, b"GET /rest/ping.view?u=alice&p=wonderland&v=1.16.1&c=DSub&f=json HTTP/1.1\r\n" + host + b"\r\n"),
        ("subsonic-enc", 0, 1, b"GET /rest/getAlbumList2?type=random&u=bob&p=enc:" + b"builder".hex().encode() + b"&v=1.16.1&c=x HTTP/1.1\r\n" + host + b"\r\n"),
        ("subsonic-token", 0, 1, b"GET /rest/stream.view?id=1&u=alice&t=" + hashlib.md5(b"wonderlandc19b2d").hexdigest().encode() + b"&s=c19b2d&v=1.16.1&c=x HTTP/1.1\r\n" + host + b"\r\n"),
        ("subsonic-apikey", 0, 1, b"GET /rest/ping.view?apiKey=abc&f=xml HTTP/1.1\r\n" + host + b"\r\n"),
        ("subsonic-form", 0, 1, b"POST /rest/ping.view HTTP/1.1\r\n" + host + b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 40\r\n\r\nu=alice&p=wonderland&v=1.16.1&c=x&f=json"),
        ("subsonic-basic-and-p", 0, 1, b"GET /rest/ping.view?u=alice&p=wonderland&v=1.16.1&c=x&f=json HTTP/1.1\r\n" + host + b"Authorization: " + basic(b"alice:nope") + b"\r\n\r\n"),
        ("subsonic-wrong", 0, 1, b"GET /rest/ping.view?u=alice&p=nope&f=json&callback=cb HTTP/1.1\r\n" + host + b"\r\n"),
        ("subsonic-extensions", 0, 1, b"GET /rest/getOpenSubsonicExtensions HTTP/1.1\r\n" + host + b"\r\n"),
        ("account-page", 0, 1, b"GET /_gatehouse/account HTTP/1.1\r\n" + host + b"Accept: text/html\r\nCookie: " + alice + b"\r\n\r\n"),
        ("account-anonymous", 0, 1, b"GET /_gatehouse/account HTTP/1.1\r\n" + host + b"Accept: text/html\r\n\r\n"),
        ("account-create-revoke", 0, 1, account_post(b"do=create&label=phone") + account_post(b"do=revoke&label=PHONE") + b"GET /_gatehouse/account HTTP/1.1\r\n" + host + b"Cookie: " + alice + b"\r\n\r\n"),
        ("account-password", 0, 1, account_post(b"do=password&current=wonderland&new=looking+glass&confirm=looking+glass") + b"POST /_gatehouse/login HTTP/1.1\r\n" + host + b"Cookie: gatehouse_csrf=" + c + b"\r\nContent-Length: %d\r\n\r\n" % len(relogin) + relogin),
        ("account-password-wrong", 4, 1, account_post(b"do=password&current=nope&new=x&confirm=x", b"__Host-")),
        ("account-logout-everywhere", 0, 1, account_post(b"do=logout-everywhere") + b"GET /app/ HTTP/1.1\r\n" + host + b"Cookie: " + alice + b"\r\n\r\n"),
        ("account-no-csrf", 0, 1, b"POST /_gatehouse/account HTTP/1.1\r\n" + host + b"Cookie: " + alice + b"\r\nContent-Length: 21\r\n\r\ndo=create&label=phone"),
        ("limit-fields-64", 0, 1, fields(63).replace(b"Host: a\r\n", b"Host: a\r\nCookie: " + alice + b"\r\n")),
        ("limit-head-8191", 0, 1, padded(8191 - 30 - len(alice)).replace(b"Host: a\r\n", b"Host: a\r\nCookie: " + alice + b"\r\n")),
    ]
    for name, flags, hours, data in cases:
        write("gateway", name, bytes([flags, hours]) + data)


# --- users and password hashes --------------------------------------------------------------


def pbkdf2(password, salt, iterations, length=32):
    out = hashlib.pbkdf2_hmac("sha256", password, salt, iterations, length)
    b64 = lambda b: base64.b64encode(b).decode().rstrip("=")
    params = "i=%d,l=%d" % (iterations, length)
    return "$pbkdf2-sha256$%s$%s$%s" % (params, b64(salt), b64(out))


ARGON2 = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
ARGON2_CHEAP = "$argon2id$v=19$m=16,t=1,p=1$c29tZXNhbHQ$AAAAAAAAAAAAAAAAAAAAAA"


def users():
    h1 = pbkdf2(b"secret", b"0123456789abcdef", 1000)
    h2 = pbkdf2(b"hunter2", b"fedcba9876543210", 600000)
    docs = [
        '{"version":1,"admin_assigned":true,"next_generation":4,"users":['
        '{"name":"alice","admin":true,"password":"%s","generation":3},'
        '{"name":"Jos\\u00e9 N\u00fa\u00f1ez","admin":false,"password":"%s","generation":1}]}' % (h1, h2),
        '{"version":1,"users":[]}',
        '{"version":1,"admin_assigned":false,"users":[]}',
        ' { "users" : [ { "generation" : 9 , "password" : "%s" , "admin" : false , "name" : "b" } ] , "version" : 1 } ' % ARGON2,
        '{"version":1,"next_generation":2,"users":[{"name":"a","admin":false,"password":"%s","generation":4294967295}]}' % h1,
        '{"version":2,"users":[]}',
        '{"users":[]}',
        '{"version":1,"users":[{"name":"a","admin":false,"password":"%s","generation":0},{"name":"A","admin":false,"password":"%s","generation":1}]}' % (h1, h1),
        '{"version":1,"users":[{"name":" a","admin":false,"password":"%s","generation":0}]}' % h1,
        '{"version":1,"users":[{"name":"a\\u0000","admin":false,"password":"%s","generation":0}]}' % h1,
        '{"version":1,"users":[{"name":"a","admin":false,"password":"$md5$x","generation":0}]}',
        '{"version":1,"users":[{"name":"a","admin":false,"password":"%s","generation":0,"extra":1}]}' % h1,
        '{"version":1,"users":[],"users":[]}',
        '{"version":1,"users":[' + ",".join(
            '{"name":"u%d","admin":false,"password":"%s","generation":%d}' % (i, h1, i) for i in range(5)) + ']}',
        '{"version":1,"users":[{"name":"%s","admin":false,"password":"%s","generation":0}]}' % ("x" * 65, h1),
        '{"version":1,"users":[{"name":"\\"quoted\\" \\\\ \\/ \\t","admin":false,"password":"%s","generation":0}]}' % h1,
        # Version 2: app passwords.
        '{"version":2,"admin_assigned":true,"next_generation":4,"users":['
        '{"name":"alice","admin":true,"password":"%s","generation":3,"app_passwords":['
        '{"label":"phone","secret":"QUJDREVGR0hJSktMTU5PUFFS","created":1790000000,"last_used":null},'
        '{"label":"car \u00e9","secret":"YWJjZGVmZ2hpamtsbW5vcHFy","created":1790000000,"last_used":1790000600}]},'
        '{"name":"bob","admin":false,"password":"%s","generation":1,"app_passwords":[]}]}' % (h1, h2),
        '{"version":2,"users":[{"name":"a","admin":false,"password":"%s","generation":0,'
        '"app_passwords":[{"label":"","secret":"short","created":0,"last_used":null}]}]}' % h1,
    ]
    for i, d in enumerate(docs):
        write("users_json", "%02d" % i, d)
    hashes = [
        h1, h2, pbkdf2(b"x", b"saltsalt", 1000, 64), pbkdf2(b"x", b"s" * 64, 1000, 10),
        ARGON2, ARGON2_CHEAP,
        "$pbkdf2-sha256$i=999$MDEyMzQ1Njc4OWFiY2RlZg$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "$pbkdf2-sha256$i=1000,i=1000$MDEyMzQ1Njc4OWFiY2RlZg$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "$pbkdf2-sha256$l=32$MDEyMzQ1Njc4OWFiY2RlZg$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "$pbkdf2-sha256$i=1000$MDEyMzQ1Njc4OWFiY2RlZg==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "$pbkdf2-sha512$i=1000$MDEyMzQ1Njc4OWFiY2RlZg$AAAA",
        "$argon2id$v=16$m=16,t=1,p=1$c29tZXNhbHQ$AAAAAAAAAAAAAAAAAAAAAA",
        "$argon2id$v=19$m=4294967295,t=1,p=1$c29tZXNhbHQ$AAAAAAAAAAAAAAAAAAAAAA",
        "$argon2i$v=19$m=16,t=1,p=1$c29tZXNhbHQ$AAAAAAAAAAAAAAAAAAAAAA",
        "pbkdf2-sha256$i=1000$x$y",
        "$$$$",
    ]
    for i, h in enumerate(hashes):
        write("password_hash", "%02d" % i, b"$" + h.encode())
    write("password_hash", "hash-and-verify", b"!0123456789abcdefcorrect horse battery staple")


if __name__ == "__main__":
    requests()
    responses()
    paths()
    trusted()
    sessions()
    gateway()
    users()
