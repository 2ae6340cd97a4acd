//! The one place the daemon asks core about a request: it builds core's view of the request
//! (peer, bytes, time, random bytes), hands over the shared state, and turns core's
//! [`Decision`] into what the connection loop carries out.
//!
//! A password check is the only slow step of a decision; core hands it back as a
//! self-contained [`PasswordCheck`], which runs on a blocking thread with the state unlocked,
//! and then core finishes the decision.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gatehouse_core::gateway::{
    Decision, Exchange, GatewayConfig, MetricsRequest, MetricsSources, OUT_LEN,
    Outcome as CoreOutcome, PasswordCheck, RANDOM_LEN,
};
use gatehouse_core::http::{
    BodyFraming, MAX_HEAD_LEN, Parse, PathClass, PathRules, RequestHead, ResponseWriter, Status,
    Version, canonicalize, write_error,
};

use crate::client::PeerAddr;
use crate::keys::RandomPool;
use crate::metrics::{LoginResult, Outcome};
use crate::pool::{BUF_LEN, PooledBuf};
use crate::pump;
use crate::shared::Shared;

const _: () = assert!(OUT_LEN <= BUF_LEN && MAX_HEAD_LEN <= BUF_LEN);

/// What the connection loop does next.
pub enum Judged {
    /// The head is not complete yet: read more and ask again.
    NeedMore,
    /// core reads this request's body itself (the login form): read until `total` bytes are
    /// buffered and ask again; first write `100 Continue` if `send_continue`.
    ReadBody { total: usize, send_continue: bool },
    /// Write gatehouse's own response, then keep the connection or close it.
    Respond(Respond),
    /// Forward to the app.
    Forward(Fwd),
}

pub struct Respond {
    /// Bytes of the client's buffer this request used.
    pub consumed: usize,
    pub bytes: Answer,
    pub close: bool,
    pub status: u16,
    pub log: RequestLog,
    /// core changed the users table (the account page, or an app password's last use on a
    /// Subsonic endpoint gatehouse answers): the users file must be written.
    pub users_changed: bool,
    /// The answer is the account page's, which says a change was made.
    pub account_page: bool,
}

/// The bytes of gatehouse's own response: core's, still in the buffer it wrote them to (no
/// copy per answer, e.g. per forward-auth request), or made by the daemon.
pub enum Answer {
    Core(PooledBuf, usize),
    Daemon(Vec<u8>),
}

impl std::ops::Deref for Answer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Answer::Core(buf, len) => buf.get(..*len).unwrap_or_default(),
            Answer::Daemon(v) => v,
        }
    }
}

pub struct Fwd {
    pub consumed: usize,
    /// The head core wrote for the app: `head_buf[..head_len]`.
    pub head_buf: PooledBuf,
    pub head_len: usize,
    pub body: BodyFraming,
    pub expect_continue: bool,
    pub is_head: bool,
    pub upgrade: bool,
    pub keep_alive: bool,
    pub version: Version,
    pub extra: Vec<(&'static str, Vec<u8>)>,
    pub log: RequestLog,
    /// core created this user from a trusted header: the users file must be written.
    pub provisioned: Option<String>,
}

impl Fwd {
    /// The buffer holding the head for the app, and what the pump needs besides.
    pub fn plan(&mut self) -> (&mut [u8], pump::Forward<'_>) {
        let plan = pump::Forward {
            head_len: self.head_len,
            body: self.body,
            expect_continue: self.expect_continue,
            is_head: self.is_head,
            upgrade: self.upgrade,
            client_keep_alive: self.keep_alive,
            client_version: self.version,
            extra_response_headers: &self.extra,
        };
        (&mut self.head_buf[..], plan)
    }
}

/// What the request log line says: never a password, cookie or token.
pub struct RequestLog {
    pub peer: PeerAddr,
    pub method: String,
    pub class: &'static str,
    pub outcome: Outcome,
    pub user: Option<String>,
    pub detail: Option<String>,
}

impl RequestLog {
    pub fn emit(&self, status: u16, elapsed: Duration) {
        let user = self.user.as_deref().unwrap_or("-");
        let ms = elapsed.as_secs_f64() * 1000.0;
        let detail = self.detail.as_deref().unwrap_or("");
        tracing::info!(
            "{} {} {} {} user={user} status={status} {ms:.1}ms {detail}",
            self.peer,
            self.method,
            self.class,
            self.outcome.as_str()
        );
    }
}

/// The configuration core decides with, built once from the daemon's [`crate::config::Config`].
/// Its strings live as long as the process (the configuration never changes while running).
pub fn gateway_config(config: &crate::config::Config) -> GatewayConfig<'static> {
    fn leak(s: &str) -> &'static str {
        Box::leak(s.to_owned().into_boxed_str())
    }
    fn leak_list(v: &[String]) -> &'static [&'static str] {
        Box::leak(
            v.iter()
                .map(|s| leak(s))
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        )
    }
    GatewayConfig {
        user_header: leak(&config.user_header),
        paths: PathRules {
            public: leak_list(&config.public_paths),
            subsonic: leak_list(&config.subsonic_paths),
            ..PathRules::default()
        },
        session_ttl_secs: config.session_ttl.as_secs(),
        logout_url: config.logout_url.as_deref().map(leak),
        password_iterations: config.password_iterations,
        secure_cookies: config.secure_cookies,
        subsonic: config.subsonic,
        enable_user_editing: config.enable_user_editing,
        // Checked when the configuration was read; an empty list (nobody) otherwise.
        metrics_sources: Box::leak(Box::new(
            MetricsSources::parse(&config.metrics_sources).unwrap_or_default(),
        )),
        ..GatewayConfig::DEFAULT
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn class_name(c: PathClass) -> &'static str {
    match c {
        PathClass::Reserved => "gatehouse",
        PathClass::Public => "public",
        PathClass::Subsonic => "subsonic",
        PathClass::Protected => "protected",
    }
}

/// Longest wait for another request's check of the same credential, in rounds of
/// [`CHECK_WAIT`] (core stops counting a check as in flight after
/// `PENDING_CHECK_EXPIRY_SECS`, so this bound is never reached in practice).
const MAX_CHECK_WAITS: u32 = 120;

/// How long one wait for a finished check lasts before core is asked again.
const CHECK_WAIT: Duration = Duration::from_secs(1);

/// Asks core about the request at the start of `bytes`; runs a password check off the async
/// threads when core asks for one, and waits when core says the same credential is being
/// checked for another request.
pub async fn judge(
    shared: &std::sync::Arc<Shared>,
    peer: PeerAddr,
    tls: bool,
    bytes: &[u8],
    random: &mut RandomPool,
) -> Judged {
    let Ok(random) = random.take::<RANDOM_LEN>() else {
        // Without randomness no token or password can be made safely: refuse this request.
        return internal_error(peer, bytes.len());
    };
    let now = now_unix();
    let ex = Exchange {
        peer: peer.peer(),
        tls,
        bytes,
        now,
        // The host's clock is the real time (a host that lost it is out of scope).
        time_known: true,
        random: &random,
    };
    let mut out = PooledBuf::take();
    let mut decision = shared.with_gateway(|gw, state| gw.decide(&ex, state, &mut out[..OUT_LEN]));
    let mut waits = 0;
    while let Decision::WaitForCheck = decision {
        waits += 1;
        if waits > MAX_CHECK_WAITS {
            return internal_error(peer, bytes.len());
        }
        // Registered before core is asked again, so that a check finishing in between is
        // not missed; only this slow path touches the notifier shared by every worker.
        let finished = shared.checks_finished.notified();
        tokio::pin!(finished);
        finished.as_mut().enable();
        decision = shared.with_gateway(|gw, state| gw.decide(&ex, state, &mut out[..OUT_LEN]));
        if let Decision::WaitForCheck = decision {
            let _ = tokio::time::timeout(CHECK_WAIT, finished).await;
            decision = shared.with_gateway(|gw, state| gw.decide(&ex, state, &mut out[..OUT_LEN]));
        }
    }
    if let Decision::VerifyPassword(check) = decision {
        let (check, verified) = match tokio::task::spawn_blocking(move || {
            let ok = check.verify();
            (check, ok)
        })
        .await
        {
            Ok(r) => r,
            Err(_) => return internal_error(peer, bytes.len()),
        };
        decision = shared
            .with_gateway(|gw, state| gw.finish(&ex, state, &check, verified, &mut out[..OUT_LEN]));
        shared.checks_finished.notify_waiters();
        drop::<PasswordCheck>(check);
    }
    let mut judged = translate(shared, peer, bytes, decision, out);
    if let Judged::Forward(Fwd {
        provisioned: Some(name),
        ..
    }) = &judged
    {
        // Written before the request goes on (file I/O and fsync, off the async threads).
        let (shared, name) = (shared.clone(), name.clone());
        let _ = tokio::task::spawn_blocking(move || persist_provisioned(&shared, &name)).await;
    }
    if let Judged::Respond(respond) = &mut judged
        && respond.users_changed
    {
        // Written before the answer goes out, so that what the page says is on disk.
        let shared = shared.clone();
        let persisted = tokio::task::spawn_blocking(move || persist_answer_change(&shared))
            .await
            .unwrap_or(Persisted::NotSaved);
        if persisted != Persisted::Saved && respond.account_page {
            change_lost(respond, persisted);
        }
    }
    judged
}

fn translate(
    shared: &Shared,
    peer: PeerAddr,
    bytes: &[u8],
    decision: Decision,
    out: PooledBuf,
) -> Judged {
    // The log line's fields cost a parse of the head (for an answer) and a few allocations:
    // made only when the line is written (`RUST_LOG` at info or finer), as a web server with
    // its access log off does not format one either.
    let logged = tracing::enabled!(tracing::Level::INFO);
    let mut log = RequestLog {
        peer,
        method: if logged {
            request_method(bytes)
        } else {
            String::new()
        },
        class: "-",
        outcome: Outcome::Answered,
        user: None,
        detail: None,
    };
    match decision {
        Decision::NeedMoreBytes => Judged::NeedMore,
        Decision::ReadBody {
            total,
            send_continue,
        } => Judged::ReadBody {
            total,
            send_continue,
        },
        Decision::VerifyPassword(_) | Decision::WaitForCheck => internal_error(peer, bytes.len()),
        // Core let this peer read the counters (it is in `metrics_sources`).
        Decision::ServeMetrics(m) => {
            if logged {
                log.class = path_class(shared, bytes);
            }
            metrics_response(shared, m, log)
        }
        Decision::Respond(r) => {
            if logged {
                log.class = path_class(shared, bytes);
                log.detail = Some(format!("{:?}", r.outcome));
            }
            match r.outcome {
                CoreOutcome::Refused(_) => log.outcome = Outcome::Refused,
                CoreOutcome::LoggedIn => shared.metrics.login(LoginResult::Ok),
                CoreOutcome::LoginFailed | CoreOutcome::BasicFailed => {
                    shared.metrics.login(LoginResult::Failed)
                }
                CoreOutcome::Throttled => shared.metrics.login(LoginResult::Throttled),
                _ => {}
            }
            let bytes = Answer::Core(out, r.len);
            let status = status_of(&bytes);
            Judged::Respond(Respond {
                consumed: r.consumed,
                bytes,
                close: r.close,
                status,
                log,
                users_changed: r.users_changed,
                account_page: matches!(r.outcome, CoreOutcome::Account(_)),
            })
        }
        Decision::Forward(f) => {
            log.outcome = Outcome::Forwarded;
            log.class = class_name(f.class);
            if logged {
                log.user = f.user.as_ref().map(|u| u.as_str().to_owned());
            }
            let provisioned = if f.users_changed {
                f.user.as_ref().map(|u| u.as_str().to_owned())
            } else {
                None
            };
            let mut extra = Vec::new();
            if let Some(cookie) = &f.set_cookie {
                extra.push(("Set-Cookie", cookie.to_vec()));
            }
            Judged::Forward(Fwd {
                consumed: f.consumed,
                head_buf: out,
                head_len: f.head_len,
                body: f.body,
                expect_continue: f.send_continue,
                is_head: f.request_was_head,
                upgrade: f.upgrade,
                keep_alive: f.keep_alive,
                version: f.client_version,
                extra,
                log,
                provisioned,
            })
        }
    }
}

/// A change core made while forwarding (a user provisioned from a trusted header, or an app
/// password's last use) is written to the users file.
///
/// If the file changed on disk since the gateway last read it, the file's version wins and
/// core's change is dropped, never applied again: the change on disk may be `users del`, and
/// applying "provision this user" or "this user's app password was used" to it would bring
/// the deleted user back. A user a trusted proxy names is provisioned again on its next
/// request anyway; a last-used time is only a note.
fn persist_provisioned(shared: &Shared, name: &str) {
    let lost = std::sync::atomic::AtomicBool::new(false);
    let saved = shared.persist_users(|_| lost.store(true, std::sync::atomic::Ordering::Relaxed));
    if saved && lost.load(std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            "the users file changed on disk while gatehouse changed it too (user {name} \
             provisioned, or an app password used); the file's version was loaded and \
             gatehouse's change dropped"
        );
    } else if saved {
        tracing::info!("saved the users file: user {name} provisioned, or an app password used");
    }
}

/// A change core made while answering (the account page: app passwords, a password, a
/// generation; or an app password's last use) is written to the users file. If
/// `gatehouse users` changed the file in the moment since the gateway last read it, the
/// file's version wins (it is loaded, core's change is dropped). Anything but
/// [`Persisted::Saved`] replaces an account page answer with one saying what happened.
fn persist_answer_change(shared: &Shared) -> Persisted {
    let lost = std::sync::atomic::AtomicBool::new(false);
    let saved = shared.persist_users(|_| lost.store(true, std::sync::atomic::Ordering::Relaxed));
    if !saved {
        // Kept in memory only (the reason is logged): a restart would undo it.
        Persisted::NotSaved
    } else if lost.load(std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            "the users file changed on disk while gatehouse changed it too (account page, or \
             an app password's last use); the file's version was loaded and gatehouse's change \
             dropped"
        );
        Persisted::Dropped
    } else {
        tracing::info!(
            "saved the users file: changed on the account page, or an app password used"
        );
        Persisted::Saved
    }
}

/// What became of a change core made while answering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Persisted {
    /// Written to the users file.
    Saved,
    /// The file changed on disk meanwhile; its version was loaded and the change is gone.
    Dropped,
    /// The file could not be written (locked, corrupt on disk, I/O error): the change holds
    /// in memory only, until gatehouse restarts.
    NotSaved,
}

/// The answer to an account page change that is not on disk: the page would have said it
/// was done, so it is replaced by one saying what happened.
fn change_lost(respond: &mut Respond, persisted: Persisted) {
    let (status, text, detail): (Status, &[u8], &str) = match persisted {
        Persisted::NotSaved => (
            Status::InternalServerError,
            b"500 Internal Server Error: this change could not be written to the users file \
              (the server's log says why). It holds only until gatehouse restarts; tell an \
              administrator.\n",
            "Account(ChangeNotSaved)",
        ),
        Persisted::Dropped | Persisted::Saved => (
            Status::ServiceUnavailable,
            b"503 Service Unavailable: the users file changed while this change was being \
              saved, so nothing was changed. Go back, reload the page and try again.\n",
            "Account(ChangeLost)",
        ),
    };
    let mut out = vec![0u8; 512];
    let mut w = ResponseWriter::new(&mut out, status);
    if status == Status::ServiceUnavailable {
        w.header_u64("Retry-After", 1);
    }
    let n = w
        .finish("text/plain; charset=utf-8", text, respond.close)
        .unwrap_or(0);
    out.truncate(n);
    respond.bytes = Answer::Daemon(out);
    respond.status = status.code();
    respond.users_changed = false;
    respond.log.detail = Some(detail.into());
}

/// The method for the log line: the request line's first word, if it is a plain token.
fn request_method(bytes: &[u8]) -> String {
    let word = bytes.split(|b| *b == b' ').next().unwrap_or_default();
    if !word.is_empty() && word.len() <= 16 && word.iter().all(u8::is_ascii_uppercase) {
        String::from_utf8_lossy(word).into_owned()
    } else {
        "-".to_owned()
    }
}

/// The path class for the log line of a request core answered itself.
fn path_class(shared: &Shared, bytes: &[u8]) -> &'static str {
    let Ok(Parse::Complete(head)) = RequestHead::parse(bytes) else {
        return "-";
    };
    let mut target = PooledBuf::take();
    match canonicalize(head.path_and_query(), &mut target) {
        Ok(c) => class_name(shared.gateway_config.paths.classify(c.path())),
        Err(_) => "-",
    }
}

fn metrics_response(shared: &Shared, request: MetricsRequest, mut log: RequestLog) -> Judged {
    let body = shared.metrics.render();
    let mut out = vec![0u8; body.len() + 512];
    let mut w = ResponseWriter::new(&mut out, Status::Ok);
    w.header("Cache-Control", b"no-store");
    let n = w
        .finish(
            "text/plain; version=0.0.4; charset=utf-8",
            body.as_bytes(),
            request.close,
        )
        .unwrap_or(0);
    // For HEAD, the head alone (its Content-Length still that of the body).
    let n = if request.head_only {
        n - body.len().min(n)
    } else {
        n
    };
    out.truncate(n);
    log.detail = Some("Metrics".into());
    Judged::Respond(Respond {
        consumed: request.consumed,
        bytes: Answer::Daemon(out),
        close: request.close,
        status: 200,
        log,
        users_changed: false,
        account_page: false,
    })
}

fn internal_error(peer: PeerAddr, consumed: usize) -> Judged {
    let mut out = vec![0u8; 512];
    let n = write_error(Status::InternalServerError, true, &mut out).unwrap_or(0);
    out.truncate(n);
    Judged::Respond(Respond {
        consumed,
        bytes: Answer::Daemon(out),
        close: true,
        status: 500,
        users_changed: false,
        account_page: false,
        log: RequestLog {
            peer,
            method: "-".into(),
            class: "-",
            outcome: Outcome::Refused,
            user: None,
            detail: Some("internal error".into()),
        },
    })
}

/// The status code of a response gatehouse wrote (for the log line).
fn status_of(response: &[u8]) -> u16 {
    response
        .get(9..12)
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The 502 page for an app that cannot be reached.
pub fn bad_gateway() -> Vec<u8> {
    let mut out = vec![0u8; 512];
    let n = write_error(Status::BadGateway, true, &mut out).unwrap_or(0);
    out.truncate(n);
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use gatehouse_core::password::{MIN_ITERATIONS, hash_password};
    use gatehouse_core::session::{SessionKey, SessionKeys as CoreKeys};

    use super::*;
    use crate::keys::SessionKeys;
    use crate::store::UsersFile;

    fn text(judged: &Judged) -> String {
        match judged {
            Judged::Respond(r) => String::from_utf8_lossy(&r.bytes).into_owned(),
            _ => panic!("not an answer"),
        }
    }

    /// What a value between `name="csrf" value="` and `"` is.
    fn csrf(page: &str) -> String {
        let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
        page[at..at + page[at..].find('"').expect("end")].to_owned()
    }

    /// A gateway whose users file holds alice, and alice's POST that makes an app password
    /// on the account page (with the page's CSRF token).
    struct Fixture {
        _dir: tempfile::TempDir,
        file: UsersFile,
        shared: Arc<Shared>,
        peer: PeerAddr,
        random: RandomPool,
        post: String,
    }

    fn hash(pw: &[u8]) -> gatehouse_core::password::PasswordHash {
        hash_password(pw, &[1; 16], MIN_ITERATIONS).expect("hash")
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = UsersFile::open(dir.path()).expect("open");
        file.modify(|u| {
            u.add("alice", false, hash(b"pw"))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(())
        })
        .expect("alice");
        let keys = SessionKeys::load_or_create(dir.path()).expect("keys");
        let mut config = crate::config::Config::defaults();
        config.state_dir = dir.path().to_owned();
        let shared =
            Arc::new(Shared::new(config, file.clone(), keys.clone()).expect("shared state"));
        let generation = shared.state().users.generation_of("alice").expect("alice");
        let token = CoreKeys::new(SessionKey::from_bytes(keys.current))
            .issue(
                shared.state().users.table_id(),
                "alice",
                generation,
                now_unix(),
                3600,
            )
            .expect("token");
        let peer = PeerAddr::Tcp("127.0.0.1:4000".parse().expect("addr"));
        let mut random = RandomPool::default();

        let get = format!(
            "GET /_gatehouse/account HTTP/1.1\r\nHost: gw\r\nCookie: gatehouse_session={token}\r\n\r\n"
        );
        let page = text(&judge(&shared, peer, false, get.as_bytes(), &mut random).await);
        let csrf = csrf(&page);
        let body = format!("csrf={csrf}&do=create&label=phone&current=pw");
        let post = format!(
            "POST /_gatehouse/account HTTP/1.1\r\nHost: gw\r\nOrigin: http://gw\r\n\
             Cookie: gatehouse_session={token}; gatehouse_csrf={csrf}\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        Fixture {
            _dir: dir,
            file,
            shared,
            peer,
            random,
            post,
        }
    }

    #[tokio::test]
    async fn an_account_change_racing_a_change_on_disk_is_dropped_and_said_so() {
        let Fixture {
            _dir,
            file,
            shared,
            peer,
            mut random,
            post,
        } = fixture().await;

        // `gatehouse users` changes the file before the gateway has noticed.
        file.modify(|u| {
            u.add("bob", false, hash(b"pw2"))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(())
        })
        .expect("bob");
        let raced = judge(&shared, peer, false, post.as_bytes(), &mut random).await;
        let answer = text(&raced);
        assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
        assert!(answer.contains("nothing was changed"), "{answer}");
        assert!(!answer.contains("secret"), "{answer}");
        let on_disk = file.load().expect("load").users;
        assert!(on_disk.find("bob").is_some(), "the other change is kept");
        assert_eq!(on_disk.app_passwords("alice").count(), 0);
        assert!(shared.state().users.find("bob").is_some());
        assert_eq!(shared.state().users.app_passwords("alice").count(), 0);

        // Tried again, it is made and saved.
        let again = text(&judge(&shared, peer, false, post.as_bytes(), &mut random).await);
        assert!(again.starts_with("HTTP/1.1 200 "), "{again}");
        assert!(again.contains("it will not be shown again"), "{again}");
        let on_disk = file.load().expect("load").users;
        assert!(on_disk.find("bob").is_some());
        assert_eq!(on_disk.app_passwords("alice").count(), 1);
    }

    /// `users del alice`, then (before the gateway noticed) one request with alice's app
    /// password: recording its use must not bring alice back, in memory or on disk.
    #[tokio::test]
    async fn an_app_password_used_after_users_del_does_not_bring_the_user_back() {
        let Fixture {
            _dir,
            file,
            shared,
            peer,
            mut random,
            ..
        } = fixture().await;
        let mut secret = String::new();
        file.modify(|u| {
            secret = u
                .add_app_password("alice", "phone", &[7; 18], now_unix())
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .to_string();
            Ok(())
        })
        .expect("app password");
        shared.reload_users_if_changed(true).expect("reload");
        file.modify(|u| {
            u.remove("alice").map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(())
        })
        .expect("users del alice");

        let request = format!(
            "GET /rest/ping.view?u=alice&p={secret}&v=1.16.1&c=t HTTP/1.1\r\nHost: gw\r\n\r\n"
        );
        let judged = judge(&shared, peer, false, request.as_bytes(), &mut random).await;
        assert!(
            matches!(judged, Judged::Forward(_)),
            "the gateway had not noticed yet"
        );
        assert!(
            file.load().expect("load").users.find("alice").is_none(),
            "back on disk"
        );
        assert!(
            shared.state().users.find("alice").is_none(),
            "back in memory"
        );
        shared.reload_users_if_changed(true).expect("reload");
        assert!(
            shared.state().users.find("alice").is_none(),
            "back after a reload"
        );
        let again = judge(&shared, peer, false, request.as_bytes(), &mut random).await;
        assert!(
            !matches!(again, Judged::Forward(_)),
            "the app password still works"
        );
    }

    #[tokio::test]
    async fn an_account_change_that_cannot_be_saved_is_not_reported_as_done() {
        let Fixture {
            _dir,
            file,
            shared,
            peer,
            mut random,
            post,
        } = fixture().await;
        // The users file on disk is broken (by hand, say) before the change is saved.
        std::fs::write(file.path(), b"{ not json").expect("break the file");

        let answer = text(&judge(&shared, peer, false, post.as_bytes(), &mut random).await);
        assert!(answer.starts_with("HTTP/1.1 500 "), "{answer}");
        assert!(answer.contains("could not be written"), "{answer}");
        assert!(!answer.contains("it will not be shown again"), "{answer}");
        assert_eq!(
            std::fs::read(file.path()).expect("read"),
            b"{ not json",
            "a broken file is never written over"
        );
    }
}
