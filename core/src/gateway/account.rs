//! The account page, `/_gatehouse/account`: a signed-in user's own app passwords (list, create,
//! revoke), their password, and "log out everywhere".
//!
//! Plain HTML like the login page (the same style, CSP and escaping, no JavaScript), so it
//! works in any browser and on a phone. Every action is a form POST to the same address with
//! a `do` field (`create`, `revoke`, `password`, `logout-everywhere`); the answer is the page
//! again with what happened, so a refresh never repeats an action silently.
//!
//! # Who may use it
//!
//! Only a browser with a valid **session cookie** (signed in through the login page). HTTP
//! Basic does not count: a browser keeps sending Basic credentials it was once given and
//! cannot sign out of them, and an app password itself works as a Basic password, so a lost
//! device's app password must not be able to make more of them or change the login password.
//! Identity headers from a trusted proxy do not count either (such a user never learnt the
//! password gatehouse made for them, and the proxy's own session is not one gatehouse can
//! end): give them app passwords with `gatehouse users app-password add`. An anonymous GET is
//! sent to the login page, which returns here.
//!
//! # What every POST must pass
//!
//! The same CSRF checks as the login form (see the `form` module): `Sec-Fetch-Site` and
//! `Origin` say the form came from this site, and the signed double-submit token of the page's
//! hidden field equals the `gatehouse_csrf` cookie (compared in constant time). Then a valid
//! session. Each refusal is its own [`AccountOutcome`].
//!
//! # Creating an app password
//!
//! An app password works wherever the login password does (HTTP Basic, Subsonic), for as long
//! as it lives: a stolen session (a browser left signed in) must not be able to mint one. So
//! the form asks for the current password again, checked off the lock exactly like a password
//! change's (a [`Decision::VerifyPassword`], charged to the login throttle), and the app
//! password is made only in [`Gateway::finish`] of a right one.
//!
//! # Changing the password
//!
//! Checking the current password and hashing the new one are slow on purpose, so they happen
//! outside the shell's lock like a login: the POST returns [`Decision::VerifyPassword`] with a
//! check that also carries the new password and a salt; [`PasswordCheck::verify`] hashes the
//! new password once the current one is right, and [`Gateway::finish`] stores it, only if the
//! user's record is still the one the check was made against. The attempt is charged to the
//! login throttle like a login (a stolen session cannot guess the password faster). The
//! change bumps the user's generation, which signs out every other session, and this browser
//! gets a fresh session cookie of the new generation. Non-admins are refused when the
//! deployment disables user editing ([`UserTable::may_change_password`]).

use core::cell::OnceCell;
use core::fmt::Write as _;

use super::page::{Html, html_response, page_start};
use super::*;
use crate::http::OutputFull;
use crate::password::PasswordHashError;
use crate::time::utc_text;
use crate::users::{APP_PASSWORD_RANDOM_LEN, AppPasswordError};

/// The account page's endpoint under the reserved prefix.
pub const ACCOUNT_ENDPOINT: &str = "account";

/// What the account page did, for logs and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountOutcome {
    /// The page was shown.
    Page,
    /// A POST without a valid session: refused, the browser is sent to the login page.
    NoSession,
    /// A POST that failed the CSRF checks: refused.
    CsrfRejected,
    /// A POST with missing, repeated or malformed fields, or an unknown `do`.
    BadForm,
    /// An app password was created (its secret shown once).
    Created,
    /// An app password could not be created.
    CreateFailed(AppPasswordError),
    /// An app password was revoked.
    Revoked,
    /// An app password could not be revoked.
    RevokeFailed(AppPasswordError),
    /// The password was changed; other sessions were signed out.
    PasswordChanged,
    /// The current password given was wrong.
    WrongPassword,
    /// The new password and its confirmation differ.
    PasswordMismatch,
    /// The table refused the change (user editing disabled, hashing failed).
    PasswordRefused(UserError),
    /// Every session of the user was revoked, this one included.
    LoggedOutEverywhere,
}

/// The new password of a password change, hashed off the lock by [`PasswordCheck::verify`].
pub(super) struct NewPassword {
    password: heapless::Vec<u8, MAX_PASSWORD_LEN>,
    salt: [u8; SALT_LEN],
    iterations: u32,
    hash: OnceCell<Result<PasswordHash, PasswordHashError>>,
}

impl NewPassword {
    /// The slow part, run by the shell outside its lock.
    pub(super) fn hash(&self) {
        self.hash
            .get_or_init(|| password::hash_password(&self.password, &self.salt, self.iterations));
    }
}

impl Drop for NewPassword {
    fn drop(&mut self) {
        self.password.iter_mut().for_each(|b| *b = 0);
    }
}

/// Most bytes of a message the page shows (a label escapes inside it later).
const MESSAGE_LEN: usize = 192;
type Message = heapless::String<MESSAGE_LEN>;

fn message(args: core::fmt::Arguments<'_>) -> Message {
    let mut m = Message::new();
    // A message cut short is still a message.
    let _ = m.write_fmt(args);
    m
}

/// What one answer of the account page shows and does.
struct Answer<'a> {
    status: Status,
    error: Option<&'a str>,
    notice: Option<&'a str>,
    /// A new app password: label and secret, shown this once.
    created: Option<(&'a str, &'a str)>,
    /// A fresh session cookie (after a password change).
    session_cookie: Option<&'a [u8]>,
    outcome: Outcome,
    users_changed: bool,
}

impl<'a> Answer<'a> {
    fn plain(status: Status, outcome: AccountOutcome) -> Self {
        Answer {
            status,
            error: None,
            notice: None,
            created: None,
            session_cookie: None,
            outcome: Outcome::Account(outcome),
            users_changed: false,
        }
    }

    fn error(status: Status, outcome: AccountOutcome, text: &'a str) -> Self {
        Answer {
            error: Some(text),
            ..Self::plain(status, outcome)
        }
    }

    fn done(outcome: AccountOutcome, text: &'a str) -> Self {
        Answer {
            notice: Some(text),
            users_changed: true,
            ..Self::plain(Status::Ok, outcome)
        }
    }
}

/// Extra style of the account page (a wider card, lists, inline forms).
const STYLE: &str = "main.wide{width:min(40rem,calc(100% - 2rem));margin:1rem 0}\
h2{font-size:1.15rem;margin:2rem 0 .5rem}\
ul.apps{list-style:none;padding:0;margin:0}\
ul.apps li{padding:.7rem 0;border-top:1px solid #a1a1aa;display:flex;flex-wrap:wrap;gap:.5rem;align-items:center;justify-content:space-between}\
form.inline button{width:auto;margin:0;padding:.5rem 1rem}\
button.danger{background:#b91c1c}\
.notice{margin:0 0 .5rem;padding:.7rem;border-radius:.4rem;background:#f0fdf4;color:#166534;border:1px solid #86efac}\
code.secret{display:block;font:1.25rem/1.4 ui-monospace,monospace;padding:.7rem;word-break:break-all;user-select:all;border:1px dashed #71717a;border-radius:.4rem}\
small{opacity:.8}\n";

/// The page itself.
struct AccountPage<'a, const U: usize, const A: usize> {
    action: &'a str,
    logout: &'a str,
    csrf: &'a str,
    name: &'a str,
    users: &'a UserTable<U, A>,
    editing_allowed: bool,
    answer: &'a Answer<'a>,
}

impl<const U: usize, const A: usize> AccountPage<'_, U, A> {
    fn html(&self, w: &mut Html<'_>) -> Result<(), OutputFull> {
        page_start(w, "Account", "wide", STYLE)?;
        w.raw(b"<p>Signed in as <strong>")?;
        w.text(self.name.as_bytes())?;
        w.raw(b"</strong>. <a href=\"")?;
        w.text(self.logout.as_bytes())?;
        w.raw(b"\">Sign out</a></p>\n")?;
        if let Some(e) = self.answer.error {
            w.raw(b"<p class=\"error\" role=\"alert\">")?;
            w.text(e.as_bytes())?;
            w.raw(b"</p>\n")?;
        }
        if let Some(n) = self.answer.notice {
            w.raw(b"<p class=\"notice\" role=\"status\">")?;
            w.text(n.as_bytes())?;
            w.raw(b"</p>\n")?;
        }
        if let Some((label, secret)) = self.answer.created {
            w.raw(b"<section aria-labelledby=\"created\">\n<h2 id=\"created\">New app password &ldquo;")?;
            w.text(label.as_bytes())?;
            w.raw(b"&rdquo;</h2>\n<p><strong>Copy it now: it will not be shown again.</strong></p>\n<p><code class=\"secret\" id=\"secret\">")?;
            w.text(secret.as_bytes())?;
            w.raw(b"</code></p>\n<p>In the app, sign in as <strong>")?;
            w.text(self.name.as_bytes())?;
            w.raw(b"</strong> with this as the password.</p>\n</section>\n")?;
        }

        w.raw(b"<h2>App passwords</h2>\n<p><small>For music (Subsonic) apps and other programs: each gets a password of its own, which you can revoke alone. Your password below stays yours.</small></p>\n")?;
        let mut apps = self.users.app_passwords(self.name).peekable();
        if apps.peek().is_none() {
            w.raw(b"<p>No app passwords yet.</p>\n")?;
        } else {
            w.raw(b"<ul class=\"apps\">\n")?;
            for app in apps {
                w.raw(b"<li><span><strong>")?;
                w.text(app.label.as_bytes())?;
                w.raw(b"</strong><br><small>created ")?;
                w.text(utc_text(app.created).as_bytes())?;
                w.raw(b", last used ")?;
                match app.last_used {
                    Some(t) => w.text(utc_text(t).as_bytes())?,
                    None => w.raw(b"never")?,
                }
                w.raw(b"</small></span>\n")?;
                self.form_start(w, "revoke", "inline")?;
                w.raw(b"<input type=\"hidden\" name=\"label\" value=\"")?;
                w.text(app.label.as_bytes())?;
                w.raw(b"\">\n<button type=\"submit\" class=\"danger\">Revoke</button>\n</form></li>\n")?;
            }
            w.raw(b"</ul>\n")?;
        }
        self.form_start(w, "create", "")?;
        w.raw(b"<label for=\"label\">Name of a new app password</label>\n<input id=\"label\" name=\"label\" maxlength=\"32\" placeholder=\"phone\" autocomplete=\"off\" autocapitalize=\"none\" required>\n<label for=\"create-current\">Your password</label>\n<input id=\"create-current\" name=\"current\" type=\"password\" autocomplete=\"current-password\" required>\n<button type=\"submit\">Create app password</button>\n</form>\n")?;

        w.raw(b"<h2>Password</h2>\n")?;
        if self.editing_allowed {
            self.form_start(w, "password", "")?;
            w.raw(b"<label for=\"current\">Current password</label>\n<input id=\"current\" name=\"current\" type=\"password\" autocomplete=\"current-password\" required>\n<label for=\"new\">New password</label>\n<input id=\"new\" name=\"new\" type=\"password\" autocomplete=\"new-password\" required>\n<label for=\"confirm\">New password again</label>\n<input id=\"confirm\" name=\"confirm\" type=\"password\" autocomplete=\"new-password\" required>\n<button type=\"submit\">Change password</button>\n</form>\n")?;
        } else {
            w.raw(b"<p>")?;
            w.text(EDITING_DISABLED.as_bytes())?;
            w.raw(b"</p>\n")?;
        }

        w.raw(b"<h2>Sessions</h2>\n")?;
        self.form_start(w, "logout-everywhere", "")?;
        w.raw(b"<p><small>Signs out every browser and device that signed in with your password, this one included. App passwords keep working.</small></p>\n<button type=\"submit\" class=\"danger\">Log out everywhere</button>\n</form>\n</main>\n</body>\n</html>\n")
    }

    /// `<form>` posting `do=action` with the CSRF token.
    fn form_start(&self, w: &mut Html<'_>, action: &str, class: &str) -> Result<(), OutputFull> {
        w.raw(b"<form method=\"post\" action=\"")?;
        w.text(self.action.as_bytes())?;
        if !class.is_empty() {
            w.raw(b"\" class=\"")?;
            w.text(class.as_bytes())?;
        }
        w.raw(b"\">\n<input type=\"hidden\" name=\"csrf\" value=\"")?;
        w.text(self.csrf.as_bytes())?;
        w.raw(b"\">\n<input type=\"hidden\" name=\"do\" value=\"")?;
        w.text(action.as_bytes())?;
        w.raw(b"\">\n")
    }
}

const EDITING_DISABLED: &str =
    "Password changes are turned off on this server: ask an administrator to change it.";

/// The signed-in user of a request: a valid session cookie, nothing else.
struct SignedIn {
    name: Username,
    admin: bool,
}

/// Whether the request names the site it came from: browsers send `Origin` (and
/// `Sec-Fetch-Site`) with every form POST; whether it is this site is `csrf_ok`'s check.
fn says_where_it_came_from(ctx: &Ctx<'_, '_>) -> bool {
    let head = ctx.head;
    head.header_values("origin").next().is_some()
        || head.header_values("sec-fetch-site").next().is_some()
}

impl<const S: usize> Gateway<'_, S> {
    pub(super) fn account<const U: usize, const T: usize, const C: usize, const A: usize>(
        &self,
        ctx: &Ctx<'_, '_>,
        shared: &mut Shared<'_, U, T, C, A>,
        verified: Option<(&PasswordCheck, bool)>,
        out: &mut [u8],
    ) -> Decision {
        match ctx.head.method() {
            "GET" | "HEAD" => match self.signed_in(ctx, shared.users) {
                Some(user) => self.account_page(
                    ctx,
                    shared.users,
                    &user,
                    &Answer::plain(Status::Ok, AccountOutcome::Page),
                    out,
                ),
                None => self.account_to_login(ctx, Outcome::RedirectedToLogin, out),
            },
            "POST" => self.account_post(ctx, shared, verified, out),
            _ => respond_error(
                ctx,
                Status::MethodNotAllowed,
                Outcome::MethodNotAllowed,
                out,
            ),
        }
    }

    fn signed_in<const U: usize, const A: usize>(
        &self,
        ctx: &Ctx<'_, '_>,
        users: &UserTable<U, A>,
    ) -> Option<SignedIn> {
        let name = session::cookie_name(self.secure(ctx.ex));
        let token = session::single_session_cookie(ctx.head.header_values("cookie"), name);
        self.keys
            .verify_user(token.ok()??, ctx.ex.now, users)
            .ok()
            .map(|(_, user)| SignedIn {
                name: user.name.clone(),
                admin: user.admin,
            })
    }

    /// To the login page, which comes back here after signing in.
    fn account_to_login(&self, ctx: &Ctx<'_, '_>, outcome: Outcome, out: &mut [u8]) -> Decision {
        let mut path = [0u8; 256];
        let n = self.endpoint_path(ACCOUNT_ENDPOINT, &mut path);
        match self.redirect_to_login(ctx, &path[..n], out) {
            Decision::Respond(mut r) => {
                r.outcome = outcome;
                Decision::Respond(r)
            }
            other => other,
        }
    }

    fn account_post<const U: usize, const T: usize, const C: usize, const A: usize>(
        &self,
        ctx: &Ctx<'_, '_>,
        shared: &mut Shared<'_, U, T, C, A>,
        verified: Option<(&PasswordCheck, bool)>,
        out: &mut [u8],
    ) -> Decision {
        let body = match self.form_body(ctx, out) {
            Ok(body) => body,
            Err(decision) => return decision,
        };
        let Some(user) = self.signed_in(ctx, shared.users) else {
            return self.account_to_login(ctx, Outcome::Account(AccountOutcome::NoSession), out);
        };
        // Browsers name the page a POST came from (`Origin`, `Sec-Fetch-Site`); a change to
        // the account is refused when neither says, rather than assumed to be same-site.
        if !(says_where_it_came_from(ctx) && self.csrf_ok(ctx, body)) {
            let answer = Answer::error(
                Status::Forbidden,
                AccountOutcome::CsrfRejected,
                "This page had expired, so nothing was done. Please try again.",
            );
            return self.account_page(ctx, shared.users, &user, &answer, out);
        }
        let mut do_buf = [0u8; 24];
        let bad_form = Answer::error(
            Status::BadRequest,
            AccountOutcome::BadForm,
            "That form was incomplete. Please try again.",
        );
        match form_field(body, "do", &mut do_buf) {
            Ok(Some(b"create")) => {
                self.create_app_password(ctx, shared, &user, body, verified, out)
            }
            Ok(Some(b"revoke")) => {
                let mut label_buf = [0u8; 4 * MAX_APP_PASSWORD_LABEL_LEN];
                let label = match form_field(body, "label", &mut label_buf) {
                    Ok(Some(l)) => core::str::from_utf8(l).ok(),
                    _ => None,
                };
                let Some(label) = label else {
                    return self.account_page(ctx, shared.users, &user, &bad_form, out);
                };
                let text;
                let answer = match shared.users.revoke_app_password(&user.name, label) {
                    Ok(()) => {
                        text = message(format_args!(
                            "App password \u{201c}{label}\u{201d} revoked: apps using it are signed out."
                        ));
                        Answer::done(AccountOutcome::Revoked, &text)
                    }
                    Err(e) => {
                        text = message(format_args!(
                            "Could not revoke \u{201c}{label}\u{201d}: {e}."
                        ));
                        Answer::error(Status::Ok, AccountOutcome::RevokeFailed(e), &text)
                    }
                };
                self.account_page(ctx, shared.users, &user, &answer, out)
            }
            Ok(Some(b"password")) => self.change_password(ctx, shared, &user, body, verified, out),
            Ok(Some(b"logout-everywhere")) => match shared.users.bump_generation(&user.name) {
                Ok(_) => self.logged_out_everywhere(ctx, out),
                // Only a user who is gone: their session is no session.
                Err(_) => {
                    self.account_to_login(ctx, Outcome::Account(AccountOutcome::NoSession), out)
                }
            },
            _ => self.account_page(ctx, shared.users, &user, &bad_form, out),
        }
    }

    fn create_app_password<const U: usize, const T: usize, const C: usize, const A: usize>(
        &self,
        ctx: &Ctx<'_, '_>,
        shared: &mut Shared<'_, U, T, C, A>,
        user: &SignedIn,
        body: &[u8],
        verified: Option<(&PasswordCheck, bool)>,
        out: &mut [u8],
    ) -> Decision {
        let mut label_buf = [0u8; 4 * MAX_APP_PASSWORD_LABEL_LEN];
        let label = match form_field(body, "label", &mut label_buf) {
            Ok(Some(l)) => core::str::from_utf8(l).ok(),
            _ => None,
        };
        let mut current_buf = [0u8; MAX_PASSWORD_LEN];
        let current = match form_field(body, "current", &mut current_buf) {
            Ok(Some(c)) if !c.is_empty() => Some(c),
            _ => None,
        };
        let (Some(label), Some(current)) = (label, current) else {
            let answer = Answer::error(
                Status::BadRequest,
                AccountOutcome::BadForm,
                "Please name the new app password and enter your password.",
            );
            return self.account_page(ctx, shared.users, user, &answer, out);
        };
        // The current password first, off the lock; the app password is made once it is right.
        let verdict = verified
            .filter(|(check, _)| check.is_for(Purpose::CreateAppPassword, &user.name, current))
            .map(|(_, ok)| ok);
        match verdict {
            Some(true) => {}
            Some(false) => {
                let answer = Answer::error(
                    Status::Ok,
                    AccountOutcome::WrongPassword,
                    "Your password is wrong: no app password was made.",
                );
                return self.account_page(ctx, shared.users, user, &answer, out);
            }
            None => {
                let handout = self.password_check(
                    Purpose::CreateAppPassword,
                    &user.name,
                    current,
                    ctx,
                    shared,
                );
                return self.current_password_handout(ctx, shared, user, handout, out);
            }
        }
        let random: [u8; APP_PASSWORD_RANDOM_LEN] = derive(ctx.ex.random, b"app password");
        let text;
        let answer = match shared
            .users
            .add_app_password(&user.name, label, &random, ctx.ex.now)
        {
            Ok(secret) => {
                // The secret lives in this answer only: the page is `no-store`.
                return self.account_page(
                    ctx,
                    shared.users,
                    user,
                    &Answer {
                        created: Some((label, secret.as_str())),
                        users_changed: true,
                        ..Answer::plain(Status::Ok, AccountOutcome::Created)
                    },
                    out,
                );
            }
            Err(e) => {
                text = message(format_args!("Could not create the app password: {e}."));
                Answer::error(Status::Ok, AccountOutcome::CreateFailed(e), &text)
            }
        };
        self.account_page(ctx, shared.users, user, &answer, out)
    }

    fn change_password<const U: usize, const T: usize, const C: usize, const A: usize>(
        &self,
        ctx: &Ctx<'_, '_>,
        shared: &mut Shared<'_, U, T, C, A>,
        user: &SignedIn,
        body: &[u8],
        verified: Option<(&PasswordCheck, bool)>,
        out: &mut [u8],
    ) -> Decision {
        let editing = self.config.enable_user_editing;
        if let Err(e) = shared
            .users
            .may_change_password(&user.name, &user.name, editing)
        {
            let text = match e {
                UserError::UserEditingDisabled => EDITING_DISABLED,
                _ => "Your password cannot be changed here.",
            };
            let answer = Answer::error(Status::Forbidden, AccountOutcome::PasswordRefused(e), text);
            return self.account_page(ctx, shared.users, user, &answer, out);
        }
        let mut current_buf = [0u8; MAX_PASSWORD_LEN];
        let mut new_buf = [0u8; MAX_PASSWORD_LEN];
        let mut confirm_buf = [0u8; MAX_PASSWORD_LEN];
        let fields = (
            form_field(body, "current", &mut current_buf),
            form_field(body, "new", &mut new_buf),
            form_field(body, "confirm", &mut confirm_buf),
        );
        let (Ok(Some(current)), Ok(Some(new)), Ok(Some(confirm))) = fields else {
            let answer = Answer::error(
                Status::BadRequest,
                AccountOutcome::BadForm,
                "Please fill in all three fields (passwords are at most 128 bytes).",
            );
            return self.account_page(ctx, shared.users, user, &answer, out);
        };
        if current.is_empty() || new.is_empty() {
            let answer = Answer::error(
                Status::BadRequest,
                AccountOutcome::BadForm,
                "Please fill in all three fields.",
            );
            return self.account_page(ctx, shared.users, user, &answer, out);
        }
        if !bool::from(subtle::ConstantTimeEq::ct_eq(new, confirm)) {
            let answer = Answer::error(
                Status::Ok,
                AccountOutcome::PasswordMismatch,
                "The new password and its confirmation differ: nothing was changed.",
            );
            return self.account_page(ctx, shared.users, user, &answer, out);
        }

        if let Some((check, ok)) = verified
            && check.is_for(Purpose::ChangePassword, &user.name, current)
        {
            if !ok {
                let answer = Answer::error(
                    Status::Ok,
                    AccountOutcome::WrongPassword,
                    "The current password is wrong: nothing was changed.",
                );
                return self.account_page(ctx, shared.users, user, &answer, out);
            }
            let hashed = check.new_password.as_ref().and_then(|n| n.hash.get());
            let result = match hashed {
                Some(Ok(hash)) => {
                    shared
                        .users
                        .change_password(&user.name, &user.name, hash.clone(), editing)
                }
                Some(Err(e)) => Err(UserError::PasswordHash(*e)),
                // The shell did not run the check: nothing to store.
                None => Err(UserError::UnknownUser),
            };
            return match result {
                Ok(generation) => {
                    let table = shared.users.table_id();
                    let cookie = self.session_cookie(table, &user.name, generation, ctx.ex);
                    let answer = Answer {
                        session_cookie: cookie.as_deref(),
                        ..Answer::done(
                            AccountOutcome::PasswordChanged,
                            "Your password was changed. Every other browser and device was signed out; app passwords keep working.",
                        )
                    };
                    self.account_page(ctx, shared.users, user, &answer, out)
                }
                Err(e) => {
                    let answer = Answer::error(
                        Status::Ok,
                        AccountOutcome::PasswordRefused(e),
                        "The new password could not be saved: nothing was changed.",
                    );
                    self.account_page(ctx, shared.users, user, &answer, out)
                }
            };
        }

        let mut new_password = heapless::Vec::new();
        if new_password.extend_from_slice(new).is_err() {
            return self.account_page(
                ctx,
                shared.users,
                user,
                &Answer::plain(Status::BadRequest, AccountOutcome::BadForm),
                out,
            );
        }
        let handout =
            match self.password_check(Purpose::ChangePassword, &user.name, current, ctx, shared) {
                Handout::Check(mut check) => {
                    check.new_password = Some(NewPassword {
                        password: new_password,
                        salt: derive(ctx.ex.random, b"new password salt"),
                        iterations: self.config.password_iterations,
                        hash: OnceCell::new(),
                    });
                    Handout::Check(check)
                }
                other => other,
            };
        self.current_password_handout(ctx, shared, user, handout, out)
    }

    /// What handing out the check of a signed-in user's current password (a password change,
    /// a new app password) came to: the check, or the page saying why not.
    fn current_password_handout<const U: usize, const T: usize, const C: usize, const A: usize>(
        &self,
        ctx: &Ctx<'_, '_>,
        shared: &mut Shared<'_, U, T, C, A>,
        user: &SignedIn,
        handout: Handout,
        out: &mut [u8],
    ) -> Decision {
        match handout {
            Handout::Check(check) => Decision::VerifyPassword(check),
            Handout::Throttled(seconds) => {
                let text = message(format_args!(
                    "Too many failed attempts. Please try again in {} seconds.",
                    seconds.max(1)
                ));
                // Counted as the login throttle's refusal, like a login's.
                let answer = Answer {
                    outcome: Outcome::Throttled,
                    ..Answer::error(
                        Status::TooManyRequests,
                        AccountOutcome::WrongPassword,
                        &text,
                    )
                };
                self.account_page(ctx, shared.users, user, &answer, out)
            }
            Handout::InFlight => Decision::WaitForCheck,
            Handout::Busy => {
                let answer = Answer {
                    outcome: Outcome::PasswordChecksBusy,
                    ..Answer::error(
                        Status::ServiceUnavailable,
                        AccountOutcome::WrongPassword,
                        "The server is busy. Please try again in a moment.",
                    )
                };
                self.account_page(ctx, shared.users, user, &answer, out)
            }
            Handout::Failed => {
                let answer = Answer::error(
                    Status::Ok,
                    AccountOutcome::WrongPassword,
                    "The current password is wrong: nothing was changed.",
                );
                self.account_page(ctx, shared.users, user, &answer, out)
            }
        }
    }

    /// Every session is revoked: this browser's cookie is cleared and it goes to login.
    fn logged_out_everywhere(&self, ctx: &Ctx<'_, '_>, out: &mut [u8]) -> Decision {
        let mut cookie = [0u8; MAX_SET_COOKIE_LEN];
        let cookie_len = session::write_clear_cookie(&mut cookie, self.secure(ctx.ex)).unwrap_or(0);
        let mut path = [0u8; 256];
        let path_len = self.login_path(&mut path);
        let consumed = consumed_with_body(ctx.head, ctx.ex.bytes.len());
        let close = close_after(ctx.head, consumed.is_some());
        let mut w = ResponseWriter::new(out, Status::SeeOther);
        w.header("Location", &path[..path_len])
            .header("Set-Cookie", &cookie[..cookie_len]);
        match w.finish_empty(close) {
            Ok(len) => Decision::Respond(Respond {
                consumed: consumed.unwrap_or(ctx.head.head_len()),
                len,
                close,
                outcome: Outcome::Account(AccountOutcome::LoggedOutEverywhere),
                users_changed: true,
            }),
            Err(_) => refuse(Refusal::OutputTooSmall, Status::InternalServerError, 0, out),
        }
    }

    fn account_page<const U: usize, const A: usize>(
        &self,
        ctx: &Ctx<'_, '_>,
        users: &UserTable<U, A>,
        user: &SignedIn,
        answer: &Answer<'_>,
        out: &mut [u8],
    ) -> Decision {
        let (token, csrf_cookie) = self.issue_csrf(ctx.ex);
        let mut action = [0u8; 256];
        let n = self.endpoint_path(ACCOUNT_ENDPOINT, &mut action);
        let action = core::str::from_utf8(&action[..n]).unwrap_or("/_gatehouse/account");
        let mut logout = [0u8; 256];
        let n = self.endpoint_path("logout", &mut logout);
        let logout = core::str::from_utf8(&logout[..n]).unwrap_or("/_gatehouse/logout");
        let page = AccountPage {
            action,
            logout,
            csrf: &token,
            name: &user.name,
            users,
            editing_allowed: user.admin || self.config.enable_user_editing,
            answer,
        };
        let consumed = consumed_with_body(ctx.head, ctx.ex.bytes.len());
        let close = close_after(ctx.head, consumed.is_some());
        let cookies = [&csrf_cookie[..], answer.session_cookie.unwrap_or(&[])];
        let written = html_response(answer.status, &cookies, close, out, |w| page.html(w))
            .map(|n| head_only(ctx.head, out, n));
        match written {
            Ok(len) => Decision::Respond(Respond {
                consumed: consumed.unwrap_or(ctx.head.head_len()),
                len,
                close,
                outcome: answer.outcome,
                users_changed: answer.users_changed,
            }),
            Err(_) => refuse(Refusal::OutputTooSmall, Status::InternalServerError, 0, out),
        }
    }
}

#[cfg(test)]
mod tests;
