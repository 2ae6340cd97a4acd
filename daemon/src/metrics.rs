//! Counters for `/_gatehouse/metrics`, in the Prometheus text format.
//!
//! Plain atomics: cheap enough to bump on every request, and read without stopping anyone.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// What happened to a request, as counted and logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Forwarded to the app.
    Forwarded,
    /// Answered by gatehouse (login page, redirect to login, 401, forward-auth, health...).
    Answered,
    /// Refused as malformed or ambiguous (400, 431, 505).
    Refused,
    /// The app could not be reached or broke off (502).
    UpstreamError,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::Forwarded,
        Outcome::Answered,
        Outcome::Refused,
        Outcome::UpstreamError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Forwarded => "forwarded",
            Outcome::Answered => "answered",
            Outcome::Refused => "refused",
            Outcome::UpstreamError => "upstream_error",
        }
    }
}

/// The result of a login attempt, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginResult {
    Ok,
    Failed,
    Throttled,
}

#[derive(Debug, Default)]
pub struct Metrics {
    requests: [AtomicU64; 4],
    logins_ok: AtomicU64,
    logins_failed: AtomicU64,
    logins_throttled: AtomicU64,
    upstream_errors: AtomicU64,
    open_connections: AtomicU64,
    connections_total: AtomicU64,
}

impl Metrics {
    pub fn request(&self, outcome: Outcome) {
        let i = Outcome::ALL.iter().position(|o| *o == outcome).unwrap_or(0);
        self.requests[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn login(&self, result: LoginResult) {
        let counter = match result {
            LoginResult::Ok => &self.logins_ok,
            LoginResult::Failed => &self.logins_failed,
            LoginResult::Throttled => &self.logins_throttled,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn upstream_error(&self) {
        self.upstream_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_opened(&self) {
        self.open_connections.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_closed(&self) {
        self.open_connections.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn open_connections(&self) -> u64 {
        self.open_connections.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(1024);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.push_str("# HELP gatehouse_requests_total Requests by outcome.\n");
        out.push_str("# TYPE gatehouse_requests_total counter\n");
        for (i, o) in Outcome::ALL.iter().enumerate() {
            let _ = writeln!(
                out,
                "gatehouse_requests_total{{outcome=\"{}\"}} {}",
                o.as_str(),
                load(&self.requests[i])
            );
        }
        out.push_str("# HELP gatehouse_logins_total Login attempts by result.\n");
        out.push_str("# TYPE gatehouse_logins_total counter\n");
        for (name, counter) in [
            ("ok", &self.logins_ok),
            ("failed", &self.logins_failed),
            ("throttled", &self.logins_throttled),
        ] {
            let _ = writeln!(
                out,
                "gatehouse_logins_total{{result=\"{name}\"}} {}",
                load(counter)
            );
        }
        let _ = writeln!(
            out,
            "# HELP gatehouse_upstream_errors_total Failures to reach or read the app.\n\
             # TYPE gatehouse_upstream_errors_total counter\n\
             gatehouse_upstream_errors_total {}",
            load(&self.upstream_errors)
        );
        let _ = writeln!(
            out,
            "# HELP gatehouse_open_connections Client connections open now.\n\
             # TYPE gatehouse_open_connections gauge\n\
             gatehouse_open_connections {}",
            load(&self.open_connections)
        );
        let _ = writeln!(
            out,
            "# HELP gatehouse_connections_total Client connections accepted.\n\
             # TYPE gatehouse_connections_total counter\n\
             gatehouse_connections_total {}",
            load(&self.connections_total)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_show_up_in_the_exposition() {
        let m = Metrics::default();
        m.request(Outcome::Forwarded);
        m.request(Outcome::Forwarded);
        m.request(Outcome::Refused);
        m.login(LoginResult::Throttled);
        m.connection_opened();
        let text = m.render();
        assert!(text.contains("gatehouse_requests_total{outcome=\"forwarded\"} 2\n"));
        assert!(text.contains("gatehouse_requests_total{outcome=\"refused\"} 1\n"));
        assert!(text.contains("gatehouse_logins_total{result=\"throttled\"} 1\n"));
        assert!(text.contains("gatehouse_open_connections 1\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').expect("name value");
            value.parse::<u64>().expect("numeric sample");
        }
    }
}
