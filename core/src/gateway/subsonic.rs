//! Subsonic paths (default `/rest/`) in [`SubsonicMode::Authenticate`].
//!
//! Who is asking, in order: the identity header of a trusted proxy, a session cookie, HTTP
//! Basic (the same as on any protected path: a browser player logged in to gatehouse, such
//! as the app's own web UI, keeps working; the cookie only on a request the browser says is
//! same-origin, `Sec-Fetch-Site: same-origin` or `none`, or an `Origin` naming this host, since
//! Subsonic changes state with GETs a link on another site can make), then the Subsonic
//! credentials of the request
//! ([`crate::subsonic`]): an app password as `p`, `t` + `s` or `apiKey`, or the login
//! password as `p`. Whatever fails is answered as a Subsonic server answers it (HTTP 200,
//! `status="failed"`, the error code), never with a login page or a Basic challenge, which
//! music apps cannot use.
//!
//! What the app receives: the request with gatehouse's identity header, and without `p`,
//! `t`, `s` and `apiKey` in the query or the form body (a secret must not land in the app's
//! logs). A form body gatehouse read is forwarded rewritten, with its new `Content-Length`.
//!
//! `getOpenSubsonicExtensions` is answered by gatehouse without authentication, as
//! OpenSubsonic servers do; `tokenInfo` (which the app could not answer for a key it does not
//! know) after authentication.

use super::*;
use crate::subsonic::{
    self as api, Credential, Endpoint, ErrorCode, Format, SubsonicAuth, SubsonicRefusal,
};

/// How gatehouse treats Subsonic paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SubsonicMode {
    /// gatehouse checks Subsonic credentials itself (app passwords, or the login password as
    /// `p`) and forwards with its identity header and without the secrets.
    #[default]
    Authenticate,
    /// The app authenticates Subsonic clients itself: requests are forwarded with no
    /// identity (every client copy of the identity headers still removed).
    PassThrough,
}

/// A request body gatehouse read on a Subsonic path.
struct FormBody<'b> {
    bytes: &'b [u8],
    /// Head and body.
    total: usize,
}

impl<const S: usize> Gateway<'_, S> {
    /// Decides a request on a Subsonic path in [`SubsonicMode::Authenticate`].
    pub(super) fn subsonic<const U: usize, const T: usize, const C: usize, const A: usize>(
        &self,
        ctx: &Ctx<'_, '_>,
        shared: &mut Shared<'_, U, T, C, A>,
        verified: Option<(&PasswordCheck, bool)>,
        out: &mut [u8],
    ) -> Decision {
        let head = ctx.head;
        let (path, query) = match ctx.target.split_once('?') {
            Some((path, query)) => (path, query),
            None => (ctx.target, ""),
        };
        let form = match self.subsonic_form(ctx, out) {
            Ok(form) => form,
            Err(decision) => return decision,
        };
        let consumed = form.as_ref().map_or(head.head_len(), |f| f.total);
        let request = api::parse_request(query.as_bytes(), form.as_ref().map(|f| f.bytes));
        let endpoint = api::endpoint(path);
        let answer = Answer {
            ctx,
            format: &request.format,
            consumed,
            close: close_after(head, form.is_some()),
        };

        if endpoint == Endpoint::GetOpenSubsonicExtensions {
            let written =
                api::write_extensions(out, answer.format, api::GATEHOUSE_EXTENSIONS, answer.close);
            return answer.respond(written, Outcome::SubsonicAnswered, out);
        }

        // Subsonic changes state with plain GETs (`deletePlaylist`, `createShare`), and a
        // `SameSite=Lax` cookie goes along with a link from any site: the session cookie
        // counts only on a request the browser says came from this site.
        let cookies = names_this_origin(ctx);
        let who = match self.authenticate_with(ctx, shared, verified, true, cookies) {
            Auth::User {
                name,
                admin,
                via_basic,
                renew,
                users_changed,
            } => Who {
                name,
                admin,
                via_basic,
                renew,
                users_changed,
            },
            Auth::Verify(check) => return Decision::VerifyPassword(check),
            Auth::InFlight => return Decision::WaitForCheck,
            Auth::Throttled(seconds) => return answer.throttled(seconds, out),
            Auth::Busy => return respond_busy(ctx, out),
            Auth::ProvisionFailed(e) => {
                return respond_error(
                    ctx,
                    Status::ServiceUnavailable,
                    Outcome::ProvisionFailed(e),
                    out,
                );
            }
            Auth::BasicFailed | Auth::Anonymous => {
                match self.subsonic_credentials(ctx, shared, verified, &request.credential) {
                    Ok(who) => who,
                    Err(Failed::Decided(decision)) => return decision,
                    Err(Failed::Refused(refusal)) => return answer.refused(refusal, out),
                    Err(Failed::Throttled(seconds)) => return answer.throttled(seconds, out),
                    Err(Failed::Busy) => return respond_busy(ctx, out),
                }
            }
        };

        if endpoint == Endpoint::TokenInfo {
            let written = api::write_token_info(out, answer.format, &who.name, answer.close);
            // Authenticating may have changed the table (an app password's last use, a user
            // provisioned from a trusted header): the shell saves it for this answer too.
            return match answer.respond(written, Outcome::SubsonicAnswered, out) {
                Decision::Respond(mut r) => {
                    r.users_changed = who.users_changed;
                    Decision::Respond(r)
                }
                other => other,
            };
        }
        self.forward_without_secrets(ctx, who, form.as_ref(), out)
    }

    /// The form body of a `POST`, `PUT` or `PATCH` with `application/x-www-form-urlencoded`,
    /// once read; `None` for other requests. Form bodies are read whole (at most
    /// [`MAX_FORM_LEN`]), since they may carry credentials that must not reach the app.
    #[expect(
        clippy::result_large_err,
        reason = "core has no allocator to box the decision in; it is moved once"
    )]
    fn subsonic_form<'b>(
        &self,
        ctx: &Ctx<'_, 'b>,
        out: &mut [u8],
    ) -> Result<Option<FormBody<'b>>, Decision> {
        let head = ctx.head;
        let is_form = matches!(head.method(), "POST" | "PUT" | "PATCH")
            && head.header_values("content-type").any(|v| {
                let media = v.split(|&b| b == b';').next().unwrap_or(&[]).trim_ascii();
                media.eq_ignore_ascii_case(b"application/x-www-form-urlencoded")
            });
        if !is_form {
            return Ok(None);
        }
        let bytes = self.form_body(ctx, out)?;
        Ok(Some(FormBody {
            bytes,
            total: head.head_len() + bytes.len(),
        }))
    }

    /// Checks the Subsonic credentials themselves.
    #[expect(
        clippy::result_large_err,
        reason = "core has no allocator to box the password check in; it is moved once"
    )]
    fn subsonic_credentials<const U: usize, const T: usize, const C: usize, const A: usize>(
        &self,
        ctx: &Ctx<'_, '_>,
        shared: &mut Shared<'_, U, T, C, A>,
        verified: Option<(&PasswordCheck, bool)>,
        credential: &Result<Credential, api::CredentialError>,
    ) -> Result<Who, Failed> {
        let credential = credential
            .as_ref()
            .map_err(|e| Failed::Refused(SubsonicRefusal::Credential(*e)))?;
        let who = |name: Username, admin: bool| Who {
            name,
            admin,
            via_basic: false,
            renew: None,
            users_changed: false,
        };
        let with_use = |name: Username, admin: bool, recorded: bool| Who {
            users_changed: recorded,
            ..who(name, admin)
        };
        match api::authenticate(
            credential,
            shared.users,
            shared.throttle,
            &ctx.client,
            ctx.ex.now,
            &self.config.subsonic_policy,
        ) {
            SubsonicAuth::Authenticated {
                user,
                admin,
                last_use_recorded,
                ..
            } => Ok(with_use(user, admin, last_use_recorded)),
            SubsonicAuth::Refused(refusal) => Err(Failed::Refused(refusal)),
            SubsonicAuth::Throttled { seconds } => Err(Failed::Throttled(seconds)),
            SubsonicAuth::CheckLoginPassword => {
                let Credential::Password { user, password } = credential else {
                    return Err(Failed::Refused(SubsonicRefusal::WrongPassword));
                };
                let password = password.as_bytes();
                if let Some(u) = shared.users.find(user) {
                    let hit = shared.credentials.lookup(
                        u.name.as_bytes(),
                        password,
                        u.password.as_str().as_bytes(),
                        u.generation,
                        ctx.ex.now,
                    ) == Lookup::Hit;
                    if hit {
                        return Ok(who(u.name.clone(), u.admin));
                    }
                }
                if let Some((check, ok)) = verified
                    && check.is_for(Purpose::Subsonic, user, password)
                {
                    return match (ok, shared.users.find(user)) {
                        (true, Some(u)) => Ok(who(u.name.clone(), u.admin)),
                        _ => Err(Failed::Refused(SubsonicRefusal::WrongPassword)),
                    };
                }
                // One password check per request: when the request's HTTP Basic password was
                // just checked and found wrong, its `p` gets no second check (`finish` gives the
                // shell its final decision); a client sending two passwords that disagree gets
                // "wrong credentials".
                if verified.is_some() {
                    return Err(Failed::Refused(SubsonicRefusal::WrongPassword));
                }
                match self.password_check(Purpose::Subsonic, user, password, ctx, shared) {
                    Handout::Check(check) => Err(Failed::Decided(Decision::VerifyPassword(check))),
                    Handout::Throttled(seconds) => Err(Failed::Throttled(seconds)),
                    Handout::Busy => Err(Failed::Busy),
                    Handout::InFlight => Err(Failed::Decided(Decision::WaitForCheck)),
                    Handout::Failed => Err(Failed::Refused(SubsonicRefusal::WrongPassword)),
                }
            }
        }
    }

    /// Forwards with the secrets removed from the query and from a form body gatehouse read.
    fn forward_without_secrets(
        &self,
        ctx: &Ctx<'_, '_>,
        who: Who,
        form: Option<&FormBody<'_>>,
        out: &mut [u8],
    ) -> Decision {
        // The stripped target and body are never longer than the originals; they are written
        // at the end of `out`, the head at its front.
        let body_room = form.map_or(0, |f| f.bytes.len());
        let room = ctx.target.len() + body_room;
        let Some(split) = out.len().checked_sub(room) else {
            return refuse(
                Refusal::OutputTooSmall,
                Status::InternalServerError,
                ctx.head.head_len(),
                out,
            );
        };
        let (front, tail) = out.split_at_mut(split);
        let (target_buf, body_buf) = tail.split_at_mut(ctx.target.len());
        let target_len = api::strip_secrets_from_target(ctx.target, target_buf).unwrap_or(0);
        let body_len = match form {
            Some(f) => api::strip_secrets(f.bytes, body_buf).unwrap_or(0),
            None => 0,
        };
        let Ok(target) = core::str::from_utf8(&target_buf[..target_len]) else {
            return refuse(
                Refusal::OutputTooSmall,
                Status::InternalServerError,
                ctx.head.head_len(),
                front,
            );
        };
        let stripped = Ctx {
            ex: ctx.ex,
            head: ctx.head,
            target,
            trusted: ctx.trusted,
            forwarding: ctx.forwarding,
            client: ctx.client,
        };
        let decision = self.forward(&stripped, PathClass::Subsonic, Some(who), front);
        // No body read: its framing is relayed as the client sent it.
        let Some(form) = form else {
            return decision;
        };
        let Decision::Forward(mut f) = decision else {
            return decision;
        };
        // The body was read: send the stripped one, with its length, right after the head.
        let Some(head_len) = set_content_length(front, f.head_len, body_len) else {
            return refuse(
                Refusal::OutputTooSmall,
                Status::InternalServerError,
                ctx.head.head_len(),
                front,
            );
        };
        let Some(dst) = front.get_mut(head_len..head_len + body_len) else {
            return refuse(
                Refusal::OutputTooSmall,
                Status::InternalServerError,
                ctx.head.head_len(),
                front,
            );
        };
        dst.copy_from_slice(&body_buf[..body_len]);
        f.head_len = head_len + body_len;
        f.consumed = form.total;
        f.body = BodyFraming::None;
        f.send_continue = false;
        Decision::Forward(f)
    }
}

/// Why Subsonic credentials did not name a user.
#[expect(
    clippy::large_enum_variant,
    reason = "core has no allocator to box the password check in; it is moved once"
)]
enum Failed {
    /// Answer with this Subsonic error.
    Refused(SubsonicRefusal),
    /// Too many failures: Subsonic error 0 with `Retry-After`.
    Throttled(u64),
    /// Too many password checks in flight: 503, try again shortly.
    Busy,
    /// A password check to run.
    Decided(Decision),
}

/// Writes Subsonic answers for one request.
struct Answer<'a, 'c, 'b> {
    ctx: &'a Ctx<'c, 'b>,
    format: &'a Format,
    consumed: usize,
    close: bool,
}

impl Answer<'_, '_, '_> {
    fn respond(
        &self,
        written: Result<usize, crate::http::OutputFull>,
        outcome: Outcome,
        out: &mut [u8],
    ) -> Decision {
        match written {
            Ok(len) => Decision::Respond(Respond {
                consumed: self.consumed,
                len: head_only(self.ctx.head, out, len),
                close: self.close,
                outcome,
                users_changed: false,
            }),
            Err(_) => refuse(
                Refusal::OutputTooSmall,
                Status::InternalServerError,
                self.consumed,
                out,
            ),
        }
    }

    fn refused(&self, refusal: SubsonicRefusal, out: &mut [u8]) -> Decision {
        let written = api::write_error(out, self.format, refusal.code(), None, None, self.close);
        self.respond(written, Outcome::SubsonicRefused(refusal), out)
    }

    fn throttled(&self, seconds: u64, out: &mut [u8]) -> Decision {
        let written = api::write_error(
            out,
            self.format,
            ErrorCode::Generic,
            None,
            Some(seconds),
            self.close,
        );
        self.respond(written, Outcome::Throttled, out)
    }
}

/// Rewrites the `Content-Length` line gatehouse wrote into the head `out[..head_len]` to
/// `len`; returns the new head length. `None` when there is no such line or no room.
fn set_content_length(out: &mut [u8], head_len: usize, len: usize) -> Option<usize> {
    const NAME: &[u8] = b"\r\nContent-Length: ";
    let head = out.get(..head_len)?;
    let start = head.windows(NAME.len()).position(|w| w == NAME)? + NAME.len();
    let digits_end = start + head[start..].iter().position(|&b| b == b'\r')?;
    let mut digits = [0u8; 20];
    let mut c = crate::http::Cursor::new(&mut digits);
    c.put_u64(len as u64);
    let n = c.finish().ok()?;
    let new_head_len = head_len - (digits_end - start) + n;
    if new_head_len > out.len() {
        return None;
    }
    out.copy_within(digits_end..head_len, start + n);
    out.get_mut(start..start + n)?.copy_from_slice(&digits[..n]);
    Some(new_head_len)
}

#[cfg(test)]
mod tests;
