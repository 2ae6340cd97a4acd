//! Session cookies: finding them in a `Cookie` header and verifying them with a fixed key.
//!
//! Input: 1 option byte (the clock: how many hours after the seed tokens' issue time `now`
//! is), then a `Cookie` header value.
//!
//! Asserts:
//! - finding and verifying never panic;
//! - a token that verifies is exactly the token gatehouse issues for what it says (user,
//!   generation, times, key): no other spelling of a token is accepted, so a valid cookie
//!   cannot be altered and still pass;
//! - what verifies is within its lifetime, of the table it is verified for, of a current
//!   generation, and of a known user;
//! - issuing and verifying round-trip for any valid username, and the `Set-Cookie` value
//!   gatehouse writes carries the token back through `session_cookies`.
#![no_main]

use gatehouse_core::session::{
    KeyUsed, MAX_CLOCK_SKEW_SECS, MAX_SET_COOKIE_LEN, SessionError, SessionKey, SessionKeys,
    cookie_name, session_cookies, session_cookies_named, write_set_cookie,
};
use gatehouse_fuzz::take;
use libfuzzer_sys::fuzz_target;

/// When the seed corpus's tokens were issued.
const ISSUED_AT: u64 = 1_700_000_000;

/// The users table the tokens are verified for.
const TABLE: u64 = 0x5eed;

/// The keys the seed corpus's tokens were signed with: `current` and `previous`.
fn keys() -> SessionKeys {
    let mut keys = SessionKeys::new(SessionKey::from_bytes([0x11; 32]));
    keys.rotate(SessionKey::from_bytes([0x22; 32]));
    keys
}

fn generation_of(name: &str) -> Option<u32> {
    match name.to_ascii_lowercase().as_str() {
        "alice" => Some(3),
        "bob" => Some(0),
        "josé" => Some(7),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let ([hours], header) = take::<1>(data);
    let now = ISSUED_AT + u64::from(hours) * 3600;
    let keys = keys();

    for value in session_cookies(header) {
        match keys.verify(value, now, TABLE, generation_of) {
            Ok(session) => {
                assert!(session.expires_at > now);
                assert!(session.issued_at <= now + MAX_CLOCK_SKEW_SECS);
                assert_eq!(generation_of(&session.username), Some(session.generation));
                let signer = match session.key {
                    KeyUsed::Current => keys.clone(),
                    KeyUsed::Previous => {
                        SessionKeys::new(keys.previous.clone().expect("a previous key"))
                    }
                };
                let reissued = signer
                    .issue(
                        session.table,
                        &session.username,
                        session.generation,
                        session.issued_at,
                        session.expires_at - session.issued_at,
                    )
                    .expect("a verified name is a valid name");
                assert_eq!(
                    reissued.as_bytes(),
                    value,
                    "a second spelling of a token verified"
                );
            }
            Err(SessionError::Malformed | SessionError::UnsupportedVersion) => {}
            Err(SessionError::BadSignature) => {}
            Err(SessionError::IssuedInFuture | SessionError::Expired) => {}
            Err(SessionError::UnknownUser | SessionError::Revoked | SessionError::OtherTable) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }

    // Issue for whatever name the input spells; a valid name round-trips.
    let Ok(name) = core::str::from_utf8(header) else {
        return;
    };
    let ttl = u64::from(hours) * 60;
    let generation = u32::from(hours);
    let Ok(token) = keys.issue(TABLE, name, generation, now, ttl) else {
        return;
    };
    let result = keys.verify(token.as_bytes(), now, TABLE, |n| {
        assert_eq!(n, name);
        Some(generation)
    });
    if ttl == 0 {
        assert_eq!(result, Err(SessionError::Expired));
        return;
    }
    let session = result.expect("a fresh token verifies");
    assert_eq!(session.username.as_str(), name);
    assert_eq!(session.generation, generation);
    assert_eq!(session.issued_at, now);
    assert_eq!(session.expires_at, now + ttl);
    assert_eq!(session.key, KeyUsed::Current);
    assert_eq!(
        keys.verify(token.as_bytes(), now, TABLE + 1, |_| Some(generation)),
        Err(SessionError::OtherTable)
    );
    assert_eq!(
        keys.verify(token.as_bytes(), now + ttl, TABLE, |_| Some(generation)),
        Err(SessionError::Expired)
    );
    assert_eq!(
        keys.verify(token.as_bytes(), now, TABLE, |_| Some(
            generation.wrapping_add(1)
        )),
        Err(SessionError::Revoked)
    );
    let mut rotated = keys.clone();
    rotated.rotate(SessionKey::from_bytes([0x33; 32]));
    assert_eq!(
        rotated
            .verify(token.as_bytes(), now, TABLE, |_| Some(generation))
            .map(|s| s.key),
        Ok(KeyUsed::Previous)
    );
    rotated.rotate(SessionKey::from_bytes([0x44; 32]));
    assert_eq!(
        rotated.verify(token.as_bytes(), now, TABLE, |_| Some(generation)),
        Err(SessionError::BadSignature)
    );

    let mut cookie = [0u8; MAX_SET_COOKIE_LEN];
    let secure = hours & 1 != 0;
    let n = write_set_cookie(&mut cookie, &token, ttl, secure).expect("always fits");
    let pair = cookie[..n].split(|&b| b == b';').next().unwrap();
    let found: Vec<&[u8]> = session_cookies_named(pair, cookie_name(secure)).collect();
    assert_eq!(found, [token.as_bytes()]);
});
