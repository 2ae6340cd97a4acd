//! PHC password-hash strings (the `password` field of the users file).
//!
//! Input: 1 option byte, then a PHC string. With the option byte `!`, the rest is instead a
//! password to hash (with the lowest iteration count and a salt taken from it).
//!
//! Asserts:
//! - parsing never panics; a hash that parses keeps its string exactly, parses again to the
//!   same hash, and names the scheme its prefix says, with an iteration count in range;
//! - verifying a parsed hash never panics (tried when its cost is small);
//! - a hash gatehouse makes parses back to itself and verifies its password and no other.
#![no_main]

use gatehouse_core::password::{
    MAX_ITERATIONS, MIN_ITERATIONS, PasswordHash, SALT_LEN, Scheme, hash_password,
};
use gatehouse_fuzz::take;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ([mode], rest) = take::<1>(data);
    if mode == b'!' {
        let (salt, password) = take::<SALT_LEN>(rest);
        let hash = hash_password(password, &salt, MIN_ITERATIONS).expect("in range");
        assert_eq!(PasswordHash::parse(hash.as_str()).as_ref(), Ok(&hash));
        assert_eq!(hash.iterations(), Some(MIN_ITERATIONS));
        assert!(hash.verify(password));
        let mut wrong = password.to_vec();
        wrong.push(b'x');
        assert!(!hash.verify(&wrong));
        return;
    }
    let Ok(phc) = core::str::from_utf8(rest) else {
        return;
    };
    let Ok(hash) = PasswordHash::parse(phc) else {
        return;
    };
    assert_eq!(hash.as_str(), phc);
    assert_eq!(PasswordHash::parse(hash.as_str()).as_ref(), Ok(&hash));
    match hash.scheme() {
        Scheme::Pbkdf2Sha256 => {
            assert!(phc.starts_with("$pbkdf2-sha256$"));
            let i = hash.iterations().expect("PBKDF2 has iterations");
            assert!((MIN_ITERATIONS..=MAX_ITERATIONS).contains(&i));
            if i <= 2 * MIN_ITERATIONS {
                let _ = hash.verify(b"password");
            }
        }
        Scheme::Argon2id => {
            assert!(phc.starts_with("$argon2id$"));
            assert_eq!(hash.iterations(), None);
            if cheap_argon2(phc) {
                let _ = hash.verify(b"password");
            }
        }
    }
});

/// Whether an argon2id hash costs little to verify: at most 64 KiB and 2 passes.
fn cheap_argon2(phc: &str) -> bool {
    let Some(params) = phc.split('$').nth(3) else {
        return false;
    };
    let value = |name: &str| {
        params
            .split(',')
            .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse::<u32>().ok())
    };
    matches!((value("m"), value("t")), (Some(m), Some(t)) if m <= 64 && t <= 2)
}
