//! `gatehouse check`'s probes: what a careful admin would try by hand against a running setup.
//!
//! Each probe prints one line, `ok`, `note` or `FAIL`, saying what was tried and what came
//! back. The probes only observe; the judgement of each request is the running gateway's.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use crate::config::{Config, ListenAddr, TrustedList, UpstreamAddr};
use crate::upstream::Stream;

const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs every probe and returns how many failed.
pub async fn run_probes(config: &Config) -> usize {
    let mut failures = 0;
    let mut report = |ok: bool, line: String| {
        if ok {
            println!("ok    {line}");
        } else {
            failures += 1;
            println!("FAIL  {line}");
        }
    };

    // 1. The app answers.
    let app = match &config.upstream {
        UpstreamAddr::Tcp { host_port } => Target::Tcp(host_port.clone()),
        UpstreamAddr::Unix(p) => Target::Unix(p.clone()),
    };
    match exchange(
        &app,
        "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await
    {
        Ok(r) => report(
            true,
            format!("the app at {} answers (HTTP {})", config.upstream, r.status),
        ),
        Err(e) => report(
            false,
            format!("the app at {} does not answer: {e}", config.upstream),
        ),
    }

    // 2. The gateway, on its first listener that a probe can reach.
    let Some((gateway, shown, local_peer)) = gateway_target(config) else {
        println!("note  no listener to probe");
        return failures;
    };
    if config.tls.is_some() && matches!(gateway, Target::Tcp(_)) {
        println!(
            "note  the TCP listeners speak TLS; probe them with e.g. `curl -k -H 'Remote-User: x' https://{shown}/`"
        );
        return failures;
    }
    match exchange(
        &gateway,
        "GET /_gatehouse/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await
    {
        Ok(r) if r.status == 200 => report(true, format!("the gateway at {shown} is up")),
        Ok(r) => report(
            false,
            format!(
                "the gateway at {shown} answered its health check with HTTP {}",
                r.status
            ),
        ),
        Err(e) => {
            report(
                false,
                format!("the gateway at {shown} does not answer: {e} (is it running?)"),
            );
            return failures;
        }
    }

    // 3. A spoofed identity header does not get a stranger in.
    let trusted_here = TrustedList::parse(&config.trusted_sources)
        .map(|t| t.trusts(&local_peer))
        .unwrap_or(false);
    let proxy_here = TrustedList::parse(&config.trusted_proxies)
        .map(|t| t.trusts(&local_peer))
        .unwrap_or(false);
    if proxy_here && !trusted_here {
        println!(
            "note  this machine is in trusted_proxies (forwarding only): its X-Forwarded-For is \
             believed, its `{}` header is not, so the spoof probe still counts",
            config.user_header
        );
    }
    let spoof = format!(
        "GET / HTTP/1.1\r\nHost: localhost\r\n{}: gatehouse-check-spoof\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        config.user_header
    );
    match exchange(&gateway, &spoof).await {
        Ok(_) if trusted_here => println!(
            "note  this machine is in trusted_sources, so the gateway believes its `{}` header \
             by design; run `gatehouse check` from an untrusted host to probe spoofing",
            config.user_header
        ),
        Ok(r) if r.status == 401 || (r.status == 302 && r.location_is_login()) => report(
            true,
            format!(
                "a request with a spoofed `{}` is refused (HTTP {}) and never reaches the app",
                config.user_header, r.status
            ),
        ),
        Ok(r) => report(
            false,
            format!(
                "a request with a spoofed `{}` and no login got HTTP {} instead of 401: is `/` a \
                 public path, or is this machine trusted?",
                config.user_header, r.status
            ),
        ),
        Err(e) => report(false, format!("spoof probe failed: {e}")),
    }

    // 4. Public paths answer without login.
    for prefix in &config.public_paths {
        let req = format!(
            "GET {prefix} HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        match exchange(&gateway, &req).await {
            Ok(r) if r.status == 401 || (r.status == 302 && r.location_is_login()) => report(
                false,
                format!("public path {prefix} asks for a login (HTTP {})", r.status),
            ),
            Ok(r) => report(
                true,
                format!(
                    "public path {prefix} answers without login (HTTP {} from the app)",
                    r.status
                ),
            ),
            Err(e) => report(false, format!("public path {prefix}: {e}")),
        }
    }
    failures
}

/// One attack `check --through` sends through a proxy, and what to change when it gets
/// through.
struct ThroughProbe {
    what: String,
    request: String,
    fix: &'static str,
}

/// `gatehouse check --through URL`: sends a few known attacks through a running proxy in front
/// of gatehouse, as a stranger would, and prints for each whether the proxy and gatehouse held
/// it. An attack got through when the app answered it (see [`ProbeResponse::got_through`]).
/// Returns how many got through, or why `url` cannot be probed.
pub async fn run_through(url: &str, config: &Config) -> Result<usize, String> {
    let authority = url
        .strip_prefix("http://")
        .map(|rest| rest.split('/').next().unwrap_or_default())
        .filter(|a| !a.is_empty())
        .ok_or_else(|| {
            format!(
                "--through {url:?}: give the proxy's plain-HTTP address, \
                 e.g. http://127.0.0.1:8443"
            )
        })?;
    let connect_to = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.contains(']'))
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let target = Target::Tcp(connect_to);
    let public = config
        .public_paths
        .first()
        .map_or("/share/", String::as_str);
    let header = &config.user_header;
    let request = |path: &str, headers: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: */*\r\n{headers}Connection: close\r\n\r\n"
        )
    };
    let probes = [
        ThroughProbe {
            what: format!("a client's X-Original-URI naming {public} on a protected page"),
            request: request(
                "/",
                &format!("X-Original-URI: {public}gatehouse-check\r\nX-Original-Method: GET\r\n"),
            ),
            fix: "gatehouse believed the client's X-Original-URI: call /_gatehouse/auth from \
                  Caddy and Traefik, /_gatehouse/auth/nginx from nginx with \
                  `proxy_set_header X-Original-URI $request_uri`, and put the proxy in \
                  trusted_proxies, not trusted_sources",
        },
        ThroughProbe {
            what: format!("a client's X-Forwarded-Uri naming {public} on a protected page"),
            request: request(
                "/",
                &format!("X-Forwarded-Uri: {public}gatehouse-check\r\nX-Forwarded-Method: GET\r\n"),
            ),
            fix: "gatehouse believed the client's X-Forwarded-Uri: call /_gatehouse/auth/nginx \
                  from nginx, /_gatehouse/auth from Caddy and Traefik (which set the header \
                  themselves), and put the proxy in trusted_proxies, not trusted_sources",
        },
        ThroughProbe {
            what: format!("/_GATEHOUSE/login with a spoofed `{header}`"),
            request: request(
                "/_GATEHOUSE/login",
                &format!("{header}: gatehouse-check\r\n"),
            ),
            fix: "the app got a request the proxy routed to gatehouse: take the proxy out of \
                  trusted_sources (it relays clients' headers; trusted_proxies is its place) \
                  and run a gatehouse that owns /_gatehouse/ in any case. Delete the user \
                  `gatehouse-check` if it was created",
        },
        ThroughProbe {
            what: format!("a spoofed `{header}` on a protected page"),
            request: request("/", &format!("{header}: gatehouse-check\r\n")),
            fix: "a request with no login reached the app: send every location through \
                  gatehouse (auth_request or forward_auth on each, or proxy to gatehouse), and \
                  keep the proxy out of trusted_sources",
        },
    ];
    let mut through = 0;
    for probe in &probes {
        match exchange(&target, &probe.request).await {
            Ok(r) if r.got_through() => {
                through += 1;
                println!(
                    "GOT THROUGH  {} (HTTP {}): {}",
                    probe.what, r.status, probe.fix
                );
            }
            Ok(r) => println!("held         {} (HTTP {})", probe.what, r.status),
            Err(e) => {
                return Err(format!("cannot probe {url}: {e}"));
            }
        }
    }
    Ok(through)
}

enum Target {
    Tcp(String),
    Unix(std::path::PathBuf),
}

fn gateway_target(config: &Config) -> Option<(Target, String, gatehouse_core::peer::Peer)> {
    use gatehouse_core::peer::Peer;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
    match config.listen.first()? {
        ListenAddr::Tcp(a) => {
            // A wildcard listener is reached on loopback.
            let ip = match a.ip() {
                IpAddr::V4(v) if v.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(v) if v.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
                ip => ip,
            };
            let addr = SocketAddr::new(ip, a.port());
            Some((
                Target::Tcp(addr.to_string()),
                addr.to_string(),
                Peer::Ip(ip),
            ))
        }
        ListenAddr::Unix(p) => Some((
            Target::Unix(p.clone()),
            format!("unix:{}", p.display()),
            Peer::Unix,
        )),
    }
}

struct ProbeResponse {
    status: u16,
    head: String,
}

impl ProbeResponse {
    /// Whether this answer came from the app rather than from gatehouse or the proxy refusing.
    /// To these probes gatehouse answers only with a refusal (400, 401, 403, 429), a redirect
    /// to its login page or the login page itself; the proxy may fail (5xx), which lets
    /// nothing through either. Anything else (a success, another redirect, a 404 for a path
    /// gatehouse serves in any case) is the app's.
    fn got_through(&self) -> bool {
        match self.status {
            200..=299 => !self.sets_cookie("gatehouse_csrf"),
            300..=399 => !self.location_is_login(),
            400 | 401 | 403 | 429 | 431 | 500..=599 => false,
            _ => true,
        }
    }

    fn sets_cookie(&self, name: &str) -> bool {
        self.head.lines().any(|l| {
            l.split_once(':').is_some_and(|(n, v)| {
                n.trim().eq_ignore_ascii_case("set-cookie")
                    && v.trim()
                        .strip_prefix(name)
                        .is_some_and(|r| r.starts_with('='))
            })
        })
    }

    fn location_is_login(&self) -> bool {
        self.head.lines().any(|l| {
            l.split_once(':').is_some_and(|(n, v)| {
                n.trim().eq_ignore_ascii_case("location") && v.contains("/_gatehouse/")
            })
        })
    }
}

async fn exchange(target: &Target, request: &str) -> Result<ProbeResponse, String> {
    let work = async {
        let mut s = match target {
            Target::Tcp(a) => Stream::Tcp(
                TcpStream::connect(a.as_str())
                    .await
                    .map_err(|e| e.to_string())?,
            ),
            Target::Unix(p) => {
                Stream::Unix(UnixStream::connect(p).await.map_err(|e| e.to_string())?)
            }
        };
        s.write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::with_capacity(4096);
        loop {
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
            buf.extend_from_slice(&chunk[..n]);
            if n == 0 || buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.len() > 64 * 1024 {
                break;
            }
        }
        let head = String::from_utf8_lossy(&buf).into_owned();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| "no HTTP response".to_owned())?;
        Ok(ProbeResponse { status, head })
    };
    tokio::time::timeout(PROBE_TIMEOUT, work)
        .await
        .map_err(|_| format!("no answer within {PROBE_TIMEOUT:?}"))?
}
