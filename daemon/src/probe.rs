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
