//! The Subsonic API's own authentication: credentials from the query or a form body, the
//! answers a Subsonic server gives when they are wrong, and the query without the secrets.
//!
//! Mobile music apps speak the Subsonic API (`/rest/…`). They cannot show a login page or
//! send a `Remote-User` header; they send credentials as request parameters, on every
//! request. gatehouse checks those itself (against the user's app passwords, or the login
//! password for `u` + `p`) and forwards the request with its identity header, after removing
//! the secret parameters so that no secret lands in the app's access log.
//!
//! # Credential forms
//!
//! From the [Subsonic API] (1.16.1) and the [OpenSubsonic] `apiKeyAuthentication` extension:
//!
//! - `u` + `p`: the password in clear, or `enc:` followed by its bytes in hex;
//! - `u` + `t` + `s`: `t` is the lowercase hex MD5 of the secret followed by the salt `s`
//!   (the Subsonic docs' example: `sesame` salted with `c19b2d` gives
//!   `26719a1196d2a940705a59634eb18eab`). The server must know the secret itself, which is
//!   why only app passwords (stored so that this check is possible, see [`crate::users`])
//!   accept it;
//! - `apiKey`: OpenSubsonic's key, used *without* `u`.
//!
//! A token carries no time: whoever sees one (an access log, a shared URL) can replay it
//! for as long as the secret is valid, which is why gatehouse accepts tokens only for app
//! passwords (revoke the one that leaked) and refuses a salt shorter than [`MIN_SALT_LEN`].
//!
//! Parameters come from the query string and, for `POST`, `PUT` or `PATCH` with
//! `application/x-www-form-urlencoded`, from the body (OpenSubsonic `formPost`). Names are
//! matched exactly, after decoding (`%70` is `p`), as Subsonic servers match them. A credential
//! parameter given twice (in the query, the body, or both) is refused, never guessed. An empty
//! value counts as absent, as in Navidrome.
//!
//! # Error codes
//!
//! A failure is answered as a Subsonic server answers it: HTTP 200 with a `subsonic-response`
//! of `status="failed"`, so a client shows its message rather than "server unreachable".
//! The codes (Subsonic `error` element, and OpenSubsonic's additions in its `error` response
//! page and the `apiKeyAuthentication` extension page):
//!
//! | code | when |
//! | ---- | ---- |
//! | 10 | no credentials at all, `u` without `p` or `t`/`s`, `t` without `s` (or the reverse) |
//! | 40 | wrong username or password (also: a malformed `enc:`, token or escape; a token for a user with no app password) |
//! | 42 | a mechanism this deployment turned off ([`SubsonicPolicy`]) |
//! | 43 | `apiKey` with `u`, `p`, `t` or `s`; `p` with `t` or `s`; a credential parameter repeated |
//! | 44 | an `apiKey` that is not valid |
//! | 0  | too many failed attempts (the login throttle; with `Retry-After`) |
//!
//! OpenSubsonic says: "When an API key is provided, the client must not provide a `u`
//! parameter; passing in `u` must be treated as an error 43", and "If multiple conflicting
//! authentication parameters are passed in, the server must return an error 43". Repeating a
//! parameter with two values is read here as two conflicting credentials (43).
//!
//! A token for a user with no app password (or no such user) is answered 40, exactly as a
//! wrong token is, never 41 ("token authentication not supported"): a different answer would
//! tell anyone which accounts have app passwords. Logs still name the difference
//! ([`SubsonicRefusal::TokenWithoutAppPassword`]).
//!
//! # Response format
//!
//! XML by default; JSON for `f=json`; for `f=jsonp`, JSON wrapped in the `callback` only when
//! that is a plain JavaScript identifier path (`[A-Za-z_$][A-Za-z0-9_$.]*`, at most
//! [`MAX_CALLBACK_LEN`] bytes), prefixed with `/**/`, and served as `application/javascript`;
//! any other callback gets plain JSON. Strings in JSON escape `<`, `>`, `&`, U+2028 and U+2029,
//! so a response can never close a script element or break out of a JSONP call.
//!
//! [Subsonic API]: http://www.subsonic.org/pages/api.jsp
//! [OpenSubsonic]: https://opensubsonic.netlify.app/docs/extensions/apikeyauth/

use core::fmt;

use md5::{Digest, Md5};

use crate::Username;
use crate::gateway::url_decode;
use crate::http::path::hex_digit;
use crate::http::{Cursor, OutputFull, ResponseWriter, Status};

/// The Subsonic REST API version gatehouse's own answers carry.
pub const API_VERSION: &str = "1.16.1";

/// The server `type` gatehouse's own answers carry (OpenSubsonic).
pub const SERVER_TYPE: &str = "gatehouse";

/// The `serverVersion` of gatehouse's own answers.
pub const SERVER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Longest secret (`p`, decoded from `enc:` if need be, or `apiKey`) gatehouse reads.
pub const MAX_SECRET_LEN: usize = 128;

/// Longest salt (`s`) gatehouse reads.
pub const MAX_SALT_LEN: usize = 64;

/// Shortest salt (`s`) gatehouse accepts: the Subsonic docs' own example salt is six
/// characters. A token is MD5(secret ‖ salt) and carries no time, so whoever sees one (a proxy
/// log, a shared link) can replay it for as long as the secret lives; a short salt also lets
/// the client pick from few salts, and a precomputed table go further.
pub const MIN_SALT_LEN: usize = 6;

/// Bytes of an MD5 token (`t` is twice as many hex digits).
pub const TOKEN_LEN: usize = 16;

/// Longest JSONP callback name gatehouse writes back.
pub const MAX_CALLBACK_LEN: usize = 64;

/// Longest `helpUrl` gatehouse writes into an error.
pub const MAX_HELP_URL_LEN: usize = 256;

/// Room for the largest answer this module writes (head and body).
pub const MAX_RESPONSE_LEN: usize = 2048;

/// The credential parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    /// `u`, the username.
    User,
    /// `p`, the password.
    Password,
    /// `t`, the token.
    Token,
    /// `s`, the salt.
    Salt,
    /// `apiKey`, OpenSubsonic's key.
    ApiKey,
}

impl Param {
    /// The parameter's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Param::User => "u",
            Param::Password => "p",
            Param::Token => "t",
            Param::Salt => "s",
            Param::ApiKey => "apiKey",
        }
    }

    const ALL: [Param; 5] = [
        Param::User,
        Param::Password,
        Param::Token,
        Param::Salt,
        Param::ApiKey,
    ];

    fn index(self) -> usize {
        self as usize
    }

    fn from_name(name: &[u8]) -> Option<Param> {
        Param::ALL.into_iter().find(|p| p.name().as_bytes() == name)
    }
}

/// A Subsonic error code (the `code` of the `error` element).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// 0: a generic error (gatehouse: too many failed attempts).
    Generic,
    /// 10: required parameter is missing.
    MissingParameter,
    /// 40: wrong username or password.
    WrongCredentials,
    /// 41: token authentication not supported for this credential.
    TokenNotSupported,
    /// 42: the authentication mechanism is not supported.
    MechanismNotSupported,
    /// 43: multiple conflicting authentication mechanisms provided.
    ConflictingMechanisms,
    /// 44: invalid API key.
    InvalidApiKey,
}

impl ErrorCode {
    /// The number on the wire.
    pub fn code(self) -> u16 {
        match self {
            ErrorCode::Generic => 0,
            ErrorCode::MissingParameter => 10,
            ErrorCode::WrongCredentials => 40,
            ErrorCode::TokenNotSupported => 41,
            ErrorCode::MechanismNotSupported => 42,
            ErrorCode::ConflictingMechanisms => 43,
            ErrorCode::InvalidApiKey => 44,
        }
    }

    /// The message a client shows its user.
    pub fn message(self) -> &'static str {
        match self {
            ErrorCode::Generic => "Too many failed attempts. Try again later.",
            ErrorCode::MissingParameter => "Required parameter is missing.",
            ErrorCode::WrongCredentials => "Wrong username or password.",
            ErrorCode::TokenNotSupported => {
                "Token authentication not supported for this credential. Use an app password."
            }
            ErrorCode::MechanismNotSupported => "Provided authentication mechanism not supported.",
            ErrorCode::ConflictingMechanisms => {
                "Multiple conflicting authentication mechanisms provided."
            }
            ErrorCode::InvalidApiKey => "Invalid API key.",
        }
    }
}

/// Why the credential parameters of a request are refused before any check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialError {
    /// No credential parameter at all.
    NoCredentials,
    /// A parameter the form needs is absent (`u`, or `s` with `t`, or `t` with `s`).
    Missing(Param),
    /// A credential parameter appears more than once.
    Repeated(Param),
    /// `apiKey` together with `u`, `p`, `t` or `s`.
    ApiKeyWithOthers,
    /// `p` together with `t` or `s`.
    PasswordWithToken,
    /// A value with a malformed percent-escape.
    InvalidEscape(Param),
    /// A value longer than gatehouse reads.
    TooLong(Param),
    /// `u` is not a valid username.
    InvalidUsername,
    /// `p` starts with `enc:` but the rest is not hex.
    InvalidEncodedPassword,
    /// `t` is not 32 hex digits.
    InvalidToken,
    /// `s` is shorter than [`MIN_SALT_LEN`].
    SaltTooShort,
}

impl CredentialError {
    /// The Subsonic error to answer.
    pub fn code(self) -> ErrorCode {
        match self {
            CredentialError::NoCredentials | CredentialError::Missing(_) => {
                ErrorCode::MissingParameter
            }
            CredentialError::Repeated(_)
            | CredentialError::ApiKeyWithOthers
            | CredentialError::PasswordWithToken => ErrorCode::ConflictingMechanisms,
            CredentialError::InvalidEscape(Param::ApiKey)
            | CredentialError::TooLong(Param::ApiKey) => ErrorCode::InvalidApiKey,
            CredentialError::InvalidEscape(_)
            | CredentialError::TooLong(_)
            | CredentialError::InvalidUsername
            | CredentialError::InvalidEncodedPassword
            | CredentialError::InvalidToken
            | CredentialError::SaltTooShort => ErrorCode::WrongCredentials,
        }
    }
}

impl fmt::Display for CredentialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialError::NoCredentials => f.write_str("no credentials"),
            CredentialError::Missing(p) => write!(f, "parameter {} is missing", p.name()),
            CredentialError::Repeated(p) => write!(f, "parameter {} is repeated", p.name()),
            CredentialError::ApiKeyWithOthers => f.write_str("apiKey with other credentials"),
            CredentialError::PasswordWithToken => f.write_str("password with token"),
            CredentialError::InvalidEscape(p) => {
                write!(f, "parameter {} has a malformed escape", p.name())
            }
            CredentialError::TooLong(p) => write!(f, "parameter {} is too long", p.name()),
            CredentialError::InvalidUsername => f.write_str("invalid username"),
            CredentialError::InvalidEncodedPassword => f.write_str("malformed enc: password"),
            CredentialError::InvalidToken => f.write_str("token is not 32 hex digits"),
            CredentialError::SaltTooShort => {
                write!(f, "salt is shorter than {MIN_SALT_LEN} characters")
            }
        }
    }
}

/// A secret read from a request: zeroed when dropped. Its `Debug` shows the length only.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(heapless::Vec<u8, MAX_SECRET_LEN>);

impl Secret {
    /// The secret's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn from_slice(bytes: &[u8]) -> Option<Self> {
        heapless::Vec::from_slice(bytes).ok().map(Secret)
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.iter_mut().for_each(|b| *b = 0);
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// A salt (`s`), as sent.
pub type Salt = heapless::Vec<u8, MAX_SALT_LEN>;

/// Credentials in one of the Subsonic forms, syntactically valid, not yet checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// `u` + `p` (decoded from `enc:` when it was hex).
    Password {
        /// The username.
        user: Username,
        /// The password.
        password: Secret,
    },
    /// `u` + `t` + `s`.
    Token {
        /// The username.
        user: Username,
        /// MD5(secret + salt).
        token: [u8; TOKEN_LEN],
        /// The salt.
        salt: Salt,
    },
    /// OpenSubsonic `apiKey`.
    ApiKey {
        /// The key.
        key: Secret,
    },
}

impl Credential {
    /// The username the client claims (none for an API key).
    pub fn user(&self) -> Option<&str> {
        match self {
            Credential::Password { user, .. } | Credential::Token { user, .. } => Some(user),
            Credential::ApiKey { .. } => None,
        }
    }
}

/// The response format a client asked for with `f` (and `callback`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Format {
    /// XML, the default.
    #[default]
    Xml,
    /// `f=json`, or `f=jsonp` without a usable callback.
    Json,
    /// `f=jsonp` with a callback that is a plain identifier path.
    Jsonp(heapless::String<MAX_CALLBACK_LEN>),
}

/// What the credential parameters of a Subsonic request say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubsonicRequest {
    /// How to answer.
    pub format: Format,
    /// The credentials, or why they are refused.
    pub credential: Result<Credential, CredentialError>,
}

/// The `name=value` pairs of a urlencoded string, raw.
fn pairs(source: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    source.split(|&b| b == b'&').filter_map(|pair| {
        if pair.is_empty() {
            return None;
        }
        let eq = pair.iter().position(|&b| b == b'=').unwrap_or(pair.len());
        Some((&pair[..eq], pair.get(eq + 1..).unwrap_or(&[])))
    })
}

/// Decodes a parameter name (at most 16 bytes matter: longer names are no name of ours).
fn decoded_name(raw: &[u8], buf: &mut [u8; 16]) -> Option<usize> {
    url_decode(raw, buf).ok()
}

/// Parses the credential parameters of a Subsonic request from its query (without the `?`)
/// and, for a form `POST`, `PUT` or `PATCH`, its body.
pub fn parse_request(query: &[u8], body: Option<&[u8]>) -> SubsonicRequest {
    let sources = [query, body.unwrap_or(&[])];
    let mut raw: [Option<&[u8]>; 5] = [None; 5];
    let mut repeated = None;
    let mut f: Option<&[u8]> = None;
    let mut callback: Option<&[u8]> = None;
    for (name, value) in sources.into_iter().flat_map(pairs) {
        let mut buf = [0u8; 16];
        let Some(n) = decoded_name(name, &mut buf) else {
            continue;
        };
        let name = &buf[..n];
        if let Some(p) = Param::from_name(name) {
            // Empty values count as absent (Navidrome reads them so), but still as given
            // twice when repeated.
            if raw[p.index()].is_some() && repeated.is_none() {
                repeated = Some(p);
            }
            if raw[p.index()].is_none() || !value.is_empty() {
                raw[p.index()] = Some(value);
            }
        } else if name == b"f" && f.is_none() {
            f = Some(value);
        } else if name == b"callback" && callback.is_none() {
            callback = Some(value);
        }
    }
    SubsonicRequest {
        format: parse_format(f, callback),
        credential: match repeated {
            Some(p) => Err(CredentialError::Repeated(p)),
            None => credential(raw),
        },
    }
}

fn parse_format(f: Option<&[u8]>, callback: Option<&[u8]>) -> Format {
    let mut buf = [0u8; 8];
    let f = f.and_then(|v| url_decode(v, &mut buf).ok().map(|n| &buf[..n]));
    match f {
        Some(b"json") => Format::Json,
        Some(b"jsonp") => {
            let mut cb = [0u8; MAX_CALLBACK_LEN];
            callback
                .and_then(|v| url_decode(v, &mut cb).ok())
                .and_then(|n| core::str::from_utf8(&cb[..n]).ok())
                .filter(|name| is_safe_callback(name))
                .and_then(|name| heapless::String::try_from(name).ok())
                .map_or(Format::Json, Format::Jsonp)
        }
        _ => Format::Xml,
    }
}

/// A JavaScript identifier path: `[A-Za-z_$][A-Za-z0-9_$.]*`, no empty segment.
fn is_safe_callback(name: &str) -> bool {
    let b = name.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$';
    !b.is_empty()
        && b.len() <= MAX_CALLBACK_LEN
        && !b[0].is_ascii_digit()
        && name
            .split('.')
            .all(|seg| !seg.is_empty() && seg.bytes().all(ident))
}

fn credential(raw: [Option<&[u8]>; 5]) -> Result<Credential, CredentialError> {
    let present = |p: Param| raw[p.index()].is_some_and(|v| !v.is_empty());
    let [u, p, t, s, key] = Param::ALL.map(present);
    if key {
        if u || p || t || s {
            return Err(CredentialError::ApiKeyWithOthers);
        }
        let mut buf = [0u8; MAX_SECRET_LEN];
        let key = decode(raw[Param::ApiKey.index()], Param::ApiKey, &mut buf)?;
        let key = Secret::from_slice(key).ok_or(CredentialError::TooLong(Param::ApiKey))?;
        return Ok(Credential::ApiKey { key });
    }
    if !(u || p || t || s) {
        return Err(CredentialError::NoCredentials);
    }
    if p && (t || s) {
        return Err(CredentialError::PasswordWithToken);
    }
    if !u {
        return Err(CredentialError::Missing(Param::User));
    }
    let mut name_buf = [0u8; crate::MAX_USERNAME_LEN];
    let name = decode(raw[Param::User.index()], Param::User, &mut name_buf)?;
    let user = core::str::from_utf8(name)
        .ok()
        .and_then(|n| crate::users::parse_username(n).ok())
        .ok_or(CredentialError::InvalidUsername)?;
    if p {
        // `enc:` and hex doubles the length: read up to twice the secret, then decode.
        let mut buf = [0u8; 2 * MAX_SECRET_LEN + 4];
        let value = decode(raw[Param::Password.index()], Param::Password, &mut buf)?;
        let password = match value.strip_prefix(b"enc:") {
            Some(hex) => {
                let mut out = [0u8; MAX_SECRET_LEN];
                let n = hex_decode(hex, &mut out).ok_or(CredentialError::InvalidEncodedPassword)?;
                Secret::from_slice(&out[..n])
            }
            None => Secret::from_slice(value),
        };
        let password = password.ok_or(CredentialError::TooLong(Param::Password))?;
        return Ok(Credential::Password { user, password });
    }
    if !t {
        return Err(CredentialError::Missing(if s {
            Param::Token
        } else {
            Param::Password
        }));
    }
    if !s {
        return Err(CredentialError::Missing(Param::Salt));
    }
    let mut hex = [0u8; 2 * TOKEN_LEN];
    let t = decode(raw[Param::Token.index()], Param::Token, &mut hex)
        .map_err(|_| CredentialError::InvalidToken)?;
    let mut token = [0u8; TOKEN_LEN];
    if t.len() != 2 * TOKEN_LEN || hex_decode(t, &mut token) != Some(TOKEN_LEN) {
        return Err(CredentialError::InvalidToken);
    }
    let mut salt_buf = [0u8; MAX_SALT_LEN];
    let salt = decode(raw[Param::Salt.index()], Param::Salt, &mut salt_buf)?;
    let salt = Salt::from_slice(salt).map_err(|_| CredentialError::TooLong(Param::Salt))?;
    if salt.len() < MIN_SALT_LEN {
        return Err(CredentialError::SaltTooShort);
    }
    Ok(Credential::Token { user, token, salt })
}

fn decode<'b>(
    raw: Option<&[u8]>,
    param: Param,
    buf: &'b mut [u8],
) -> Result<&'b [u8], CredentialError> {
    let n = url_decode(raw.unwrap_or(&[]), buf).map_err(|e| match e {
        crate::gateway::FormError::TooLong => CredentialError::TooLong(param),
        _ => CredentialError::InvalidEscape(param),
    })?;
    Ok(&buf[..n])
}

/// Decodes hex (either case) into `out`; `None` for an odd length, a non-hex digit or no room.
fn hex_decode(hex: &[u8], out: &mut [u8]) -> Option<usize> {
    if !hex.len().is_multiple_of(2) || hex.len() / 2 > out.len() {
        return None;
    }
    for (dst, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *dst = hex_digit(pair[0])? << 4 | hex_digit(pair[1])?;
    }
    Some(hex.len() / 2)
}

/// The Subsonic token for `secret` and `salt`: MD5(secret ‖ salt).
pub fn token(secret: &[u8], salt: &[u8]) -> [u8; TOKEN_LEN] {
    let digest = Md5::new()
        .chain_update(secret)
        .chain_update(salt)
        .finalize();
    let mut out = [0u8; TOKEN_LEN];
    out.copy_from_slice(&digest);
    out
}

/// Whether `token` is MD5(`secret` ‖ `salt`), compared in constant time.
pub fn token_matches(secret: &[u8], salt: &[u8], token: &[u8; TOKEN_LEN]) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(self::token(secret, salt).ct_eq(token))
}

// ---------------------------------------------------------------------------------------
// The decision: who is this, or which error
// ---------------------------------------------------------------------------------------

/// Which Subsonic mechanisms a deployment accepts. Turning one off answers it with error 42.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubsonicPolicy {
    /// `u` + `p` (clear or `enc:`).
    pub password: bool,
    /// `u` + `p` may be the user's login password, not only an app password. Each such request
    /// costs a password hash unless the credential cache remembers it.
    pub login_password: bool,
    /// `u` + `t` + `s` (against app passwords only).
    pub token: bool,
    /// OpenSubsonic `apiKey` (an app password).
    pub api_key: bool,
}

impl SubsonicPolicy {
    /// Everything on: what clients expect.
    pub const DEFAULT: Self = SubsonicPolicy {
        password: true,
        login_password: true,
        token: true,
        api_key: true,
    };
}

impl Default for SubsonicPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why Subsonic credentials were refused, for logs. The client sees [`ErrorCode`] only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubsonicRefusal {
    /// The parameters themselves ([`CredentialError`]).
    Credential(CredentialError),
    /// The mechanism is turned off by the [`SubsonicPolicy`].
    MechanismDisabled,
    /// `u` + `p` matches no app password, and the login password is not accepted here (or
    /// was wrong).
    WrongPassword,
    /// `u` + `t` + `s` matches none of the user's app passwords.
    WrongToken,
    /// Token authentication for a user without app passwords (or an unknown user).
    TokenWithoutAppPassword,
    /// The `apiKey` is no app password.
    UnknownApiKey,
}

impl SubsonicRefusal {
    /// The Subsonic error to answer.
    pub fn code(self) -> ErrorCode {
        match self {
            SubsonicRefusal::Credential(e) => e.code(),
            SubsonicRefusal::MechanismDisabled => ErrorCode::MechanismNotSupported,
            // One answer for a token that matched no app password and a token for a user who
            // has none: which users have app passwords is nobody's business.
            SubsonicRefusal::WrongPassword
            | SubsonicRefusal::WrongToken
            | SubsonicRefusal::TokenWithoutAppPassword => ErrorCode::WrongCredentials,
            SubsonicRefusal::UnknownApiKey => ErrorCode::InvalidApiKey,
        }
    }
}

/// What [`authenticate`] decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubsonicAuth {
    /// An app password matched.
    Authenticated {
        /// The user, as stored.
        user: Username,
        /// Whether the user is an admin.
        admin: bool,
        /// The app password used (its index for [`crate::users::UserTable`]).
        app_password: usize,
        /// Its stored last-use time moved: the table is worth saving
        /// ([`crate::users::UserTable::record_app_password_use`]).
        last_use_recorded: bool,
    },
    /// `u` + `p` is none of the user's app passwords: check it as the login password, the way
    /// HTTP Basic is checked (credential cache, then a password hash through the throttle).
    CheckLoginPassword,
    /// Refused: answer [`SubsonicRefusal::code`].
    Refused(SubsonicRefusal),
    /// Too many failures from this client (or on this name): answer error 0 with
    /// `Retry-After`.
    Throttled {
        /// Seconds to wait.
        seconds: u64,
    },
}

/// The throttle's name for attempts with an `apiKey` (no username is given): not a valid
/// username, so it never shares a bucket with a user.
pub const API_KEY_THROTTLE_NAME: &[u8] = b"\0apiKey";

/// Decides who a Subsonic request's credentials name, against the users' app passwords and
/// through the login throttle: a failure is charged to the client's network and the name, a
/// success forgives the name's failures. An app password that matches has its last use
/// recorded (in memory: see [`crate::users::UserTable::record_app_password_use`]).
///
/// Nothing here costs a password hash: for `u` + `p` that is no app password, the answer is
/// [`SubsonicAuth::CheckLoginPassword`] (when the policy allows it) and the caller checks the
/// login password as it checks HTTP Basic, charging the throttle itself.
pub fn authenticate<const U: usize, const A: usize, const T: usize>(
    credential: &Credential,
    users: &mut crate::users::UserTable<U, A>,
    throttle: &mut crate::throttle::Throttle<T>,
    client: &crate::peer::Peer,
    now: u64,
    policy: &SubsonicPolicy,
) -> SubsonicAuth {
    use crate::throttle::Verdict;
    use crate::users::TokenCheck;

    let allowed = match credential {
        Credential::Password { .. } => policy.password,
        Credential::Token { .. } => policy.token,
        Credential::ApiKey { .. } => policy.api_key,
    };
    if !allowed {
        return SubsonicAuth::Refused(SubsonicRefusal::MechanismDisabled);
    }
    let name: &[u8] = match credential.user() {
        Some(user) => user.as_bytes(),
        None => API_KEY_THROTTLE_NAME,
    };
    if let Verdict::RetryAfter { seconds, .. } = throttle.check(client, name, now) {
        return SubsonicAuth::Throttled { seconds };
    }
    let found = match credential {
        Credential::Password { user, password } => users
            .check_app_password(user, password.as_bytes())
            .ok_or(SubsonicRefusal::WrongPassword),
        Credential::Token { user, token, salt } => match users.check_app_token(user, token, salt) {
            TokenCheck::Matched(index) => Ok(index),
            TokenCheck::NoMatch => Err(SubsonicRefusal::WrongToken),
            TokenCheck::NoAppPassword => Err(SubsonicRefusal::TokenWithoutAppPassword),
        },
        Credential::ApiKey { key } => users
            .find_api_key(key.as_bytes())
            .map(|(_, index)| index)
            .ok_or(SubsonicRefusal::UnknownApiKey),
    };
    let index = match found {
        Ok(index) => index,
        Err(SubsonicRefusal::WrongPassword) if policy.login_password => {
            return SubsonicAuth::CheckLoginPassword;
        }
        Err(refusal) => {
            throttle.record_failure(client, name, now);
            return SubsonicAuth::Refused(refusal);
        }
    };
    let owner = match credential {
        Credential::ApiKey { key } => users.find_api_key(key.as_bytes()).map(|(u, _)| u),
        _ => credential.user().and_then(|name| users.find(name)),
    };
    let Some(owner) = owner else {
        // The index came from this table a moment ago; an owner always exists.
        return SubsonicAuth::Refused(SubsonicRefusal::UnknownApiKey);
    };
    let (user, admin) = (owner.name.clone(), owner.admin);
    throttle.record_success(client, user.as_bytes(), now);
    let last_use_recorded = users.record_app_password_use(index, now);
    SubsonicAuth::Authenticated {
        user,
        admin,
        app_password: index,
        last_use_recorded,
    }
}

// ---------------------------------------------------------------------------------------
// Endpoints gatehouse answers itself
// ---------------------------------------------------------------------------------------

/// A Subsonic endpoint gatehouse has a part in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `getOpenSubsonicExtensions`: answered by gatehouse, without authentication (as
    /// OpenSubsonic servers do), listing what gatehouse itself guarantees.
    GetOpenSubsonicExtensions,
    /// `tokenInfo` (OpenSubsonic `apiKeyAuthentication`): answered by gatehouse after
    /// authentication, since the app does not know gatehouse's keys.
    TokenInfo,
    /// `ping`: authenticated, then forwarded, so that it tests the whole way to the app.
    Ping,
    /// Any other method: authenticated, then forwarded.
    Other,
}

/// The endpoint of a canonical Subsonic path: its last segment, `.view` optional
/// (`/rest/ping` and `/rest/ping.view` are both `ping`).
pub fn endpoint(canonical_path: &str) -> Endpoint {
    let last = canonical_path.rsplit('/').next().unwrap_or("");
    let method = last.strip_suffix(".view").unwrap_or(last);
    match method {
        "getOpenSubsonicExtensions" => Endpoint::GetOpenSubsonicExtensions,
        "tokenInfo" => Endpoint::TokenInfo,
        "ping" => Endpoint::Ping,
        _ => Endpoint::Other,
    }
}

/// An OpenSubsonic extension gatehouse advertises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extension<'a> {
    /// The extension's name.
    pub name: &'a str,
    /// The versions supported.
    pub versions: &'a [u32],
}

/// What gatehouse itself guarantees on every Subsonic path: `apiKeyAuthentication` and
/// `formPost` (credentials are read from form bodies too), both at version 1. A deployment
/// may list its app's extensions as well.
pub const GATEHOUSE_EXTENSIONS: &[Extension<'static>] = &[
    Extension {
        name: "apiKeyAuthentication",
        versions: &[1],
    },
    Extension {
        name: "formPost",
        versions: &[1],
    },
];

/// The body of an answer.
enum Body<'a> {
    Ok,
    Error {
        code: ErrorCode,
        help_url: Option<&'a str>,
    },
    Extensions(&'a [Extension<'a>]),
    TokenInfo {
        username: &'a str,
    },
}

/// Writes the answer to a failed authentication: HTTP 200 with a `subsonic-response` of
/// `status="failed"` and `code` (with its message, and `helpUrl` when given), in `format`.
/// `retry_after` adds `Retry-After` (throttled clients). Returns the response length.
pub fn write_error(
    out: &mut [u8],
    format: &Format,
    code: ErrorCode,
    help_url: Option<&str>,
    retry_after: Option<u64>,
    close: bool,
) -> Result<usize, OutputFull> {
    write_answer(
        out,
        format,
        &Body::Error { code, help_url },
        retry_after,
        close,
    )
}

/// Writes an empty `status="ok"` answer (what `ping` returns).
pub fn write_ok(out: &mut [u8], format: &Format, close: bool) -> Result<usize, OutputFull> {
    write_answer(out, format, &Body::Ok, None, close)
}

/// Writes the `getOpenSubsonicExtensions` answer listing `extensions`.
pub fn write_extensions(
    out: &mut [u8],
    format: &Format,
    extensions: &[Extension<'_>],
    close: bool,
) -> Result<usize, OutputFull> {
    write_answer(out, format, &Body::Extensions(extensions), None, close)
}

/// Writes the `tokenInfo` answer naming the key's user.
pub fn write_token_info(
    out: &mut [u8],
    format: &Format,
    username: &str,
    close: bool,
) -> Result<usize, OutputFull> {
    write_answer(out, format, &Body::TokenInfo { username }, None, close)
}

fn write_answer(
    out: &mut [u8],
    format: &Format,
    body: &Body<'_>,
    retry_after: Option<u64>,
    close: bool,
) -> Result<usize, OutputFull> {
    let mut buf = [0u8; MAX_RESPONSE_LEN];
    let mut c = Cursor::new(&mut buf);
    let content_type = match format {
        Format::Xml => {
            write_xml(&mut c, body);
            "text/xml; charset=utf-8"
        }
        Format::Json => {
            write_json(&mut c, body);
            "application/json; charset=utf-8"
        }
        Format::Jsonp(callback) => {
            c.put(b"/**/").put_str(callback).put(b"(");
            write_json(&mut c, body);
            c.put(b");");
            "application/javascript; charset=utf-8"
        }
    };
    let len = c.finish()?;
    let mut w = ResponseWriter::new(out, Status::Ok);
    if let Some(secs) = retry_after {
        w.header_u64("Retry-After", secs.max(1));
    }
    w.finish(content_type, &buf[..len], close)
}

fn write_xml(c: &mut Cursor<'_>, body: &Body<'_>) {
    let status = match body {
        Body::Error { .. } => "failed",
        _ => "ok",
    };
    c.put(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
        .put(b"<subsonic-response xmlns=\"http://subsonic.org/restapi\" status=\"")
        .put_str(status)
        .put(b"\" version=\"")
        .put_str(API_VERSION)
        .put(b"\" type=\"")
        .put_str(SERVER_TYPE)
        .put(b"\" serverVersion=\"")
        .put_str(SERVER_VERSION)
        .put(b"\" openSubsonic=\"true\">");
    match body {
        Body::Ok => {}
        Body::Error { code, help_url } => {
            c.put(b"<error code=\"")
                .put_u64(u64::from(code.code()))
                .put(b"\" message=\"");
            xml_escape(c, code.message());
            c.put(b"\"");
            if let Some(url) = help_url.filter(|u| u.len() <= MAX_HELP_URL_LEN) {
                c.put(b" helpUrl=\"");
                xml_escape(c, url);
                c.put(b"\"");
            }
            c.put(b"/>");
        }
        Body::Extensions(list) => {
            for ext in list.iter() {
                c.put(b"<openSubsonicExtensions name=\"");
                xml_escape(c, ext.name);
                c.put(b"\">");
                for v in ext.versions {
                    c.put(b"<versions>")
                        .put_u64(u64::from(*v))
                        .put(b"</versions>");
                }
                c.put(b"</openSubsonicExtensions>");
            }
        }
        Body::TokenInfo { username } => {
            c.put(b"<tokenInfo username=\"");
            xml_escape(c, username);
            c.put(b"\"/>");
        }
    }
    c.put(b"</subsonic-response>\n");
}

fn write_json(c: &mut Cursor<'_>, body: &Body<'_>) {
    let status = match body {
        Body::Error { .. } => "failed",
        _ => "ok",
    };
    c.put(b"{\"subsonic-response\":{\"status\":\"")
        .put_str(status)
        .put(b"\",\"version\":\"")
        .put_str(API_VERSION)
        .put(b"\",\"type\":\"")
        .put_str(SERVER_TYPE)
        .put(b"\",\"serverVersion\":\"")
        .put_str(SERVER_VERSION)
        .put(b"\",\"openSubsonic\":true");
    match body {
        Body::Ok => {}
        Body::Error { code, help_url } => {
            c.put(b",\"error\":{\"code\":")
                .put_u64(u64::from(code.code()))
                .put(b",\"message\":");
            json_string(c, code.message());
            if let Some(url) = help_url.filter(|u| u.len() <= MAX_HELP_URL_LEN) {
                c.put(b",\"helpUrl\":");
                json_string(c, url);
            }
            c.put(b"}");
        }
        Body::Extensions(list) => {
            c.put(b",\"openSubsonicExtensions\":[");
            for (i, ext) in list.iter().enumerate() {
                if i > 0 {
                    c.put(b",");
                }
                c.put(b"{\"name\":");
                json_string(c, ext.name);
                c.put(b",\"versions\":[");
                for (j, v) in ext.versions.iter().enumerate() {
                    if j > 0 {
                        c.put(b",");
                    }
                    c.put_u64(u64::from(*v));
                }
                c.put(b"]}");
            }
            c.put(b"]");
        }
        Body::TokenInfo { username } => {
            c.put(b",\"tokenInfo\":{\"username\":");
            json_string(c, username);
            c.put(b"}");
        }
    }
    c.put(b"}}");
}

fn xml_escape(c: &mut Cursor<'_>, s: &str) {
    for b in s.bytes() {
        match b {
            b'&' => c.put(b"&amp;"),
            b'<' => c.put(b"&lt;"),
            b'>' => c.put(b"&gt;"),
            b'"' => c.put(b"&quot;"),
            b'\'' => c.put(b"&apos;"),
            // Control characters are not allowed in XML 1.0; usernames never hold them.
            0..=0x1f | 0x7f => c.put(b"?"),
            _ => c.put(&[b]),
        };
    }
}

fn json_string(c: &mut Cursor<'_>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    c.put(b"\"");
    for ch in s.chars() {
        match ch {
            '"' => {
                c.put(b"\\\"");
            }
            '\\' => {
                c.put(b"\\\\");
            }
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' | '\0'..='\u{1f}' | '\u{7f}' => {
                let n = ch as u32;
                c.put(b"\\u").put(&[
                    HEX[(n >> 12 & 0xf) as usize],
                    HEX[(n >> 8 & 0xf) as usize],
                    HEX[(n >> 4 & 0xf) as usize],
                    HEX[(n & 0xf) as usize],
                ]);
            }
            _ => {
                let mut utf8 = [0u8; 4];
                c.put(ch.encode_utf8(&mut utf8).as_bytes());
            }
        }
    }
    c.put(b"\"");
}

// ---------------------------------------------------------------------------------------
// Removing the secrets from what the app receives
// ---------------------------------------------------------------------------------------

/// Parameter names (any ASCII case) that never reach the app.
const SECRET_PARAMS: [&[u8]; 4] = [b"p", b"t", b"s", b"apikey"];

/// Whether the raw pair `name=value` (or any `;`-separated part of it) names a secret
/// parameter under any decoding an app might apply: percent-decoded once or repeatedly,
/// `+` as space, spaces around it, any ASCII case. Such a pair is removed whole, and so is a
/// pair whose name is longer than 64 bytes (no Subsonic parameter's is).
fn carries_secret(pair: &[u8]) -> bool {
    pair.split(|&b| b == b';').any(|part| {
        let name = &part[..part.iter().position(|&b| b == b'=').unwrap_or(part.len())];
        names_secret(name)
    })
}

fn names_secret(raw: &[u8]) -> bool {
    // No Subsonic parameter has a name this long; one this long could hide a secret's name
    // behind padding or deep escapes, so it is treated as one.
    const LONGEST: usize = 64;
    if raw.len() > LONGEST {
        return true;
    }
    let mut a = [0u8; LONGEST];
    let mut b = [0u8; LONGEST];
    a[..raw.len()].copy_from_slice(raw);
    let mut len = raw.len();
    // Decode until nothing changes: every pass that changes the name shortens it or turns a
    // `+` into a space, so this ends within `LONGEST` passes.
    for _ in 0..=LONGEST {
        if is_secret_name(&a[..len]) {
            return true;
        }
        let n = lenient_decode(&a[..len], &mut b);
        if a[..len] == b[..n] {
            return false;
        }
        a[..n].copy_from_slice(&b[..n]);
        len = n;
    }
    false
}

fn is_secret_name(name: &[u8]) -> bool {
    let trimmed = name.trim_ascii();
    SECRET_PARAMS
        .iter()
        .any(|s| trimmed.eq_ignore_ascii_case(s))
}

/// Percent-decodes as lenient decoders do: `+` is a space, a malformed escape stays as is.
fn lenient_decode(raw: &[u8], out: &mut [u8]) -> usize {
    let mut i = 0;
    let mut w = 0;
    while let (Some(&byte), Some(slot)) = (raw.get(i), out.get_mut(w)) {
        let escaped = match (byte, raw.get(i + 1), raw.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) => hex_digit(h).zip(hex_digit(l)),
            _ => None,
        };
        match escaped {
            Some((h, l)) => {
                *slot = h << 4 | l;
                i += 3;
            }
            None => {
                *slot = if byte == b'+' { b' ' } else { byte };
                i += 1;
            }
        }
        w += 1;
    }
    w
}

/// Writes the urlencoded `params` (a query without its `?`, or a form body) without the
/// secret parameters (`p`, `t`, `s`, `apiKey`, in any spelling an app might decode to them);
/// every other pair is kept byte for byte, in order, joined by `&`. Returns the length.
pub fn strip_secrets(params: &[u8], out: &mut [u8]) -> Result<usize, OutputFull> {
    let mut c = Cursor::new(out);
    let mut first = true;
    for pair in params.split(|&b| b == b'&') {
        if carries_secret(pair) {
            continue;
        }
        if !first {
            c.put(b"&");
        }
        c.put(pair);
        first = false;
    }
    c.finish()
}

/// Writes a request target (`/path?query`) with the secret parameters removed from its query
/// (see [`strip_secrets`]); the `?` goes when nothing is left. Returns the length.
pub fn strip_secrets_from_target(target: &str, out: &mut [u8]) -> Result<usize, OutputFull> {
    let Some((path, query)) = target.split_once('?') else {
        let mut c = Cursor::new(out);
        c.put_str(target);
        return c.finish();
    };
    let path_len = path.len();
    let dst = out.get_mut(..path_len + 1).ok_or(OutputFull)?;
    dst[..path_len].copy_from_slice(path.as_bytes());
    dst[path_len] = b'?';
    let n = strip_secrets(query.as_bytes(), &mut out[path_len + 1..])?;
    Ok(if n == 0 { path_len } else { path_len + 1 + n })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> SubsonicRequest {
        parse_request(query.as_bytes(), None)
    }

    fn cred(query: &str) -> Result<Credential, CredentialError> {
        parse(query).credential
    }

    fn user(name: &str) -> Username {
        Username::try_from(name).unwrap()
    }

    fn secret(s: &[u8]) -> Secret {
        Secret::from_slice(s).unwrap()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn token_vector_from_the_subsonic_docs() {
        let t = token(b"sesame", b"c19b2d");
        assert_eq!(hex(&t), "26719a1196d2a940705a59634eb18eab");
        assert!(token_matches(b"sesame", b"c19b2d", &t));
        assert!(!token_matches(b"sesame", b"c19b2e", &t));
        assert!(!token_matches(b"sesamE", b"c19b2d", &t));
    }

    #[test]
    fn clear_and_hex_encoded_passwords() {
        assert_eq!(
            cred("u=alice&p=sesame&v=1.16.1&c=app"),
            Ok(Credential::Password {
                user: user("alice"),
                password: secret(b"sesame")
            })
        );
        assert_eq!(
            cred("u=alice&p=enc:736573616d65"),
            Ok(Credential::Password {
                user: user("alice"),
                password: secret(b"sesame")
            })
        );
        assert_eq!(
            cred("u=al%69ce&p=enc%3A736573616D65"),
            Ok(Credential::Password {
                user: user("alice"),
                password: secret(b"sesame")
            }),
            "escaped and uppercase hex"
        );
        assert_eq!(
            cred("u=alice&p=a+b%26c%3D"),
            Ok(Credential::Password {
                user: user("alice"),
                password: secret(b"a b&c=")
            })
        );
        assert_eq!(
            cred("u=alice&p=enc:7"),
            Err(CredentialError::InvalidEncodedPassword)
        );
        assert_eq!(
            cred("u=alice&p=enc:zz"),
            Err(CredentialError::InvalidEncodedPassword)
        );
    }

    #[test]
    fn token_and_salt() {
        assert_eq!(
            cred("u=alice&t=26719a1196d2a940705a59634eb18eab&s=c19b2d&f=json"),
            Ok(Credential::Token {
                user: user("alice"),
                token: token(b"sesame", b"c19b2d"),
                salt: Salt::from_slice(b"c19b2d").unwrap(),
            })
        );
        assert_eq!(
            cred("u=alice&t=26719a1196d2a940705a59634eb18eab"),
            Err(CredentialError::Missing(Param::Salt))
        );
        // A salt shorter than six characters is refused, whatever the token.
        let short = hex(&token(b"sesame", b"c19b2"));
        assert_eq!(
            cred(&format!("u=alice&t={short}&s=c19b2")),
            Err(CredentialError::SaltTooShort)
        );
        assert_eq!(CredentialError::SaltTooShort.code().code(), 40);
        assert_eq!(
            cred("u=alice&s=c19b2d"),
            Err(CredentialError::Missing(Param::Token))
        );
        assert_eq!(
            cred("u=alice&t=26719a&s=c19b2d"),
            Err(CredentialError::InvalidToken)
        );
        assert_eq!(
            cred("u=alice&t=26719a1196d2a940705a59634eb18eaX&s=c19b2d"),
            Err(CredentialError::InvalidToken)
        );
    }

    #[test]
    fn api_key_alone_and_in_conflict() {
        assert_eq!(
            cred("apiKey=k3y&v=1.16.1&c=app"),
            Ok(Credential::ApiKey {
                key: secret(b"k3y")
            })
        );
        for q in [
            "apiKey=k&u=alice",
            "apiKey=k&p=x",
            "apiKey=k&t=26719a1196d2a940705a59634eb18eab",
            "apiKey=k&s=c19b2d",
        ] {
            assert_eq!(cred(q), Err(CredentialError::ApiKeyWithOthers), "{q}");
            assert_eq!(
                CredentialError::ApiKeyWithOthers.code().code(),
                43,
                "OpenSubsonic: apiKey with u is error 43"
            );
        }
        assert_eq!(
            cred(&format!("apiKey={}", "k".repeat(MAX_SECRET_LEN + 1))),
            Err(CredentialError::TooLong(Param::ApiKey))
        );
        assert_eq!(
            CredentialError::TooLong(Param::ApiKey).code(),
            ErrorCode::InvalidApiKey
        );
    }

    #[test]
    fn missing_conflicting_and_repeated() {
        assert_eq!(cred(""), Err(CredentialError::NoCredentials));
        assert_eq!(
            cred("v=1.16.1&c=app&f=json"),
            Err(CredentialError::NoCredentials)
        );
        assert_eq!(
            cred("u=alice"),
            Err(CredentialError::Missing(Param::Password))
        );
        assert_eq!(cred("p=x"), Err(CredentialError::Missing(Param::User)));
        assert_eq!(
            cred("u=&p=x"),
            Err(CredentialError::Missing(Param::User)),
            "an empty value is absent"
        );
        assert_eq!(
            cred("u=a&p=x&t=26719a1196d2a940705a59634eb18eab&s=1"),
            Err(CredentialError::PasswordWithToken)
        );
        assert_eq!(
            cred("u=a&p=x&p=y"),
            Err(CredentialError::Repeated(Param::Password))
        );
        assert_eq!(
            cred("u=a&%70=x&p=y"),
            Err(CredentialError::Repeated(Param::Password)),
            "escaped names are the same parameter"
        );
        assert_eq!(
            cred("u=a&u=b&p=x"),
            Err(CredentialError::Repeated(Param::User))
        );
        assert_eq!(
            cred("u=a&p=&p=y"),
            Err(CredentialError::Repeated(Param::Password))
        );
        assert_eq!(
            parse_request(b"u=a&p=x", Some(b"p=y")).credential,
            Err(CredentialError::Repeated(Param::Password)),
            "query and body together"
        );
        assert_eq!(
            parse_request(b"v=1&c=x", Some(b"u=a&p=y")).credential,
            Ok(Credential::Password {
                user: user("a"),
                password: secret(b"y")
            }),
            "credentials from a form body"
        );
        assert_eq!(
            cred("U=a&P=x"),
            Err(CredentialError::NoCredentials),
            "names are case-sensitive, as in Subsonic servers"
        );
        assert_eq!(
            cred("u=a%zz&p=x"),
            Err(CredentialError::InvalidEscape(Param::User))
        );
        assert_eq!(
            cred(&format!("u={}&p=x", "a".repeat(65))),
            Err(CredentialError::TooLong(Param::User))
        );
        assert_eq!(cred("u=%20a&p=x"), Err(CredentialError::InvalidUsername));
    }

    #[test]
    fn every_credential_error_has_its_code() {
        use CredentialError as E;
        let codes = [
            (E::NoCredentials, 10),
            (E::Missing(Param::User), 10),
            (E::Missing(Param::Salt), 10),
            (E::Repeated(Param::ApiKey), 43),
            (E::ApiKeyWithOthers, 43),
            (E::PasswordWithToken, 43),
            (E::InvalidEscape(Param::Password), 40),
            (E::InvalidEscape(Param::ApiKey), 44),
            (E::TooLong(Param::Salt), 40),
            (E::InvalidUsername, 40),
            (E::InvalidEncodedPassword, 40),
            (E::InvalidToken, 40),
        ];
        for (e, code) in codes {
            assert_eq!(e.code().code(), code, "{e}");
        }
        assert_eq!(ErrorCode::TokenNotSupported.code(), 41);
        assert_eq!(ErrorCode::MechanismNotSupported.code(), 42);
        assert_eq!(ErrorCode::Generic.code(), 0);
    }

    #[test]
    fn formats() {
        assert_eq!(parse("u=a&p=b").format, Format::Xml);
        assert_eq!(parse("f=xml").format, Format::Xml);
        assert_eq!(parse("f=json").format, Format::Json);
        assert_eq!(parse("f=json&f=xml").format, Format::Json, "first wins");
        assert_eq!(
            parse("f=jsonp&callback=cb.done_1$").format,
            Format::Jsonp(heapless::String::try_from("cb.done_1$").unwrap())
        );
        for bad in [
            "alert(1)//",
            "a</script>",
            "1abc",
            "a..b",
            ".a",
            "a%0Ab",
            "",
        ] {
            assert_eq!(
                parse(&format!("f=jsonp&callback={bad}")).format,
                Format::Json,
                "{bad}"
            );
        }
        assert_eq!(parse("f=jsonp").format, Format::Json);
    }

    fn body_of(response: &[u8]) -> &str {
        let at = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        core::str::from_utf8(&response[at + 4..]).unwrap()
    }

    fn head_of(response: &[u8]) -> &str {
        let at = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        core::str::from_utf8(&response[..at]).unwrap()
    }

    #[test]
    fn xml_error_as_a_subsonic_server_sends_it() {
        let mut out = [0u8; MAX_RESPONSE_LEN];
        let n = write_error(
            &mut out,
            &Format::Xml,
            ErrorCode::WrongCredentials,
            None,
            None,
            false,
        )
        .unwrap();
        let head = head_of(&out[..n]);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("Content-Type: text/xml; charset=utf-8"));
        assert_eq!(
            body_of(&out[..n]),
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<subsonic-response xmlns=\"http://subsonic.org/restapi\" status=\"failed\" version=\"1.16.1\" type=\"gatehouse\" serverVersion=\"{SERVER_VERSION}\" openSubsonic=\"true\"><error code=\"40\" message=\"Wrong username or password.\"/></subsonic-response>\n"
            )
        );
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(len, body_of(&out[..n]).len());
    }

    #[test]
    fn json_errors_for_every_code() {
        let mut out = [0u8; MAX_RESPONSE_LEN];
        for code in [
            ErrorCode::Generic,
            ErrorCode::MissingParameter,
            ErrorCode::WrongCredentials,
            ErrorCode::TokenNotSupported,
            ErrorCode::MechanismNotSupported,
            ErrorCode::ConflictingMechanisms,
            ErrorCode::InvalidApiKey,
        ] {
            let n = write_error(&mut out, &Format::Json, code, None, None, true).unwrap();
            let head = head_of(&out[..n]);
            assert!(head.contains("Content-Type: application/json; charset=utf-8"));
            assert!(head.contains("Connection: close"));
            assert_eq!(
                body_of(&out[..n]),
                format!(
                    "{{\"subsonic-response\":{{\"status\":\"failed\",\"version\":\"1.16.1\",\"type\":\"gatehouse\",\"serverVersion\":\"{SERVER_VERSION}\",\"openSubsonic\":true,\"error\":{{\"code\":{},\"message\":\"{}\"}}}}}}",
                    code.code(),
                    code.message()
                )
            );
            let n = write_error(&mut out, &Format::Xml, code, None, None, true).unwrap();
            assert!(
                body_of(&out[..n]).contains(&format!(
                    "<error code=\"{}\" message=\"{}\"/>",
                    code.code(),
                    code.message()
                )),
                "{code:?}"
            );
        }
    }

    #[test]
    fn help_url_and_retry_after_are_escaped_and_written() {
        let mut out = [0u8; MAX_RESPONSE_LEN];
        let n = write_error(
            &mut out,
            &Format::Xml,
            ErrorCode::TokenNotSupported,
            Some("/_gatehouse/account?a=1&b=\"2\""),
            Some(30),
            false,
        )
        .unwrap();
        assert!(head_of(&out[..n]).contains("Retry-After: 30"));
        assert!(
            body_of(&out[..n])
                .contains("helpUrl=\"/_gatehouse/account?a=1&amp;b=&quot;2&quot;\"/>")
        );
        let n = write_error(
            &mut out,
            &Format::Json,
            ErrorCode::TokenNotSupported,
            Some("/x?a=\"<\\"),
            None,
            false,
        )
        .unwrap();
        assert!(body_of(&out[..n]).contains(r#","helpUrl":"/x?a=\"\u003c\\"}"#));
    }

    #[test]
    fn jsonp_wraps_only_a_safe_callback() {
        let mut out = [0u8; MAX_RESPONSE_LEN];
        let format = parse("f=jsonp&callback=app.cb").format;
        let n = write_error(
            &mut out,
            &format,
            ErrorCode::WrongCredentials,
            None,
            None,
            false,
        )
        .unwrap();
        assert!(head_of(&out[..n]).contains("application/javascript"));
        let body = body_of(&out[..n]);
        assert!(
            body.starts_with("/**/app.cb({\"subsonic-response\":{"),
            "{body}"
        );
        assert!(body.ends_with("}});"), "{body}");
    }

    #[test]
    fn ok_extensions_and_token_info() {
        let mut out = [0u8; MAX_RESPONSE_LEN];
        let n = write_extensions(&mut out, &Format::Json, GATEHOUSE_EXTENSIONS, false).unwrap();
        assert!(body_of(&out[..n]).ends_with(
            "\"openSubsonic\":true,\"openSubsonicExtensions\":[{\"name\":\"apiKeyAuthentication\",\"versions\":[1]},{\"name\":\"formPost\",\"versions\":[1]}]}}"
        ));
        let n = write_extensions(&mut out, &Format::Xml, GATEHOUSE_EXTENSIONS, false).unwrap();
        let body = body_of(&out[..n]);
        assert!(body.contains("status=\"ok\""));
        assert!(body.contains("<openSubsonicExtensions name=\"apiKeyAuthentication\"><versions>1</versions></openSubsonicExtensions>"));
        let n = write_token_info(&mut out, &Format::Json, "Zoë \"<b>\"", false).unwrap();
        assert!(
            body_of(&out[..n]).ends_with(r#","tokenInfo":{"username":"Zoë \"\u003cb\u003e\""}}}"#)
        );
        let n = write_token_info(&mut out, &Format::Xml, "a&b", false).unwrap();
        assert!(body_of(&out[..n]).contains("<tokenInfo username=\"a&amp;b\"/>"));
        let n = write_ok(&mut out, &Format::Xml, false).unwrap();
        assert!(body_of(&out[..n]).ends_with("openSubsonic=\"true\"></subsonic-response>\n"));
        assert_eq!(
            write_ok(&mut [0u8; 40], &Format::Json, false),
            Err(OutputFull)
        );
    }

    #[test]
    fn endpoints_with_and_without_view() {
        assert_eq!(endpoint("/rest/ping"), Endpoint::Ping);
        assert_eq!(endpoint("/rest/ping.view"), Endpoint::Ping);
        assert_eq!(
            endpoint("/rest/getOpenSubsonicExtensions.view"),
            Endpoint::GetOpenSubsonicExtensions
        );
        assert_eq!(endpoint("/rest/tokenInfo"), Endpoint::TokenInfo);
        assert_eq!(endpoint("/rest/getAlbum.view"), Endpoint::Other);
        assert_eq!(endpoint("/rest/"), Endpoint::Other);
    }

    fn stripped(query: &str) -> String {
        let mut out = vec![0u8; query.len()];
        let n = strip_secrets(query.as_bytes(), &mut out).unwrap();
        String::from_utf8(out[..n].to_vec()).unwrap()
    }

    #[test]
    fn stripping_keeps_everything_else_byte_for_byte() {
        assert_eq!(
            stripped("u=alice&p=secret&v=1.16.1&c=My%20App&f=json"),
            "u=alice&v=1.16.1&c=My%20App&f=json"
        );
        assert_eq!(stripped("t=26719a&s=c19b2d&u=a&id=1&id=2"), "u=a&id=1&id=2");
        assert_eq!(stripped("apiKey=k&v=1&c=x"), "v=1&c=x");
        assert_eq!(stripped("p=x"), "");
        assert_eq!(stripped("q=a%26p%3Dx&size=10"), "q=a%26p%3Dx&size=10");
        assert_eq!(stripped("a=1&&b"), "a=1&&b");
        // Spellings that decode to a secret name, for some app.
        for q in [
            "%70=x",
            "%2570=x",
            "P=x",
            "APIKEY=x",
            "api%4Bey=x",
            "%61%70%69%6b%65%79=x",
            "+p=x",
            "p+=x",
            "a=1;p=x",
            "p",
            "s;x=1",
            "%252570=x",
        ] {
            assert_eq!(stripped(&format!("v=1&{q}&c=2")), "v=1&c=2", "{q}");
        }
        // Names that only look close.
        assert_eq!(
            stripped("ps=1&pp=2&sp=3&apiKeys=4"),
            "ps=1&pp=2&sp=3&apiKeys=4"
        );
    }

    #[test]
    fn stripping_a_target() {
        let mut out = [0u8; 128];
        let mut run = |t: &str| {
            let n = strip_secrets_from_target(t, &mut out).unwrap();
            String::from_utf8(out[..n].to_vec()).unwrap()
        };
        assert_eq!(
            run("/rest/ping.view?u=a&p=b&v=1&c=x"),
            "/rest/ping.view?u=a&v=1&c=x"
        );
        assert_eq!(run("/rest/ping.view?apiKey=k"), "/rest/ping.view");
        assert_eq!(run("/rest/ping.view"), "/rest/ping.view");
        assert_eq!(run("/rest/ping.view?"), "/rest/ping.view");
        assert_eq!(
            strip_secrets_from_target("/rest/ping.view?v=1", &mut [0u8; 10]),
            Err(OutputFull)
        );
    }

    mod decision {
        use super::*;
        use crate::password::{MIN_ITERATIONS, hash_password};
        use crate::peer::Peer;
        use crate::throttle::{Throttle, ThrottlePolicy};
        use crate::users::UserTable;

        struct World {
            users: UserTable<4>,
            throttle: Throttle<16>,
            phone: String,
        }

        fn world() -> World {
            let mut users = UserTable::<4>::new();
            let h = hash_password(b"login-pw", &[1; 16], MIN_ITERATIONS).unwrap();
            users.add("alice", true, h.clone()).unwrap();
            users.add("bob", false, h).unwrap();
            let phone = users
                .add_app_password("alice", "phone", &[7; 18], 100)
                .unwrap()
                .to_string();
            World {
                users,
                throttle: Throttle::new(ThrottlePolicy::DEFAULT),
                phone,
            }
        }

        fn client() -> Peer {
            Peer::parse("192.0.2.10:5000").unwrap()
        }

        fn run(w: &mut World, query: &str, policy: &SubsonicPolicy) -> SubsonicAuth {
            let credential = parse(query).credential.unwrap();
            authenticate(
                &credential,
                &mut w.users,
                &mut w.throttle,
                &client(),
                1000,
                policy,
            )
        }

        fn alice(index: usize, last_use_recorded: bool) -> SubsonicAuth {
            SubsonicAuth::Authenticated {
                user: user("alice"),
                admin: true,
                app_password: index,
                last_use_recorded,
            }
        }

        #[test]
        fn app_password_as_clear_hex_token_and_api_key() {
            let mut w = world();
            let p = DEFAULT;
            let phone = w.phone.clone();
            assert_eq!(
                run(&mut w, &format!("u=ALICE&p={phone}"), &p),
                alice(0, true)
            );
            assert_eq!(
                w.users.app_passwords("alice").next().unwrap().last_used,
                Some(1000)
            );
            assert_eq!(
                run(
                    &mut w,
                    &format!("u=alice&p=enc:{}", hex(phone.as_bytes())),
                    &p
                ),
                alice(0, false),
                "the last use moved a moment ago"
            );
            let t = hex(&token(phone.as_bytes(), b"s4ltyz"));
            assert_eq!(
                run(&mut w, &format!("u=alice&t={t}&s=s4ltyz"), &p),
                alice(0, false)
            );
            assert_eq!(run(&mut w, &format!("apiKey={phone}"), &p), alice(0, false));
        }

        const DEFAULT: SubsonicPolicy = SubsonicPolicy::DEFAULT;

        #[test]
        fn failures_name_their_code() {
            let mut w = world();
            let p = DEFAULT;
            let phone = w.phone.clone();
            // Not an app password: the login password may still be it (checked by the caller).
            assert_eq!(
                run(&mut w, "u=alice&p=login-pw", &p),
                SubsonicAuth::CheckLoginPassword
            );
            assert_eq!(
                run(&mut w, "u=nobody&p=x", &p),
                SubsonicAuth::CheckLoginPassword
            );
            let only_apps = SubsonicPolicy {
                login_password: false,
                ..DEFAULT
            };
            let r = run(&mut w, "u=alice&p=login-pw", &only_apps);
            assert_eq!(r, SubsonicAuth::Refused(SubsonicRefusal::WrongPassword));
            assert_eq!(SubsonicRefusal::WrongPassword.code().code(), 40);
            // Tokens: 40 whether or not the user has app passwords (never 41: that would say
            // which accounts have some).
            let t = hex(&token(b"login-pw", b"s4ltyz"));
            assert_eq!(
                run(&mut w, &format!("u=alice&t={t}&s=s4ltyz"), &p),
                SubsonicAuth::Refused(SubsonicRefusal::WrongToken)
            );
            assert_eq!(
                run(&mut w, &format!("u=bob&t={t}&s=s4ltyz"), &p),
                SubsonicAuth::Refused(SubsonicRefusal::TokenWithoutAppPassword)
            );
            assert_eq!(SubsonicRefusal::TokenWithoutAppPassword.code().code(), 40);
            assert_eq!(
                run(&mut w, &format!("u=ghost&t={t}&s=s4ltyz"), &p),
                SubsonicAuth::Refused(SubsonicRefusal::TokenWithoutAppPassword)
            );
            // API keys: 44.
            assert_eq!(
                run(&mut w, "apiKey=login-pw", &p),
                SubsonicAuth::Refused(SubsonicRefusal::UnknownApiKey)
            );
            assert_eq!(SubsonicRefusal::UnknownApiKey.code().code(), 44);
            // Mechanisms turned off: 42, whatever the secret.
            let no_token = SubsonicPolicy {
                token: false,
                ..DEFAULT
            };
            let good = hex(&token(phone.as_bytes(), b"s4ltyz"));
            assert_eq!(
                run(&mut w, &format!("u=alice&t={good}&s=s4ltyz"), &no_token),
                SubsonicAuth::Refused(SubsonicRefusal::MechanismDisabled)
            );
            assert_eq!(SubsonicRefusal::MechanismDisabled.code().code(), 42);
            let no_password = SubsonicPolicy {
                password: false,
                ..DEFAULT
            };
            assert_eq!(
                run(&mut w, &format!("u=alice&p={phone}"), &no_password),
                SubsonicAuth::Refused(SubsonicRefusal::MechanismDisabled)
            );
            let no_key = SubsonicPolicy {
                api_key: false,
                ..DEFAULT
            };
            assert_eq!(
                run(&mut w, &format!("apiKey={phone}"), &no_key),
                SubsonicAuth::Refused(SubsonicRefusal::MechanismDisabled)
            );
            assert_eq!(
                SubsonicRefusal::Credential(CredentialError::ApiKeyWithOthers)
                    .code()
                    .code(),
                43
            );
        }

        #[test]
        fn failures_are_throttled_before_any_check() {
            let mut w = world();
            let p = DEFAULT;
            let mut refused = 0;
            let mut throttled = None;
            for _ in 0..40 {
                match run(&mut w, "apiKey=wrong", &p) {
                    SubsonicAuth::Refused(_) => refused += 1,
                    SubsonicAuth::Throttled { seconds } => {
                        throttled = Some(seconds);
                        break;
                    }
                    other => panic!("{other:?}"),
                }
            }
            // All API-key attempts share one name, guarded after its burst for a network that
            // keeps failing.
            assert_eq!(refused, ThrottlePolicy::DEFAULT.user_burst);
            assert!(throttled.is_some_and(|s| s >= 1));
            // Throttled before any check: even the right key waits.
            let phone = w.phone.clone();
            assert!(matches!(
                run(&mut w, &format!("apiKey={phone}"), &p),
                SubsonicAuth::Throttled { .. }
            ));
        }

        #[test]
        fn a_revoked_app_password_no_longer_works() {
            let mut w = world();
            let phone = w.phone.clone();
            w.users.revoke_app_password("alice", "phone").unwrap();
            assert_eq!(
                run(&mut w, &format!("apiKey={phone}"), &DEFAULT),
                SubsonicAuth::Refused(SubsonicRefusal::UnknownApiKey)
            );
            let t = hex(&token(phone.as_bytes(), b"xyzxyz"));
            assert_eq!(
                run(&mut w, &format!("u=alice&t={t}&s=xyzxyz"), &DEFAULT),
                SubsonicAuth::Refused(SubsonicRefusal::TokenWithoutAppPassword)
            );
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// How an app might read a name: percent-decoded (repeatedly), `+` as space,
        /// trimmed, any case; also split on `;`.
        fn app_names(query: &str) -> Vec<String> {
            let mut names = Vec::new();
            for pair in query.split(['&', ';']) {
                let mut name = pair.split('=').next().unwrap_or("").as_bytes().to_vec();
                for _ in 0..6 {
                    names.push(String::from_utf8_lossy(&name).trim().to_ascii_lowercase());
                    let mut out = vec![0u8; name.len()];
                    let n = lenient_decode(&name, &mut out);
                    out.truncate(n);
                    name = out;
                }
            }
            names
        }

        fn encodings() -> impl Strategy<Value = String> {
            let secret = prop_oneof![Just("p"), Just("t"), Just("s"), Just("apiKey")];
            (secret, proptest::collection::vec(0u8..6, 6)).prop_map(|(name, how)| {
                name.chars()
                    .zip(how.iter().cycle())
                    .map(|(ch, how)| match how {
                        0 => ch.to_string(),
                        1 => ch.to_ascii_uppercase().to_string(),
                        2 => format!("%{:02X}", ch as u8),
                        3 => format!("%{:02x}", ch as u8),
                        4 => format!("%25{:02X}", ch as u8),
                        _ => format!("%2525{:02x}", ch as u8),
                    })
                    .collect()
            })
        }

        proptest! {
            #[test]
            fn parser_never_panics(query in proptest::collection::vec(any::<u8>(), 0..600),
                                   body in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300))) {
                let _ = parse_request(&query, body.as_deref());
            }

            #[test]
            fn parser_never_panics_on_parameter_shaped_input(
                parts in proptest::collection::vec(
                    ("(u|p|t|s|apiKey|f|callback|%70|%75|x)", "[a-zA-Z0-9%:+.=&;]{0,40}"), 0..8)
            ) {
                let q: Vec<String> = parts.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let _ = parse_request(q.join("&").as_bytes(), None);
            }

            #[test]
            fn no_secret_name_survives_stripping(
                before in "[a-z0-9=&%;+]{0,30}",
                secret in encodings(),
                value in "[a-zA-Z0-9%+;=]{0,20}",
                after in "[a-z0-9=&%;+]{0,30}",
            ) {
                let query = format!("{before}&{secret}={value}&{after}");
                let mut out = vec![0u8; query.len()];
                let n = strip_secrets(query.as_bytes(), &mut out).unwrap();
                let kept = String::from_utf8(out[..n].to_vec()).unwrap();
                for name in app_names(&kept) {
                    prop_assert!(
                        !["p", "t", "s", "apikey"].contains(&name.as_str()),
                        "{query} -> {kept} lets {name} through"
                    );
                }
            }

            #[test]
            fn stripping_keeps_other_pairs_in_order(
                pairs in proptest::collection::vec("[a-oq-rv-z][a-z0-9]{0,5}=[a-zA-Z0-9%]{0,8}", 0..8)
            ) {
                let query = pairs.join("&");
                let mut out = vec![0u8; query.len()];
                let n = strip_secrets(query.as_bytes(), &mut out).unwrap();
                prop_assert_eq!(&out[..n], query.as_bytes());
            }

            #[test]
            fn stripping_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400), room in 0usize..400) {
                let mut out = vec![0u8; room];
                let _ = strip_secrets(&bytes, &mut out);
                if let Ok(s) = core::str::from_utf8(&bytes) {
                    let _ = strip_secrets_from_target(s, &mut out);
                }
            }
        }
    }
}
