//! Attacks sent *through* real proxies: Caddy and nginx from Debian, configured exactly as the
//! README prints them, in forward-auth mode and in front mode, with gatehouse behind them
//! trusting the proxy (127.0.0.1) for forwarding only (`trusted_proxies`), the attacker on
//! 127.0.0.2 and its victim on 127.0.0.3.
//!
//! Every attack is one row of a table; each asserts what the app (the recording upstream) saw —
//! the path and the identity — and that the users file gained no user named by the attacker.
//! A deployment's test runs all of its rows, names the failing ones (family and row in every
//! message) and prints how many attacks of each family it sent.
//!
//! The families:
//! - **original URL**: a client's own `X-Original-URI`, `X-Forwarded-Uri`, method, rewrite and
//!   prefix headers, in every spelling and combination, to reach a protected page anonymously
//!   (forward-auth mode: the proxy calls gatehouse with the client's headers);
//! - **forwarding claims** (front mode): `X-Original-URL`, `X-Real-IP`, `Forwarded`,
//!   `X-Forwarded-Host` and friends on a public path: the proxy relays them, the app must not
//!   get them;
//! - **identity**: `Remote-User` in every spelling on gatehouse's own paths in every case and
//!   encoding (Caddy routes `/_gatehouse/*` case-insensitively), on protected and public paths;
//! - **throttle**: rotating or forged `X-Forwarded-For` to escape the login throttle or to have
//!   failures charged to the victim; junk from 127.0.0.2 must not lock out 127.0.0.3;
//! - **host**: a browser on a non-default port logs in (the `Host` with its port reaches
//!   gatehouse's origin check);
//! - **smuggling**: pipelining, CL+TE, requests hidden in bodies: the app never gets an
//!   unauthenticated protected request or a spoofed identity.

use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

use gatehouse_tests::client::contains_ignore_case;
use gatehouse_tests::peers::{Deployment, PASSWORD, Proxy, exercise, proxy_login};
use gatehouse_tests::*;

const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const VICTIM: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
/// The name the attack rows are written with. Each attack replaces it with a name of its own of
/// the same length (`mal0042`: lengths in the rows stay right), so that a user one attack
/// created is never blamed on the next.
const MALLORY: &str = "mallory";
/// Where a session cookie goes in a row's headers (the session exists only at run time).
const SESSION: &str = "Cookie: gatehouse_session=SESSION";

const FAMILY_URL: &str = "original URL";
const FAMILY_IDENTITY: &str = "identity";
const FAMILY_THROTTLE: &str = "throttle";
const FAMILY_HOST: &str = "host";
const FAMILY_SMUGGLING: &str = "smuggling";
const FAMILY_CLAIMS: &str = "forwarding claims";
const FAMILIES: [&str; 6] = [
    FAMILY_URL,
    FAMILY_CLAIMS,
    FAMILY_IDENTITY,
    FAMILY_THROTTLE,
    FAMILY_HOST,
    FAMILY_SMUGGLING,
];

/// What the app may receive from one attack.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    /// Nothing at all.
    Nothing,
    /// Exactly this public request, with no identity.
    Public(&'static str),
    /// Exactly this request, as alice (the attacker's own session), not as mallory.
    AsAlice(&'static str),
    /// Exactly this public request, with no identity and none of [`CLAIM_MARKERS`]: nothing
    /// a client said about its address, host or the URL it meant.
    PublicWithoutClaims(&'static str),
}

/// What the forwarding-claim attacks write; none of it may reach the app (case ignored).
const CLAIM_MARKERS: [&str; 9] = [
    "evil.example",
    "10.9.9.9",
    "/admin/settings",
    "\r\nforwarded:",
    "\r\nx-original-url:",
    "\r\nx-rewrite-url:",
    "\r\nx-forwarded-prefix:",
    "\r\ntrue-client-ip:",
    "\r\nx-forwarded-server:",
];

/// The login-throttle attacks, run in order on one gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Throttle {
    /// 25 wrong passwords for alice from the attacker; then alice from the victim logs in.
    JunkThenVictim,
    /// Wrong passwords under 12 other names from the attacker, enough to use up its own
    /// address's burst (alice's name is not guarded against the victim, who logged in since):
    /// refused in the end; alice from the victim logs in.
    JunkUnderManyNames,
    /// Wrong passwords, each with a new `X-Forwarded-For`: all refused as the attacker's.
    RotatingForwardedFor,
    /// The right password with a new `X-Forwarded-For`: refused as the attacker's.
    RotatingForwardedForRightPassword,
    /// `X-Forwarded-For` naming the victim: the failures are not charged to the victim.
    ForwardedForNamesVictim,
    /// `X-Forwarded-For: <someone>, <victim>`: the last hop is still the attacker.
    ForwardedForListEndsInVictim,
    /// `Forwarded: for=…` (RFC 7239), rotating.
    RotatingForwarded,
    /// `X-Real-IP`, rotating.
    RotatingRealIp,
    /// Unknown names (`mallory-N`), rotating `X-Forwarded-For`: no user is created.
    RotatingUnknownNames,
}

#[derive(Debug, Clone)]
enum Plan {
    /// One request on a new connection from the attacker.
    Request {
        path: &'static str,
        headers: Vec<String>,
        expect: Expect,
    },
    Throttle(Throttle),
    /// Log in and use the session with `Host` naming this host (`None`: the proxy's own
    /// address with its port).
    HostWithPort(Option<&'static str>),
    /// These bytes in one write from the attacker; what the app may get is `allowed` only
    /// (public requests with no identity).
    Smuggle {
        bytes: Vec<u8>,
        allowed: &'static [&'static str],
    },
}

#[derive(Debug, Clone)]
struct Attack {
    family: &'static str,
    name: String,
    plan: Plan,
}

fn lines(headers: &[&str]) -> Vec<String> {
    headers.iter().map(|h| h.to_string()).collect()
}

/// Original-URL headers a client adds to an anonymous request for a protected page, hoping the
/// forward-auth endpoint judges the URL they name instead.
fn url_attacks() -> Vec<Attack> {
    let rows: Vec<(&str, Vec<&str>)> = vec![
        ("X-Original-URI", vec!["X-Original-URI: /share/x"]),
        ("X-Original-Url", vec!["X-Original-Url: /share/x"]),
        ("x-original-uri", vec!["x-original-uri: /share/x"]),
        ("X-ORIGINAL-URI", vec!["X-ORIGINAL-URI: /share/x"]),
        ("X-Original_URI", vec!["X-Original_URI: /share/x"]),
        ("X-Forwarded-Uri", vec!["X-Forwarded-Uri: /share/x"]),
        ("x-forwarded-uri", vec!["x-forwarded-uri: /share/x"]),
        ("X-Forwarded_Uri", vec!["X-Forwarded_Uri: /share/x"]),
        (
            "X-Forwarded-Uri and -Method",
            vec!["X-Forwarded-Uri: /share/x", "X-Forwarded-Method: GET"],
        ),
        (
            "X-Forwarded-Method OPTIONS",
            vec!["X-Forwarded-Method: OPTIONS"],
        ),
        (
            "X-Original-Method OPTIONS",
            vec!["X-Original-Method: OPTIONS"],
        ),
        (
            "X-Original-Method with X-Original-URI",
            vec!["X-Original-Method: OPTIONS", "X-Original-URI: /share/x"],
        ),
        ("X-Rewrite-URL", vec!["X-Rewrite-URL: /share/x"]),
        ("X-Forwarded-Prefix", vec!["X-Forwarded-Prefix: /share"]),
        (
            "X-Original-URI twice",
            vec!["X-Original-URI: /share/x", "X-Original-URI: /share/y"],
        ),
        (
            "X-Forwarded-Uri twice",
            vec!["X-Forwarded-Uri: /share/x", "X-Forwarded-Uri: /share/y"],
        ),
        (
            "X-Original-URI and X-Forwarded-Uri",
            vec!["X-Original-URI: /share/x", "X-Forwarded-Uri: /share/x"],
        ),
        (
            "X-Original-URI reserved",
            vec!["X-Original-URI: /_gatehouse/health"],
        ),
        (
            "X-Forwarded-Uri reserved",
            vec!["X-Forwarded-Uri: /_gatehouse/login"],
        ),
        (
            "X-Forwarded-Host and -Uri",
            vec![
                "X-Forwarded-Host: other.example",
                "X-Forwarded-Uri: /share/x",
            ],
        ),
        (
            "X-Original-URI absolute",
            vec!["X-Original-URI: http://gw.test/share/x"],
        ),
        (
            "X-Original-URI list",
            vec!["X-Original-URI: /share/x, /admin/settings"],
        ),
        (
            "X-Original-URI from a browser",
            vec!["X-Original-URI: /share/x", "Accept: text/html"],
        ),
        (
            "X-HTTP-Method-Override",
            vec![
                "X-HTTP-Method-Override: OPTIONS",
                "X-Original-URI: /share/x",
            ],
        ),
    ];
    rows.into_iter()
        .map(|(name, headers)| Attack {
            family: FAMILY_URL,
            name: name.to_owned(),
            plan: Plan::Request {
                path: "/admin/settings",
                headers: lines(&headers),
                expect: Expect::Nothing,
            },
        })
        .collect()
}

/// Front mode: what a client says about its address, its host or the URL it meant, on a public
/// path. The proxy relays it; gatehouse must not (an app honouring `X-Original-URL` routes an
/// anonymous request elsewhere, one reading `X-Real-IP` logs a forged client).
fn claim_attacks() -> Vec<Attack> {
    let rows: [(&str, &[&str]); 13] = [
        ("X-Original-URL", &["X-Original-URL: /admin/settings"]),
        ("X-Rewrite-URL", &["X-Rewrite-URL: /admin/settings"]),
        ("X-Original_URL", &["X-Original_URL: /admin/settings"]),
        ("X-Real-IP", &["X-Real-IP: 10.9.9.9"]),
        ("True-Client-IP", &["True-Client-IP: 10.9.9.9"]),
        (
            "Forwarded",
            &["Forwarded: for=10.9.9.9;host=evil.example;proto=https"],
        ),
        (
            "X-Forwarded-Prefix",
            &["X-Forwarded-Prefix: /admin/settings"],
        ),
        ("X-Forwarded-Host", &["X-Forwarded-Host: evil.example"]),
        ("X-Forwarded-Server", &["X-Forwarded-Server: evil.example"]),
        ("X-Forwarded-For", &["X-Forwarded-For: 10.9.9.9"]),
        ("X_Forwarded_For", &["X_Forwarded_For: 10.9.9.9"]),
        ("X-Host", &["X-Host: evil.example"]),
        (
            "all of them",
            &[
                "X-Original-URL: /admin/settings",
                "X-Real-IP: 10.9.9.9",
                "X-Forwarded-Host: evil.example",
                "Forwarded: for=10.9.9.9",
            ],
        ),
    ];
    rows.into_iter()
        .map(|(name, headers)| Attack {
            family: FAMILY_CLAIMS,
            name: name.to_owned(),
            plan: Plan::Request {
                path: "/share/x",
                headers: lines(headers),
                expect: Expect::PublicWithoutClaims("/share/x"),
            },
        })
        .collect()
}

/// The identity header in every spelling, on every kind of path.
///
/// In forward-auth mode the proxy builds the app's request from the client's headers, and
/// gatehouse's answer overwrites only the exact names; so gatehouse refuses a call that carries
/// a look-alike it can see (nothing reaches the app). nginx drops names with `_` before asking,
/// so there `Remote_User` never reaches either side and the request goes on as without it.
fn identity_attacks(deployment: Deployment) -> Vec<Attack> {
    let spellings: [(&str, &[&str]); 8] = [
        ("Remote-User", &["Remote-User: mallory"]),
        ("remote-user", &["remote-user: mallory"]),
        ("REMOTE-USER", &["REMOTE-USER: mallory"]),
        ("Remote_User", &["Remote_User: mallory"]),
        ("X-Remote-User", &["X-Remote-User: mallory"]),
        (
            "Remote-User repeated",
            &["Remote-User: mallory", "Remote-User: mallory"],
        ),
        ("Remote-User trailing space", &["Remote-User: mallory "]),
        (
            "Remote-User with admin groups",
            &["Remote-User: mallory", "Remote-Groups: admins"],
        ),
    ];
    let paths: [(&str, bool, Expect); 13] = [
        ("/_GATEHOUSE/x", false, Expect::Nothing),
        ("/_GateHouse/auth", false, Expect::Nothing),
        ("/_GATEHOUSE/login", false, Expect::Nothing),
        ("/%5Fgatehouse/x", false, Expect::Nothing),
        ("/%5fgatehouse/login", false, Expect::Nothing),
        ("//_gatehouse/x", false, Expect::Nothing),
        ("/_gatehouse/../app", false, Expect::Nothing),
        ("/_gatehouse/x", false, Expect::Nothing),
        ("/_gatehouse/auth", false, Expect::Nothing),
        ("/_gatehouse/health", false, Expect::Nothing),
        ("/app/inbox", false, Expect::Nothing),
        ("/app/inbox", true, Expect::AsAlice("/app/inbox")),
        ("/share/x", false, Expect::Public("/share/x")),
    ];
    let mut out = Vec::new();
    let refused = |spelling: &str| {
        deployment.is_forward_auth()
            && (spelling == "X-Remote-User"
                || (spelling == "Remote_User" && deployment == Deployment::CaddyForwardAuth))
    };
    for (path, logged_in, expect) in &paths {
        for (spelling, headers) in &spellings {
            let expect = if refused(spelling) {
                &Expect::Nothing
            } else {
                expect
            };
            let mut headers = lines(headers);
            if *logged_in {
                headers.push(SESSION.into());
            }
            let who = if *logged_in { " (alice)" } else { "" };
            out.push(Attack {
                family: FAMILY_IDENTITY,
                name: format!("{spelling} on {path}{who}"),
                plan: Plan::Request {
                    path,
                    headers,
                    expect: expect.clone(),
                },
            });
        }
    }
    out
}

fn throttle_attacks() -> Vec<Attack> {
    [
        (
            Throttle::JunkThenVictim,
            "25 junk logins from 127.0.0.2, then alice from 127.0.0.3",
        ),
        (
            Throttle::JunkUnderManyNames,
            "12 junk logins under other names from 127.0.0.2",
        ),
        (Throttle::RotatingForwardedFor, "rotating X-Forwarded-For"),
        (
            Throttle::RotatingForwardedForRightPassword,
            "rotating X-Forwarded-For with the right password",
        ),
        (
            Throttle::ForwardedForNamesVictim,
            "X-Forwarded-For naming the victim",
        ),
        (
            Throttle::ForwardedForListEndsInVictim,
            "X-Forwarded-For list ending in the victim",
        ),
        (Throttle::RotatingForwarded, "rotating Forwarded: for="),
        (Throttle::RotatingRealIp, "rotating X-Real-IP"),
        (
            Throttle::RotatingUnknownNames,
            "unknown names with rotating X-Forwarded-For",
        ),
    ]
    .into_iter()
    .map(|(case, name)| Attack {
        family: FAMILY_THROTTLE,
        name: name.to_owned(),
        plan: Plan::Throttle(case),
    })
    .collect()
}

fn host_attacks(deployment: Deployment) -> Vec<Attack> {
    // Caddy serves the site `http://127.0.0.1:PORT`: its Host is that address with the port.
    let host = match deployment {
        Deployment::NginxForwardAuth | Deployment::NginxFront => Some("music.example.com:8443"),
        Deployment::CaddyForwardAuth | Deployment::CaddyFront => None,
    };
    vec![Attack {
        family: FAMILY_HOST,
        name: format!(
            "login on a non-default port ({})",
            host.unwrap_or("the proxy's")
        ),
        plan: Plan::HostWithPort(host),
    }]
}

/// `GET /app/inbox` with a spoofed identity, as a request hidden somewhere.
const HIDDEN: &str = "GET /app/inbox HTTP/1.1\r\nHost: gw.test\r\nRemote-User: mallory\r\n\r\n";

fn smuggling_attacks() -> Vec<Attack> {
    let hidden_chunk = format!("{:x}\r\n{HIDDEN}\r\n0\r\n\r\n", HIDDEN.len());
    let rows: Vec<(&str, String, &'static [&'static str])> = vec![
        (
            "two requests in one write",
            format!("GET /share/x HTTP/1.1\r\nHost: gw.test\r\n\r\n{HIDDEN}"),
            &["/share/x"],
        ),
        (
            "two requests, the second on /_GATEHOUSE/",
            "GET /share/x HTTP/1.1\r\nHost: gw.test\r\n\r\nGET /_GATEHOUSE/x HTTP/1.1\r\nHost: gw.test\r\nRemote-User: mallory\r\n\r\n".into(),
            &["/share/x"],
        ),
        (
            "CL+TE, request after the last chunk",
            format!(
                "POST /share/x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{HIDDEN}",
                5 + HIDDEN.len()
            ),
            &["/share/x"],
        ),
        (
            "TE+CL, request inside a chunk",
            format!(
                "POST /share/x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n{hidden_chunk}"
            ),
            &["/share/x"],
        ),
        (
            "request in a Content-Length body",
            format!(
                "POST /share/x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: {}\r\n\r\n{HIDDEN}",
                HIDDEN.len()
            ),
            &["/share/x"],
        ),
        (
            "request in a chunked body",
            format!(
                "POST /share/x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n{hidden_chunk}"
            ),
            &["/share/x"],
        ),
        (
            "Transfer-Encoding xchunked with CL",
            format!(
                "POST /share/x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: {}\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n{HIDDEN}",
                5 + HIDDEN.len()
            ),
            &["/share/x"],
        ),
        (
            "two differing Content-Lengths",
            format!(
                "POST /share/x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 0\r\nContent-Length: {}\r\n\r\n{HIDDEN}",
                HIDDEN.len()
            ),
            &["/share/x"],
        ),
        (
            "folded Transfer-Encoding with CL",
            format!(
                "POST /share/x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: {}\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n{HIDDEN}",
                5 + HIDDEN.len()
            ),
            &["/share/x"],
        ),
        (
            "Transfer-Encoding chunked, identity",
            format!(
                "POST /share/x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked, identity\r\nContent-Length: {}\r\n\r\n0\r\n\r\n{HIDDEN}",
                5 + HIDDEN.len()
            ),
            &["/share/x"],
        ),
        (
            "Expect: 100-continue, then a second request",
            format!(
                "POST /share/x HTTP/1.1\r\nHost: gw.test\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi{HIDDEN}"
            ),
            &["/share/x"],
        ),
        (
            "HTTP/1.0 keep-alive, then a second request",
            "GET /share/x HTTP/1.0\r\nHost: gw.test\r\nConnection: keep-alive\r\n\r\nGET /app/inbox HTTP/1.0\r\nHost: gw.test\r\nConnection: keep-alive\r\nRemote-User: mallory\r\n\r\n".into(),
            &["/share/x"],
        ),
        (
            "identity in a chunked trailer",
            "POST /share/x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\nTrailer: Remote-User\r\n\r\n2\r\nhi\r\n0\r\nRemote-User: mallory\r\n\r\n".into(),
            &["/share/x"],
        ),
    ];
    rows.into_iter()
        .map(|(name, bytes, allowed)| Attack {
            family: FAMILY_SMUGGLING,
            name: name.to_owned(),
            plan: Plan::Smuggle {
                bytes: bytes.into_bytes(),
                allowed,
            },
        })
        .collect()
}

/// Every attack sent through `deployment`, in the order they run (the throttle's last: they
/// leave the attacker's address throttled).
fn attacks(deployment: Deployment) -> Vec<Attack> {
    let mut all = Vec::new();
    if deployment.is_forward_auth() {
        all.extend(url_attacks());
    } else {
        all.extend(claim_attacks());
    }
    all.extend(identity_attacks(deployment));
    all.extend(host_attacks(deployment));
    all.extend(smuggling_attacks());
    all.extend(throttle_attacks());
    all
}

/// One deployment under attack.
struct Scene<'a> {
    gw: &'a Gateway,
    proxy: &'a Proxy,
    /// alice's session, logged in through the proxy from the victim's address.
    session: String,
}

impl Scene<'_> {
    /// Runs `attack` as the attacker named `attacker` (the attack's own [`MALLORY`]).
    fn run(&self, attack: &Attack, attacker: &str) {
        assert_eq!(attacker.len(), MALLORY.len());
        let what = format!("[{}] {}", attack.family, attack.name);
        self.gw.upstream.clear();
        match &attack.plan {
            Plan::Request {
                path,
                headers,
                expect,
            } => self.request(&what, attacker, path, headers, expect),
            Plan::Throttle(case) => self.throttle(&what, attacker, *case),
            Plan::HostWithPort(host) => self.host_with_port(&what, attacker, *host),
            Plan::Smuggle { bytes, allowed } => {
                let bytes = String::from_utf8_lossy(bytes).replace(MALLORY, attacker);
                self.smuggle(&what, attacker, bytes.as_bytes(), allowed)
            }
        }
        self.assert_no_attacker_user(&what, attacker);
    }

    fn request(&self, what: &str, attacker: &str, path: &str, headers: &[String], expect: &Expect) {
        let session = format!("Cookie: {SESSION_COOKIE}={}", self.session);
        let headers: Vec<String> = headers
            .iter()
            .map(|h| {
                if h == SESSION {
                    session.clone()
                } else {
                    h.replace(MALLORY, attacker)
                }
            })
            .collect();
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        let mut client = self.proxy.client_from(Some(ATTACKER));
        let response = exchange(&mut client, &self.proxy.at(&get(path, &headers)));
        let seen = self.gw.upstream.seen();
        let shown: Vec<String> = seen.iter().map(|s| s.request_line()).collect();
        match expect {
            Expect::Nothing => assert!(
                seen.is_empty(),
                "{}: {what}: the app received {shown:?} (answer {})",
                self.proxy.name,
                response.status
            ),
            Expect::PublicWithoutClaims(target) => {
                assert_eq!(
                    shown.len(),
                    1,
                    "{}: {what}: the app received {shown:?}, not one {target}: {response}",
                    self.proxy.name
                );
                assert_eq!(seen[0].target(), *target, "{}: {what}", self.proxy.name);
                self.proxy
                    .assert_app_identity(what, &seen[0], None, attacker);
                for marker in CLAIM_MARKERS {
                    assert!(
                        !contains_ignore_case(&seen[0].head, marker.as_bytes()),
                        "{}: {what}: {marker:?} reached the app:\n{}",
                        self.proxy.name,
                        seen[0]
                    );
                }
            }
            Expect::Public(target) | Expect::AsAlice(target) => {
                assert_eq!(
                    shown.len(),
                    1,
                    "{}: {what}: the app received {shown:?}, not one {target}: {response}",
                    self.proxy.name
                );
                assert_eq!(seen[0].target(), *target, "{}: {what}", self.proxy.name);
                let user = matches!(expect, Expect::AsAlice(_)).then_some("alice");
                self.proxy
                    .assert_app_identity(what, &seen[0], user, attacker);
            }
        }
    }

    fn smuggle(&self, what: &str, attacker: &str, bytes: &[u8], allowed: &[&str]) {
        let name = self.proxy.name;
        let mut client = self.proxy.client_from(Some(ATTACKER));
        client
            .send(&self.proxy.at(bytes))
            .unwrap_or_else(|e| panic!("{name}: {what}: cannot send: {e}"));
        // The proxy answers what it understood and closes once the client is done: after that,
        // every request it made for this connection has been answered by the app.
        let _ = client.shutdown_write();
        let _ = client.read_to_close();
        // A request after it, on a connection of its own, to be sure nothing is still on its way.
        let marker = self.proxy.send(&get("/share/marker", &[]));
        assert_eq!(
            marker.status, 200,
            "{name}: {what}: marker request: {marker}"
        );
        let seen = self.gw.upstream.seen();
        assert!(
            seen.iter().any(|s| s.target() == "/share/marker"),
            "{name}: {what}: the marker request did not reach the app"
        );
        for s in seen.iter().filter(|s| s.target() != "/share/marker") {
            assert!(
                allowed.contains(&s.target().as_str()),
                "{name}: {what}: the app received {:?}:\n{s}",
                s.request_line()
            );
            self.proxy.assert_app_identity(what, s, None, attacker);
            assert!(
                !contains_ignore_case(&s.trailers, attacker.as_bytes()),
                "{name}: {what}: the attacker's name reached the app in a trailer:\n{s}\n{}",
                String::from_utf8_lossy(&s.trailers)
            );
        }
    }

    fn host_with_port(&self, what: &str, attacker: &str, host: Option<&str>) {
        let name = self.proxy.name;
        let host = host.map(str::to_owned).unwrap_or_else(|| self.proxy.host());
        let mut client = self.proxy.client_from(Some(VICTIM));
        let login = post_login_at(&mut client, &host, &[], "alice", PASSWORD, "/app/inbox");
        assert_eq!(
            login.status, 303,
            "{name}: {what}: login with Host {host}: {login}"
        );
        let session = login
            .set_cookie(SESSION_COOKIE)
            .unwrap_or_else(|| panic!("{name}: {what}: no session: {login}"));
        let cookie = session_cookie(&session);
        let request = with_host(&get("/app/inbox", &[&cookie]), &host);
        let response = exchange(&mut self.proxy.client_from(Some(VICTIM)), &request);
        assert_eq!(
            response.status, 200,
            "{name}: {what}: with the session: {response}"
        );
        let seen = self.gw.upstream.only();
        self.proxy
            .assert_app_identity(what, &seen, Some("alice"), attacker);
    }

    /// A login attempt from the attacker's address with `extra` headers: its status.
    fn attacker_login(&self, extra: &[&str], user: &str, password: &str) -> u16 {
        let mut client = self.proxy.client_from(Some(ATTACKER));
        post_login_at(
            &mut client,
            &self.proxy.host(),
            extra,
            user,
            password,
            "/app/inbox",
        )
        .status
    }

    fn assert_victim_logs_in(&self, what: &str) {
        if let Err(refused) = proxy_login(self.proxy, Some(VICTIM), &[], "alice", PASSWORD) {
            panic!(
                "{}: {what}: alice on 127.0.0.3 cannot log in: {refused}",
                self.proxy.name
            );
        }
    }

    fn throttle(&self, what: &str, attacker: &str, case: Throttle) {
        let name = self.proxy.name;
        // Once the attacker's own address has used up its burst, its attempts are refused
        // (429) whatever address it claims; one may pass now and then as its bucket drains
        // (one per `network_interval`, 10 s). Had the claimed address been believed, each
        // attempt would be judged as a fresh client's, and every one would pass.
        let mostly_throttled = |attempts: Vec<(String, String, &str)>| {
            let statuses: Vec<(String, u16)> = attempts
                .iter()
                .map(|(header, user, password)| {
                    (
                        header.clone(),
                        self.attacker_login(&[header], user, password),
                    )
                })
                .collect();
            let passed = statuses.iter().filter(|(_, status)| *status != 429).count();
            assert!(
                passed * 4 <= statuses.len(),
                "{name}: {what}: {passed} of {} attempts from 127.0.0.2 were judged as another \
                 client's, not refused as 127.0.0.2's: {statuses:?}",
                statuses.len()
            );
        };
        let rotating = |header: &dyn Fn(usize) -> String, user: &str, password: &'static str| {
            (1..=12)
                .map(|i| (header(i), user.to_owned(), password))
                .collect::<Vec<_>>()
        };
        match case {
            Throttle::JunkThenVictim => {
                let mut last = 0;
                for i in 0..25 {
                    last = self.attacker_login(&[], "alice", &format!("guess {i}"));
                }
                assert_eq!(
                    last, 429,
                    "{name}: {what}: 25 junk logins were not throttled"
                );
                self.assert_victim_logs_in(what);
            }
            Throttle::JunkUnderManyNames => {
                let statuses: Vec<u16> = (1..=12)
                    .map(|i| self.attacker_login(&[], &format!("{attacker}-{i:02}"), "x"))
                    .collect();
                assert_eq!(
                    statuses.last(),
                    Some(&429),
                    "{name}: {what}: 127.0.0.2 was not throttled: {statuses:?}"
                );
                self.assert_victim_logs_in(what);
            }
            Throttle::RotatingForwardedFor => mostly_throttled(rotating(
                &|i| format!("X-Forwarded-For: 198.51.100.{i}"),
                "alice",
                "x",
            )),
            Throttle::RotatingForwardedForRightPassword => mostly_throttled(rotating(
                &|i| format!("X-Forwarded-For: 198.51.100.{}", 20 + i),
                "alice",
                PASSWORD,
            )),
            Throttle::ForwardedForNamesVictim => {
                mostly_throttled(rotating(
                    &|_| "X-Forwarded-For: 127.0.0.3".to_owned(),
                    "alice",
                    "x",
                ));
                self.assert_victim_logs_in(what);
            }
            Throttle::ForwardedForListEndsInVictim => {
                mostly_throttled(rotating(
                    &|i| format!("X-Forwarded-For: 203.0.113.{i}, 127.0.0.3"),
                    "alice",
                    "x",
                ));
                self.assert_victim_logs_in(what);
            }
            Throttle::RotatingForwarded => mostly_throttled(rotating(
                &|i| format!("Forwarded: for=198.51.100.{}", 40 + i),
                "alice",
                "x",
            )),
            Throttle::RotatingRealIp => mostly_throttled(rotating(
                &|i| format!("X-Real-IP: 198.51.100.{}", 60 + i),
                "alice",
                "x",
            )),
            Throttle::RotatingUnknownNames => {
                mostly_throttled(
                    (1..=12)
                        .map(|i| {
                            (
                                format!("X-Forwarded-For: 198.51.100.{}", 80 + i),
                                format!("{attacker}-{i:02}"),
                                "x",
                            )
                        })
                        .collect(),
                );
                self.assert_victim_logs_in(what);
            }
        }
        let seen = self.gw.upstream.seen();
        assert!(
            seen.is_empty(),
            "{name}: {what}: logins reached the app: {:?}",
            seen.iter().map(|s| s.request_line()).collect::<Vec<_>>()
        );
    }

    fn assert_no_attacker_user(&self, what: &str, attacker: &str) {
        let path = self.gw.state_dir().join("users.json");
        let users = std::fs::read(&path).unwrap_or_default();
        assert!(
            !contains_ignore_case(&users, attacker.as_bytes()),
            "{}: {what}: {} gained a user named by the attacker:\n{}",
            self.proxy.name,
            path.display(),
            String::from_utf8_lossy(&users)
        );
    }
}

thread_local! {
    /// Set while an attack runs: its panics are collected, not printed one by one.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, catching its panic without printing it (the panic hook stays the default for
/// everything else, other tests' threads included).
fn quietly(f: impl FnOnce()) -> std::thread::Result<()> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                default(info);
            }
        }));
    });
    QUIET.with(|q| q.set(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(false));
    result
}

/// Runs every attack of `deployment` and fails with the list of those that got through.
fn attack(kind: Kind, deployment: Deployment) -> Outcome {
    let gw = Gateway::start(
        kind,
        Setup::new()
            .user("alice", PASSWORD)
            .trust(Trust::ProxiesList("127.0.0.1".into())),
    )?;
    let proxy = deployment.start(gw.addr(), gw.upstream.addr())?;
    // The deployment works for its real user before anyone attacks it.
    exercise(&proxy, &gw);
    let session = proxy_login(&proxy, Some(VICTIM), &[], "alice", PASSWORD)
        .unwrap_or_else(|refused| panic!("{}: alice cannot log in: {refused}", proxy.name));
    let scene = Scene {
        gw: &gw,
        proxy: &proxy,
        session,
    };
    let all = attacks(deployment);
    let mut failed: Vec<String> = Vec::new();
    for (i, attack) in all.iter().enumerate() {
        let attacker = format!("mal{i:04}");
        if let Err(panic) = quietly(|| scene.run(attack, &attacker)) {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("[{}] {}: {why}", attack.family, attack.name));
        }
    }
    let snippet = deployment.snippet();
    for family in FAMILIES {
        let sent = all.iter().filter(|a| a.family == family).count();
        let lost = failed
            .iter()
            .filter(|f| f.starts_with(&format!("[{family}]")))
            .count();
        println!("{snippet}: {family}: {sent} attacks, {} held", sent - lost);
    }
    println!(
        "{snippet}: {} attacks, {} held",
        all.len(),
        all.len() - failed.len()
    );
    assert!(
        failed.is_empty(),
        "{snippet}: {} of {} attacks got through:\n{}",
        failed.len(),
        all.len(),
        failed.join("\n")
    );
    Ok(())
}

/// The attack table itself: how many of each family every deployment gets (no proxy runs).
#[test]
fn at_least_sixty_attacks_through_every_deployment() {
    let mut total = 0;
    for deployment in Deployment::ALL {
        let all = attacks(deployment);
        let counts: Vec<String> = FAMILIES
            .iter()
            .map(|f| format!("{f} {}", all.iter().filter(|a| a.family == *f).count()))
            .collect();
        println!(
            "{}: {} attacks: {}",
            deployment.snippet(),
            all.len(),
            counts.join(", ")
        );
        let mut names: Vec<&str> = all.iter().map(|a| a.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(
            names.len(),
            all.len(),
            "{}: two attacks share a name",
            deployment.snippet()
        );
        assert!(
            all.len() >= 60,
            "{}: only {} attacks",
            deployment.snippet(),
            all.len()
        );
        total += all.len();
    }
    println!("all deployments: {total} attacks");
}

conformance! {
    /// Caddy `forward_auth` as the README prints it, attacked through Caddy.
    fn through_caddy_forward_auth(kind) on [daemon] {
        attack(kind, Deployment::CaddyForwardAuth)
    }

    /// nginx `auth_request` as the README prints it, attacked through nginx.
    fn through_nginx_forward_auth(kind) on [daemon] {
        attack(kind, Deployment::NginxForwardAuth)
    }

    /// Caddy as a plain proxy in front of gatehouse, attacked through Caddy.
    fn through_caddy_front(kind) on [daemon] {
        attack(kind, Deployment::CaddyFront)
    }

    /// nginx as a plain proxy in front of gatehouse, attacked through nginx.
    fn through_nginx_front(kind) on [daemon] {
        attack(kind, Deployment::NginxFront)
    }
}
