//! HTTPS on the TCP listeners with rustls: requests work over TLS, cookies are `Secure`, and
//! SIGHUP swaps the certificate for new connections without a restart.

mod support;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use support::{Gateway, Recorder, Response, read_response, signal, users};

struct Cert {
    der: CertificateDer<'static>,
}

fn make_cert(dir: &Path, prefix: &str) -> Cert {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    std::fs::write(dir.join(format!("{prefix}cert.pem")), cert.pem()).expect("write cert");
    std::fs::write(
        dir.join(format!("{prefix}key.pem")),
        signing_key.serialize_pem(),
    )
    .expect("write key");
    Cert {
        der: cert.der().clone(),
    }
}

/// One request over TLS, trusting only `cert`; returns the response and the server's
/// certificate.
fn tls_request(
    addr: SocketAddr,
    cert: &Cert,
    request: &str,
) -> (Response, CertificateDer<'static>) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der.clone()).expect("root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::try_from("localhost").expect("name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let sock = TcpStream::connect(addr).expect("connect");
    sock.set_read_timeout(Some(support::PATIENCE))
        .expect("timeout");
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(request.as_bytes())
        .expect("TLS write (handshake)");
    let mut buf = Vec::new();
    let r = read_response(&mut tls, &mut buf, false).expect("response over TLS");
    let peer = tls
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("server certificate")
        .clone()
        .into_owned();
    (r, peer)
}

#[test]
fn https_serves_with_secure_cookies_and_sighup_swaps_the_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let (code, _, err) = users(
        &state,
        &["add", "tess", "--password-stdin", "--iterations", "1000"],
        "pw\n",
    );
    assert_eq!(code, 0, "{err}");
    let first = make_cert(dir.path(), "");
    let cert = dir.path().join("cert.pem").to_string_lossy().into_owned();
    let key = dir.path().join("key.pem").to_string_lossy().into_owned();
    let app = Recorder::start();
    let gw = Gateway::start_with_state(
        &state,
        &app.upstream(),
        &["--listen", "127.0.0.1:0"],
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--password-iterations",
            "1000",
        ],
    );
    assert!(gw.logs().contains("listening on https://"), "{}", gw.logs());

    let (r, served) = tls_request(
        gw.addr(),
        &first,
        "GET /share/over-tls HTTP/1.1\r\nHost: localhost\r\nRemote-User: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(served, first.der);
    let seen = app.requests();
    assert!(seen[0].lookalikes("Remote-User").is_empty());
    assert_eq!(seen[0].header("X-Forwarded-Proto"), Some("https"));

    // Cookies set over TLS are Secure (here the login form's CSRF cookie).
    let (r, _) = tls_request(
        gw.addr(),
        &first,
        "GET /_gatehouse/login HTTP/1.1\r\nHost: localhost\r\nAccept: text/html\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let cookies: Vec<&str> = r
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert!(!cookies.is_empty());
    assert!(cookies.iter().all(|c| c.contains("Secure")), "{cookies:?}");
    let (r, _) = tls_request(
        gw.addr(),
        &first,
        &format!(
            "GET /x HTTP/1.1\r\nHost: localhost\r\n{}Connection: close\r\n\r\n",
            support::basic("tess", "pw")
        ),
    );
    assert_eq!(r.status, 200, "HTTP Basic over TLS");

    // A renewed certificate: written over the same files, then SIGHUP.
    let second = make_cert(dir.path(), "");
    signal(gw.pid(), "HUP");
    assert!(gw.wait_log("TLS certificate reloaded"), "{}", gw.logs());
    let (r, served) = tls_request(
        gw.addr(),
        &second,
        "GET /share/again HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        served, second.der,
        "new connections get the new certificate"
    );

    // A broken renewal keeps the working certificate.
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").expect("write");
    signal(gw.pid(), "HUP");
    assert!(gw.wait_log("TLS reload failed"), "{}", gw.logs());
    let (r, served) = tls_request(
        gw.addr(),
        &second,
        "GET /share/still HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(served, second.der);
}

#[test]
fn a_missing_certificate_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(support::BIN)
        .args(["serve", "--allow-root", "--listen", "127.0.0.1:0"])
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .args([
            "--tls-cert",
            "/nonexistent/cert.pem",
            "--tls-key",
            "/nonexistent/key.pem",
        ])
        .env_remove("STATE_DIRECTORY")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("`tls_cert`") && err.contains("/nonexistent/cert.pem"),
        "{err}"
    );
}
