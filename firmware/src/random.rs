//! Random bytes for the engine (CSRF nonces, provisioned users' passwords and salts, session
//! keys): HMAC-DRBG with SHA-256 (NIST SP 800-90A), seeded by the board.
//!
//! The board seeds it from its hardware RNG (the STM32's TRNG, the host's `getrandom`); a board
//! without one (QEMU's mps2-an386) seeds it from a counter and says loudly that it is for
//! testing only. The DRBG adds no entropy: it stretches a good 256-bit seed into as many
//! unpredictable bytes as the gateway asks for, so that a slow or blocking TRNG is read once.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Bytes of seed a board should give (at least): 256 bits.
pub const SEED_LEN: usize = 32;

/// HMAC-DRBG (SHA-256) state.
pub struct Drbg {
    key: [u8; 32],
    value: [u8; 32],
}

fn hmac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC pads a key shorter than the block with zeros: this is HMAC-SHA256 under `key`,
    // built without a fallible constructor.
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    let mut mac = Hmac::<Sha256>::new((&block).into());
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

impl Drbg {
    /// Instantiates the generator from `seed` (entropy input and any personalisation).
    pub fn new(seed: &[u8]) -> Self {
        let mut drbg = Self {
            key: [0; 32],
            value: [1; 32],
        };
        drbg.update(seed);
        drbg
    }

    /// Mixes more entropy in (a board may reseed from its TRNG at any time).
    pub fn reseed(&mut self, entropy: &[u8]) {
        self.update(entropy);
    }

    /// Fills `out` with pseudo-random bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(32) {
            self.value = hmac(&self.key, &[&self.value]);
            chunk.copy_from_slice(&self.value[..chunk.len()]);
        }
        // Backtracking resistance: the state that produced `out` is gone.
        self.update(&[]);
    }

    fn update(&mut self, data: &[u8]) {
        self.key = hmac(&self.key, &[&self.value, &[0x00], data]);
        self.value = hmac(&self.key, &[&self.value]);
        if !data.is_empty() {
            self.key = hmac(&self.key, &[&self.value, &[0x01], data]);
            self.value = hmac(&self.key, &[&self.value]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_different_seed_different_stream() {
        let (mut a, mut b, mut c) = (Drbg::new(b"seed"), Drbg::new(b"seed"), Drbg::new(b"other"));
        let (mut x, mut y, mut z) = ([0u8; 80], [0u8; 80], [0u8; 80]);
        a.fill(&mut x);
        b.fill(&mut y);
        c.fill(&mut z);
        assert_eq!(x, y);
        assert_ne!(x, z);
    }

    #[test]
    fn successive_outputs_differ_and_reseeding_changes_the_stream() {
        let mut a = Drbg::new(b"seed");
        let mut b = Drbg::new(b"seed");
        let (mut first, mut second) = ([0u8; 32], [0u8; 32]);
        a.fill(&mut first);
        a.fill(&mut second);
        assert_ne!(first, second);
        b.fill(&mut [0u8; 32]);
        b.reseed(b"more entropy");
        let mut third = [0u8; 32];
        b.fill(&mut third);
        assert_ne!(second, third);
    }

    /// NIST CAVP HMAC_DRBG.rsp, [SHA-256], [PredictionResistance = False],
    /// [EntropyInputLen = 256], [NonceLen = 128], [PersonalizationStringLen = 0],
    /// [AdditionalInputLen = 0], [ReturnedBitsLen = 1024], COUNT = 0.
    #[test]
    fn matches_the_nist_vector() {
        let entropy = hex("ca851911349384bffe89de1cbdc46e6831e44d34a4fb935ee285dd14b71a7488");
        let nonce = hex("659ba96c601dc69fc902940805ec0ca8");
        let expected = hex(
            "e528e9abf2dece54d47c7e75e5fe302149f817ea9fb4bee6f4199697d04d5b89\
             d54fbb978a15b5c443c9ec21036d2460b6f73ebad0dc2aba6e624abf07745bc1\
             07694bb7547bb0995f70de25d6b29e2d3011bb19d27676c07162c8b5ccde0668\
             961df86803482cb37ed6d5c0bb8d50cf1f50d476aa0458bdaba806f48be9dcb8",
        );
        let mut seed = entropy.clone();
        seed.extend_from_slice(&nonce);
        let mut drbg = Drbg::new(&seed);
        let mut out = [0u8; 128];
        drbg.fill(&mut out);
        drbg.fill(&mut out);
        assert_eq!(&out[..], &expected[..]);
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("test vector is hex"))
            .collect()
    }
}
