//! `gatehouse check --through URL` against real nginx in front of gatehouse: the README's
//! forward-auth snippet holds every probe; the same snippet with its `auth_request` line left
//! out (a location that skips gatehouse) lets every one of them through, and `check` says so.

mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};

use gatehouse_tests::peers::{Proxy, readme_snippet};
use gatehouse_tests::target::{Unavailable, in_ci};
use support::{BIN, Gateway, Recorder, RecorderAddr, clear_gatehouse_env};

fn check_through(proxy: &Proxy, gateway: &Gateway) -> (i32, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg("check")
        .arg("--state-dir")
        .arg(&gateway.state)
        .arg("--through")
        .arg(format!("http://{}", proxy.addr()))
        .env_remove("STATE_DIRECTORY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    clear_gatehouse_env(&mut cmd);
    let out = cmd.output().expect("run gatehouse check");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn app_addr(app: &Recorder) -> SocketAddr {
    match &app.addr {
        RecorderAddr::Tcp(addr) => *addr,
        RecorderAddr::Unix(_) => unreachable!("the recorder listens on TCP"),
    }
}

/// nginx missing here is a skip, or a failure under CI=true.
fn or_skip(proxy: Result<Proxy, Unavailable>) -> Option<Proxy> {
    match proxy {
        Ok(proxy) => Some(proxy),
        Err(why) if in_ci() => panic!("nginx is needed and CI=true: {why}"),
        Err(why) => {
            eprintln!("\n*** SKIPPED: {why} ***\n");
            None
        }
    }
}

/// How many probes `check --through` sends.
const PROBES: usize = 4;

#[test]
fn check_through_nginx_as_the_readme_prints_it_finds_every_attack_held() {
    let app = Recorder::start();
    let gateway = Gateway::start(&app.upstream(), &["--trusted-proxies", "127.0.0.1"]);
    let Some(proxy) = or_skip(Proxy::nginx(gateway.addr(), app_addr(&app))) else {
        return;
    };
    let (code, out) = check_through(&proxy, &gateway);
    assert_eq!(code, 0, "{out}");
    let held = out.lines().filter(|l| l.starts_with("held ")).count();
    assert_eq!(held, PROBES, "{out}");
    assert!(!out.contains("GOT THROUGH"), "{out}");
    assert!(
        app.requests().is_empty(),
        "a probe reached the app: {:?}",
        app.requests()
    );
}

#[test]
fn check_through_says_what_got_through_a_location_without_auth_request() {
    let app = Recorder::start();
    // Whatever gatehouse trusts, a location that never asks it lets everything through.
    let gateway = Gateway::start(&app.upstream(), &[]);
    let readme = readme_snippet("nginx-forward-auth");
    let broken = readme.replace("    auth_request /_gatehouse/auth/nginx;\n", "");
    assert_ne!(
        broken, readme,
        "the README's nginx snippet has no auth_request line"
    );
    let Some(proxy) = or_skip(Proxy::nginx_config(
        "nginx without auth_request",
        &broken,
        gateway.addr(),
        app_addr(&app),
    )) else {
        return;
    };
    let (code, out) = check_through(&proxy, &gateway);
    assert_eq!(code, 1, "{out}");
    let through = out
        .lines()
        .filter(|l| l.starts_with("GOT THROUGH "))
        .count();
    assert_eq!(through, PROBES, "{out}");
    assert!(
        out.contains("auth_request or forward_auth on each"),
        "{out}"
    );
    assert!(
        !app.requests().is_empty(),
        "no probe reached the app: {out}"
    );
}
