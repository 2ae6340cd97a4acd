//! Password hashes: PBKDF2-HMAC-SHA256 everywhere, argon2id where the platform can afford it.
//!
//! Hashes are kept as [PHC strings] — `$pbkdf2-sha256$i=600000,l=32$<salt>$<hash>` — exactly as
//! the RustCrypto `pbkdf2` and `argon2` crates write and read them, so a hash made by gatehouse
//! verifies elsewhere and the other way round. A [`PasswordHash`] that exists has been fully
//! validated (scheme, parameters, salt and output lengths); verifying it cannot fail, only
//! answer yes or no.
//!
//! The threats each check exists for:
//! - **Offline guessing after a leak of the users file or flash.** PBKDF2 with a per-user random
//!   salt and a high iteration count (600 000 per OWASP on the daemon; fewer on a
//!   microcontroller, see [`RECOMMENDED_ITERATIONS`] and [`EMBEDDED_ITERATIONS`]). Hashes below
//!   [`MIN_ITERATIONS`] are refused, even when imported.
//! - **A hostile or corrupted hash that costs hours to verify.** Costs above
//!   [`MAX_ITERATIONS`] (and, for argon2id, above [`MAX_ARGON2_MEMORY_KIB`] /
//!   [`MAX_ARGON2_PASSES`] / [`MAX_ARGON2_LANES`]) are refused when the hash is parsed.
//! - **Timing side channels.** The computed and stored outputs are compared with
//!   [`subtle`], in constant time. An unknown user costs the same as a wrong password:
//!   [`verify_or_dummy`] runs a full PBKDF2 with the deployment's iteration count when there is
//!   no hash to check, so response times do not tell which usernames exist.
//!
//! argon2id verification is behind the `argon2` cargo feature. Its working memory is `m` KiB
//! (19 MiB at OWASP's parameters), far beyond a small board, so the feature uses the argon2
//! crate's own allocation and is meant for the daemon, which has a heap. Without the feature an
//! argon2id hash is refused when parsed ([`PasswordHashError::Argon2NotEnabled`]), so a board
//! never loads a user it could not verify.
//!
//! [PHC strings]: https://github.com/P-H-C/phc-string-format/blob/master/phc-sf-spec.md

use base64ct::{Base64Unpadded, Base64UrlUnpadded, Encoding};
use core::fmt;
use subtle::ConstantTimeEq;

/// Longest PHC string a [`PasswordHash`] holds, in bytes. Fits a 64-byte salt with a 40-byte
/// output, or the usual 16-byte salt with a 64-byte output.
pub const PASSWORD_HASH_CAPACITY: usize = 160;

/// PBKDF2 iterations recommended for the daemon: OWASP's figure for PBKDF2-HMAC-SHA256.
pub const RECOMMENDED_ITERATIONS: u32 = 600_000;

/// PBKDF2 iterations suggested for a Cortex-M4 class board, where one iteration costs tens of
/// microseconds: about half a second per login. Weaker than [`RECOMMENDED_ITERATIONS`]; use
/// long passwords (such as [`generate_password`]'s) on boards.
pub const EMBEDDED_ITERATIONS: u32 = 10_000;

/// Fewest PBKDF2 iterations gatehouse makes or accepts (NIST's floor, as the `pbkdf2` crate's).
pub const MIN_ITERATIONS: u32 = 1_000;

/// Most PBKDF2 iterations gatehouse accepts: bounds the work one stored hash can demand.
pub const MAX_ITERATIONS: u32 = 10_000_000;

/// Bytes of random salt in the hashes gatehouse makes.
pub const SALT_LEN: usize = 16;

/// Bytes of output in the PBKDF2 hashes gatehouse makes (`l=32`).
pub const HASH_LEN: usize = 32;

/// Shortest salt accepted in a stored hash, in bytes.
pub const MIN_SALT_LEN: usize = 8;

/// Longest salt accepted in a stored hash, in bytes.
pub const MAX_SALT_LEN: usize = 64;

/// Shortest output accepted in a stored hash, in bytes (the PHC recommendation).
pub const MIN_OUTPUT_LEN: usize = 10;

/// Longest output accepted in a stored hash, in bytes.
pub const MAX_OUTPUT_LEN: usize = 64;

/// Most argon2id memory (`m`, in KiB) accepted in a stored hash: 256 MiB.
pub const MAX_ARGON2_MEMORY_KIB: u32 = 256 * 1024;

/// Most argon2id passes (`t`) accepted in a stored hash.
pub const MAX_ARGON2_PASSES: u32 = 32;

/// Most argon2id lanes (`p`) accepted in a stored hash.
pub const MAX_ARGON2_LANES: u32 = 16;

/// Random bytes [`generate_password`] turns into a password (144 bits).
pub const GENERATED_PASSWORD_RANDOM_LEN: usize = 18;

/// Length of a generated password: base64url of [`GENERATED_PASSWORD_RANDOM_LEN`] bytes.
pub const GENERATED_PASSWORD_LEN: usize = 24;

/// A password made by [`generate_password`].
pub type GeneratedPassword = heapless::String<GENERATED_PASSWORD_LEN>;

const PBKDF2_ID: &str = "pbkdf2-sha256";
const ARGON2ID_ID: &str = "argon2id";
const PBKDF2_DEFAULT_OUTPUT_LEN: usize = 32;

/// The hash function family of a [`PasswordHash`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `$pbkdf2-sha256$`: PBKDF2 with HMAC-SHA256.
    Pbkdf2Sha256,
    /// `$argon2id$` (version 19); verifiable only with the `argon2` feature.
    Argon2id,
}

/// Why a string is not a usable password hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum PasswordHashError {
    /// Longer than [`PASSWORD_HASH_CAPACITY`].
    TooLong,
    /// Not of the form `$id$params$salt$hash`.
    NotPhcFormat,
    /// A scheme other than `pbkdf2-sha256` or `argon2id`.
    UnknownScheme,
    /// An `argon2id` hash, but this build was made without the `argon2` feature.
    Argon2NotEnabled,
    /// An argon2 version other than `v=19`.
    UnsupportedVersion,
    /// A parameter that is not `name=decimal`, is repeated, or is not known for the scheme.
    MalformedParams,
    /// A parameter the scheme needs is absent (`i` for PBKDF2; `m`, `t`, `p` for argon2id).
    MissingParam,
    /// PBKDF2 iterations outside [`MIN_ITERATIONS`]..=[`MAX_ITERATIONS`].
    IterationsOutOfRange,
    /// argon2id costs invalid or above [`MAX_ARGON2_MEMORY_KIB`], [`MAX_ARGON2_PASSES`] or
    /// [`MAX_ARGON2_LANES`].
    CostOutOfRange,
    /// The salt is not unpadded standard base64.
    SaltEncoding,
    /// The salt is outside [`MIN_SALT_LEN`]..=[`MAX_SALT_LEN`] bytes.
    SaltLength,
    /// The output is not unpadded standard base64.
    OutputEncoding,
    /// The output is outside [`MIN_OUTPUT_LEN`]..=[`MAX_OUTPUT_LEN`] bytes, or differs from
    /// the declared `l`.
    OutputLength,
}

impl fmt::Display for PasswordHashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooLong => "password hash is too long",
            Self::NotPhcFormat => "password hash is not a PHC string ($id$params$salt$hash)",
            Self::UnknownScheme => "password hash scheme is not pbkdf2-sha256 or argon2id",
            Self::Argon2NotEnabled => "argon2id hashes are not supported by this build",
            Self::UnsupportedVersion => "argon2 version is not 19",
            Self::MalformedParams => "password hash parameters are malformed",
            Self::MissingParam => "password hash lacks a required parameter",
            Self::IterationsOutOfRange => "PBKDF2 iteration count is out of range",
            Self::CostOutOfRange => "argon2id cost parameters are out of range",
            Self::SaltEncoding => "password hash salt is not valid base64",
            Self::SaltLength => "password hash salt length is out of range",
            Self::OutputEncoding => "password hash output is not valid base64",
            Self::OutputLength => "password hash output length is out of range",
        })
    }
}

impl core::error::Error for PasswordHashError {}

/// A validated password hash in PHC string form.
///
/// Made by [`hash_password`] or [`PasswordHash::parse`]. Its `Debug` output names the scheme
/// only: hashes are material for offline guessing and stay out of logs.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    phc: heapless::String<PASSWORD_HASH_CAPACITY>,
    scheme: Scheme,
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHash")
            .field("scheme", &self.scheme)
            .finish_non_exhaustive()
    }
}

impl PasswordHash {
    /// Validates a PHC string: scheme, parameters, salt and output.
    pub fn parse(phc: &str) -> Result<Self, PasswordHashError> {
        if phc.len() > PASSWORD_HASH_CAPACITY {
            return Err(PasswordHashError::TooLong);
        }
        let parsed = Parsed::parse(phc)?;
        let mut stored = heapless::String::new();
        stored
            .push_str(phc)
            .map_err(|_| PasswordHashError::TooLong)?;
        Ok(Self {
            phc: stored,
            scheme: parsed.scheme(),
        })
    }

    /// The PHC string, as stored in the users file.
    pub fn as_str(&self) -> &str {
        &self.phc
    }

    /// Which scheme this hash uses.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// PBKDF2 iteration count, or `None` for argon2id.
    pub fn iterations(&self) -> Option<u32> {
        match Parsed::parse(&self.phc) {
            Ok(Parsed::Pbkdf2 { iterations, .. }) => Some(iterations),
            _ => None,
        }
    }

    /// Whether `password` is the one this hash was made from. Constant time in the content of
    /// the output; the cost is the hash's own (its iterations or argon2 parameters).
    pub fn verify(&self, password: &[u8]) -> bool {
        // A stored hash was validated when it was made; a failure here cannot happen, and
        // would be a refusal rather than a panic.
        let Ok(parsed) = Parsed::parse(&self.phc) else {
            return false;
        };
        parsed.verify(password)
    }
}

/// Hashes `password` with PBKDF2-HMAC-SHA256, the given iteration count and the caller's
/// random salt, in the PHC format the `pbkdf2` crate writes (`l=32`).
///
/// `iterations`: [`RECOMMENDED_ITERATIONS`] on the daemon, [`EMBEDDED_ITERATIONS`] or so on a
/// board; outside [`MIN_ITERATIONS`]..=[`MAX_ITERATIONS`] is refused.
pub fn hash_password(
    password: &[u8],
    salt: &[u8; SALT_LEN],
    iterations: u32,
) -> Result<PasswordHash, PasswordHashError> {
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
        return Err(PasswordHashError::IterationsOutOfRange);
    }
    let mut output = [0u8; HASH_LEN];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, iterations, &mut output);

    let mut salt_b64 = [0u8; 2 * SALT_LEN];
    let mut output_b64 = [0u8; 2 * HASH_LEN];
    let phc = Base64Unpadded::encode(salt, &mut salt_b64)
        .ok()
        .zip(Base64Unpadded::encode(&output, &mut output_b64).ok())
        .and_then(|(salt, output)| {
            // `$pbkdf2-sha256$i=<iterations>,l=32$<salt>$<output>`: under 100 bytes in all, so
            // the capacity cannot be exceeded.
            let mut phc = [0u8; PASSWORD_HASH_CAPACITY];
            let mut c = crate::http::Cursor::new(&mut phc);
            c.put(b"$")
                .put_str(PBKDF2_ID)
                .put(b"$i=")
                .put_u64(iterations.into())
                .put(b",l=")
                .put_u64(HASH_LEN as u64)
                .put(b"$")
                .put_str(salt)
                .put(b"$")
                .put_str(output);
            let (phc, len) = c.into_parts().ok()?;
            let phc = core::str::from_utf8(phc.get(..len)?).ok()?;
            heapless::String::try_from(phc).ok()
        })
        .ok_or(PasswordHashError::TooLong)?;
    Ok(PasswordHash {
        phc,
        scheme: Scheme::Pbkdf2Sha256,
    })
}

/// Verifies `password` against `hash`, or — when there is no such user — spends the same
/// effort on a fixed dummy PBKDF2 hash with `dummy_iterations` and answers `false`.
///
/// Use it for every login so that "unknown user" and "wrong password" take the same time;
/// pass the iteration count the deployment uses for its own hashes (the one given to
/// [`hash_password`]). Out-of-range counts are clamped to
/// [`MIN_ITERATIONS`]..=[`MAX_ITERATIONS`].
pub fn verify_or_dummy(
    hash: Option<&PasswordHash>,
    password: &[u8],
    dummy_iterations: u32,
) -> bool {
    match hash {
        Some(hash) => hash.verify(password),
        None => {
            const DUMMY_SALT: [u8; SALT_LEN] = *b"gatehouse-dummy!";
            // An output no PBKDF2 computation is expected to produce; the comparison is made
            // for its cost, and the answer is `false` whatever it says.
            const DUMMY_OUTPUT: [u8; HASH_LEN] = [0; HASH_LEN];
            let iterations = dummy_iterations.clamp(MIN_ITERATIONS, MAX_ITERATIONS);
            let mut output = [0u8; HASH_LEN];
            pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, &DUMMY_SALT, iterations, &mut output);
            let _ = core::hint::black_box(output.ct_eq(&DUMMY_OUTPUT));
            false
        }
    }
}

/// Turns random bytes into a password a person can copy: base64url, 24 characters, 144 bits.
/// Used for users created without a password (provisioned users, the CLI's `users add`).
pub fn generate_password(random: &[u8; GENERATED_PASSWORD_RANDOM_LEN]) -> GeneratedPassword {
    let mut buf = [0u8; GENERATED_PASSWORD_LEN];
    let mut out = GeneratedPassword::new();
    // 18 bytes encode to exactly 24 characters, which fit the buffer and the string.
    if let Ok(encoded) = Base64UrlUnpadded::encode(random, &mut buf) {
        let _ = out.push_str(encoded);
    }
    out
}

/// A PHC string taken apart, with salt and output decoded.
enum Parsed {
    Pbkdf2 {
        iterations: u32,
        salt: Bytes,
        output: Bytes,
    },
    #[cfg(feature = "argon2")]
    Argon2id {
        params: argon2::Params,
        salt: Bytes,
        output: Bytes,
    },
}

/// Decoded salt or output: up to 64 bytes.
struct Bytes {
    buf: [u8; MAX_SALT_LEN],
    len: usize,
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    fn decode(
        b64: &str,
        min: usize,
        max: usize,
        encoding_error: PasswordHashError,
        length_error: PasswordHashError,
    ) -> Result<Self, PasswordHashError> {
        let mut buf = [0u8; MAX_SALT_LEN];
        // Anything that decodes to more than `buf` holds is too long, not malformed.
        if b64.len() > Base64Unpadded::encoded_len(&buf) {
            return Err(length_error);
        }
        let len = Base64Unpadded::decode(b64, &mut buf)
            .map_err(|_| encoding_error)?
            .len();
        if !(min..=max).contains(&len) {
            return Err(length_error);
        }
        Ok(Self { buf, len })
    }
}

impl Parsed {
    fn parse(phc: &str) -> Result<Self, PasswordHashError> {
        let rest = phc
            .strip_prefix('$')
            .ok_or(PasswordHashError::NotPhcFormat)?;
        let mut fields = rest.split('$');
        let id = fields.next().unwrap_or("");
        match id {
            PBKDF2_ID => {
                let (params, salt, output) =
                    match (fields.next(), fields.next(), fields.next(), fields.next()) {
                        (Some(p), Some(s), Some(o), None) => (p, s, o),
                        _ => return Err(PasswordHashError::NotPhcFormat),
                    };
                Self::parse_pbkdf2(params, salt, output)
            }
            ARGON2ID_ID => {
                #[cfg(feature = "argon2")]
                {
                    let (version, params, salt, output) = match (
                        fields.next(),
                        fields.next(),
                        fields.next(),
                        fields.next(),
                        fields.next(),
                    ) {
                        (Some(v), Some(p), Some(s), Some(o), None) => (v, p, s, o),
                        _ => return Err(PasswordHashError::NotPhcFormat),
                    };
                    Self::parse_argon2id(version, params, salt, output)
                }
                #[cfg(not(feature = "argon2"))]
                {
                    Err(PasswordHashError::Argon2NotEnabled)
                }
            }
            "" => Err(PasswordHashError::NotPhcFormat),
            _ => Err(PasswordHashError::UnknownScheme),
        }
    }

    fn parse_pbkdf2(params: &str, salt: &str, output: &str) -> Result<Self, PasswordHashError> {
        let mut iterations = None;
        let mut output_len = None;
        for param in params.split(',') {
            let (name, value) = split_param(param)?;
            let slot = match name {
                "i" => &mut iterations,
                "l" => &mut output_len,
                _ => return Err(PasswordHashError::MalformedParams),
            };
            if slot.replace(value).is_some() {
                return Err(PasswordHashError::MalformedParams);
            }
        }
        let iterations = iterations.ok_or(PasswordHashError::MissingParam)?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(PasswordHashError::IterationsOutOfRange);
        }
        let output_len = match output_len {
            None => PBKDF2_DEFAULT_OUTPUT_LEN,
            Some(l) => usize::try_from(l).map_err(|_| PasswordHashError::OutputLength)?,
        };
        if !(MIN_OUTPUT_LEN..=MAX_OUTPUT_LEN).contains(&output_len) {
            return Err(PasswordHashError::OutputLength);
        }
        let salt = Bytes::decode(
            salt,
            MIN_SALT_LEN,
            MAX_SALT_LEN,
            PasswordHashError::SaltEncoding,
            PasswordHashError::SaltLength,
        )?;
        let output = Bytes::decode(
            output,
            output_len,
            output_len,
            PasswordHashError::OutputEncoding,
            PasswordHashError::OutputLength,
        )?;
        Ok(Self::Pbkdf2 {
            iterations,
            salt,
            output,
        })
    }

    #[cfg(feature = "argon2")]
    fn parse_argon2id(
        version: &str,
        params: &str,
        salt: &str,
        output: &str,
    ) -> Result<Self, PasswordHashError> {
        let (name, value) = split_param(version)?;
        if name != "v" {
            return Err(PasswordHashError::NotPhcFormat);
        }
        if value != 19 {
            return Err(PasswordHashError::UnsupportedVersion);
        }
        let (mut m, mut t, mut p) = (None, None, None);
        for param in params.split(',') {
            let (name, value) = split_param(param)?;
            let slot = match name {
                "m" => &mut m,
                "t" => &mut t,
                "p" => &mut p,
                _ => return Err(PasswordHashError::MalformedParams),
            };
            if slot.replace(value).is_some() {
                return Err(PasswordHashError::MalformedParams);
            }
        }
        let (Some(m), Some(t), Some(p)) = (m, t, p) else {
            return Err(PasswordHashError::MissingParam);
        };
        if m > MAX_ARGON2_MEMORY_KIB || t > MAX_ARGON2_PASSES || p > MAX_ARGON2_LANES {
            return Err(PasswordHashError::CostOutOfRange);
        }
        let salt = Bytes::decode(
            salt,
            MIN_SALT_LEN,
            MAX_SALT_LEN,
            PasswordHashError::SaltEncoding,
            PasswordHashError::SaltLength,
        )?;
        let output = Bytes::decode(
            output,
            MIN_OUTPUT_LEN,
            MAX_OUTPUT_LEN,
            PasswordHashError::OutputEncoding,
            PasswordHashError::OutputLength,
        )?;
        let params = argon2::Params::new(m, t, p, Some(output.len))
            .map_err(|_| PasswordHashError::CostOutOfRange)?;
        Ok(Self::Argon2id {
            params,
            salt,
            output,
        })
    }

    fn scheme(&self) -> Scheme {
        match self {
            Self::Pbkdf2 { .. } => Scheme::Pbkdf2Sha256,
            #[cfg(feature = "argon2")]
            Self::Argon2id { .. } => Scheme::Argon2id,
        }
    }

    fn verify(&self, password: &[u8]) -> bool {
        let mut computed = [0u8; MAX_OUTPUT_LEN];
        let (expected, computed) = match self {
            Self::Pbkdf2 {
                iterations,
                salt,
                output,
            } => {
                let computed = computed.get_mut(..output.len).unwrap_or(&mut []);
                pbkdf2::pbkdf2_hmac::<sha2::Sha256>(
                    password,
                    salt.as_slice(),
                    *iterations,
                    computed,
                );
                (output.as_slice(), &*computed)
            }
            #[cfg(feature = "argon2")]
            Self::Argon2id {
                params,
                salt,
                output,
            } => {
                let computed = computed.get_mut(..output.len).unwrap_or(&mut []);
                let argon = argon2::Argon2::new(
                    argon2::Algorithm::Argon2id,
                    argon2::Version::V0x13,
                    params.clone(),
                );
                if argon
                    .hash_password_into(password, salt.as_slice(), computed)
                    .is_err()
                {
                    return false;
                }
                (output.as_slice(), &*computed)
            }
        };
        // Both sides have the stored length; only their content is compared, in constant time.
        bool::from(expected.ct_eq(computed))
    }
}

/// Splits `name=decimal`; the decimal has no sign and no leading zero (PHC rules).
fn split_param(param: &str) -> Result<(&str, u32), PasswordHashError> {
    let (name, value) = param
        .split_once('=')
        .ok_or(PasswordHashError::MalformedParams)?;
    let canonical = !value.is_empty()
        && value.bytes().all(|b| b.is_ascii_digit())
        && (value == "0" || !value.starts_with('0'));
    if name.is_empty() || !canonical {
        return Err(PasswordHashError::MalformedParams);
    }
    let value = value
        .parse::<u32>()
        .map_err(|_| PasswordHashError::MalformedParams)?;
    Ok((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `pbkdf2` crate's own PHC output (its `phc` module test): password
    /// "passwordPASSWORDpassword", salt "saltSALTsaltSALTsaltSALTsaltSALTsalt", 4096 rounds,
    /// 40-byte output (RFC 7914-style vector).
    const PBKDF2_CRATE_VECTOR: &str = "$pbkdf2-sha256$i=4096,l=40\
        $c2FsdFNBTFRzYWx0U0FMVHNhbHRTQUxUc2FsdFNBTFRzYWx0\
        $NIyJ28vTKy8y2BS4EW6EzysXNH68GAAYHE4qH7jdU+HGNVGMfaxH6Q";

    fn salt(byte: u8) -> [u8; SALT_LEN] {
        [byte; SALT_LEN]
    }

    #[test]
    fn pbkdf2_crate_phc_vector_verifies() {
        let hash = PasswordHash::parse(PBKDF2_CRATE_VECTOR).unwrap();
        assert_eq!(hash.scheme(), Scheme::Pbkdf2Sha256);
        assert_eq!(hash.iterations(), Some(4096));
        assert!(hash.verify(b"passwordPASSWORDpassword"));
        assert!(!hash.verify(b"passwordPASSWORDpassworD"));
        assert!(!hash.verify(b""));
    }

    #[test]
    fn hash_matches_the_pbkdf2_hmac_sha256_test_vector() {
        // PBKDF2-HMAC-SHA256, P="password", S="salt", c=4096, dkLen=32 (RFC 7914 §11 style;
        // the widely published vector c5e478d5...).
        let hash = PasswordHash::parse(
            "$pbkdf2-sha256$i=4096,l=32$c2FsdA$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o",
        );
        // "salt" is only 4 bytes: below the salt floor, refused when stored...
        assert_eq!(hash, Err(PasswordHashError::SaltLength));
        // ...but the derivation itself is the standard one.
        let mut out = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(b"password", b"salt", 4096, &mut out);
        assert_eq!(
            out,
            [
                0xc5, 0xe4, 0x78, 0xd5, 0x92, 0x88, 0xc8, 0x41, 0xaa, 0x53, 0x0d, 0xb6, 0x84, 0x5c,
                0x4c, 0x8d, 0x96, 0x28, 0x93, 0xa0, 0x01, 0xce, 0x4e, 0x11, 0xa4, 0x96, 0x38, 0x73,
                0xaa, 0x98, 0x13, 0x4a
            ]
        );
    }

    #[test]
    fn hash_password_writes_the_pbkdf2_crate_format() {
        let hash = hash_password(b"hunter2", &salt(7), 1000).unwrap();
        let s = hash.as_str();
        assert!(s.starts_with("$pbkdf2-sha256$i=1000,l=32$BwcHBwcHBwcHBwcHBwcHBw$"));
        assert_eq!(s.len(), "$pbkdf2-sha256$i=1000,l=32$".len() + 22 + 1 + 43);
        // What we write, we read back identically.
        assert_eq!(PasswordHash::parse(s).unwrap(), hash);
        assert!(hash.verify(b"hunter2"));
        assert!(!hash.verify(b"hunter3"));
    }

    #[test]
    fn same_password_and_salt_give_the_same_hash_and_different_salts_differ() {
        let a = hash_password(b"pw", &salt(1), 1000).unwrap();
        let b = hash_password(b"pw", &salt(1), 1000).unwrap();
        let c = hash_password(b"pw", &salt(2), 1000).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn hash_password_refuses_iterations_out_of_range() {
        assert_eq!(
            hash_password(b"pw", &salt(1), MIN_ITERATIONS - 1),
            Err(PasswordHashError::IterationsOutOfRange)
        );
        assert_eq!(
            hash_password(b"pw", &salt(1), MAX_ITERATIONS + 1),
            Err(PasswordHashError::IterationsOutOfRange)
        );
    }

    #[test]
    fn output_length_parameter_is_optional_and_params_may_come_in_any_order() {
        let made = hash_password(b"pw", &salt(3), 1000).unwrap();
        let tail = made.as_str().rsplitn(3, '$').collect::<Vec<_>>();
        let (output, salt_b64) = (tail[0], tail[1]);
        for params in ["i=1000", "l=32,i=1000", "i=1000,l=32"] {
            let phc = format!("$pbkdf2-sha256${params}${salt_b64}${output}");
            let hash = PasswordHash::parse(&phc).unwrap();
            assert!(hash.verify(b"pw"), "{phc}");
        }
    }

    #[test]
    fn every_malformed_hash_has_its_named_error() {
        use PasswordHashError as E;
        let good_salt = "BwcHBwcHBwcHBwcHBwcHBw";
        let good_out = "xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o";
        let long = format!("$pbkdf2-sha256$i=1000${}${good_out}", "A".repeat(200));
        let cases: Vec<(String, E)> = vec![
            (long, E::TooLong),
            (String::new(), E::NotPhcFormat),
            ("pbkdf2-sha256$i=1000$a$b".into(), E::NotPhcFormat),
            ("$".into(), E::NotPhcFormat),
            ("$pbkdf2-sha256$i=1000$salt".into(), E::NotPhcFormat),
            (
                format!("$pbkdf2-sha256$i=1000${good_salt}${good_out}$extra"),
                E::NotPhcFormat,
            ),
            ("$bcrypt$x$y$z".into(), E::UnknownScheme),
            ("$pbkdf2-sha512$i=1000$a$b".into(), E::UnknownScheme),
            (format!("$pbkdf2-sha256$i=1000,x=1${good_salt}${good_out}"), E::MalformedParams),
            (format!("$pbkdf2-sha256$i=1000,i=1000${good_salt}${good_out}"), E::MalformedParams),
            (format!("$pbkdf2-sha256$i=01000${good_salt}${good_out}"), E::MalformedParams),
            (format!("$pbkdf2-sha256$i=+1000${good_salt}${good_out}"), E::MalformedParams),
            (format!("$pbkdf2-sha256$i=${good_salt}${good_out}"), E::MalformedParams),
            (format!("$pbkdf2-sha256$i1000${good_salt}${good_out}"), E::MalformedParams),
            (format!("$pbkdf2-sha256$i=99999999999${good_salt}${good_out}"), E::MalformedParams),
            (format!("$pbkdf2-sha256$l=32${good_salt}${good_out}"), E::MissingParam),
            (format!("$pbkdf2-sha256$i=999${good_salt}${good_out}"), E::IterationsOutOfRange),
            (
                format!("$pbkdf2-sha256$i=10000001${good_salt}${good_out}"),
                E::IterationsOutOfRange,
            ),
            (format!("$pbkdf2-sha256$i=1000$!!!!!!!!!!!${good_out}"), E::SaltEncoding),
            (format!("$pbkdf2-sha256$i=1000$c2FsdA${good_out}"), E::SaltLength),
            (format!("$pbkdf2-sha256$i=1000${good_salt}$***"), E::OutputEncoding),
            (format!("$pbkdf2-sha256$i=1000,l=33${good_salt}${good_out}"), E::OutputLength),
            (format!("$pbkdf2-sha256$i=1000,l=9${good_salt}${good_out}"), E::OutputLength),
            (format!("$pbkdf2-sha256$i=1000,l=65${good_salt}${good_out}"), E::OutputLength),
            (format!("$pbkdf2-sha256$i=1000${good_salt}$AAAA"), E::OutputLength),
            #[cfg(not(feature = "argon2"))]
            (
                "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
                    .into(),
                E::Argon2NotEnabled,
            ),
        ];
        for (phc, expected) in cases {
            assert_eq!(PasswordHash::parse(&phc), Err(expected), "{phc}");
        }
    }

    #[test]
    fn non_canonical_base64_is_refused() {
        // "BwcHBwcHBwcHBwcHBwcHBx": the last character carries non-zero padding bits.
        let phc = "$pbkdf2-sha256$i=1000$BwcHBwcHBwcHBwcHBwcHBx$\
                   xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o";
        assert_eq!(
            PasswordHash::parse(phc),
            Err(PasswordHashError::SaltEncoding)
        );
    }

    #[test]
    fn verify_or_dummy_verifies_real_hashes_and_never_accepts_without_one() {
        let hash = hash_password(b"right", &salt(9), 1000).unwrap();
        assert!(verify_or_dummy(Some(&hash), b"right", 1000));
        assert!(!verify_or_dummy(Some(&hash), b"wrong", 1000));
        for password in [&b"right"[..], b"", b"anything"] {
            assert!(!verify_or_dummy(None, password, 1000));
            assert!(!verify_or_dummy(None, password, 0));
        }
    }

    #[test]
    fn generated_passwords_are_24_url_safe_characters() {
        let a = generate_password(&[0u8; GENERATED_PASSWORD_RANDOM_LEN]);
        assert_eq!(a.as_str(), "AAAAAAAAAAAAAAAAAAAAAAAA");
        let b = generate_password(&[0xff; GENERATED_PASSWORD_RANDOM_LEN]);
        assert_eq!(b.as_str(), "________________________");
        let c = generate_password(&core::array::from_fn(|i| i as u8 * 13));
        assert_eq!(c.len(), GENERATED_PASSWORD_LEN);
        assert!(
            c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }

    #[test]
    fn debug_output_does_not_show_the_hash() {
        let hash = hash_password(b"pw", &salt(5), 1000).unwrap();
        let debug = format!("{hash:?}");
        assert!(debug.contains("Pbkdf2Sha256"));
        assert!(!debug.contains("BQUF"));
    }

    #[cfg(feature = "argon2")]
    mod argon2id {
        use super::*;

        /// From the PHC reference implementation's test suite, also verified by the argon2
        /// crate's `phc_strings` test: argon2id, v=19, m=64 MiB, t=2, p=1, password "password",
        /// salt "somesalt".
        const REFERENCE_VECTOR: &str = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";

        #[test]
        fn reference_vector_verifies() {
            let hash = PasswordHash::parse(REFERENCE_VECTOR).unwrap();
            assert_eq!(hash.scheme(), Scheme::Argon2id);
            assert_eq!(hash.iterations(), None);
            assert!(hash.verify(b"password"));
            assert!(!hash.verify(b"sassword"));
        }

        #[test]
        fn outputs_of_the_argon2_crate_verify_for_other_parameters() {
            // The crate's raw argon2id output, written as the PHC string it would write.
            for (m, t, p, salt, out_len) in [
                (64u32, 1u32, 1u32, &b"saltsalt"[..], 32usize),
                (256, 3, 2, b"a longer salt, 32 bytes of it..", 16),
                (128, 2, 4, b"0123456789abcdef", 64),
            ] {
                let params = argon2::Params::new(m, t, p, Some(out_len)).unwrap();
                let argon = argon2::Argon2::new(
                    argon2::Algorithm::Argon2id,
                    argon2::Version::V0x13,
                    params,
                );
                let mut out = vec![0u8; out_len];
                argon.hash_password_into(b"pa55", salt, &mut out).unwrap();
                let (mut s, mut o) = ([0u8; 128], [0u8; 128]);
                let phc = format!(
                    "$argon2id$v=19$m={m},t={t},p={p}${}${}",
                    Base64Unpadded::encode(salt, &mut s).unwrap(),
                    Base64Unpadded::encode(&out, &mut o).unwrap()
                );
                let hash = PasswordHash::parse(&phc).unwrap();
                assert!(hash.verify(b"pa55"), "{phc}");
                assert!(!hash.verify(b"pa56"), "{phc}");
                assert!(verify_or_dummy(Some(&hash), b"pa55", MIN_ITERATIONS));
            }
        }

        #[test]
        fn argon2_errors_are_named() {
            use PasswordHashError as E;
            let tail = "c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";
            for (phc, expected) in [
                (
                    format!("$argon2id$v=16$m=65536,t=2,p=1${tail}"),
                    E::UnsupportedVersion,
                ),
                (format!("$argon2id$m=65536,t=2,p=1${tail}"), E::NotPhcFormat),
                (
                    format!("$argon2id$v=19$m=65536,t=2${tail}"),
                    E::MissingParam,
                ),
                (
                    format!("$argon2id$v=19$m=65536,t=2,p=1,keyid=1${tail}"),
                    E::MalformedParams,
                ),
                (
                    format!("$argon2id$v=19$m=4194304,t=2,p=1${tail}"),
                    E::CostOutOfRange,
                ),
                (
                    format!("$argon2id$v=19$m=65536,t=33,p=1${tail}"),
                    E::CostOutOfRange,
                ),
                (
                    format!("$argon2id$v=19$m=65536,t=0,p=1${tail}"),
                    E::CostOutOfRange,
                ),
                (
                    format!("$argon2id$v=19$m=8,t=2,p=4${tail}"),
                    E::CostOutOfRange,
                ),
                (
                    "$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$AAAA".into(),
                    E::UnknownScheme,
                ),
            ] {
                assert_eq!(PasswordHash::parse(&phc), Err(expected), "{phc}");
            }
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parser_never_panics_on_arbitrary_strings(s in "\\PC{0,200}") {
                let _ = PasswordHash::parse(&s);
            }

            #[test]
            fn parser_never_panics_on_phc_shaped_strings(
                id in prop_oneof![Just("pbkdf2-sha256".to_string()), Just("argon2id".to_string()), "[a-z0-9-]{0,12}"],
                params in "[a-z=0-9,]{0,30}",
                salt in "[A-Za-z0-9+/=!]{0,90}",
                out in "[A-Za-z0-9+/=$]{0,90}",
            ) {
                let _ = PasswordHash::parse(&format!("${id}${params}${salt}${out}"));
                let _ = PasswordHash::parse(&format!("${id}$v=19${params}${salt}${out}"));
            }
        }
    }
}
