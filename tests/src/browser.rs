//! A real browser: Debian's headless Chromium, driven through chromedriver's W3C WebDriver
//! protocol (plain HTTP and JSON, spoken with the suite's own raw client). Both processes are
//! stopped by PID when the [`Browser`] is dropped.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::client::{Client, Conn};
use crate::net::{Net, free_port};
use crate::target::{Unavailable, exchange};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// The W3C WebDriver key of an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process with one headless Chromium session.
pub struct Browser {
    driver: SocketAddr,
    session: String,
    child: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub fn start() -> Result<Browser, Unavailable> {
        let chromium = find(&["/usr/bin/chromium", "/usr/bin/chromium-browser"])
            .ok_or_else(|| Unavailable("Chromium is not installed (Debian: chromium)".into()))?;
        let driver = find(&["/usr/bin/chromedriver"]).ok_or_else(|| {
            Unavailable("chromedriver is not installed (Debian: chromium-driver)".into())
        })?;
        let profile = tempfile::Builder::new()
            .prefix("gatehouse-browser-")
            .tempdir()
            .map_err(|e| Unavailable(e.to_string()))?;
        let port = free_port(&Net::Host, LOOPBACK).map_err(|e| Unavailable(e.to_string()))?;
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Unavailable(format!("cannot start chromedriver: {e}")))?;
        let mut browser = Browser {
            driver: SocketAddr::new(LOOPBACK, port),
            session: String::new(),
            child,
            _profile: profile,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        while Net::Host.connect(browser.driver, None).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen within {READY_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile_dir = browser._profile.path().display().to_string();
        let created = browser.call(
            "POST",
            "/session",
            json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage", "--no-first-run",
                             format!("--user-data-dir={profile_dir}")]
                }
            }}}),
        );
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {created}"))
            .to_owned();
        Ok(browser)
    }

    /// Opens `url` and waits for the page to load.
    pub fn go(&self, url: &str) {
        self.session_call("POST", "/url", json!({ "url": url }));
    }

    /// The address of the page shown now.
    pub fn url(&self) -> String {
        self.session_call("GET", "/url", Value::Null)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The visible text of the page.
    pub fn text(&self) -> String {
        self.session_call(
            "POST",
            "/execute/sync",
            json!({"script": "return document.body ? document.body.innerText : ''", "args": []}),
        )
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Types `text` into the element matching the CSS `selector`.
    pub fn type_into(&self, selector: &str, text: &str) {
        let element = self.element(selector);
        self.session_call(
            "POST",
            &format!("/element/{element}/value"),
            json!({ "text": text }),
        );
    }

    /// Clicks the element matching the CSS `selector` (and waits for any navigation).
    pub fn click(&self, selector: &str) {
        let element = self.element(selector);
        self.session_call("POST", &format!("/element/{element}/click"), json!({}));
    }

    /// The visible text of the element matching the CSS `selector`.
    pub fn element_text(&self, selector: &str) -> String {
        let element = self.element(selector);
        self.session_call("GET", &format!("/element/{element}/text"), Value::Null)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn element(&self, selector: &str) -> String {
        let found = self.session_call(
            "POST",
            "/element",
            json!({"using": "css selector", "value": selector}),
        );
        found[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("no element {selector:?} on {}: {found}", self.url()))
            .to_owned()
    }

    fn session_call(&self, method: &str, path: &str, body: Value) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    /// One WebDriver command; returns its `value`, and fails the test on a WebDriver error.
    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let stream = Net::Host
            .connect(self.driver, None)
            .unwrap_or_else(|e| panic!("cannot reach chromedriver: {e}"));
        let mut client = Client::new(Conn::Tcp(stream));
        let payload = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.driver,
            payload.len()
        )
        .into_bytes();
        request.extend(payload);
        let response = exchange(&mut client, &request);
        let parsed: Value = serde_json::from_slice(&response.body).unwrap_or_else(|e| {
            panic!("chromedriver answered {method} {path} with non-JSON ({e}): {response}")
        });
        assert!(
            response.status == 200,
            "WebDriver {method} {path} failed: {}",
            parsed
        );
        parsed["value"].clone()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() && matches!(self.child.try_wait(), Ok(None)) {
            // Closing the session ends Chromium; chromedriver itself is stopped below.
            let stream = Net::Host.connect(self.driver, None);
            if let Ok(stream) = stream {
                let mut client = Client::new(Conn::Tcp(stream));
                let request = format!(
                    "DELETE /session/{} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                    self.session, self.driver
                );
                let _ = client.send(request.as_bytes());
                let _ = client.response();
            }
        }
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find(candidates: &[&str]) -> Option<String> {
    candidates
        .iter()
        .find(|p| std::path::Path::new(p).is_file())
        .map(|p| p.to_string())
}
