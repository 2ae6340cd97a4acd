//! A real browser (headless Chromium) through the whole flow: sent to the login page, logs in,
//! lands where it was going with the app seeing the user, logs out, and is sent back to login.

use std::time::{Duration, Instant};

use gatehouse_tests::browser::Browser;
use gatehouse_tests::*;

const PASSWORD: &str = "correct horse battery";

/// Waits (bounded) until the browser shows a page whose address satisfies `done`.
fn wait_for_url(browser: &Browser, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut url = browser.url();
    while !done(&url) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        url = browser.url();
    }
    url
}

conformance! {
    /// Chromium logs in through the login page, reaches the app as alice, and logs out.
    fn browser_logs_in_reaches_the_app_and_logs_out(kind) on [daemon, qemu] {
        let gw = Gateway::start(kind, Setup::new().user("alice", PASSWORD))?;
        let browser = Browser::start()?;
        let base = format!("http://{}", gw.addr());

        browser.go(&format!("{base}/app/inbox?page=2"));
        let url = browser.url();
        assert!(url.starts_with(&format!("{base}/_gatehouse/login")), "not sent to login: {url}");
        assert!(gw.upstream.seen().is_empty(), "an anonymous browser reached the app");

        browser.type_into("input[name=username]", "alice");
        browser.type_into("input[name=password]", PASSWORD);
        browser.click("form button, form input[type=submit]");
        let target = format!("{base}/app/inbox?page=2");
        let url = wait_for_url(&browser, |u| u == target);
        assert_eq!(url, target, "after logging in: {}", browser.text());
        assert!(
            browser.text().contains("app saw: GET /app/inbox?page=2 HTTP/1.1"),
            "the page shown: {}",
            browser.text()
        );
        // The page, and whatever the browser fetched after it (a favicon), all as alice.
        let seen = gw.upstream.seen();
        assert_eq!(seen.first().map(Seen::target).as_deref(), Some("/app/inbox?page=2"));
        for request in &seen {
            assert_identity(request, "Remote-User", "alice");
        }

        browser.go(&format!("{base}/_gatehouse/logout"));
        let url = wait_for_url(&browser, |u| u.contains("/_gatehouse/login"));
        assert!(url.contains("/_gatehouse/login"), "after logout: {url}");
        gw.upstream.clear();
        browser.go(&format!("{base}/app/inbox"));
        let url = browser.url();
        assert!(url.contains("/_gatehouse/login"), "still logged in after logout: {url}");
        // (A favicon fetched for the page before logging out may still arrive late.)
        let seen = gw.upstream.seen();
        assert!(
            seen.iter().all(|s| s.target() != "/app/inbox"),
            "a logged-out browser reached the app: {seen:#?}"
        );
        Ok(())
    }
}
