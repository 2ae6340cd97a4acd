//! Session cookies: stateless tokens signed with HMAC-SHA256.
//!
//! A token says *who* (the username), *when* (issued-at and expiry, UNIX seconds), *for which
//! users table* (its random id) and *under which generation* of that user it was issued, and
//! carries an HMAC-SHA256 over all of it.
//! Nothing is stored server-side, so any number of gateways sharing a key agree, and a board
//! needs no RAM per session. Layout, before base64url (unpadded) encoding:
//!
//! ```text
//! version u8 | table u64 BE | generation u32 BE | issued_at u64 BE | expires_at u64 BE | name_len u8 | name | mac[32]
//! ```
//!
//! The MAC covers a context label and every byte before it. The threats each check exists
//! for, each refusal its own [`SessionError`]:
//! - **Forged or altered cookies** ([`SessionError::BadSignature`]): only a holder of the key
//!   can make a token; the MAC is compared in constant time ([`subtle`]).
//! - **Stolen cookies used forever** ([`SessionError::Expired`]): every token has an expiry.
//! - **Tokens from a clock gone wrong or a key misuse** ([`SessionError::IssuedInFuture`]): a
//!   token issued more than [`MAX_CLOCK_SKEW_SECS`] ahead of `now` is refused; the slack
//!   covers gateways sharing a key whose clocks differ slightly.
//! - **Sessions that must end now** ([`SessionError::Revoked`], [`SessionError::UnknownUser`]):
//!   a password change or "log out everywhere" bumps the user's generation; a deleted user
//!   has none. Either kills every token issued before.
//! - **A users table made anew** ([`SessionError::OtherTable`]): generations start again in a
//!   new table, so a token of the old `alice` would fit the new one, who may be someone else.
//!   Every table has a random id ([`UserTable::table_id`]), every token names it, and no other
//!   table accepts it.
//! - **Key rotation** without logging everyone out: [`SessionKeys`] holds the current key,
//!   which signs, and the previous one, which still verifies until the next rotation.
//! - **A leaked key carried forward by rotation**: a token the previous key verified is never
//!   renewed ([`Session::should_renew`]). Re-signing it under the current key would let a
//!   token forged with a leaked key outlive the rotations meant to retire that key; so it
//!   keeps its own expiry and dies at the next rotation at the latest. Ending every session
//!   at once is a rotation that keeps no previous key ([`SessionKeys::replace`]).
//!
//! `now` is always a parameter: core never reads a clock.

use crate::users::{UserTable, UsernameError, parse_username};
use crate::{MAX_USERNAME_LEN, Username};
use base64ct::{Base64UrlUnpadded, Encoding};
use core::fmt;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::{ConditionallySelectable, ConstantTimeEq};

/// Name of the session cookie on a plain-HTTP deployment.
pub const COOKIE_NAME: &str = "gatehouse_session";

/// Name of the session cookie when cookies are `Secure`. Browsers accept a `__Host-` cookie
/// only with `Secure`, `Path=/` and no `Domain`, so a host on a sibling subdomain cannot plant
/// one: neither a session of its own choosing (fixation) nor one that shadows gatehouse's.
pub const SECURE_COOKIE_NAME: &str = "__Host-gatehouse_session";

/// The session cookie's name: [`SECURE_COOKIE_NAME`] when `secure`, else [`COOKIE_NAME`].
pub const fn cookie_name(secure: bool) -> &'static str {
    if secure {
        SECURE_COOKIE_NAME
    } else {
        COOKIE_NAME
    }
}

/// Bytes of a session key.
pub const SESSION_KEY_LEN: usize = 32;

/// Format version written in the first byte of every token.
pub const TOKEN_VERSION: u8 = 2;

/// How far in the future a token's issued-at may lie and still be accepted, in seconds.
pub const MAX_CLOCK_SKEW_SECS: u64 = 60;

const MAC_LEN: usize = 32;
const HEADER_LEN: usize = 1 + 8 + 4 + 8 + 8 + 1;
const MIN_TOKEN_BYTES: usize = HEADER_LEN + 1 + MAC_LEN;

/// Most bytes of a token before encoding.
pub const MAX_TOKEN_BYTES: usize = HEADER_LEN + MAX_USERNAME_LEN + MAC_LEN;

/// Most characters of an encoded token (the cookie value).
pub const MAX_TOKEN_LEN: usize = (MAX_TOKEN_BYTES * 4).div_ceil(3);

/// Most bytes [`write_set_cookie`] writes; a buffer of this size always suffices.
pub const MAX_SET_COOKIE_LEN: usize = 288;

/// Separates a session MAC from any other use of the same key.
const MAC_CONTEXT: &[u8] = b"gatehouse session\0";

/// An encoded token: the value of the session cookie.
pub type SessionToken = heapless::String<MAX_TOKEN_LEN>;

/// A key that signs and verifies session tokens: 32 random bytes from the caller.
///
/// Its `Debug` output never shows the key.
#[derive(Clone)]
pub struct SessionKey {
    bytes: [u8; SESSION_KEY_LEN],
    /// HMAC-SHA256 already keyed with `bytes`: the key's inner and outer pad blocks are hashed
    /// once here, so a MAC costs two SHA-256 blocks fewer than keying it afresh each time.
    keyed: Hmac<Sha256>,
    /// Names the key to a [`SessionCache`] without holding it: a MAC under the key of a
    /// fixed label.
    id: [u8; KEY_ID_LEN],
}

/// Bytes of a [`SessionKey`]'s id: long enough that two keys never share one.
const KEY_ID_LEN: usize = 16;

/// The label whose MAC under a key is the key's id (never a token's signed bytes, which
/// start with [`MAC_CONTEXT`]).
const KEY_ID_CONTEXT: &[u8] = b"gatehouse session key id\0";

impl SessionKey {
    /// A key from random bytes (the daemon's OS RNG, a board's hardware RNG).
    pub fn from_bytes(random: [u8; SESSION_KEY_LEN]) -> Self {
        // HMAC pads a key shorter than the hash's block with zeros, so this is exactly
        // HMAC-SHA256 under `random`, built without a fallible constructor.
        let mut block = [0u8; 64];
        block[..SESSION_KEY_LEN].copy_from_slice(&random);
        let keyed = Hmac::<Sha256>::new((&block).into());
        let full = keyed
            .clone()
            .chain_update(KEY_ID_CONTEXT)
            .finalize()
            .into_bytes();
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&full[..KEY_ID_LEN]);
        Self {
            bytes: random,
            keyed,
            id,
        }
    }

    /// The key's bytes, for the shell to store (mode 0600, a flash record).
    pub fn as_bytes(&self) -> &[u8; SESSION_KEY_LEN] {
        &self.bytes
    }

    /// HMAC-SHA256 under this key, ready for input.
    pub(crate) fn hmac(&self) -> Hmac<Sha256> {
        self.keyed.clone()
    }

    fn mac(&self, signed: &[u8]) -> [u8; MAC_LEN] {
        self.hmac()
            .chain_update(MAC_CONTEXT)
            .chain_update(signed)
            .finalize()
            .into_bytes()
            .into()
    }
}

impl PartialEq for SessionKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for SessionKey {}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

/// Which key verified a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyUsed {
    /// The current key.
    Current,
    /// The previous key: the token predates the last rotation and should be reissued.
    Previous,
}

/// The current key, which signs, and the previous one, which still verifies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionKeys {
    /// Signs new tokens and verifies.
    pub current: SessionKey,
    /// Verifies tokens signed before the last rotation.
    pub previous: Option<SessionKey>,
}

/// Why a token was not issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssueError {
    /// The username is not valid.
    InvalidUsername(UsernameError),
}

impl fmt::Display for IssueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUsername(e) => write!(f, "cannot issue a session: {e}"),
        }
    }
}

impl core::error::Error for IssueError {}

/// Why a session token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionError {
    /// Not a token: bad base64url, wrong length, or a signed body that does not parse.
    Malformed,
    /// A format version this build does not know.
    UnsupportedVersion,
    /// Neither the current nor the previous key made this MAC.
    BadSignature,
    /// Issued more than [`MAX_CLOCK_SKEW_SECS`] after `now`.
    IssuedInFuture,
    /// `now` is at or past the expiry.
    Expired,
    /// The user no longer exists.
    UnknownUser,
    /// The user's generation changed since issue (password change, "log out everywhere").
    Revoked,
    /// Issued for another users table (the users file was made anew, a board provisioned
    /// again).
    OtherTable,
    /// The request carries more than one session cookie ([`single_session_cookie`]).
    SeveralCookies,
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "session token is malformed",
            Self::UnsupportedVersion => "session token version is not supported",
            Self::BadSignature => "session token signature is not valid",
            Self::IssuedInFuture => "session token is issued in the future",
            Self::Expired => "session token has expired",
            Self::UnknownUser => "session token names a user that no longer exists",
            Self::Revoked => "session token was revoked",
            Self::OtherTable => "session token was issued for another users table",
            Self::SeveralCookies => "the request carries more than one session cookie",
        })
    }
}

impl core::error::Error for SessionError {}

/// A verified session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The user, as spelled when the token was issued.
    pub username: Username,
    /// The id of the users table it was issued for, equal to the current one.
    pub table: u64,
    /// The user's generation at issue, equal to the current one.
    pub generation: u32,
    /// Issue time, UNIX seconds.
    pub issued_at: u64,
    /// Expiry, UNIX seconds (exclusive).
    pub expires_at: u64,
    /// Which key verified it.
    pub key: KeyUsed,
}

impl Session {
    /// Whether the shell should send a fresh token: the current key signed it and less than
    /// half of its lifetime remains.
    ///
    /// A token the previous key verified is never renewed: the previous key may be one being
    /// retired because it leaked, and a renewal would re-sign whatever it vouches for (a forged
    /// token too) under the current key, where it would survive the next rotation. It keeps
    /// the expiry it has, and the next rotation ends it.
    pub fn should_renew(&self, now: u64) -> bool {
        let lifetime = self.expires_at.saturating_sub(self.issued_at);
        self.key == KeyUsed::Current && self.expires_at.saturating_sub(now) < lifetime / 2
    }
}

impl SessionKeys {
    /// Keys with no previous key yet.
    pub fn new(current: SessionKey) -> Self {
        Self {
            current,
            previous: None,
        }
    }

    /// Makes `next` the signing key; the current one becomes the previous and still verifies.
    pub fn rotate(&mut self, next: SessionKey) {
        self.previous = Some(core::mem::replace(&mut self.current, next));
    }

    /// Makes `next` the only key: every token signed before is refused at once (a leaked key,
    /// "log out everyone").
    pub fn replace(&mut self, next: SessionKey) {
        self.current = next;
        self.previous = None;
    }

    /// Issues a token for `username` at `generation` in the users table with id `table`
    /// ([`UserTable::table_id`]), valid from `now` for `ttl_secs` seconds, signed with the
    /// current key.
    pub fn issue(
        &self,
        table: u64,
        username: &str,
        generation: u32,
        now: u64,
        ttl_secs: u64,
    ) -> Result<SessionToken, IssueError> {
        let name = parse_username(username).map_err(IssueError::InvalidUsername)?;
        let mut raw = [0u8; MAX_TOKEN_BYTES];
        let mut len = 0;
        let name_len = [u8::try_from(name.len()).unwrap_or(u8::MAX)];
        let fields: [&[u8]; 7] = [
            &[TOKEN_VERSION],
            &table.to_be_bytes(),
            &generation.to_be_bytes(),
            &now.to_be_bytes(),
            &now.saturating_add(ttl_secs).to_be_bytes(),
            &name_len,
            name.as_bytes(),
        ];
        for field in fields {
            if let Some(dst) = raw.get_mut(len..len + field.len()) {
                dst.copy_from_slice(field);
                len += field.len();
            }
        }
        let mac = self.current.mac(raw.get(..len).unwrap_or(&[]));
        if let Some(dst) = raw.get_mut(len..len + MAC_LEN) {
            dst.copy_from_slice(&mac);
            len += MAC_LEN;
        }
        let mut encoded = [0u8; MAX_TOKEN_LEN];
        let mut token = SessionToken::new();
        // At most MAX_TOKEN_BYTES encode to at most MAX_TOKEN_LEN characters: both fit.
        if let Ok(text) = Base64UrlUnpadded::encode(raw.get(..len).unwrap_or(&[]), &mut encoded) {
            let _ = token.push_str(text);
        }
        Ok(token)
    }

    /// Verifies a cookie value at time `now` for the users table with id `table`;
    /// `generation_of` answers the named user's current generation, or `None` when there is
    /// no such user (`|name| users.generation_of(name)`).
    ///
    /// Checked in this order: format, MAC (current key, then previous), time, table,
    /// generation.
    pub fn verify(
        &self,
        token: &[u8],
        now: u64,
        table: u64,
        generation_of: impl FnOnce(&str) -> Option<u32>,
    ) -> Result<Session, SessionError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(SessionError::Malformed);
        }
        let mut buf = [0u8; MAX_TOKEN_BYTES];
        let raw =
            Base64UrlUnpadded::decode(token, &mut buf).map_err(|_| SessionError::Malformed)?;
        if raw.len() < MIN_TOKEN_BYTES {
            return Err(SessionError::Malformed);
        }
        let (signed, mac) = raw.split_at(raw.len() - MAC_LEN);
        if signed.first() != Some(&TOKEN_VERSION) {
            return Err(SessionError::UnsupportedVersion);
        }
        let key = if bool::from(self.current.mac(signed).ct_eq(mac)) {
            KeyUsed::Current
        } else if self
            .previous
            .as_ref()
            .is_some_and(|previous| bool::from(previous.mac(signed).ct_eq(mac)))
        {
            KeyUsed::Previous
        } else {
            return Err(SessionError::BadSignature);
        };

        let body = Body::parse(signed).ok_or(SessionError::Malformed)?;
        if body.issued_at > now.saturating_add(MAX_CLOCK_SKEW_SECS) {
            return Err(SessionError::IssuedInFuture);
        }
        if now >= body.expires_at {
            return Err(SessionError::Expired);
        }
        if body.table != table {
            return Err(SessionError::OtherTable);
        }
        match generation_of(&body.username) {
            None => Err(SessionError::UnknownUser),
            Some(current) if current != body.generation => Err(SessionError::Revoked),
            Some(_) => Ok(Session {
                username: body.username,
                table: body.table,
                generation: body.generation,
                issued_at: body.issued_at,
                expires_at: body.expires_at,
                key,
            }),
        }
    }

    /// [`SessionKeys::verify`] against a users table; returns the session and its user.
    pub fn verify_user<'u, const N: usize, const A: usize>(
        &self,
        token: &[u8],
        now: u64,
        users: &'u UserTable<N, A>,
    ) -> Result<(Session, &'u crate::users::User), SessionError> {
        // One lookup of the user serves both the generation check and the answer.
        let mut found = None;
        let session = self.verify(token, now, users.table_id(), |name| {
            let user = users.find(name)?;
            found = Some(user);
            Some(user.generation)
        })?;
        let user = found.ok_or(SessionError::UnknownUser)?;
        Ok((session, user))
    }

    /// [`SessionKeys::verify_user`], remembering verified tokens in `cache`: a token verified
    /// before skips the decoding and the MAC, and every other check is made again.
    /// The answer is always the one [`SessionKeys::verify_user`] gives.
    pub fn verify_user_cached<'u, const N: usize, const A: usize, const S: usize>(
        &self,
        token: &[u8],
        now: u64,
        users: &'u UserTable<N, A>,
        cache: &mut SessionCache<S>,
    ) -> Result<(Session, &'u crate::users::User), SessionError> {
        if let Some(index) = cache.position(token) {
            let slot = &mut cache.slots[index];
            // Which of the keys held now made its MAC: as the full check tries them. A key
            // rotated out makes the entry worthless; the full check below says why.
            let key = if slot.key_id == self.current.id {
                Some(KeyUsed::Current)
            } else if self.previous.as_ref().is_some_and(|p| slot.key_id == p.id) {
                Some(KeyUsed::Previous)
            } else {
                None
            };
            if let Some(key) = key {
                let result = slot.recheck(key, now, users);
                match &result {
                    Ok(_) => slot.last_used = slot.last_used.max(now),
                    Err(_) => *slot = CachedSession::EMPTY,
                }
                return result;
            }
            *slot = CachedSession::EMPTY;
        }
        let (session, user) = self.verify_user(token, now, users)?;
        let id = match session.key {
            KeyUsed::Current => &self.current.id,
            // A previous key verified it, so there is one.
            KeyUsed::Previous => match &self.previous {
                Some(previous) => &previous.id,
                None => return Ok((session, user)),
            },
        };
        cache.insert(token, id, &session, now);
        Ok((session, user))
    }
}

/// How many verified session tokens a [`SessionCache`] holds (the `session-cache` feature;
/// boards leave it off and spend no RAM on it).
#[cfg(feature = "session-cache")]
pub const SESSION_CACHE_SLOTS: usize = 8;

/// How many verified session tokens a [`SessionCache`] holds (the `session-cache` feature;
/// boards leave it off and spend no RAM on it).
#[cfg(not(feature = "session-cache"))]
pub const SESSION_CACHE_SLOTS: usize = 0;

/// Bytes a cached token is kept in: [`MAX_TOKEN_LEN`] rounded up to whole 64-bit words.
const CACHED_TOKEN_LEN: usize = MAX_TOKEN_LEN.next_multiple_of(8);

/// The last `N` session tokens that passed [`SessionKeys::verify`], so that a browser's next
/// request skips the base64 decoding and the HMAC ([`SessionKeys::verify_user_cached`]).
///
/// Why it is safe:
/// - **Only verified tokens get in.** An entry is made only after the full check passed, so
///   a forged token can neither enter nor push a real one out; a flood of forged tokens
///   costs what it costs without the cache. A user can push others' entries out only with
///   valid tokens of their own, and a pushed-out token is simply verified in full again.
/// - **A hit is the exact token.** The presented token is compared with every slot, all of
///   its bytes and its length, in constant time (folded 64-bit words tested with `subtle`),
///   so timing shows neither which slot nor how much of a token matched; there are no
///   buckets to aim at.
/// - **Nothing is believed for longer than the token itself says.** A hit skips only what
///   depends on the token's bytes and the key alone (format, version, MAC). The key that
///   verified it must still be the current or the previous one (by its id: a MAC of a label,
///   not the key), and issued-at, expiry, the user's existence and generation are checked on
///   every hit exactly as the full check does; an entry failing any of them is dropped. So
///   rotation, "log out everywhere", a password change or a deleted user take effect at once.
/// - **No new secret.** An entry holds a token, no more than the session key can make at
///   will; whoever can read the cache in memory can read that key too.
///
/// Fixed capacity, no allocation; the least recently used entry makes room.
#[derive(Clone)]
pub struct SessionCache<const N: usize> {
    slots: [CachedSession; N],
}

#[derive(Clone)]
struct CachedSession {
    /// The token, zero-padded; `len == 0` is a free slot.
    token: [u8; CACHED_TOKEN_LEN],
    len: usize,
    key_id: [u8; KEY_ID_LEN],
    username: Username,
    table: u64,
    generation: u32,
    issued_at: u64,
    expires_at: u64,
    last_used: u64,
}

impl CachedSession {
    const EMPTY: Self = Self {
        token: [0; CACHED_TOKEN_LEN],
        len: 0,
        key_id: [0; KEY_ID_LEN],
        username: Username::new(),
        table: 0,
        generation: 0,
        issued_at: 0,
        expires_at: 0,
        last_used: 0,
    };

    /// The checks of [`SessionKeys::verify_user`] that come after the MAC, in its order.
    fn recheck<'u, const N: usize, const A: usize>(
        &self,
        key: KeyUsed,
        now: u64,
        users: &'u UserTable<N, A>,
    ) -> Result<(Session, &'u crate::users::User), SessionError> {
        if self.issued_at > now.saturating_add(MAX_CLOCK_SKEW_SECS) {
            return Err(SessionError::IssuedInFuture);
        }
        if now >= self.expires_at {
            return Err(SessionError::Expired);
        }
        if self.table != users.table_id() {
            return Err(SessionError::OtherTable);
        }
        match users.find(&self.username) {
            None => Err(SessionError::UnknownUser),
            Some(user) if user.generation != self.generation => Err(SessionError::Revoked),
            Some(user) => Ok((
                Session {
                    username: self.username.clone(),
                    table: self.table,
                    generation: self.generation,
                    issued_at: self.issued_at,
                    expires_at: self.expires_at,
                    key,
                },
                user,
            )),
        }
    }
}

impl<const N: usize> Default for SessionCache<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Debug for SessionCache<N> {
    /// Occupancy only: tokens stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionCache")
            .field("capacity", &N)
            .field("occupied", &self.len())
            .finish_non_exhaustive()
    }
}

impl<const N: usize> SessionCache<N> {
    /// An empty cache.
    pub const fn new() -> Self {
        Self {
            slots: [const { CachedSession::EMPTY }; N],
        }
    }

    /// Forgets every entry.
    pub fn clear(&mut self) {
        for slot in &mut self.slots {
            *slot = CachedSession::EMPTY;
        }
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.len != 0).count()
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The slot holding exactly `token`, compared with every slot in constant time.
    fn position(&self, token: &[u8]) -> Option<usize> {
        if N == 0 || token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let mut want = [0u8; CACHED_TOKEN_LEN];
        want[..token.len()].copy_from_slice(token);
        // Both are zero past their length: when the lengths agree, the words that hold the
        // token decide (how many depends only on the token presented).
        let words = token.len().div_ceil(8) * 8;
        let want = &want[..words];
        // One `subtle` test per slot; the rest is plain arithmetic and masked assignment.
        let mut found = 0u8;
        let mut index = 0u64;
        for (i, slot) in self.slots.iter().enumerate() {
            // A free slot (length 0, never a token's) differs in its length.
            let diff = slot.token[..words]
                .chunks_exact(8)
                .zip(want.chunks_exact(8))
                .fold((slot.len ^ token.len()) as u64, |acc, (h, w)| {
                    acc | (word(h) ^ word(w))
                });
            let hit = diff.ct_eq(&0);
            index.conditional_assign(&(i as u64), hit);
            found.conditional_assign(&1, hit);
        }
        if found == 1 {
            usize::try_from(index).ok()
        } else {
            None
        }
    }

    /// Remembers a token that just passed the full check under the key with `key_id`.
    fn insert(&mut self, token: &[u8], key_id: &[u8; KEY_ID_LEN], session: &Session, now: u64) {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return;
        }
        let victim = self
            .slots
            .iter()
            .position(|s| s.len == 0 || now >= s.expires_at)
            .or_else(|| {
                self.slots
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, s)| s.last_used)
                    .map(|(i, _)| i)
            });
        let Some(slot) = victim.and_then(|i| self.slots.get_mut(i)) else {
            return;
        };
        slot.token = [0; CACHED_TOKEN_LEN];
        slot.token[..token.len()].copy_from_slice(token);
        slot.len = token.len();
        slot.key_id = *key_id;
        slot.username.clone_from(&session.username);
        slot.table = session.table;
        slot.generation = session.generation;
        slot.issued_at = session.issued_at;
        slot.expires_at = session.expires_at;
        slot.last_used = now;
    }
}

fn word(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(bytes);
    u64::from_ne_bytes(b)
}

/// The signed fields of a token, after the MAC has been checked.
struct Body {
    table: u64,
    generation: u32,
    issued_at: u64,
    expires_at: u64,
    username: Username,
}

impl Body {
    fn parse(signed: &[u8]) -> Option<Self> {
        let (header, name) = signed.split_at_checked(HEADER_LEN)?;
        let table = u64::from_be_bytes(header.get(1..9)?.try_into().ok()?);
        let generation = u32::from_be_bytes(header.get(9..13)?.try_into().ok()?);
        let issued_at = u64::from_be_bytes(header.get(13..21)?.try_into().ok()?);
        let expires_at = u64::from_be_bytes(header.get(21..29)?.try_into().ok()?);
        let name_len = usize::from(*header.get(29)?);
        if name.len() != name_len || expires_at < issued_at {
            return None;
        }
        let username = parse_username(core::str::from_utf8(name).ok()?).ok()?;
        Some(Self {
            table,
            generation,
            issued_at,
            expires_at,
            username,
        })
    }
}

/// Why a `Set-Cookie` value was not written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CookieError {
    /// The output buffer is too small; [`MAX_SET_COOKIE_LEN`] always suffices.
    BufferTooSmall,
    /// The token is not a cookie value gatehouse makes (base64url, at most
    /// [`MAX_TOKEN_LEN`] characters). Refused rather than written, so that no `;`, space or
    /// line break can add attributes or headers.
    InvalidToken,
}

impl fmt::Display for CookieError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BufferTooSmall => "buffer too small for the Set-Cookie value",
            Self::InvalidToken => "session token is not a base64url cookie value",
        })
    }
}

impl core::error::Error for CookieError {}

/// Writes the value of a `Set-Cookie` header that stores `token`, into `out`; returns its
/// length. `HttpOnly` keeps it from scripts, `SameSite=Lax` from cross-site POSTs, `Path=/`
/// covers the whole app, `Max-Age` ends it with the token, and `Secure` (pass `secure` when
/// the client connection is TLS) keeps it off plain HTTP.
pub fn write_set_cookie(
    out: &mut [u8],
    token: &str,
    max_age_secs: u64,
    secure: bool,
) -> Result<usize, CookieError> {
    let base64url = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if token.is_empty() || token.len() > MAX_TOKEN_LEN || !token.bytes().all(base64url) {
        return Err(CookieError::InvalidToken);
    }
    write_cookie(out, token, max_age_secs, secure)
}

/// Writes the value of a `Set-Cookie` header that deletes the session cookie (logout).
pub fn write_clear_cookie(out: &mut [u8], secure: bool) -> Result<usize, CookieError> {
    write_cookie(out, "", 0, secure)
}

fn write_cookie(
    out: &mut [u8],
    value: &str,
    max_age_secs: u64,
    secure: bool,
) -> Result<usize, CookieError> {
    let mut cursor = crate::http::Cursor::new(out);
    cursor
        .put_str(cookie_name(secure))
        .put(b"=")
        .put_str(value)
        .put(b"; Path=/; Max-Age=")
        .put_u64(max_age_secs)
        .put(b"; HttpOnly; SameSite=Lax")
        .put_str(if secure { "; Secure" } else { "" });
    cursor.finish().map_err(|_| CookieError::BufferTooSmall)
}

/// The values of every `gatehouse_session` cookie in a `Cookie` header value, in order.
///
/// There can be more than one: a host that shares the parent domain (a sibling subdomain on
/// plain HTTP) can plant its own, with a narrower `Path` so that browsers send it first. A
/// planted cookie can be perfectly valid (the planter's own session, got by logging in), so
/// never pick "the first that verifies": [`single_session_cookie`] refuses a request that
/// carries more than one.
pub fn session_cookies(cookie_header: &[u8]) -> impl Iterator<Item = &[u8]> {
    session_cookies_named(cookie_header, COOKIE_NAME)
}

/// The one session cookie called `name` ([`cookie_name`]) in a request's `Cookie` header
/// values, `None` when there is none, and [`SessionError::SeveralCookies`] when there is more
/// than one: which of them the user meant cannot be told, and one may have been planted by
/// another host (see [`session_cookies`]). The `__Host-` cookie of a secure deployment cannot
/// be planted that way, but is held to the same rule.
pub fn single_session_cookie<'h>(
    cookie_headers: impl Iterator<Item = &'h [u8]>,
    name: &'static str,
) -> Result<Option<&'h [u8]>, SessionError> {
    let mut found = None;
    for token in cookie_headers.flat_map(|value| session_cookies_named(value, name)) {
        if found.replace(token).is_some() {
            return Err(SessionError::SeveralCookies);
        }
    }
    Ok(found)
}

/// The values of every cookie called `name` ([`cookie_name`]) in a `Cookie` header value.
pub fn session_cookies_named<'h>(
    cookie_header: &'h [u8],
    name: &'static str,
) -> impl Iterator<Item = &'h [u8]> {
    let wanted = name;
    crate::http::split_semicolons(cookie_header).filter_map(move |pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        let (name, value) = pair.split_at(eq);
        let value = value.get(1..)?.trim_ascii();
        let value = value
            .strip_prefix(b"\"")
            .and_then(|v| v.strip_suffix(b"\""))
            .unwrap_or(value);
        (name.trim_ascii() == wanted.as_bytes()).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::password::{MIN_ITERATIONS, SALT_LEN, hash_password};

    const NOW: u64 = 1_790_000_000;
    const TTL: u64 = 7 * 24 * 3600;
    /// The id of the users table tokens are issued for, unless a test says otherwise.
    const TABLE: u64 = 0;

    fn key(byte: u8) -> SessionKey {
        SessionKey::from_bytes([byte; SESSION_KEY_LEN])
    }

    fn keys() -> SessionKeys {
        SessionKeys::new(key(1))
    }

    fn gen_is(g: u32) -> impl FnOnce(&str) -> Option<u32> {
        move |_| Some(g)
    }

    #[test]
    fn issued_tokens_verify() {
        let token = keys().issue(TABLE, "alice", 3, NOW, TTL).unwrap();
        assert!(token.len() <= MAX_TOKEN_LEN);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        let session = keys()
            .verify(token.as_bytes(), NOW, TABLE, gen_is(3))
            .unwrap();
        assert_eq!(
            session,
            Session {
                username: parse_username("alice").unwrap(),
                table: TABLE,
                generation: 3,
                issued_at: NOW,
                expires_at: NOW + TTL,
                key: KeyUsed::Current,
            }
        );
    }

    #[test]
    fn token_layout_vector() {
        // A fixed key and inputs give a fixed token; a change in the layout or MAC shows here.
        let token = SessionKeys::new(key(0))
            .issue(0x0102_0304_0506_0708, "a", 1, 2, 3)
            .unwrap();
        let mut raw = [0u8; MAX_TOKEN_BYTES];
        let raw = Base64UrlUnpadded::decode(token.as_bytes(), &mut raw).unwrap();
        assert_eq!(
            &raw[..HEADER_LEN + 1],
            &[
                2, // version
                1, 2, 3, 4, 5, 6, 7, 8, // table
                0, 0, 0, 1, // generation
                0, 0, 0, 0, 0, 0, 0, 2, // issued at
                0, 0, 0, 0, 0, 0, 0, 5, // expires at
                1, b'a', // name
            ]
        );
        let mut expected = <Hmac<Sha256> as KeyInit>::new_from_slice(&[0; 32]).unwrap();
        expected.update(b"gatehouse session\0");
        expected.update(&raw[..HEADER_LEN + 1]);
        assert_eq!(
            &raw[HEADER_LEN + 1..],
            &expected.finalize().into_bytes()[..]
        );
    }

    #[test]
    fn longest_username_fits_the_maximum_token_length() {
        let name = "é".repeat(MAX_USERNAME_LEN / 2);
        let token = keys()
            .issue(TABLE, &name, u32::MAX, u64::MAX, u64::MAX)
            .unwrap();
        assert_eq!(token.len(), MAX_TOKEN_LEN);
        assert_eq!(MAX_TOKEN_LEN, 168);
    }

    #[test]
    fn issue_refuses_invalid_usernames() {
        assert_eq!(
            keys().issue(TABLE, "", 0, NOW, TTL),
            Err(IssueError::InvalidUsername(UsernameError::Empty))
        );
        assert_eq!(
            keys().issue(TABLE, &"x".repeat(65), 0, NOW, TTL),
            Err(IssueError::InvalidUsername(UsernameError::TooLong))
        );
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let good = keys().issue(TABLE, "alice", 0, NOW, TTL).unwrap();
        let too_long = "A".repeat(MAX_TOKEN_LEN + 1);
        for bad in [
            "",
            "!!!!",
            "a",
            "AAAA",
            &good[..good.len() - 1],
            too_long.as_str(),
            "gatehouse_session=abc",
        ] {
            assert_eq!(
                keys().verify(bad.as_bytes(), NOW, TABLE, gen_is(0)),
                Err(SessionError::Malformed),
                "{bad:?}"
            );
        }
        // Padding is not part of the format.
        let padded = format!("{good}=");
        assert_eq!(
            keys().verify(padded.as_bytes(), NOW, TABLE, gen_is(0)),
            Err(SessionError::Malformed)
        );
    }

    /// Re-signs a raw token body with `k` (to reach checks behind the MAC).
    fn sign(k: &SessionKey, signed: &[u8]) -> heapless::String<512> {
        let mut raw = signed.to_vec();
        raw.extend_from_slice(&k.mac(signed));
        let mut out = [0u8; 512];
        heapless::String::try_from(Base64UrlUnpadded::encode(&raw, &mut out).unwrap()).unwrap()
    }

    fn body(version: u8, issued: u64, expires: u64, name: &[u8], name_len: u8) -> Vec<u8> {
        let mut b = vec![version];
        b.extend_from_slice(&TABLE.to_be_bytes());
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&issued.to_be_bytes());
        b.extend_from_slice(&expires.to_be_bytes());
        b.push(name_len);
        b.extend_from_slice(name);
        b
    }

    #[test]
    fn signed_but_inconsistent_bodies_are_malformed() {
        let k = key(1);
        for signed in [
            body(2, NOW, NOW + 1, b"alice", 4),
            body(2, NOW, NOW + 1, b"alice", 6),
            body(2, NOW, NOW - 1, b"alice", 5),
            body(2, NOW, NOW + 1, b"\xff\xfe", 2),
            body(2, NOW, NOW + 1, b" alice", 6),
            body(2, NOW, NOW + 1, b"a\nb", 3),
        ] {
            let token = sign(&k, &signed);
            assert_eq!(
                keys().verify(token.as_bytes(), NOW, TABLE, gen_is(0)),
                Err(SessionError::Malformed)
            );
        }
    }

    #[test]
    fn unknown_versions_are_refused() {
        // Version 1 (no table id) and a version from the future.
        for version in [1, 3] {
            let token = sign(&key(1), &body(version, NOW, NOW + 1, b"alice", 5));
            assert_eq!(
                keys().verify(token.as_bytes(), NOW, TABLE, gen_is(0)),
                Err(SessionError::UnsupportedVersion)
            );
        }
        let token = sign(&key(1), &body(3, NOW, NOW + 1, b"alice", 5));
        assert_eq!(
            keys().verify(token.as_bytes(), NOW, TABLE, gen_is(0)),
            Err(SessionError::UnsupportedVersion)
        );
    }

    #[test]
    fn a_token_signed_with_another_key_or_altered_is_refused() {
        let foreign = SessionKeys::new(key(9))
            .issue(TABLE, "alice", 0, NOW, TTL)
            .unwrap();
        assert_eq!(
            keys().verify(foreign.as_bytes(), NOW, TABLE, gen_is(0)),
            Err(SessionError::BadSignature)
        );
        // Flip each byte of the body and of the MAC in turn: every change is caught.
        let token = keys().issue(TABLE, "alice", 0, NOW, TTL).unwrap();
        let mut raw = [0u8; MAX_TOKEN_BYTES];
        let raw = Base64UrlUnpadded::decode(token.as_bytes(), &mut raw).unwrap();
        for i in 1..raw.len() {
            let mut altered = raw.to_vec();
            altered[i] ^= 0x01;
            let mut out = [0u8; MAX_TOKEN_LEN];
            let altered = Base64UrlUnpadded::encode(&altered, &mut out).unwrap();
            assert_eq!(
                keys().verify(altered.as_bytes(), NOW, TABLE, gen_is(0)),
                Err(SessionError::BadSignature),
                "byte {i}"
            );
        }
    }

    #[test]
    fn expiry_is_exclusive() {
        let token = keys().issue(TABLE, "alice", 0, NOW, 10).unwrap();
        assert!(
            keys()
                .verify(token.as_bytes(), NOW + 9, TABLE, gen_is(0))
                .is_ok()
        );
        assert_eq!(
            keys().verify(token.as_bytes(), NOW + 10, TABLE, gen_is(0)),
            Err(SessionError::Expired)
        );
        assert_eq!(
            keys().verify(token.as_bytes(), u64::MAX, TABLE, gen_is(0)),
            Err(SessionError::Expired)
        );
        let zero_ttl = keys().issue(TABLE, "alice", 0, NOW, 0).unwrap();
        assert_eq!(
            keys().verify(zero_ttl.as_bytes(), NOW, TABLE, gen_is(0)),
            Err(SessionError::Expired)
        );
    }

    #[test]
    fn tokens_from_the_future_are_refused_beyond_the_skew() {
        let token = keys()
            .issue(TABLE, "alice", 0, NOW + MAX_CLOCK_SKEW_SECS, TTL)
            .unwrap();
        assert!(
            keys()
                .verify(token.as_bytes(), NOW, TABLE, gen_is(0))
                .is_ok()
        );
        let token = keys()
            .issue(TABLE, "alice", 0, NOW + MAX_CLOCK_SKEW_SECS + 1, TTL)
            .unwrap();
        assert_eq!(
            keys().verify(token.as_bytes(), NOW, TABLE, gen_is(0)),
            Err(SessionError::IssuedInFuture)
        );
        assert_eq!(
            keys().verify(token.as_bytes(), 0, TABLE, gen_is(0)),
            Err(SessionError::IssuedInFuture)
        );
    }

    #[test]
    fn a_changed_generation_revokes_and_a_deleted_user_is_unknown() {
        let token = keys().issue(TABLE, "alice", 4, NOW, TTL).unwrap();
        assert_eq!(
            keys().verify(token.as_bytes(), NOW, TABLE, gen_is(5)),
            Err(SessionError::Revoked)
        );
        assert_eq!(
            keys().verify(token.as_bytes(), NOW, TABLE, |_| None),
            Err(SessionError::UnknownUser)
        );
        let mut asked = String::new();
        let _ = keys().verify(token.as_bytes(), NOW, TABLE, |name| {
            asked.push_str(name);
            Some(4)
        });
        assert_eq!(asked, "alice");
    }

    #[test]
    fn rotation_keeps_old_tokens_valid_for_one_more_rotation() {
        let mut keys = keys();
        let old = keys.issue(TABLE, "alice", 0, NOW, TTL).unwrap();
        keys.rotate(key(2));
        assert_eq!(keys.previous, Some(key(1)));
        let new = keys.issue(TABLE, "alice", 0, NOW, TTL).unwrap();
        assert_ne!(old, new);
        let old_session = keys.verify(old.as_bytes(), NOW, TABLE, gen_is(0)).unwrap();
        assert_eq!(old_session.key, KeyUsed::Previous);
        assert!(!old_session.should_renew(NOW));
        let new_session = keys.verify(new.as_bytes(), NOW, TABLE, gen_is(0)).unwrap();
        assert_eq!(new_session.key, KeyUsed::Current);
        assert!(!new_session.should_renew(NOW));
        keys.rotate(key(3));
        assert_eq!(
            keys.verify(old.as_bytes(), NOW, TABLE, gen_is(0)),
            Err(SessionError::BadSignature)
        );
        assert!(keys.verify(new.as_bytes(), NOW, TABLE, gen_is(0)).is_ok());
    }

    /// A token the previous key verified is never renewed, however close to its expiry: a
    /// renewal would carry a token forged with a leaked key over to the new key, and two
    /// rotations with one request between would not end it.
    #[test]
    fn a_token_of_the_previous_key_is_never_renewed_so_two_rotations_end_it() {
        let mut keys = keys();
        let leaked = keys.issue(TABLE, "alice", 0, NOW, 100).unwrap();
        keys.rotate(key(2));
        for now in [NOW, NOW + 51, NOW + 99] {
            let session = keys
                .verify(leaked.as_bytes(), now, TABLE, gen_is(0))
                .unwrap();
            assert_eq!(session.key, KeyUsed::Previous);
            assert!(!session.should_renew(now), "renewed at {now}");
        }
        keys.rotate(key(3));
        assert_eq!(
            keys.verify(leaked.as_bytes(), NOW, TABLE, gen_is(0)),
            Err(SessionError::BadSignature)
        );
    }

    #[test]
    fn replacing_the_key_refuses_every_token_signed_before() {
        let mut keys = keys();
        let before = keys.issue(TABLE, "alice", 0, NOW, TTL).unwrap();
        keys.rotate(key(2));
        let recent = keys.issue(TABLE, "alice", 0, NOW, TTL).unwrap();
        keys.replace(key(3));
        assert_eq!(keys.previous, None);
        for token in [&before, &recent] {
            assert_eq!(
                keys.verify(token.as_bytes(), NOW, TABLE, gen_is(0)),
                Err(SessionError::BadSignature)
            );
        }
        let after = keys.issue(TABLE, "alice", 0, NOW, TTL).unwrap();
        assert!(keys.verify(after.as_bytes(), NOW, TABLE, gen_is(0)).is_ok());
    }

    #[test]
    fn renewal_is_due_after_half_the_lifetime() {
        let token = keys().issue(TABLE, "alice", 0, NOW, 100).unwrap();
        let at = |t| {
            keys()
                .verify(token.as_bytes(), t, TABLE, gen_is(0))
                .unwrap()
        };
        assert!(!at(NOW).should_renew(NOW));
        assert!(!at(NOW + 50).should_renew(NOW + 50));
        assert!(at(NOW + 51).should_renew(NOW + 51));
    }

    #[test]
    fn verify_user_ties_the_session_to_the_table() {
        let mut users = UserTable::<4>::new();
        let hash = hash_password(b"pw", &[1; SALT_LEN], MIN_ITERATIONS).unwrap();
        users.add("Alice", false, hash.clone()).unwrap();
        let keys = keys();
        let token = keys.issue(TABLE, "Alice", 0, NOW, TTL).unwrap();
        let (session, user) = keys.verify_user(token.as_bytes(), NOW, &users).unwrap();
        assert_eq!(session.username.as_str(), "Alice");
        assert_eq!(user.name.as_str(), "Alice");

        users.set_password("alice", hash).unwrap();
        assert_eq!(
            keys.verify_user(token.as_bytes(), NOW, &users).map(|_| ()),
            Err(SessionError::Revoked)
        );
        let token = keys.issue(TABLE, "alice", 1, NOW, TTL).unwrap();
        assert!(keys.verify_user(token.as_bytes(), NOW, &users).is_ok());
        users.bump_generation("ALICE").unwrap();
        assert_eq!(
            keys.verify_user(token.as_bytes(), NOW, &users).map(|_| ()),
            Err(SessionError::Revoked)
        );
        users.remove("alice").unwrap();
        assert_eq!(
            keys.verify_user(token.as_bytes(), NOW, &users).map(|_| ()),
            Err(SessionError::UnknownUser)
        );
        // A new user under the old name does not inherit the old user's sessions.
        let hash = hash_password(b"pw", &[2; SALT_LEN], MIN_ITERATIONS).unwrap();
        users.add("alice", false, hash).unwrap();
        assert_eq!(
            keys.verify_user(token.as_bytes(), NOW, &users).map(|_| ()),
            Err(SessionError::Revoked)
        );
    }

    /// The users file moved away and made anew: generations start again, the key is the
    /// same, and a token of the old `alice` must not be the new `alice`'s.
    #[test]
    fn a_table_made_anew_refuses_the_old_tables_tokens() {
        let hash = hash_password(b"pw", &[1; SALT_LEN], MIN_ITERATIONS).unwrap();
        let mut old = UserTable::<4>::with_id([1; 8]);
        old.add("alice", false, hash.clone()).unwrap();
        let keys = keys();
        let generation = old.generation_of("alice").unwrap();
        let token = keys
            .issue(old.table_id(), "alice", generation, NOW, TTL)
            .unwrap();
        assert!(keys.verify_user(token.as_bytes(), NOW, &old).is_ok());

        let mut new = UserTable::<4>::with_id([2; 8]);
        new.add("alice", false, hash).unwrap();
        assert_eq!(new.generation_of("alice"), Some(generation));
        assert_eq!(
            keys.verify_user(token.as_bytes(), NOW, &new).map(|_| ()),
            Err(SessionError::OtherTable)
        );
        let mut cache = SessionCache::<2>::new();
        assert!(
            keys.verify_user_cached(token.as_bytes(), NOW, &old, &mut cache)
                .is_ok()
        );
        assert_eq!(
            keys.verify_user_cached(token.as_bytes(), NOW, &new, &mut cache)
                .map(|_| ()),
            Err(SessionError::OtherTable),
            "a cached token is checked against the table too"
        );
    }

    #[test]
    fn set_cookie_values() {
        let mut out = [0u8; MAX_SET_COOKIE_LEN];
        let n = write_set_cookie(&mut out, "TOKEN", 3600, false).unwrap();
        assert_eq!(
            &out[..n],
            b"gatehouse_session=TOKEN; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax"
        );
        let n = write_set_cookie(&mut out, "TOKEN", 3600, true).unwrap();
        assert_eq!(
            &out[..n],
            b"__Host-gatehouse_session=TOKEN; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax; Secure"
        );
        let n = write_clear_cookie(&mut out, true).unwrap();
        assert_eq!(
            &out[..n],
            b"__Host-gatehouse_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax; Secure"
        );
        // The longest token with the longest Max-Age fits the documented maximum.
        let longest = "A".repeat(MAX_TOKEN_LEN);
        assert!(write_set_cookie(&mut out, &longest, u64::MAX, true).is_ok());
        // Too small a buffer is an error, not a truncated header.
        let mut small = [0u8; 20];
        assert_eq!(
            write_set_cookie(&mut small, "TOKEN", 1, false),
            Err(CookieError::BufferTooSmall)
        );
        assert_eq!(
            write_clear_cookie(&mut small, false),
            Err(CookieError::BufferTooSmall)
        );
        // Anything but a token gatehouse makes is refused, not written into the header.
        let too_long = "A".repeat(MAX_TOKEN_LEN + 1);
        for bad in [
            "",
            "a;Domain=evil",
            "a b",
            "a\r\nSet-Cookie: x=1",
            "a=b",
            "é",
            &too_long,
        ] {
            assert_eq!(
                write_set_cookie(&mut out, bad, 1, true),
                Err(CookieError::InvalidToken),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn session_cookies_are_found_among_others() {
        let header = b"theme=dark; gatehouse_session=abc; other=1;gatehouse_session=\"def\"; \
                       gatehouse_session_x=no; xgatehouse_session=no; gatehouse_session";
        let found: Vec<&[u8]> = session_cookies(header).collect();
        assert_eq!(found, [&b"abc"[..], b"def"]);
        assert_eq!(session_cookies(b"").count(), 0);
        assert_eq!(session_cookies(b";;;=;").count(), 0);
    }

    #[test]
    fn only_a_single_session_cookie_is_taken() {
        let one: [&[u8]; 2] = [b"theme=dark", b"gatehouse_session=abc; x=1"];
        assert_eq!(
            single_session_cookie(one.into_iter(), COOKIE_NAME),
            Ok(Some(&b"abc"[..]))
        );
        assert_eq!(
            single_session_cookie([&b"x=1"[..]].into_iter(), COOKIE_NAME),
            Ok(None)
        );
        // Two in one header, or one in each of two headers: refused, whichever is valid.
        let planted: [&[u8]; 1] = [b"gatehouse_session=mine; gatehouse_session=yours"];
        assert_eq!(
            single_session_cookie(planted.into_iter(), COOKIE_NAME),
            Err(SessionError::SeveralCookies)
        );
        let split: [&[u8]; 2] = [b"gatehouse_session=mine", b"gatehouse_session=yours"];
        assert_eq!(
            single_session_cookie(split.into_iter(), COOKIE_NAME),
            Err(SessionError::SeveralCookies)
        );
        // A plain cookie next to the `__Host-` one is not a second `__Host-` cookie.
        let secure: [&[u8]; 1] = [b"gatehouse_session=planted; __Host-gatehouse_session=real"];
        assert_eq!(
            single_session_cookie(secure.into_iter(), SECURE_COOKIE_NAME),
            Ok(Some(&b"real"[..]))
        );
    }

    #[test]
    fn debug_output_hides_the_key() {
        let debug = format!("{:?}", SessionKeys::new(key(0xab)));
        assert!(!debug.contains("171") && !debug.contains("ab"), "{debug}");
    }

    fn table() -> UserTable<4> {
        let mut users = UserTable::<4>::new();
        let hash = hash_password(b"pw", &[1; SALT_LEN], MIN_ITERATIONS).unwrap();
        users.add("Alice", false, hash.clone()).unwrap();
        users.add("bob", false, hash).unwrap();
        users
    }

    type Answer = Result<(Session, Username), SessionError>;

    fn plain(keys: &SessionKeys, token: &[u8], now: u64, users: &UserTable<4>) -> Answer {
        keys.verify_user(token, now, users)
            .map(|(s, u)| (s, u.name.clone()))
    }

    fn cached<const S: usize>(
        keys: &SessionKeys,
        token: &[u8],
        now: u64,
        users: &UserTable<4>,
        cache: &mut SessionCache<S>,
    ) -> Answer {
        keys.verify_user_cached(token, now, users, cache)
            .map(|(s, u)| (s, u.name.clone()))
    }

    #[test]
    fn a_verified_token_is_remembered_and_every_later_check_still_made() {
        let mut users = table();
        let mut keys = keys();
        let mut cache = SessionCache::<4>::new();
        let token = keys.issue(TABLE, "Alice", 0, NOW, TTL).unwrap();
        let token = token.as_bytes();
        let first = cached(&keys, token, NOW, &users, &mut cache);
        assert!(first.is_ok());
        assert_eq!(cache.len(), 1);
        assert_eq!(
            cached(&keys, token, NOW + 1, &users, &mut cache),
            plain(&keys, token, NOW + 1, &users)
        );
        assert_eq!(cache.len(), 1, "a hit adds nothing");

        // Time: expiry and issued-at are checked on a hit.
        assert_eq!(
            cached(&keys, token, NOW + TTL, &users, &mut cache).map(|_| ()),
            Err(SessionError::Expired)
        );
        assert!(cache.is_empty(), "a failing entry is dropped");
        assert!(cached(&keys, token, NOW, &users, &mut cache).is_ok());
        assert_eq!(
            cached(
                &keys,
                token,
                NOW - MAX_CLOCK_SKEW_SECS - 1,
                &users,
                &mut cache
            )
            .map(|_| ()),
            Err(SessionError::IssuedInFuture)
        );

        // Key rotation: the previous key still verifies (and says so); two rotations end it.
        assert!(cached(&keys, token, NOW, &users, &mut cache).is_ok());
        keys.rotate(key(2));
        let (session, _) = cached(&keys, token, NOW, &users, &mut cache).unwrap();
        assert_eq!(session.key, KeyUsed::Previous);
        keys.rotate(key(3));
        assert_eq!(
            cached(&keys, token, NOW, &users, &mut cache).map(|_| ()),
            Err(SessionError::BadSignature)
        );

        // Revocation and deletion are seen on a hit.
        let token = keys.issue(TABLE, "alice", 0, NOW, TTL).unwrap();
        let token = token.as_bytes();
        assert!(cached(&keys, token, NOW, &users, &mut cache).is_ok());
        users.bump_generation("alice").unwrap();
        assert_eq!(
            cached(&keys, token, NOW, &users, &mut cache).map(|_| ()),
            Err(SessionError::Revoked)
        );
        let bob = users.generation_of("bob").unwrap();
        let token = keys.issue(TABLE, "bob", bob, NOW, TTL).unwrap();
        let token = token.as_bytes();
        assert!(cached(&keys, token, NOW, &users, &mut cache).is_ok());
        users.remove("bob").unwrap();
        assert_eq!(
            cached(&keys, token, NOW, &users, &mut cache).map(|_| ()),
            Err(SessionError::UnknownUser)
        );
    }

    #[test]
    fn only_verified_tokens_get_in() {
        let users = table();
        let keys = keys();
        let mut cache = SessionCache::<4>::new();
        let token = keys.issue(TABLE, "Alice", 0, NOW, TTL).unwrap();
        let mut forged = token.as_bytes().to_vec();
        let last = forged.len() - 1;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        let other = SessionKeys::new(key(9))
            .issue(TABLE, "Alice", 0, NOW, TTL)
            .unwrap();
        for bad in [&forged[..], other.as_bytes(), b"", b"x", &[b'A'; 300][..]] {
            assert!(cached(&keys, bad, NOW, &users, &mut cache).is_err());
        }
        assert!(cache.is_empty());
        // A token that differs from a cached one only in its last character is not a hit.
        assert!(cached(&keys, token.as_bytes(), NOW, &users, &mut cache).is_ok());
        assert_eq!(
            cached(&keys, &forged, NOW, &users, &mut cache).map(|_| ()),
            plain(&keys, &forged, NOW, &users).map(|_| ())
        );
        assert!(cached(&keys, &forged, NOW, &users, &mut cache).is_err());
        assert_eq!(
            format!("{cache:?}"),
            "SessionCache { capacity: 4, occupied: 1, .. }"
        );
        assert!(!format!("{cache:?}").contains(token.as_str()));
    }

    #[test]
    fn a_full_cache_makes_room_and_a_cache_of_none_is_no_cache() {
        let users = table();
        let keys = keys();
        let mut cache = SessionCache::<2>::new();
        let tokens: Vec<_> = (0..5)
            .map(|i| keys.issue(TABLE, "Alice", 0, NOW - i, TTL).unwrap())
            .collect();
        for (i, t) in tokens.iter().enumerate() {
            assert!(cached(&keys, t.as_bytes(), NOW + i as u64, &users, &mut cache).is_ok());
            assert!(cache.len() <= 2);
        }
        for t in &tokens {
            assert!(cached(&keys, t.as_bytes(), NOW + 9, &users, &mut cache).is_ok());
        }
        let mut none = SessionCache::<0>::new();
        assert!(cached(&keys, tokens[0].as_bytes(), NOW, &users, &mut none).is_ok());
        assert!(none.is_empty());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        #[derive(Clone, Debug)]
        enum Step {
            Issue {
                user: usize,
                generation: u32,
                at: i64,
            },
            Verify {
                token: usize,
                at: i64,
            },
            Tamper {
                token: usize,
                at: usize,
            },
            Rotate(u8),
            Bump(usize),
            Remove(usize),
            AddBack(usize),
        }

        fn step() -> impl Strategy<Value = Step> {
            prop_oneof![
                (0..3usize, 0..3u32, -100i64..100).prop_map(|(user, generation, at)| Step::Issue {
                    user,
                    generation,
                    at
                }),
                (0..16usize, -200i64..200).prop_map(|(token, at)| Step::Verify { token, at }),
                (0..16usize, 0..200usize).prop_map(|(token, at)| Step::Tamper { token, at }),
                (1..4u8).prop_map(Step::Rotate),
                (0..3usize).prop_map(Step::Bump),
                (0..3usize).prop_map(Step::Remove),
                (0..3usize).prop_map(Step::AddBack),
            ]
        }

        proptest! {
            #[test]
            fn decoder_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
                let _ = keys().verify(&bytes, NOW, TABLE, gen_is(0));
            }

            #[test]
            fn decoder_never_panics_on_base64url_text(s in "[A-Za-z0-9_-]{0,200}") {
                let _ = keys().verify(s.as_bytes(), NOW, TABLE, gen_is(0));
            }

            #[test]
            fn decoder_never_panics_on_signed_arbitrary_bodies(body in proptest::collection::vec(any::<u8>(), 0..120)) {
                let token = sign(&key(1), &body);
                let _ = keys().verify(token.as_bytes(), NOW, TABLE, gen_is(0));
            }

            #[test]
            fn issued_tokens_round_trip(
                name in "[a-zA-Z0-9é@._-]{1,30}",
                generation in any::<u32>(),
                issued in 0u64..u64::MAX / 2,
                ttl in 1u64..1_000_000,
            ) {
                let token = keys().issue(TABLE, &name, generation, issued, ttl).unwrap();
                let s = keys().verify(token.as_bytes(), issued, TABLE, |n| (n == name).then_some(generation)).unwrap();
                prop_assert_eq!(s.username.as_str(), name.as_str());
                prop_assert_eq!(s.expires_at, issued + ttl);
            }

            #[test]
            fn cookie_scanner_never_panics(header in proptest::collection::vec(any::<u8>(), 0..200)) {
                let _ = session_cookies(&header).count();
            }

            /// Whatever happens between two requests (rotations, revocations, deletions,
            /// time, forged tokens, a full cache), the cached check answers exactly as the
            /// full one.
            #[test]
            fn the_cached_check_answers_as_the_full_one(steps in proptest::collection::vec(step(), 1..40)) {
                const NAMES: [&str; 3] = ["Alice", "bob", "carol"];
                let mut users = table();
                let hash = users.find("bob").unwrap().password.clone();
                let mut keys = keys();
                let mut cache = SessionCache::<2>::new();
                let mut tokens: Vec<Vec<u8>> = Vec::new();
                for step in steps {
                    match step {
                        Step::Issue { user, generation, at } => {
                            let t = keys.issue(TABLE, NAMES[user], generation, NOW.saturating_add_signed(at * 1000), TTL).unwrap();
                            tokens.push(t.as_bytes().to_vec());
                        }
                        Step::Verify { token, at } => {
                            if let Some(t) = tokens.get(token % tokens.len().max(1)) {
                                let now = NOW.saturating_add_signed(at * 1000);
                                prop_assert_eq!(
                                    cached(&keys, t, now, &users, &mut cache),
                                    plain(&keys, t, now, &users)
                                );
                            }
                        }
                        Step::Tamper { token, at } => {
                            if let Some(t) = tokens.get(token % tokens.len().max(1)) {
                                let mut t = t.clone();
                                let i = at % t.len();
                                t[i] = if t[i] == b'A' { b'B' } else { b'A' };
                                tokens.push(t);
                            }
                        }
                        Step::Rotate(k) => keys.rotate(key(k)),
                        Step::Bump(user) => { let _ = users.bump_generation(NAMES[user]); }
                        Step::Remove(user) => { let _ = users.remove(NAMES[user]); }
                        Step::AddBack(user) => { let _ = users.add(NAMES[user], false, hash.clone()); }
                    }
                }
            }
        }
    }
}
