//! The gateway over real loopback sockets, in front of a recording app: what the app receives,
//! what the client gets, and how the daemon behaves around it (UNIX sockets, the app going
//! down, shutdown).

mod support;

use std::time::Duration;

use support::{Client, Gateway, Recorder, get};

#[test]
fn a_public_path_reaches_the_app_without_login_and_without_any_client_identity() {
    let app = Recorder::start();
    let gw = Gateway::start(&app.upstream(), &[]);
    let spoofs = "Remote-User: admin\r\nremote_user: admin\r\nREMOTE-USER: admin\r\n\
                  Remote-Groups: admins\r\nX-Forwarded-User: admin\r\nX-Remote-User: admin\r\n";
    let r = get(gw.addr(), "/share/abc?x=1", spoofs);
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.body_text(), "ok /share/abc?x=1");
    let seen = app.requests();
    assert_eq!(seen.len(), 1);
    for name in [
        "Remote-User",
        "Remote-Groups",
        "X-Forwarded-User",
        "X-Remote-User",
    ] {
        assert!(
            seen[0].lookalikes(name).is_empty(),
            "{name} reached the app: {:?}",
            seen[0].headers
        );
    }
}

#[test]
fn pipelined_requests_are_each_judged_and_answered_in_order() {
    let app = Recorder::start();
    let gw = Gateway::start(&app.upstream(), &[]);
    let mut c = Client::tcp(gw.addr());
    // Three requests in one write: a public one, a public one carrying a spoofed identity,
    // and one to a protected path with no login.
    c.send(
        b"GET /share/1 HTTP/1.1\r\nHost: gw.test\r\n\r\n\
          GET /share/2 HTTP/1.1\r\nHost: gw.test\r\nRemote-User: admin\r\n\r\n\
          GET /private HTTP/1.1\r\nHost: gw.test\r\nRemote-User: admin\r\nAccept: */*\r\n\r\n",
    );
    let r1 = c.read().expect("first response");
    let r2 = c.read().expect("second response");
    let r3 = c.read().expect("third response");
    assert_eq!((r1.status, r1.body_text().as_str()), (200, "ok /share/1"));
    assert_eq!((r2.status, r2.body_text().as_str()), (200, "ok /share/2"));
    assert_eq!(
        r3.status, 401,
        "a protected path needs a login, header or not"
    );
    let seen = app.requests();
    assert_eq!(seen.len(), 2, "the protected request never reached the app");
    assert!(seen[1].lookalikes("Remote-User").is_empty());
}

#[test]
fn a_request_body_is_streamed_to_the_app() {
    let app = Recorder::start();
    let gw = Gateway::start(&app.upstream(), &[]);
    let mut c = Client::tcp(gw.addr());
    let body = vec![b'x'; 300_000];
    let mut req = format!(
        "POST /share/upload HTTP/1.1\r\nHost: gw.test\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    let r = c.request(&req);
    assert_eq!(r.status, 200);
    let r = c.request(
        b"POST /share/chunked HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n6\r\n world\r\n0\r\nRemote-User: admin\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let seen = app.requests();
    assert_eq!(seen[0].body.len(), body.len());
    assert_eq!(seen[1].body, b"hello world");
    assert!(
        seen[1].lookalikes("Remote-User").is_empty(),
        "trailers never reach the app"
    );
}

#[test]
fn an_app_that_is_down_gives_502_and_gatehouse_recovers_when_it_is_back() {
    let port_holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let app_addr = port_holder.local_addr().expect("addr");
    drop(port_holder);
    let gw = Gateway::start(
        &format!("http://{app_addr}"),
        &["--upstream-connect-timeout", "2s"],
    );
    let r = get(gw.addr(), "/share/x", "");
    assert_eq!(r.status, 502);
    let app = Recorder::start_on(app_addr);
    let r = get(gw.addr(), "/share/x", "");
    assert_eq!(r.status, 200);
    assert_eq!(app.requests().len(), 1);
    assert!(gw.logs().contains("upstream error"), "{}", gw.logs());
}

#[test]
fn unix_sockets_on_both_sides_with_a_restrictive_socket_mode() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app_sock = dir.path().join("app.sock");
    let gw_sock = dir.path().join("gatehouse.sock");
    let app = Recorder::start_unix(&app_sock);
    let listen = format!("unix:{}", gw_sock.display());
    let gw = Gateway::start_with_state(
        &dir.path().join("state"),
        &app.upstream(),
        &["--listen", &listen],
        &[],
    );
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let meta = std::fs::metadata(&gw_sock).expect("socket exists");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    let mut c = Client::unix(&gw_sock);
    let r = c.request(b"GET /share/over-unix HTTP/1.1\r\nHost: gw.test\r\nRemote-User: x\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.body_text(), "ok /share/over-unix");
    let seen = app.requests();
    assert!(seen[0].lookalikes("Remote-User").is_empty());
    drop(c);
    drop(gw);
}

#[test]
fn sigterm_lets_a_request_in_flight_finish_then_exits_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = Recorder::start();
    app.set_delay(Duration::from_millis(700));
    let gw_sock = dir.path().join("gatehouse.sock");
    let listen = format!("unix:{}", gw_sock.display());
    let mut gw = Gateway::start_with_state(
        &dir.path().join("state"),
        &app.upstream(),
        &["--listen", "127.0.0.1:0", "--listen", &listen],
        &[],
    );
    let addr = gw.addr();
    let client = std::thread::spawn(move || get(addr, "/share/slow", ""));
    assert!(app.wait_for(1), "the request reached the app");
    let status = gw.terminate().expect("gatehouse exits after SIGTERM");
    assert!(status.success(), "exit status {status:?}\n{}", gw.logs());
    let r = client.join().expect("client thread");
    assert_eq!(r.status, 200, "the request in flight was answered");
    assert!(!gw_sock.exists(), "the UNIX socket is removed on exit");
    assert!(gw.logs().contains("shutting down"), "{}", gw.logs());
}

#[test]
fn metrics_are_404_unless_the_peer_is_listed() {
    let app = Recorder::start();
    // By default nobody may read them; with a list, only its peers (this test's client is
    // 127.0.0.1, not 127.0.0.2). Anyone else is told there is no such endpoint.
    for extra in [&[][..], &["--metrics-sources", "127.0.0.2, ::1"][..]] {
        let gw = Gateway::start(&app.upstream(), extra);
        for headers in ["", "X-Forwarded-For: 127.0.0.2\r\n"] {
            let r = get(gw.addr(), "/_gatehouse/metrics", headers);
            assert_eq!(r.status, 404, "{extra:?} {headers}");
            assert!(!r.body_text().contains("gatehouse_"), "{}", r.body_text());
        }
    }
    assert!(app.requests().is_empty(), "metrics never reach the app");
}

#[test]
fn health_and_metrics_answer() {
    let app = Recorder::start();
    let gw = Gateway::start(&app.upstream(), &["--metrics-sources", "127.0.0.0/8"]);
    let r = get(gw.addr(), "/_gatehouse/health", "");
    assert_eq!(r.status, 200);
    assert_eq!(get(gw.addr(), "/share/a", "").status, 200);
    // An exchange is counted once it is over, which may be just after the client has its
    // answer: read the counters until they show it (bounded).
    let deadline = std::time::Instant::now() + support::PATIENCE;
    let text = loop {
        let r = get(gw.addr(), "/_gatehouse/metrics", "");
        assert_eq!(r.status, 200);
        let text = r.body_text();
        if text.contains("gatehouse_requests_total{outcome=\"forwarded\"} 1")
            || std::time::Instant::now() > deadline
        {
            break text;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        text.contains("gatehouse_requests_total{outcome=\"forwarded\"} 1"),
        "{text}"
    );
    assert!(text.contains("gatehouse_open_connections "), "{text}");
    assert_eq!(
        app.requests().len(),
        1,
        "health and metrics never reach the app"
    );
}

/// An app that accepts one WebSocket-style upgrade and then echoes what it receives.
fn upgrade_app() -> (
    std::net::SocketAddr,
    std::thread::JoinHandle<Option<String>>,
) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let handle = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().ok()?;
        s.set_read_timeout(Some(support::PATIENCE)).ok()?;
        let mut buf = Vec::new();
        let req = support::read_request(&mut s, &mut buf)?;
        s.write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        )
        .ok()?;
        let mut chunk = [0u8; 1024];
        loop {
            let n = if buf.is_empty() {
                s.read(&mut chunk).ok()?
            } else {
                let n = buf.len();
                chunk[..n].copy_from_slice(&buf);
                buf.clear();
                n
            };
            if n == 0 {
                break;
            }
            s.write_all(&chunk[..n]).ok()?;
        }
        Some(format!(
            "{} upgrade={:?} remote-user={:?}",
            req.request_line,
            req.header("upgrade"),
            req.lookalikes("remote-user")
        ))
    });
    (addr, handle)
}

#[test]
fn an_upgrade_becomes_a_tunnel_both_ways() {
    use std::io::{Read, Write};
    let (app_addr, app) = upgrade_app();
    let gw = Gateway::start(&format!("http://{app_addr}"), &[]);
    let mut s = std::net::TcpStream::connect(gw.addr()).expect("connect");
    s.set_read_timeout(Some(support::PATIENCE))
        .expect("timeout");
    s.write_all(
        b"GET /share/socket HTTP/1.1\r\nHost: gw.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Remote-User: admin\r\n\r\n",
    )
    .expect("write");
    let mut buf = Vec::new();
    let r = support::read_response(&mut s, &mut buf, true).expect("101");
    assert_eq!(r.status, 101);
    s.write_all(b"ping through the tunnel").expect("write");
    let mut got = buf;
    while got.len() < b"ping through the tunnel".len() {
        let mut chunk = [0u8; 64];
        let n = s.read(&mut chunk).expect("read");
        assert!(n > 0, "tunnel closed early");
        got.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(got, b"ping through the tunnel");
    drop(s);
    let seen = app
        .join()
        .expect("app thread")
        .expect("the app saw the upgrade");
    assert!(seen.contains("upgrade=Some(\"websocket\")"), "{seen}");
    assert!(seen.contains("remote-user=[]"), "{seen}");
}

#[test]
fn a_client_too_slow_to_send_its_head_is_cut_off_while_others_are_served() {
    let app = Recorder::start();
    let gw = Gateway::start(&app.upstream(), &["--head-read-timeout", "1s"]);
    let mut slow = Client::tcp(gw.addr());
    slow.send(b"GET /share/slow HTTP/1.1\r\nHost: gw");
    let r = get(gw.addr(), "/share/fast", "");
    assert_eq!(r.status, 200);
    assert!(slow.is_closed(), "the slow client's connection is closed");
    assert_eq!(app.requests().len(), 1);
}

#[test]
fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let app = Recorder::start();
    let gw = Gateway::start(&app.upstream(), &[]);
    let mut c = Client::tcp(gw.addr());
    c.send(
        b"POST /share/form HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    );
    let interim = c.read().expect("100 Continue");
    assert_eq!(interim.status, 100);
    c.send(b"hello");
    let r = c.read().expect("final response");
    assert_eq!(r.status, 200);
    let seen = app.requests();
    assert_eq!(seen[0].body, b"hello");
    assert!(seen[0].header("Expect").is_none());
}

#[test]
fn check_probes_a_running_setup_and_fails_when_the_app_is_down() {
    let app = Recorder::start();
    let gw = Gateway::start(&app.upstream(), &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"{}\"\nupstream = \"{}\"\nstate_dir = {:?}\n",
            gw.addr(),
            app.upstream(),
            gw.state.to_string_lossy()
        ),
    )
    .expect("write config");
    let run = || {
        let out = std::process::Command::new(support::BIN)
            .arg("check")
            .arg("--config")
            .arg(&config)
            .env_remove("STATE_DIRECTORY")
            .output()
            .expect("run check");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = run();
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("ok    the app at"), "{out}");
    assert!(out.contains("spoofed `Remote-User` is refused"), "{out}");
    assert!(
        out.contains("public path /share/ answers without login"),
        "{out}"
    );
    let spoof_seen = app
        .requests()
        .iter()
        .any(|r| !r.lookalikes("Remote-User").is_empty());
    assert!(
        !spoof_seen,
        "the probe's spoofed header never reached the app"
    );
    drop(app);
    let (code, out) = run();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAIL  the app at"), "{out}");
}

#[test]
fn trusting_everyone_starts_only_with_a_loud_warning() {
    let app = Recorder::start();
    let gw = Gateway::start(&app.upstream(), &["--trusted-sources", "0.0.0.0/0"]);
    let logs = gw.logs();
    assert!(
        logs.contains("WARN") && logs.contains("catch-all") && logs.contains("0.0.0.0/0"),
        "{logs}"
    );
}
