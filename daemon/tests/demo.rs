//! `gatehouse demo`, as a new user runs it: the printed address and password lead to the
//! whoami page, which shows the identity gatehouse sent.

mod support;

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{BIN, PATIENCE, clear_gatehouse_env, collect_lines, get, login};

struct Demo {
    child: std::process::Child,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_demo_prints_a_one_time_password_that_logs_into_the_whoami_page() {
    let mut cmd = Command::new(BIN);
    // As the README runs it (no --allow-root: the demo works in a root shell too).
    cmd.args(["demo", "--listen", "127.0.0.1:0"])
        .env_remove("STATE_DIRECTORY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    clear_gatehouse_env(&mut cmd);
    let mut demo = Demo {
        child: cmd.spawn().expect("spawn demo"),
    };
    let logs = Arc::new(Mutex::new(Vec::new()));
    let rx = collect_lines(&mut demo.child, logs.clone());
    let (mut url, mut password) = (None, None);
    let deadline = Instant::now() + PATIENCE;
    while (url.is_none() || password.is_none()) && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            if let Some(rest) = line.trim().strip_prefix("Open") {
                url = Some(rest.trim().trim_end_matches('/').to_owned());
            }
            if let Some(rest) = line.trim().strip_prefix("Password") {
                password = rest.split_whitespace().next().map(str::to_owned);
            }
        }
    }
    let all = || logs.lock().expect("lock").join("\n");
    let url = url.unwrap_or_else(|| panic!("no address printed:\n{}", all()));
    let password = password.unwrap_or_else(|| panic!("no password printed:\n{}", all()));
    let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse().expect("address");

    // Anonymous browser: sent to the login page.
    let r = get(addr, "/", "Accept: text/html\r\n");
    assert_eq!(r.status, 302, "{}", r.body_text());
    assert!(
        r.header("location")
            .is_some_and(|l| l.contains("/_gatehouse/login"))
    );

    // A spoofed header alone does not get in.
    let r = get(addr, "/", "Remote-User: admin\r\nAccept: */*\r\n");
    assert_eq!(r.status, 401);

    let cookie = login(addr, "admin", &password);
    let r = get(
        addr,
        "/",
        &format!("Cookie: {cookie}\r\nRemote-User: mallory\r\n"),
    );
    assert_eq!(r.status, 200);
    let page = r.body_text();
    assert!(page.contains("you are <strong>admin</strong>"), "{page}");
    assert!(
        page.contains("<td>Remote-Groups</td><td>admins</td>"),
        "{page}"
    );
    assert!(!page.contains("mallory"), "{page}");
}
