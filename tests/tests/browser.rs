//! A real browser (headless Chromium) through the whole flow: sent to the login page, logs in,
//! lands where it was going with the app seeing the user, logs out, and is sent back to login;
//! and on the account page makes an app password a Subsonic client then uses, and revokes it.

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

/// Waits (bounded) until the page shown has `needle` in its text; returns the text.
fn wait_for_text(browser: &Browser, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut text = browser.text();
    while !text.contains(needle) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        text = browser.text();
    }
    text
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

        // A visit to the logout address only asks; the button signs out.
        browser.go(&format!("{base}/_gatehouse/logout"));
        assert!(browser.url().contains("/_gatehouse/logout"), "{}", browser.url());
        browser.click("form button");
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

    /// Chromium signs in through the account page, makes an app password there, a Subsonic
    /// client uses it (the app sees the user, never the secret), and once Chromium revokes it
    /// the client is refused. The account page is the daemon's (the boards leave it out).
    fn browser_makes_and_revokes_an_app_password_on_the_account_page(kind) on [daemon] {
        let gw = Gateway::start(kind, Setup::new().user("alice", PASSWORD))?;
        let browser = Browser::start()?;
        let base = format!("http://{}", gw.addr());
        let account = format!("{base}/_gatehouse/account");

        browser.go(&account);
        let url = browser.url();
        assert!(url.starts_with(&format!("{base}/_gatehouse/login")), "not sent to login: {url}");
        browser.type_into("input[name=username]", "alice");
        browser.type_into("input[name=password]", PASSWORD);
        browser.click("form button");
        let url = wait_for_url(&browser, |u| u == account);
        assert_eq!(url, account, "after logging in: {}", browser.text());
        assert!(browser.text().contains("No app passwords yet."), "{}", browser.text());

        browser.type_into("input[name=label]", "phone");
        browser.type_into("#create-current", PASSWORD);
        browser.click("input[name=label] ~ button");
        let text = wait_for_text(&browser, "Copy it now: it will not be shown again.");
        assert!(text.contains("Copy it now: it will not be shown again."), "{text}");
        let secret = browser.element_text("#secret");
        assert_eq!(secret.len(), 24, "the page: {text}");

        let ping = format!("/rest/ping.view?u=alice&p={secret}&v=1.16.1&c=test&f=json");
        let r = gw.send(&get(&ping, &[]));
        assert_eq!(r.status, 200);
        let seen = gw.upstream.seen();
        let pinged: Vec<_> = seen.iter().filter(|s| s.target().starts_with("/rest/")).collect();
        assert_eq!(pinged.len(), 1, "{seen:#?}");
        assert_identity(pinged[0], "Remote-User", "alice");
        assert_never_seen(&seen, &secret);

        // Shown once: the page again lists it without the secret.
        browser.go(&account);
        let text = browser.text();
        assert!(text.contains("phone") && !text.contains(&secret), "{text}");

        browser.click("form.inline button");
        let text = wait_for_text(&browser, "revoked");
        assert!(text.contains("\u{201c}phone\u{201d} revoked"), "{text}");
        gw.upstream.clear();
        let r = gw.send(&get(&ping, &[]));
        let body = r.text();
        assert!(body.contains("\"status\":\"failed\""), "{body}");
        assert!(body.contains("\"code\":40"), "{body}");
        assert!(
            gw.upstream.seen().iter().all(|s| !s.target().starts_with("/rest/")),
            "a revoked app password reached the app"
        );
        Ok(())
    }
}
