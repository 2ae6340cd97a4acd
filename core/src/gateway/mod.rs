//! The gateway decision: from (peer, request bytes, now, random bytes) to what to do.
//!
//! Both shells call [`Gateway::decide`] for every request on every connection and do what the
//! returned [`Decision`] says; neither judges a request itself. The decision, in order:
//!
//! 1. **Parse** the head ([`crate::http::RequestHead`]); anything ambiguous is refused and the
//!    connection closed.
//! 2. **Canonicalise** the target and **classify** it ([`crate::http::PathRules`]).
//! 3. gatehouse's own endpoints under the reserved prefix (`/_gatehouse/`, matched
//!    case-insensitively, endpoint names too): `login` (GET: the page; POST: the form),
//!    `logout` (GET: a confirm button; POST: the form, with the login form's CSRF checks),
//!    `auth` (forward-auth for Caddy and Traefik), `auth/nginx` (forward-auth for nginx),
//!    `health`, `metrics` (only to a peer in [`GatewayConfig::metrics_sources`]; the shell
//!    writes its counters), and with the `account` feature `account` (a signed-in user's app passwords,
//!    password and sessions: see the `account` module). Public paths are forwarded with no
//!    identity at all.
//! 4. Everyone else must be someone. In order: the identity header from a peer with
//!    **identity trust** (`trusted_sources`; never on a reserved path)
//!    (the user is provisioned on first sight, the first user ever is admin); a valid
//!    **session cookie**; **HTTP Basic** credentials (through the credential cache, then the
//!    login throttle and a password check). Anonymous browsers are sent to the login page,
//!    other clients get 401 with a Basic challenge.
//! 5. **Forward** with the head rewritten ([`crate::http::write_forward_head`]): no client
//!    identity header survives, gatehouse's own are added.
//!
//! Subsonic paths (default `/rest/`) take Subsonic credentials as well and answer failures as
//! a Subsonic server does; or, in [`SubsonicMode::PassThrough`], are left to the app.
//!
//! # Password checks happen outside the shared state
//!
//! A password hash takes hundreds of milliseconds on purpose. So that a shell need not hold
//! its users/throttle lock for that long, a decision that needs one returns
//! [`Decision::VerifyPassword`] with a self-contained [`PasswordCheck`]. The shell releases
//! the lock, runs [`PasswordCheck::verify`] (on a blocking thread in the daemon), takes the
//! lock again and calls [`Gateway::finish`] with the same bytes and the result; that records
//! the attempt (throttle, credential cache) and returns the final decision.
//!
//! The attempt is charged to the login throttle when the check is handed out (and refunded
//! when the password is right), so checks running side by side are limited exactly like
//! checks one after the other; at most [`MAX_PENDING_CHECKS`] run at once for the whole
//! gateway ([`PendingChecks`]). A result is believed only if the user's record (password
//! hash and generation) is still the one the check was made against.
//!
//! A password change on the account page is such a check too: it carries the new password
//! and a salt, [`PasswordCheck::verify`] hashes the new password (off the lock) once the
//! current one is right, and `finish` stores the hash under the same guard.
//!
//! # Buffers
//!
//! The shell reads requests into a buffer of at least [`READ_BUFFER_LEN`] bytes (a head plus a
//! login form) and gives the engine an output buffer of at least [`OUT_LEN`] bytes.

#[cfg(feature = "account")]
pub mod account;
mod form;
mod page;
mod pending;
mod subsonic;

pub use form::{
    CSRF_COOKIE_NAME, CSRF_TOKEN_LEN, CSRF_TTL_SECS, CsrfToken, FormError, SECURE_CSRF_COOKIE_NAME,
    cookie_value, csrf_cookie_name, csrf_tokens_match, form_field, issue_csrf_token, url_decode,
};
pub use page::{LoginPage, LogoutPage, MAX_LOGIN_PAGE_LEN, PAGE_CSP};
pub use pending::{MAX_PENDING_CHECKS, PENDING_CHECK_EXPIRY_SECS, PendingChecks};
pub use subsonic::SubsonicMode;

#[cfg(feature = "account")]
pub use account::{ACCOUNT_ENDPOINT, AccountOutcome};

use base64ct::{Base64, Encoding};
use sha2::{Digest, Sha256};

use crate::Username;
use crate::credential_cache::{CredentialCache, Lookup};
use crate::http::path::{is_safe_return_target, percent_encode_component};
use crate::http::{
    BASIC_CHALLENGE, BodyFraming, ForwardOptions, Identity, MAX_HEAD_LEN, Parse, PathClass,
    PathError, PathRules, RequestError, RequestHead, ResponseWriter, Status, Version, canonicalize,
    list_tokens, write_error, write_forward_head,
};
use crate::identity::{DEFAULT_USER_HEADER, is_identity_header, read_identity_httparse};
use crate::password::{self, GENERATED_PASSWORD_RANDOM_LEN, PasswordHash, SALT_LEN};
use crate::peer::Peer;
use crate::session::{self, MAX_SET_COOKIE_LEN, SessionKeys};
use crate::throttle::{Throttle, Verdict};
use crate::trusted::TrustedSources;
#[cfg(feature = "account")]
use crate::users::MAX_APP_PASSWORD_LABEL_LEN;
use crate::users::{DEFAULT_APP_PASSWORD_CAPACITY, UserError, UserTable};

/// Random bytes the shell passes with every request (fresh each time). They are only drawn
/// from when a decision needs them: a CSRF nonce, a provisioned user's password and salt.
pub const RANDOM_LEN: usize = 32;

/// Largest login form body gatehouse reads.
pub const MAX_FORM_LEN: usize = 2048;

/// Longest password gatehouse checks (login form or HTTP Basic).
pub const MAX_PASSWORD_LEN: usize = 128;

/// Smallest read buffer a shell should use: a full head and a login form.
pub const READ_BUFFER_LEN: usize = MAX_HEAD_LEN + MAX_FORM_LEN;

/// Output buffer a shell should give the engine: room for a forwarded head (the client's
/// head plus what gatehouse adds) and a scratch copy of the canonical target.
pub const OUT_LEN: usize = 2 * MAX_HEAD_LEN + 2048;

/// Entries a [`GatewayConfig::metrics_sources`] list holds.
pub const METRICS_SOURCES_CAPACITY: usize = 16;

/// Peers allowed to read `/_gatehouse/metrics` (CIDRs and `@`, as trusted sources are written).
pub type MetricsSources = TrustedSources<METRICS_SOURCES_CAPACITY>;

/// The default [`GatewayConfig::metrics_sources`]: nobody.
const NO_METRICS_SOURCES: MetricsSources = TrustedSources::new();

const MAX_LOCATION_LEN: usize = 2048;
const MAX_RETURN_LEN: usize = 1024;

/// A `Set-Cookie` value for the client's response.
pub type SetCookie = heapless::Vec<u8, MAX_SET_COOKIE_LEN>;

/// The deployment's settings that shape decisions (borrowed from the shell's configuration).
#[derive(Clone, Copy, Debug)]
pub struct GatewayConfig<'a> {
    /// The identity header read from trusted peers and set for the app.
    pub user_header: &'a str,
    /// Reserved, public and Subsonic prefixes.
    pub paths: PathRules<'a>,
    /// Lifetime of a session cookie, in seconds.
    pub session_ttl_secs: u64,
    /// Mark cookies `Secure` even on plain connections (gatehouse behind a TLS-terminating
    /// proxy). Cookies are always `Secure` on TLS connections.
    pub secure_cookies: bool,
    /// Remove the client's `Authorization` from a request gatehouse authenticated with it
    /// (HTTP Basic). Off, such a request keeps it; every other request loses it whatever
    /// this says (a session user's cached Basic password, a public path), except on Subsonic
    /// paths in [`SubsonicMode::PassThrough`], where the app checks it.
    pub strip_authorization: bool,
    /// PBKDF2 iterations for provisioned users' random passwords and the dummy hash of
    /// unknown users (use the deployment's usual count).
    pub password_iterations: u32,
    /// Where logout sends the browser (default: the login page).
    pub logout_url: Option<&'a str>,
    /// Whether gatehouse checks Subsonic credentials on Subsonic paths, or lets the app.
    pub subsonic: SubsonicMode,
    /// The Subsonic mechanisms accepted in [`SubsonicMode::Authenticate`].
    pub subsonic_policy: crate::subsonic::SubsonicPolicy,
    /// Non-admins may change their own password (on the account page); Navidrome's
    /// `EnableUserEditing`.
    pub enable_user_editing: bool,
    /// Socket peers that may read `/_gatehouse/metrics` (a scraper); everyone else gets 404,
    /// as if there were no such endpoint. Counters tell who is logging in how often: they are
    /// nobody else's business. Default: nobody.
    pub metrics_sources: &'a MetricsSources,
}

impl GatewayConfig<'static> {
    /// gatehouse's defaults.
    pub const DEFAULT: Self = GatewayConfig {
        user_header: DEFAULT_USER_HEADER,
        paths: PathRules {
            reserved: crate::http::path::DEFAULT_RESERVED_PREFIX,
            public: crate::http::path::DEFAULT_PUBLIC_PREFIXES,
            subsonic: crate::http::path::DEFAULT_SUBSONIC_PREFIXES,
        },
        session_ttl_secs: 30 * 24 * 3600,
        secure_cookies: false,
        strip_authorization: true,
        password_iterations: password::RECOMMENDED_ITERATIONS,
        logout_url: None,
        subsonic: SubsonicMode::Authenticate,
        subsonic_policy: crate::subsonic::SubsonicPolicy::DEFAULT,
        enable_user_editing: true,
        metrics_sources: &NO_METRICS_SOURCES,
    };
}

impl Default for GatewayConfig<'static> {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The engine: configuration and the read-mostly state (trusted sources, session keys).
#[derive(Clone, Copy, Debug)]
pub struct Gateway<'a, const S: usize> {
    /// Settings.
    pub config: GatewayConfig<'a>,
    /// Identity trust (`trusted_sources`, Navidrome's `ExtAuth.TrustedSources`): peers whose
    /// identity header is believed. They have forwarding trust too.
    pub trusted: &'a TrustedSources<S>,
    /// Forwarding trust only (`trusted_proxies`): peers whose `X-Forwarded-For`,
    /// `X-Forwarded-Host` and forward-auth original-request headers are believed, never their
    /// identity header. A plain reverse proxy relays whatever its clients send, so naming it
    /// for its forwarding must not make it an identity source.
    pub proxies: &'a TrustedSources<S>,
    /// Session (and CSRF) signing keys.
    pub keys: &'a SessionKeys,
}

/// The mutable state decisions read and update, owned by the shell (behind its lock).
pub struct Shared<
    's,
    const U: usize,
    const T: usize,
    const C: usize,
    const A: usize = DEFAULT_APP_PASSWORD_CAPACITY,
> {
    /// The users (and their app passwords, at most `A` in all).
    pub users: &'s mut UserTable<U, A>,
    /// Recent login failures.
    pub throttle: &'s mut Throttle<T>,
    /// Recently verified Basic credentials.
    pub credentials: &'s mut CredentialCache<C>,
    /// Password checks handed out and not finished yet.
    pub pending: &'s mut PendingChecks,
}

/// One request as the shell sees it.
#[derive(Clone, Copy, Debug)]
pub struct Exchange<'b> {
    /// The transport peer.
    pub peer: Peer,
    /// Whether the client connection is TLS.
    pub tls: bool,
    /// Everything read on the connection since the previous request ended.
    pub bytes: &'b [u8],
    /// Now, in UNIX seconds.
    pub now: u64,
    /// Whether `now` is the real time. A board that has not yet set its clock (from SNTP or
    /// a real-time clock) counts from a floor instead: good for measuring intervals (the
    /// throttle, the credential cache), not for session expiry. While it is `false` no
    /// session is issued or accepted, since after a reboot an old token would look fresh
    /// again ([`Outcome::TimeUnknown`]); HTTP Basic, app passwords and Subsonic credentials
    /// keep working, as they carry no time.
    pub time_known: bool,
    /// Fresh random bytes.
    pub random: &'b [u8; RANDOM_LEN],
}

/// What the shell does next.
#[derive(Debug)]
#[cfg_attr(
    feature = "account",
    expect(
        clippy::large_enum_variant,
        reason = "core has no allocator to box the check in; a password change carries the new password too"
    )
)]
pub enum Decision {
    /// The head is not complete: read more and call again with all the bytes.
    NeedMoreBytes,
    /// gatehouse consumes this request's body (the login form): read until `bytes` holds
    /// `total` bytes and call again. Write [`crate::http::CONTINUE_100`] first when
    /// `send_continue`.
    ReadBody {
        /// Bytes (head and body) needed.
        total: usize,
        /// The client waits for `100 Continue`.
        send_continue: bool,
    },
    /// Forward the request to the app.
    Forward(Forward),
    /// Answer the client with a response gatehouse wrote.
    Respond(Respond),
    /// Verify a password outside the lock, then call [`Gateway::finish`].
    VerifyPassword(PasswordCheck),
    /// The same credential is being verified for another request: nothing to verify or
    /// write. Wait until a check finishes (a [`Gateway::finish`]), then call
    /// [`Gateway::decide`] again with the same bytes; the verified-credential cache then
    /// answers, or a check is handed out if the first one failed.
    WaitForCheck,
    /// A peer in [`GatewayConfig::metrics_sources`] asked for `/_gatehouse/metrics`: answer
    /// `200` with the shell's counters (core keeps none).
    ServeMetrics(MetricsRequest),
}

/// A metrics request core allowed: the shell writes the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricsRequest {
    /// Bytes of the request (its head).
    pub consumed: usize,
    /// The request was `HEAD`: answer with the head only.
    pub head_only: bool,
    /// Close the connection after writing.
    pub close: bool,
}

/// Forward a request: write `out[..head_len]` to the app, then relay the body.
#[derive(Debug)]
pub struct Forward {
    /// Bytes of the client's head; its body starts here in `bytes`.
    pub consumed: usize,
    /// Length of the rewritten head in `out`.
    pub head_len: usize,
    /// The request body's framing (relay it with a [`crate::http::BodyRelay`]).
    pub body: BodyFraming,
    /// Write [`crate::http::CONTINUE_100`] to the client before relaying the body.
    pub send_continue: bool,
    /// The request asked for a protocol upgrade: a `101` answer turns into a tunnel.
    pub upgrade: bool,
    /// The request was `HEAD` (for [`crate::http::ResponseHead::parse`]).
    pub request_was_head: bool,
    /// The client's HTTP version (for [`crate::http::write_client_response_head`]).
    pub client_version: Version,
    /// The client wants the connection kept open.
    pub keep_alive: bool,
    /// The path's class.
    pub class: PathClass,
    /// Who the app is told the user is.
    pub user: Option<Username>,
    /// Add `Set-Cookie: <this>` to the response (a renewed session).
    pub set_cookie: Option<SetCookie>,
    /// The users table changed (a user was provisioned, or an app password's last-use time
    /// moved, at most every [`crate::users::LAST_USED_GRANULARITY_SECS`]): the shell must
    /// persist it.
    pub users_changed: bool,
}

/// Answer with `out[..len]`.
#[derive(Debug)]
pub struct Respond {
    /// Bytes of the request (head, and body when gatehouse read it).
    pub consumed: usize,
    /// Length of the response in `out`.
    pub len: usize,
    /// Close the connection after writing.
    pub close: bool,
    /// What happened, for logs and metrics.
    pub outcome: Outcome,
    /// The users table changed (the account page made or revoked an app password, changed
    /// a password, logged a user out everywhere): the shell must persist it.
    pub users_changed: bool,
}

/// Why a request was refused before any authentication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The head is malformed or ambiguous.
    Request(RequestError),
    /// The target's path is ambiguous.
    Path(PathError),
    /// A login form with a body over [`MAX_FORM_LEN`].
    FormTooLarge,
    /// A login form without `Content-Length`.
    LengthRequired,
    /// The shell's output buffer is too small for the answer.
    OutputTooSmall,
}

/// Which kind of proxy calls a forward-auth endpoint, and so which headers carry the original
/// request. The endpoint names it: guessing from whichever header is present lets a client
/// add the header its proxy does not set (Caddy and Traefik pass every client header along)
/// and have it believed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardAuthKind {
    /// `/_gatehouse/auth`: Caddy `forward_auth`, Traefik `ForwardAuth`. The original request
    /// is in `X-Forwarded-Method`, `X-Forwarded-Uri` (and `X-Forwarded-Host`).
    Forwarded,
    /// `/_gatehouse/auth/nginx`: nginx `auth_request`. The original request is in
    /// `X-Original-URI` and `X-Original-Method`.
    Nginx,
}

impl ForwardAuthKind {
    /// The headers this kind of proxy sets for the original request: URI, method, others.
    fn own_headers(self) -> (&'static str, &'static str, &'static [&'static str]) {
        match self {
            ForwardAuthKind::Forwarded => (
                "x-forwarded-uri",
                "x-forwarded-method",
                &["x-forwarded-host"],
            ),
            ForwardAuthKind::Nginx => ("x-original-uri", "x-original-method", &[]),
        }
    }

    /// The original-URL and method headers of the other kind: present at all, they mean the
    /// call is not what its endpoint says (or a client added them), so it is refused.
    fn foreign_headers(self) -> &'static [&'static str] {
        match self {
            ForwardAuthKind::Forwarded => &["x-original-uri", "x-original-method"],
            ForwardAuthKind::Nginx => &["x-forwarded-uri", "x-forwarded-method"],
        }
    }
}

/// Why a forward-auth call was refused (403) before anything was judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardAuthRefusal {
    /// The caller is in neither `trusted_sources` nor `trusted_proxies`: what it says about
    /// the original request means nothing.
    UntrustedCaller,
    /// A header of the other kind of proxy is present (`X-Original-URI` at `/_gatehouse/auth`,
    /// `X-Forwarded-Uri` at `/_gatehouse/auth/nginx`, or their method headers).
    ForeignHeaders,
    /// One of the kind's own headers appears more than once.
    Repeated,
    /// The kind's original-URI header is missing.
    MissingUri,
    /// The call carries a look-alike of an identity header (`Remote_User`, `remote.user`,
    /// `X-Forwarded-User`, …) that gatehouse's answer would not overwrite. Caddy and Traefik
    /// pass the client's headers on to the app as they came, and a CGI-style app reads
    /// `Remote_User` as `Remote-User`: such a request must not pass at all.
    IdentityLookalike,
}

impl ForwardAuthRefusal {
    /// A short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ForwardAuthRefusal::UntrustedCaller => "forward-auth caller not trusted",
            ForwardAuthRefusal::ForeignHeaders => "forward-auth headers of the other proxy kind",
            ForwardAuthRefusal::Repeated => "forward-auth header repeated",
            ForwardAuthRefusal::MissingUri => "forward-auth original URI missing",
            ForwardAuthRefusal::IdentityLookalike => "forward-auth identity header look-alike",
        }
    }
}

/// What gatehouse answered, for logs and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The request was refused.
    Refused(Refusal),
    /// The login page.
    LoginPage,
    /// Login succeeded; the browser is sent back with a session cookie.
    LoggedIn,
    /// Wrong username or password.
    LoginFailed,
    /// The login form failed the CSRF checks.
    CsrfRejected,
    /// The login form was incomplete or malformed.
    BadForm,
    /// Too many failures from this client or on this name.
    Throttled,
    /// [`MAX_PENDING_CHECKS`] password checks are already running: answered 503, try later.
    PasswordChecksBusy,
    /// A session was needed (the login page or form, a browser with no other credentials)
    /// while the shell does not know the time ([`Exchange::time_known`]): answered 503, try
    /// again once the clock is set.
    TimeUnknown,
    /// Logged out.
    LoggedOut,
    /// The logout endpoint's confirm page (a `GET`: logging out takes a `POST`).
    LogoutPage,
    /// An anonymous browser was sent to the login page.
    RedirectedToLogin,
    /// An anonymous non-browser client got a 401 challenge.
    Unauthorized,
    /// HTTP Basic credentials were wrong.
    BasicFailed,
    /// Forward-auth: allowed.
    ForwardAuthAllowed,
    /// Forward-auth: denied (401 or redirect).
    ForwardAuthDenied,
    /// Forward-auth: the call itself could not be believed (403); see the reason.
    ForwardAuthRefused(ForwardAuthRefusal),
    /// The health endpoint.
    Health,
    /// An unknown reserved endpoint.
    NotFound,
    /// A reserved endpoint called with the wrong method.
    MethodNotAllowed,
    /// A trusted peer named a user who could not be provisioned (table full, bad name).
    ProvisionFailed(UserError),
    /// Subsonic credentials were refused; answered with a Subsonic error.
    SubsonicRefused(crate::subsonic::SubsonicRefusal),
    /// gatehouse answered a Subsonic endpoint itself (`getOpenSubsonicExtensions`,
    /// `tokenInfo`).
    SubsonicAnswered,
    /// The account page answered.
    #[cfg(feature = "account")]
    Account(AccountOutcome),
}

/// What a password check is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    Basic,
    LoginForm,
    /// `u` + `p` on a Subsonic path, checked as the login password.
    Subsonic,
    /// The current password of a password change on the account page.
    #[cfg(feature = "account")]
    ChangePassword,
    /// The current password of a new app password on the account page.
    #[cfg(feature = "account")]
    CreateAppPassword,
}

/// A password to verify, self-contained so that it can run without the shared state.
pub struct PasswordCheck {
    purpose: Purpose,
    username: Username,
    password: heapless::Vec<u8, MAX_PASSWORD_LEN>,
    hash: Option<PasswordHash>,
    /// The user's generation when the check was handed out (`None`: unknown user).
    generation: Option<u32>,
    dummy_iterations: u32,
    client: Peer,
    /// Its place among the [`PendingChecks`].
    ticket: u64,
    /// Whether the attempt was charged to the throttle when handed out (not when the same
    /// guess was already in flight), so that only a charged attempt is refunded.
    charged: bool,
    /// A password change's new password, hashed by [`PasswordCheck::verify`].
    #[cfg(feature = "account")]
    new_password: Option<account::NewPassword>,
}

impl core::fmt::Debug for PasswordCheck {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never the password.
        f.debug_struct("PasswordCheck")
            .field("purpose", &self.purpose)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Drop for PasswordCheck {
    fn drop(&mut self) {
        self.password.iter_mut().for_each(|b| *b = 0);
    }
}

impl PasswordCheck {
    /// The expensive part: verify the password against the user's hash, or against a dummy
    /// hash of the same cost when the user does not exist; for a password change whose
    /// current password is right, also hash the new one. Needs no shared state.
    pub fn verify(&self) -> bool {
        let ok =
            password::verify_or_dummy(self.hash.as_ref(), &self.password, self.dummy_iterations);
        #[cfg(feature = "account")]
        if ok && let Some(new) = &self.new_password {
            new.hash();
        }
        ok
    }

    /// The username that was tried.
    pub fn username(&self) -> &str {
        &self.username
    }

    fn is_for(&self, purpose: Purpose, username: &str, password: &[u8]) -> bool {
        self.purpose == purpose && self.username == username && self.password == password
    }

    /// The user record the check was made against is still the user's: same password hash,
    /// same generation. A password changed (or a user removed and added again) while the
    /// check ran makes its result say nothing about the user as they are now.
    fn still_current<const U: usize, const A: usize>(&self, users: &UserTable<U, A>) -> bool {
        match (users.find(&self.username), &self.hash) {
            (Some(user), Some(hash)) => {
                user.password == *hash && Some(user.generation) == self.generation
            }
            (None, None) => true,
            _ => false,
        }
    }
}

/// What handing out a password check came to.
#[expect(
    clippy::large_enum_variant,
    reason = "core has no allocator to box the check in; it is moved once"
)]
enum Handout {
    Check(PasswordCheck),
    Throttled(u64),
    Busy,
    /// The same guess is being checked already.
    InFlight,
    Failed,
}

/// The result of authenticating a request.
#[expect(
    clippy::large_enum_variant,
    reason = "core has no allocator to box the check in, and an Auth lives only on the stack of one decision"
)]
enum Auth {
    User {
        name: Username,
        admin: bool,
        via_basic: bool,
        /// The session is due for renewal: the table id and the user's generation to issue a
        /// new one for.
        renew: Option<(u64, u32)>,
        users_changed: bool,
    },
    Verify(PasswordCheck),
    Throttled(u64),
    Busy,
    InFlight,
    BasicFailed,
    Anonymous,
    ProvisionFailed(UserError),
}

impl<const S: usize> Gateway<'_, S> {
    /// Decides what to do with the request at the start of `ex.bytes`, writing any head or
    /// response into `out` (at least [`OUT_LEN`] bytes).
    pub fn decide<const U: usize, const T: usize, const C: usize, const A: usize>(
        &self,
        ex: &Exchange<'_>,
        shared: &mut Shared<'_, U, T, C, A>,
        out: &mut [u8],
    ) -> Decision {
        self.run(ex, shared, None, out)
    }

    /// Completes a [`Decision::VerifyPassword`]: records the result (throttle, credential
    /// cache) and decides again on the same `ex` (same bytes, time and random bytes).
    ///
    /// The attempt was charged to the throttle when the check was handed out; a right
    /// password is refunded here. A result is only believed if the user's record is still
    /// the one the check was made against.
    pub fn finish<const U: usize, const T: usize, const C: usize, const A: usize>(
        &self,
        ex: &Exchange<'_>,
        shared: &mut Shared<'_, U, T, C, A>,
        check: &PasswordCheck,
        verified: bool,
        out: &mut [u8],
    ) -> Decision {
        shared.pending.release(check.ticket);
        let verified = verified && check.still_current(shared.users);
        if verified {
            if check.charged {
                shared.throttle.refund(&check.client, ex.now);
            }
            shared
                .throttle
                .record_success(&check.client, check.username.as_bytes(), ex.now);
            if matches!(check.purpose, Purpose::Basic | Purpose::Subsonic)
                && let Some(user) = shared.users.find(&check.username)
            {
                shared.credentials.insert(
                    user.name.as_bytes(),
                    &check.password,
                    user.password.as_str().as_bytes(),
                    user.generation,
                    ex.now,
                );
            }
        }
        self.run(ex, shared, Some((check, verified)), out)
    }

    fn run<const U: usize, const T: usize, const C: usize, const A: usize>(
        &self,
        ex: &Exchange<'_>,
        shared: &mut Shared<'_, U, T, C, A>,
        verified: Option<(&PasswordCheck, bool)>,
        out: &mut [u8],
    ) -> Decision {
        let mut head = RequestHead::empty();
        match head.parse_in_place(ex.bytes) {
            Ok(Parse::Complete(())) => {}
            Ok(Parse::Incomplete) => return Decision::NeedMoreBytes,
            Err(e) => return refuse(Refusal::Request(e), e.status(), 0, out),
        }
        // The canonical target lives at the end of `out`; heads are written at the front.
        let scratch_len = (head.path_and_query().len() * 3 + 2).min(out.len() / 2);
        let split = out.len() - scratch_len;
        let (front, scratch) = out.split_at_mut(split);
        let target = match canonicalize(head.path_and_query(), scratch) {
            Ok(t) => t,
            Err(e) => return refuse(Refusal::Path(e), Status::BadRequest, head.head_len(), front),
        };
        let trusted = self.trusted.trusts(&ex.peer);
        let forwarding = trusted || self.proxies.trusts(&ex.peer);
        let ctx = Ctx {
            ex,
            head: &head,
            target: target.as_str(),
            trusted,
            forwarding,
            client: client_peer(&head, ex.peer, forwarding),
        };
        match self.config.paths.classify(target.path()) {
            PathClass::Reserved => {
                let endpoint = self.config.paths.reserved_endpoint(target.path());
                self.reserved(&ctx, endpoint.unwrap_or(""), shared, verified, front)
            }
            PathClass::Public => self.forward(&ctx, PathClass::Public, None, front),
            PathClass::Subsonic if self.config.subsonic == SubsonicMode::Authenticate => {
                self.subsonic(&ctx, shared, verified, front)
            }
            // The app authenticates its Subsonic clients: no identity from gatehouse.
            PathClass::Subsonic => self.forward(&ctx, PathClass::Subsonic, None, front),
            class @ PathClass::Protected => match self.authenticate(&ctx, shared, verified, true) {
                Auth::User {
                    name,
                    admin,
                    via_basic,
                    renew,
                    users_changed,
                } => {
                    let who = Who {
                        name,
                        admin,
                        via_basic,
                        renew,
                        users_changed,
                    };
                    self.forward(&ctx, class, Some(who), front)
                }
                Auth::Verify(check) => Decision::VerifyPassword(check),
                Auth::InFlight => Decision::WaitForCheck,
                Auth::Throttled(secs) => respond_too_many(&ctx, secs, front),
                Auth::Busy => respond_busy(&ctx, front),
                Auth::BasicFailed => {
                    respond_error(&ctx, Status::Unauthorized, Outcome::BasicFailed, front)
                }
                Auth::ProvisionFailed(e) => respond_error(
                    &ctx,
                    Status::ServiceUnavailable,
                    Outcome::ProvisionFailed(e),
                    front,
                ),
                // The login page could not give it a session: say why rather than redirect.
                Auth::Anonymous if is_browser(&head, head.method()) && !ex.time_known => {
                    respond_time_unknown(&ctx, front)
                }
                Auth::Anonymous if is_browser(&head, head.method()) => {
                    self.redirect_to_login(&ctx, target.as_str().as_bytes(), front)
                }
                Auth::Anonymous => {
                    respond_error(&ctx, Status::Unauthorized, Outcome::Unauthorized, front)
                }
            },
        }
    }

    /// Who is asking: trusted identity header (when `read_header`), session cookie, Basic.
    fn authenticate<const U: usize, const T: usize, const C: usize, const A: usize>(
        &self,
        ctx: &Ctx<'_, '_>,
        shared: &mut Shared<'_, U, T, C, A>,
        verified: Option<(&PasswordCheck, bool)>,
        read_header: bool,
    ) -> Auth {
        self.authenticate_with(ctx, shared, verified, read_header, true)
    }

    /// [`Gateway::authenticate`], with the session cookie believed only when `cookies`.
    fn authenticate_with<const U: usize, const T: usize, const C: usize, const A: usize>(
        &self,
        ctx: &Ctx<'_, '_>,
        shared: &mut Shared<'_, U, T, C, A>,
        verified: Option<(&PasswordCheck, bool)>,
        read_header: bool,
        cookies: bool,
    ) -> Auth {
        let ex = ctx.ex;
        let head = ctx.head;
        if read_header && ctx.trusted {
            // A broken header (repeated, empty, control bytes) is not an identity: fall back
            // to the normal login, as Navidrome does.
            if let Ok(Some(name)) = read_identity_httparse(self.config.user_header, head.headers())
            {
                let pw_random: [u8; GENERATED_PASSWORD_RANDOM_LEN] =
                    derive(ex.random, b"provisioned password");
                let salt: [u8; SALT_LEN] = derive(ex.random, b"provisioned salt");
                match shared.users.provision(
                    &name,
                    &pw_random,
                    &salt,
                    self.config.password_iterations,
                ) {
                    Ok(p) => {
                        return Auth::User {
                            name: p.user.name.clone(),
                            admin: p.user.admin,
                            via_basic: false,
                            renew: None,
                            users_changed: p.created,
                        };
                    }
                    // A name no user can have (Unicode space around it, a C1 control) is
                    // no identity either: the normal login, as for a broken header.
                    Err(UserError::InvalidName(_)) => {}
                    Err(e) => return Auth::ProvisionFailed(e),
                }
            }
        }

        // More than one session cookie is no session: one of them may be planted. Without
        // the real time, expiry cannot be judged: a token from before a reboot would look
        // fresh again, so no session is believed until the clock is set.
        let name = session::cookie_name(self.secure(ex));
        let token = session::single_session_cookie(head.header_values("cookie"), name);
        if let (true, Ok(Some(token))) = (cookies && ex.time_known, token) {
            let verified = self.keys.verify_user_cached(
                token,
                ex.now,
                shared.users,
                &mut shared.credentials.sessions,
            );
            if let Ok((s, user)) = verified {
                return Auth::User {
                    name: user.name.clone(),
                    admin: user.admin,
                    via_basic: false,
                    renew: s.should_renew(ex.now).then_some((s.table, user.generation)),
                    users_changed: false,
                };
            }
        }

        let Ok(Some(authorization)) = head.single_header("authorization") else {
            return Auth::Anonymous;
        };
        let mut decoded = [0u8; 3 * MAX_PASSWORD_LEN];
        let Some((name, password)) = basic_credentials(authorization, &mut decoded) else {
            return Auth::Anonymous;
        };
        let Ok(name) = crate::users::parse_username(name) else {
            return Auth::BasicFailed;
        };
        if password.len() > MAX_PASSWORD_LEN {
            return Auth::BasicFailed;
        }
        // An app password costs no password hash: checked first, in constant time.
        if let Some(index) = shared.users.check_app_password(&name, password)
            && let Some(user) = shared.users.find(&name)
        {
            let (name, admin) = (user.name.clone(), user.admin);
            let users_changed = shared.users.record_app_password_use(index, ex.now);
            return Auth::User {
                name,
                admin,
                via_basic: true,
                renew: None,
                users_changed,
            };
        }
        if let Some(user) = shared.users.find(&name) {
            let hit = shared.credentials.lookup(
                user.name.as_bytes(),
                password,
                user.password.as_str().as_bytes(),
                user.generation,
                ex.now,
            ) == Lookup::Hit;
            if hit {
                return Auth::User {
                    name: user.name.clone(),
                    admin: user.admin,
                    via_basic: true,
                    renew: None,
                    users_changed: false,
                };
            }
        }
        if let Some((check, ok)) = verified
            && check.is_for(Purpose::Basic, &name, password)
        {
            return match (ok, shared.users.find(&name)) {
                (true, Some(user)) => Auth::User {
                    name: user.name.clone(),
                    admin: user.admin,
                    via_basic: true,
                    renew: None,
                    users_changed: false,
                },
                _ => Auth::BasicFailed,
            };
        }
        match self.password_check(Purpose::Basic, &name, password, ctx, shared) {
            Handout::Check(check) => Auth::Verify(check),
            Handout::Throttled(seconds) => Auth::Throttled(seconds),
            Handout::Busy => Auth::Busy,
            Handout::InFlight => Auth::InFlight,
            Handout::Failed => Auth::BasicFailed,
        }
    }

    /// Hands out a password check, if the throttle and the cap on checks in flight allow it;
    /// the attempt is charged to the throttle now, before the password is verified, so that
    /// checks running concurrently are bounded by the same limits as checks in a row.
    fn password_check<const U: usize, const T: usize, const C: usize, const A: usize>(
        &self,
        purpose: Purpose,
        name: &str,
        password: &[u8],
        ctx: &Ctx<'_, '_>,
        shared: &mut Shared<'_, U, T, C, A>,
    ) -> Handout {
        let now = ctx.ex.now;
        if let Verdict::RetryAfter { seconds, .. } =
            shared.throttle.check(&ctx.client, name.as_bytes(), now)
        {
            return Handout::Throttled(seconds);
        }
        let mut username = Username::new();
        let mut pw = heapless::Vec::new();
        if username.push_str(name).is_err() || pw.extend_from_slice(password).is_err() {
            return Handout::Failed;
        }
        let guess = pending::guess_digest(name, password);
        // The same guess is checked once at a time: its copies wait for it and are then
        // decided again (a credential sent with every request is answered by the cache; a
        // login form is checked, and charged, like a guess in a row). A copy handed a check
        // of its own would take a place uncharged: a few of them in a loop would hold every
        // place and answer everyone else 503.
        if shared.pending.has(&guess, now) {
            return Handout::InFlight;
        }
        let Some(claim) = shared.pending.claim(&guess, now) else {
            return Handout::Busy;
        };
        let charged = !claim.duplicate;
        if charged {
            shared
                .throttle
                .record_failure(&ctx.client, name.as_bytes(), now);
        }
        let user = shared.users.find(name);
        Handout::Check(PasswordCheck {
            purpose,
            username,
            password: pw,
            hash: user.map(|u| u.password.clone()),
            generation: user.map(|u| u.generation),
            dummy_iterations: self.config.password_iterations,
            client: ctx.client,
            ticket: claim.ticket,
            charged,
            #[cfg(feature = "account")]
            new_password: None,
        })
    }

    fn session_cookie(
        &self,
        table: u64,
        name: &str,
        generation: u32,
        ex: &Exchange<'_>,
    ) -> Option<SetCookie> {
        if !ex.time_known {
            return None;
        }
        let token = self
            .keys
            .issue(
                table,
                name,
                generation,
                ex.now,
                self.config.session_ttl_secs,
            )
            .ok()?;
        let mut buf = [0u8; MAX_SET_COOKIE_LEN];
        let n = session::write_set_cookie(
            &mut buf,
            &token,
            self.config.session_ttl_secs,
            self.secure(ex),
        )
        .ok()?;
        SetCookie::from_slice(&buf[..n]).ok()
    }

    fn secure(&self, ex: &Exchange<'_>) -> bool {
        ex.tls || self.config.secure_cookies
    }

    fn forward(
        &self,
        ctx: &Ctx<'_, '_>,
        class: PathClass,
        who: Option<Who>,
        out: &mut [u8],
    ) -> Decision {
        let head = ctx.head;
        let identity = who.as_ref().map(|w| Identity {
            user: &w.name,
            name: None,
            email: None,
            groups: w.admin.then_some("admins"),
        });
        let options = ForwardOptions {
            user_header: self.config.user_header,
            peer: ctx.ex.peer,
            peer_trusted: ctx.forwarding,
            tls: ctx.ex.tls,
            strip_authorization: !self.forwards_authorization(class, who.as_ref()),
            session_cookie: session::COOKIE_NAME,
            identity,
            tunnel: websocket_upgrade(head),
        };
        let head_len = match write_forward_head(head, ctx.target, &options, out) {
            Ok(n) => n,
            Err(_) => {
                return refuse(
                    Refusal::OutputTooSmall,
                    Status::RequestHeaderFieldsTooLarge,
                    head.head_len(),
                    out,
                );
            }
        };
        let (user, set_cookie, users_changed) = match who {
            Some(w) => {
                let set_cookie = w.renew.and_then(|(table, generation)| {
                    self.session_cookie(table, &w.name, generation, ctx.ex)
                });
                (Some(w.name), set_cookie, w.users_changed)
            }
            None => (None, None, false),
        };
        Decision::Forward(Forward {
            consumed: head.head_len(),
            head_len,
            body: head.body(),
            send_continue: head.expect_continue(),
            upgrade: websocket_upgrade(head),
            request_was_head: head.is_head(),
            client_version: head.version(),
            keep_alive: head.keep_alive(),
            class,
            user,
            set_cookie,
            users_changed,
        })
    }

    /// Whether the client's `Authorization` reaches the app on purpose. A browser sends a
    /// cached Basic password with every request, and a music app its app password: neither
    /// may land at the app (its logs, its own login) just because gatehouse let the request
    /// through for another reason (a public path, a session cookie, a trusted header). It is
    /// kept only where the app checks it: Subsonic paths in [`SubsonicMode::PassThrough`], and
    /// requests gatehouse authenticated with it when the deployment turned
    /// [`GatewayConfig::strip_authorization`] off.
    fn forwards_authorization(&self, class: PathClass, who: Option<&Who>) -> bool {
        let pass_through =
            class == PathClass::Subsonic && self.config.subsonic == SubsonicMode::PassThrough;
        let kept_basic = !self.config.strip_authorization && who.is_some_and(|w| w.via_basic);
        pass_through || kept_basic
    }

    fn login_path(&self, buf: &mut [u8; 256]) -> usize {
        self.endpoint_path("login", buf)
    }

    /// The path of gatehouse's own endpoint `name` under the reserved prefix.
    fn endpoint_path(&self, name: &str, buf: &mut [u8; 256]) -> usize {
        let base = self.config.paths.reserved.trim_end_matches('/');
        let mut n = 0;
        for part in [base.as_bytes(), b"/", name.as_bytes()] {
            let take = part.len().min(buf.len() - n);
            buf[n..n + take].copy_from_slice(&part[..take]);
            n += take;
        }
        n
    }

    fn redirect_to_login(
        &self,
        ctx: &Ctx<'_, '_>,
        return_target: &[u8],
        out: &mut [u8],
    ) -> Decision {
        let mut path = [0u8; 256];
        let path_len = self.login_path(&mut path);
        let mut location = [0u8; MAX_LOCATION_LEN];
        let mut n = path_len.min(location.len());
        location[..n].copy_from_slice(&path[..n]);
        if return_target != b"/" && is_safe_return_target(return_target) {
            let q = b"?return=";
            if let Some(dst) = location.get_mut(n..n + q.len()) {
                dst.copy_from_slice(q);
                // Too long to carry along: the user lands on the start page after login.
                if let Ok(m) = percent_encode_component(return_target, &mut location[n + q.len()..])
                {
                    n += q.len() + m;
                }
            }
        }
        let mut w = ResponseWriter::new(out, Status::Found);
        w.header("Location", &location[..n]);
        let close = close_after(ctx.head, false);
        match w.finish_empty(close) {
            Ok(len) => Decision::Respond(Respond {
                consumed: ctx.head.head_len(),
                len,
                close,
                outcome: Outcome::RedirectedToLogin,
                users_changed: false,
            }),
            Err(_) => refuse(Refusal::OutputTooSmall, Status::InternalServerError, 0, out),
        }
    }

    fn reserved<const U: usize, const T: usize, const C: usize, const A: usize>(
        &self,
        ctx: &Ctx<'_, '_>,
        endpoint: &str,
        shared: &mut Shared<'_, U, T, C, A>,
        verified: Option<(&PasswordCheck, bool)>,
        out: &mut [u8],
    ) -> Decision {
        let method = ctx.head.method();
        let read_only = matches!(method, "GET" | "HEAD");
        match endpoint_name(endpoint) {
            // Nothing to sign in to while a session could not be given a true expiry.
            "login" if !ctx.ex.time_known && (read_only || method == "POST") => {
                respond_time_unknown(ctx, out)
            }
            "login" if read_only => {
                let mut buf = [0u8; MAX_RETURN_LEN];
                let target = query_param(ctx.target, "return", &mut buf)
                    .filter(|t| is_safe_return_target(t))
                    .unwrap_or(b"/");
                self.login_page(ctx, Status::Ok, target, None, Outcome::LoginPage, out)
            }
            "login" if method == "POST" => self.login_post(ctx, shared, verified, out),
            "logout" if read_only => self.logout_page(ctx, Status::Ok, None, out),
            "logout" if method == "POST" => self.logout(ctx, out),
            "auth" => self.forward_auth(ctx, ForwardAuthKind::Forwarded, shared, verified, out),
            "auth/nginx" => self.forward_auth(ctx, ForwardAuthKind::Nginx, shared, verified, out),
            #[cfg(feature = "account")]
            ACCOUNT_ENDPOINT => self.account(ctx, shared, verified, out),
            "health" if read_only => {
                let close = close_after(ctx.head, false);
                let mut w = ResponseWriter::new(out, Status::Ok);
                w.header("X-Robots-Tag", b"noindex");
                let written = w
                    .finish("text/plain; charset=utf-8", b"ok\n", close)
                    .map(|n| head_only(ctx.head, out, n));
                finish(ctx, written, close, Outcome::Health)
            }
            "metrics" if read_only && self.config.metrics_sources.trusts(&ctx.ex.peer) => {
                Decision::ServeMetrics(MetricsRequest {
                    consumed: ctx.head.head_len(),
                    head_only: ctx.head.is_head(),
                    close: close_after(ctx.head, false),
                })
            }
            "login" | "logout" | "health" => respond_error(
                ctx,
                Status::MethodNotAllowed,
                Outcome::MethodNotAllowed,
                out,
            ),
            _ => respond_error(ctx, Status::NotFound, Outcome::NotFound, out),
        }
    }

    fn login_page(
        &self,
        ctx: &Ctx<'_, '_>,
        status: Status,
        return_target: &[u8],
        error: Option<&str>,
        outcome: Outcome,
        out: &mut [u8],
    ) -> Decision {
        self.form_page(ctx, status, Some(return_target), error, outcome, out)
    }

    /// The login page (`return_target` given) or the logout page, each with a fresh CSRF
    /// token: one body for both, so that the firmware carries it once.
    fn form_page(
        &self,
        ctx: &Ctx<'_, '_>,
        status: Status,
        return_target: Option<&[u8]>,
        error: Option<&str>,
        outcome: Outcome,
        out: &mut [u8],
    ) -> Decision {
        let (token, cookie) = self.issue_csrf(ctx.ex);
        let (endpoint, fallback) = match return_target {
            Some(_) => ("login", "/_gatehouse/login"),
            None => ("logout", "/_gatehouse/logout"),
        };
        let mut path = [0u8; 256];
        let path_len = self.endpoint_path(endpoint, &mut path);
        let action = core::str::from_utf8(&path[..path_len]).unwrap_or(fallback);
        let consumed_body = consumed_with_body(ctx.head, ctx.ex.bytes.len());
        let close = close_after(ctx.head, consumed_body.is_some());
        let len = page::form_response(
            action,
            &token,
            return_target,
            error,
            status,
            &cookie,
            close,
            out,
        )
        .map(|n| head_only(ctx.head, out, n));
        match len {
            Ok(len) => Decision::Respond(Respond {
                consumed: consumed_body.unwrap_or(ctx.head.head_len()),
                len,
                close,
                outcome,
                users_changed: false,
            }),
            Err(_) => refuse(Refusal::OutputTooSmall, Status::InternalServerError, 0, out),
        }
    }

    fn login_post<const U: usize, const T: usize, const C: usize, const A: usize>(
        &self,
        ctx: &Ctx<'_, '_>,
        shared: &mut Shared<'_, U, T, C, A>,
        verified: Option<(&PasswordCheck, bool)>,
        out: &mut [u8],
    ) -> Decision {
        let head = ctx.head;
        let body = match self.form_body(ctx, out) {
            Ok(body) => body,
            Err(decision) => return decision,
        };
        let total = head.head_len() + body.len();

        let mut return_buf = [0u8; MAX_RETURN_LEN];
        let return_target = match form_field(body, "return", &mut return_buf) {
            Ok(Some(t)) if is_safe_return_target(t) => t,
            _ => b"/",
        };
        let return_target: &[u8] = return_target;

        if !self.csrf_ok(ctx, body) {
            return self.login_page(
                ctx,
                Status::Forbidden,
                return_target,
                Some("This sign-in form has expired. Please try again."),
                Outcome::CsrfRejected,
                out,
            );
        }

        let mut name_buf = [0u8; crate::MAX_USERNAME_LEN];
        let mut pw_buf = [0u8; MAX_PASSWORD_LEN];
        let name = form_field(body, "username", &mut name_buf);
        let password = form_field(body, "password", &mut pw_buf);
        let (Ok(Some(name)), Ok(Some(password))) = (name, password) else {
            return self.login_page(
                ctx,
                Status::BadRequest,
                return_target,
                Some("Please enter your username and password."),
                Outcome::BadForm,
                out,
            );
        };
        let Some(name) = core::str::from_utf8(name)
            .ok()
            .and_then(|n| crate::users::parse_username(n).ok())
        else {
            return self.login_page(
                ctx,
                Status::Ok,
                return_target,
                Some("Wrong username or password."),
                Outcome::LoginFailed,
                out,
            );
        };

        let ok = match verified {
            Some((check, ok)) if check.is_for(Purpose::LoginForm, &name, password) => ok,
            _ => {
                let handout = self.password_check(Purpose::LoginForm, &name, password, ctx, shared);
                if let Handout::Throttled(seconds) = handout {
                    let mut msg = [0u8; 96];
                    let mut c = crate::http::Cursor::new(&mut msg);
                    c.put(b"Too many failed attempts. Please try again in ")
                        .put_u64(seconds.max(1))
                        .put(b" seconds.");
                    let n = c.len();
                    let text = core::str::from_utf8(&msg[..n]).unwrap_or("Too many attempts.");
                    return self.login_page(
                        ctx,
                        Status::TooManyRequests,
                        return_target,
                        Some(text),
                        Outcome::Throttled,
                        out,
                    );
                }
                return match handout {
                    Handout::Check(check) => Decision::VerifyPassword(check),
                    Handout::InFlight => Decision::WaitForCheck,
                    Handout::Busy => self.login_page(
                        ctx,
                        Status::ServiceUnavailable,
                        return_target,
                        Some("The server is busy. Please try again in a moment."),
                        Outcome::PasswordChecksBusy,
                        out,
                    ),
                    Handout::Throttled(_) | Handout::Failed => self.login_page(
                        ctx,
                        Status::Ok,
                        return_target,
                        Some("Wrong username or password."),
                        Outcome::LoginFailed,
                        out,
                    ),
                };
            }
        };
        let user = shared.users.find(&name).filter(|_| ok);
        let table = shared.users.table_id();
        let cookie = user.and_then(|u| self.session_cookie(table, &u.name, u.generation, ctx.ex));
        let Some(cookie) = cookie else {
            return self.login_page(
                ctx,
                Status::Ok,
                return_target,
                Some("Wrong username or password."),
                Outcome::LoginFailed,
                out,
            );
        };
        let mut clear_csrf = [0u8; 128];
        let clear_len = {
            let mut c = crate::http::Cursor::new(&mut clear_csrf);
            let name = csrf_cookie_name(self.secure(ctx.ex));
            let secure = if self.secure(ctx.ex) { "; Secure" } else { "" };
            c.put_str(name)
                .put(b"=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict")
                .put_str(secure);
            c.len()
        };
        let close = close_after(head, true);
        let mut w = ResponseWriter::new(out, Status::SeeOther);
        w.header("Location", return_target)
            .header("Set-Cookie", &cookie)
            .header("Set-Cookie", &clear_csrf[..clear_len]);
        let len = w.finish_empty(close);
        match len {
            Ok(len) => Decision::Respond(Respond {
                consumed: total,
                len,
                close,
                outcome: Outcome::LoggedIn,
                users_changed: false,
            }),
            Err(_) => refuse(Refusal::OutputTooSmall, Status::InternalServerError, 0, out),
        }
    }

    /// The body of a form POST (login, account): at most [`MAX_FORM_LEN`] bytes with a
    /// `Content-Length`; `Err` is the decision to return instead (read more, or refuse).
    #[expect(
        clippy::result_large_err,
        reason = "the decision is returned as it is, moved once"
    )]
    fn form_body<'b>(&self, ctx: &Ctx<'_, 'b>, out: &mut [u8]) -> Result<&'b [u8], Decision> {
        let head = ctx.head;
        let body_len = match head.body() {
            BodyFraming::None => 0,
            BodyFraming::Length(n) if n <= MAX_FORM_LEN as u64 => n as usize,
            BodyFraming::Length(_) => {
                return Err(refuse(
                    Refusal::FormTooLarge,
                    Status::ContentTooLarge,
                    head.head_len(),
                    out,
                ));
            }
            BodyFraming::Chunked | BodyFraming::UntilClose => {
                return Err(refuse(
                    Refusal::LengthRequired,
                    Status::LengthRequired,
                    head.head_len(),
                    out,
                ));
            }
        };
        let total = head.head_len() + body_len;
        ctx.ex
            .bytes
            .get(head.head_len()..total)
            .ok_or(Decision::ReadBody {
                total,
                send_continue: head.expect_continue(),
            })
    }

    /// A fresh CSRF token and the `Set-Cookie` value that carries it (see the `form` module).
    fn issue_csrf(&self, ex: &Exchange<'_>) -> (CsrfToken, heapless::Vec<u8, 160>) {
        let nonce: [u8; 16] = derive(ex.random, b"csrf nonce");
        let token = issue_csrf_token(self.keys, &nonce);
        let mut cookie = [0u8; 160];
        let name = csrf_cookie_name(self.secure(ex));
        let secure = if self.secure(ex) { "; Secure" } else { "" };
        let cookie_len = {
            let mut c = crate::http::Cursor::new(&mut cookie);
            c.put_str(name)
                .put(b"=")
                .put_str(&token)
                .put(b"; Path=/; Max-Age=")
                .put_u64(CSRF_TTL_SECS)
                .put(b"; HttpOnly; SameSite=Strict")
                .put_str(secure);
            c.len()
        };
        (
            token,
            heapless::Vec::from_slice(&cookie[..cookie_len]).unwrap_or_default(),
        )
    }

    /// Both CSRF checks of a form POST (see the `form` module): the request came from this
    /// site, and the form's token equals the CSRF cookie and carries a valid signature.
    fn csrf_ok(&self, ctx: &Ctx<'_, '_>, body: &[u8]) -> bool {
        let mut csrf_buf = [0u8; 2 * CSRF_TOKEN_LEN];
        let form_token = form_field(body, "csrf", &mut csrf_buf).ok().flatten();
        let cookie_token = ctx
            .head
            .header_values("cookie")
            .find_map(|v| cookie_value(v, csrf_cookie_name(self.secure(ctx.ex))));
        same_origin(ctx)
            && match (form_token, cookie_token) {
                (Some(f), Some(c)) => csrf_tokens_match(self.keys, f, c),
                _ => false,
            }
    }

    /// The logout endpoint's page for a `GET`: a button that posts the logout form with a
    /// fresh CSRF token (and again, with `error`, for a form that failed the checks).
    fn logout_page(
        &self,
        ctx: &Ctx<'_, '_>,
        status: Status,
        error: Option<&str>,
        out: &mut [u8],
    ) -> Decision {
        let outcome = match error {
            Some(_) => Outcome::CsrfRejected,
            None => Outcome::LogoutPage,
        };
        self.form_page(ctx, status, None, error, outcome, out)
    }

    /// Logging out: a `POST` of the logout page's form, with the login form's CSRF checks (the
    /// request came from this site, and carries the signed double-submit token), so that no
    /// other site can log a user out with a link, an image or a form of its own.
    fn logout(&self, ctx: &Ctx<'_, '_>, out: &mut [u8]) -> Decision {
        let body = match self.form_body(ctx, out) {
            Ok(body) => body,
            Err(decision) => return decision,
        };
        if !self.csrf_ok(ctx, body) {
            return self.logout_page(
                ctx,
                Status::Forbidden,
                Some("This sign-out form has expired. Please try again."),
                out,
            );
        }
        let mut cookie = [0u8; MAX_SET_COOKIE_LEN];
        let cookie_len = session::write_clear_cookie(&mut cookie, self.secure(ctx.ex)).unwrap_or(0);
        let mut path = [0u8; 256];
        let path_len = self.login_path(&mut path);
        let location: &[u8] = match self.config.logout_url {
            Some(url) if !url.is_empty() && url.bytes().all(|b| (0x21..=0x7e).contains(&b)) => {
                url.as_bytes()
            }
            _ => &path[..path_len],
        };
        let close = close_after(ctx.head, true);
        let mut w = ResponseWriter::new(out, Status::SeeOther);
        w.header("Location", location)
            .header("Set-Cookie", &cookie[..cookie_len]);
        match w.finish_empty(close) {
            Ok(len) => Decision::Respond(Respond {
                consumed: ctx.head.head_len() + body.len(),
                len,
                close,
                outcome: Outcome::LoggedOut,
                users_changed: false,
            }),
            Err(_) => refuse(Refusal::OutputTooSmall, Status::InternalServerError, 0, out),
        }
    }

    /// Forward-auth (Caddy `forward_auth`, Traefik `ForwardAuth`, nginx `auth_request`): the
    /// proxy asks whether the request it describes may pass.
    ///
    /// The identity header is *not* read here even from a trusted source: a proxy doing
    /// forward-auth passes the client's own headers along, so a `Remote-User` in this request
    /// is the client's, not the proxy's word. For the same reason the original request is read
    /// only from the headers the calling kind of proxy sets (see [`ForwardAuthKind`]), only
    /// from a caller with forwarding trust, and anything ambiguous is refused.
    fn forward_auth<const U: usize, const T: usize, const C: usize, const A: usize>(
        &self,
        ctx: &Ctx<'_, '_>,
        kind: ForwardAuthKind,
        shared: &mut Shared<'_, U, T, C, A>,
        verified: Option<(&PasswordCheck, bool)>,
        out: &mut [u8],
    ) -> Decision {
        let head = ctx.head;
        let (uri, method) = match original_request(ctx, kind, self.config.user_header) {
            Ok(original) => original,
            Err(refusal) => {
                return respond_error(
                    ctx,
                    Status::Forbidden,
                    Outcome::ForwardAuthRefused(refusal),
                    out,
                );
            }
        };
        // The canonical original URI lives at the end of `out`; the answer is written before it.
        let scratch_len = (uri.len() * 3 + 2).min(out.len() / 2);
        let split = out.len() - scratch_len;
        let (out, scratch) = out.split_at_mut(split);
        let original = core::str::from_utf8(uri)
            .ok()
            .and_then(|u| canonicalize(u, scratch).ok());
        let Some(original) = original else {
            return respond_error(ctx, Status::Forbidden, Outcome::ForwardAuthDenied, out);
        };
        let close = close_after(head, false);
        // The proxy hands the app the URI as the client wrote it, not gatehouse's canonical
        // form: `/app/../share/x` is public to gatehouse but may be `/app/…` to the app's
        // router. Only a URI that is already canonical may open a public door.
        let raw_path = uri.split(|&b| b == b'?').next().unwrap_or(uri);
        let canonical = raw_path == original.path().as_bytes();
        // A proxy routes `/_GATEHOUSE/x` or `/%5Fgatehouse/x` to the app or to gatehouse
        // depending on how its matcher compares paths; only the exact configured spelling,
        // strictly below the prefix, is surely gatehouse's own (Caddy's `handle /_gatehouse/*`
        // leaves the bare `/_gatehouse` to the app). Anything else is judged like an app path.
        let class = match self.config.paths.classify(original.path()) {
            PathClass::Reserved if !strictly_below(original.path(), self.config.paths.reserved) => {
                PathClass::Protected
            }
            class => class,
        };
        match class {
            PathClass::Public | PathClass::Reserved if canonical => {
                let mut w = ResponseWriter::new(out, Status::Ok);
                self.forward_auth_identity(&mut w, None);
                return finish(
                    ctx,
                    w.finish_empty(close),
                    close,
                    Outcome::ForwardAuthAllowed,
                );
            }
            _ => {}
        }
        match self.authenticate(ctx, shared, verified, false) {
            Auth::User { name, admin, .. } => {
                let mut w = ResponseWriter::new(out, Status::Ok);
                self.forward_auth_identity(&mut w, Some((&name, admin)));
                finish(
                    ctx,
                    w.finish_empty(close),
                    close,
                    Outcome::ForwardAuthAllowed,
                )
            }
            Auth::Verify(check) => Decision::VerifyPassword(check),
            Auth::InFlight => Decision::WaitForCheck,
            Auth::Throttled(secs) => respond_too_many(ctx, secs, out),
            Auth::Busy => respond_busy(ctx, out),
            Auth::ProvisionFailed(e) => respond_error(
                ctx,
                Status::ServiceUnavailable,
                Outcome::ProvisionFailed(e),
                out,
            ),
            Auth::BasicFailed | Auth::Anonymous => {
                if kind != ForwardAuthKind::Nginx && is_browser(head, method) {
                    let d = self.redirect_to_login(ctx, original.as_str().as_bytes(), out);
                    match d {
                        Decision::Respond(mut r) => {
                            r.outcome = Outcome::ForwardAuthDenied;
                            Decision::Respond(r)
                        }
                        other => other,
                    }
                } else {
                    respond_error(ctx, Status::Unauthorized, Outcome::ForwardAuthDenied, out)
                }
            }
        }
    }
}

/// `path` lies under `prefix` (spelled exactly) and is not the prefix itself: `/_gatehouse/x`,
/// never `/_gatehouse` or `/_gatehouse/`.
fn strictly_below(path: &str, prefix: &str) -> bool {
    let base = prefix.trim_end_matches('/');
    path.strip_prefix(base)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|rest| !rest.is_empty())
}

/// The identity headers of a forward-auth `200` besides the configured user header.
const FORWARD_AUTH_IDENTITY: [&str; 3] = ["Remote-Name", "Remote-Email", "Remote-Groups"];

impl<const S: usize> Gateway<'_, S> {
    /// The identity headers of a forward-auth `200`: every one of them, empty when gatehouse
    /// vouches for nothing. The proxy copies them onto the client's request; a header left
    /// out of the answer could leave the client's own copy in place (a proxy configured to
    /// copy only what the answer has, or an nginx that sets only some of them).
    fn forward_auth_identity(&self, w: &mut ResponseWriter<'_>, user: Option<(&str, bool)>) {
        let (name, admin) = user.unwrap_or(("", false));
        w.header(self.config.user_header, name.as_bytes());
        let groups: &[u8] = if admin { b"admins" } else { b"" };
        for (header, value) in FORWARD_AUTH_IDENTITY
            .into_iter()
            .zip([&b""[..], b"", groups])
        {
            if !header.eq_ignore_ascii_case(self.config.user_header) {
                w.header(header, value);
            }
        }
    }
}

struct Who {
    name: Username,
    admin: bool,
    via_basic: bool,
    /// Renew the session (the table id and the user's generation): the Set-Cookie is written
    /// straight into the [`Forward`], not carried here.
    renew: Option<(u64, u32)>,
    users_changed: bool,
}

struct Ctx<'c, 'b> {
    ex: &'c Exchange<'b>,
    head: &'c RequestHead<'b>,
    target: &'c str,
    /// Identity trust: the peer is in `trusted_sources`.
    trusted: bool,
    /// Forwarding trust: the peer is in `trusted_sources` or `trusted_proxies`.
    forwarding: bool,
    /// The client for throttling: the socket peer, or the client a proxy with forwarding
    /// trust reported.
    client: Peer,
}

/// 32 bytes of SHA-256(label, random) cut to `N`: independent values from one random input.
fn derive<const N: usize>(random: &[u8; RANDOM_LEN], label: &[u8]) -> [u8; N] {
    let digest = Sha256::new()
        .chain_update(b"gatehouse derive\0")
        .chain_update(label)
        .chain_update(random)
        .finalize();
    let mut out = [0u8; N];
    let n = N.min(digest.len());
    out[..n].copy_from_slice(&digest[..n]);
    out
}

/// The original request a forward-auth call describes: its URI and method (`GET` when the
/// proxy sends none), from the caller's kind of headers only.
fn original_request<'b>(
    ctx: &Ctx<'_, 'b>,
    kind: ForwardAuthKind,
    user_header: &str,
) -> Result<(&'b [u8], &'b str), ForwardAuthRefusal> {
    if !ctx.forwarding {
        return Err(ForwardAuthRefusal::UntrustedCaller);
    }
    let head = ctx.head;
    // The answer names every one of `FORWARD_AUTH_IDENTITY` (empty when nobody), so the proxy
    // overwrites the client's copies of those exact names; any other spelling would reach the
    // app untouched.
    let overwritten = |name: &str| {
        name.eq_ignore_ascii_case(user_header)
            || FORWARD_AUTH_IDENTITY
                .iter()
                .any(|h| name.eq_ignore_ascii_case(h))
    };
    if head
        .headers()
        .iter()
        .any(|h| is_identity_header(h.name.as_bytes(), user_header) && !overwritten(h.name))
    {
        return Err(ForwardAuthRefusal::IdentityLookalike);
    }
    if kind
        .foreign_headers()
        .iter()
        .any(|name| head.header_values(name).next().is_some())
    {
        return Err(ForwardAuthRefusal::ForeignHeaders);
    }
    let one = |name: &str| {
        head.single_header(name)
            .map_err(|()| ForwardAuthRefusal::Repeated)
    };
    let (uri_name, method_name, others) = kind.own_headers();
    let uri = one(uri_name)?;
    let method = one(method_name)?;
    for name in others {
        one(name)?;
    }
    let uri = uri.ok_or(ForwardAuthRefusal::MissingUri)?;
    let method = method
        .and_then(|m| core::str::from_utf8(m).ok())
        .unwrap_or("GET");
    Ok((uri, method))
}

/// gatehouse's own endpoint names. They are matched ASCII-case-insensitively, like the
/// reserved prefix, because the proxies in front route paths that way (Caddy's `handle
/// /_gatehouse/*` takes `/_GateHouse/Login` too).
const ENDPOINTS: &[&str] = &[
    "login",
    "logout",
    "auth",
    "auth/nginx",
    "health",
    "metrics",
    #[cfg(feature = "account")]
    ACCOUNT_ENDPOINT,
];

/// The endpoint's name as gatehouse spells it, or the name as given when it is none of them.
fn endpoint_name(name: &str) -> &str {
    ENDPOINTS
        .iter()
        .copied()
        .find(|known| known.eq_ignore_ascii_case(name))
        .unwrap_or(name)
}

/// The client to charge login failures to: the last hop a proxy with forwarding trust
/// reported in `X-Forwarded-For` (a bare address, or with a port as some proxies write it:
/// `192.0.2.7:4711`, `[2001:db8::7]:4711`), else the socket peer.
fn client_peer(head: &RequestHead<'_>, peer: Peer, forwarding: bool) -> Peer {
    if !forwarding {
        return peer;
    }
    let last = head
        .header_values("x-forwarded-for")
        .flat_map(list_tokens)
        .last()
        .and_then(|t| core::str::from_utf8(t).ok())
        .and_then(|t| Peer::parse(t).ok())
        .filter(|p| matches!(p, Peer::Ip(_)));
    last.unwrap_or(peer)
}

/// Only WebSocket is tunnelled. Inside a tunnel gatehouse judges nothing more, so a protocol
/// that carries requests of its own (`h2c`: HTTP/2 streams, each a request gatehouse would never
/// see) must not get one; any other `Upgrade` is dropped and the request forwarded as plain
/// HTTP/1.1.
fn websocket_upgrade(head: &RequestHead<'_>) -> bool {
    head.upgrade().is_some_and(|value| {
        let mut protocols = list_tokens(value);
        protocols
            .next()
            .is_some_and(|p| p.eq_ignore_ascii_case(b"websocket"))
            && protocols.next().is_none()
    })
}

/// `Authorization: Basic base64(user:password)` → (user, password).
fn basic_credentials<'d>(value: &[u8], decoded: &'d mut [u8]) -> Option<(&'d str, &'d [u8])> {
    let (scheme, rest) = value.split_at(value.iter().position(|&b| b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let raw = Base64::decode(rest.trim_ascii(), decoded).ok()?;
    let colon = raw.iter().position(|&b| b == b':')?;
    let (name, password) = raw.split_at(colon);
    Some((core::str::from_utf8(name).ok()?, password.get(1..)?))
}

/// Browsers navigating (GET/HEAD that accept HTML) are redirected to the login page; API
/// clients, scripts and apps get a 401 they can act on.
fn is_browser(head: &RequestHead<'_>, method: &str) -> bool {
    if !matches!(method, "GET" | "HEAD") {
        return false;
    }
    head.header_values("accept")
        .flat_map(list_tokens)
        .any(|range| {
            let mut parts = range.split(|&b| b == b';');
            let media = parts.next().unwrap_or(&[]).trim_ascii();
            let refused = parts.any(|p| {
                let p = p.trim_ascii();
                p.len() >= 2
                    && p[..2].eq_ignore_ascii_case(b"q=")
                    && p[2..].iter().all(|&b| b == b'0' || b == b'.')
            });
            media.eq_ignore_ascii_case(b"text/html") && !refused
        })
}

/// CSRF check 1: fetch metadata and `Origin` must say the form came from this site.
fn same_origin(ctx: &Ctx<'_, '_>) -> bool {
    let head = ctx.head;
    if let Some(site) = head.header_values("sec-fetch-site").next()
        && !(site.eq_ignore_ascii_case(b"same-origin") || site.eq_ignore_ascii_case(b"none"))
    {
        return false;
    }
    match head.header_values("origin").next() {
        None => true,
        Some(origin) => {
            let host = origin
                .strip_prefix(b"https://")
                .or_else(|| origin.strip_prefix(b"http://"));
            // The host the browser used, as a proxy with forwarding trust reports it.
            let expected = if ctx.forwarding {
                head.header_values("x-forwarded-host")
                    .next()
                    .or(head.host())
            } else {
                head.host()
            };
            matches!((host, expected), (Some(h), Some(e)) if h.eq_ignore_ascii_case(e))
        }
    }
}

/// Whether the browser says the request comes from this site: [`same_origin`], and it
/// names an origin at all (`Sec-Fetch-Site` or `Origin`). A browser sends neither on a
/// top-level navigation from another site in the browsers that predate fetch metadata.
fn names_this_origin(ctx: &Ctx<'_, '_>) -> bool {
    let head = ctx.head;
    let named = head.header_values("sec-fetch-site").next().is_some()
        || head.header_values("origin").next().is_some();
    named && same_origin(ctx)
}

/// The request's own query parameter `name`, form-decoded into `buf`.
fn query_param<'o>(target: &str, name: &str, buf: &'o mut [u8]) -> Option<&'o [u8]> {
    let query = target.split_once('?')?.1;
    form_field(query.as_bytes(), name, buf).ok().flatten()
}

/// When the request's body is in `bytes`, the bytes of head and body.
fn consumed_with_body(head: &RequestHead<'_>, available: usize) -> Option<usize> {
    match head.body() {
        BodyFraming::None => Some(head.head_len()),
        BodyFraming::Length(n) => {
            let total = head.head_len().checked_add(usize::try_from(n).ok()?)?;
            (total <= available).then_some(total)
        }
        _ => None,
    }
}

/// Close unless the client keeps the connection and no unread body follows the head.
fn close_after(head: &RequestHead<'_>, body_consumed: bool) -> bool {
    !head.keep_alive() || (!body_consumed && head.body() != BodyFraming::None)
}

/// For a HEAD request, only the head of a response written into `out`.
fn head_only(head: &RequestHead<'_>, out: &[u8], len: usize) -> usize {
    if !head.is_head() {
        return len;
    }
    out[..len]
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(len, |p| p + 4)
}

fn finish(
    ctx: &Ctx<'_, '_>,
    written: Result<usize, crate::http::OutputFull>,
    close: bool,
    outcome: Outcome,
) -> Decision {
    match written {
        Ok(len) => Decision::Respond(Respond {
            consumed: ctx.head.head_len(),
            len,
            close,
            outcome,
            users_changed: false,
        }),
        Err(_) => Decision::Respond(Respond {
            consumed: ctx.head.head_len(),
            len: 0,
            close: true,
            outcome: Outcome::Refused(Refusal::OutputTooSmall),
            users_changed: false,
        }),
    }
}

fn respond_error(ctx: &Ctx<'_, '_>, status: Status, outcome: Outcome, out: &mut [u8]) -> Decision {
    let close = close_after(ctx.head, false);
    let written = write_error(status, close, out).map(|n| head_only(ctx.head, out, n));
    finish(ctx, written, close, outcome)
}

fn respond_too_many(ctx: &Ctx<'_, '_>, seconds: u64, out: &mut [u8]) -> Decision {
    let close = close_after(ctx.head, false);
    let mut w = ResponseWriter::new(out, Status::TooManyRequests);
    w.header_u64("Retry-After", seconds.max(1))
        .header("WWW-Authenticate", BASIC_CHALLENGE);
    let written = w.finish(
        "text/plain; charset=utf-8",
        b"429 Too Many Requests\n",
        close,
    );
    finish(ctx, written, close, Outcome::Throttled)
}

/// Every password check allowed at once is running: come back in a second.
fn respond_busy(ctx: &Ctx<'_, '_>, out: &mut [u8]) -> Decision {
    let close = close_after(ctx.head, false);
    let mut w = ResponseWriter::new(out, Status::ServiceUnavailable);
    w.header_u64("Retry-After", 1);
    let written = w
        .finish(
            "text/plain; charset=utf-8",
            b"503 Service Unavailable\n",
            close,
        )
        .map(|n| head_only(ctx.head, out, n));
    finish(ctx, written, close, Outcome::PasswordChecksBusy)
}

/// The shell does not know the time yet: no session can be issued or believed. A board
/// sets its clock within a minute of boot when its time server answers.
fn respond_time_unknown(ctx: &Ctx<'_, '_>, out: &mut [u8]) -> Decision {
    let close = close_after(ctx.head, false);
    let mut w = ResponseWriter::new(out, Status::ServiceUnavailable);
    w.header_u64("Retry-After", 60);
    let written = w
        .finish(
            "text/plain; charset=utf-8",
            b"503 Service Unavailable: this gateway does not know the time yet, so it cannot \
              sign anyone in; try again in a minute.\n",
            close,
        )
        .map(|n| head_only(ctx.head, out, n));
    finish(ctx, written, close, Outcome::TimeUnknown)
}

/// A refusal before (or instead of) judging: the error page, then close.
fn refuse(refusal: Refusal, status: Status, consumed: usize, out: &mut [u8]) -> Decision {
    let len = write_error(status, true, out).unwrap_or(0);
    Decision::Respond(Respond {
        consumed,
        len,
        close: true,
        outcome: Outcome::Refused(refusal),
        users_changed: false,
    })
}

#[cfg(test)]
mod test_world;
#[cfg(test)]
mod tests;
