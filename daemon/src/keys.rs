//! The session keys file: the current and the previous HMAC key that sign session cookies.
//!
//! Generated from the operating system's random number generator at first start and kept in
//! the state directory with mode 0600: whoever reads it can mint a session for any user. Two
//! keys make rotation painless: `gatehouse rotate-key` moves the current key to previous, so
//! cookies signed before keep working until they expire or the next rotation (they are not
//! renewed under the new key). `gatehouse rotate-key --log-out-everyone` keeps no previous key:
//! every session ends as soon as the gateway reads the file (SIGHUP).
//!
//! The file is two lines of hex, `current <64 hex>` and `previous <64 hex>`; anything else is
//! an error that stops start-up, and such a file is never overwritten.

use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use crate::files::write_atomically;

/// Bytes in one session key (HMAC-SHA256).
pub const KEY_LEN: usize = 32;

/// File name in the state directory.
pub const KEYS_FILE: &str = "session-keys";

/// The signing keys.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKeys {
    pub current: [u8; KEY_LEN],
    /// Still accepted for verification, so a rotation logs nobody out.
    pub previous: Option<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys { .. }")
    }
}

pub fn keys_path(state_dir: &Path) -> PathBuf {
    state_dir.join(KEYS_FILE)
}

/// Fills `buf` from the operating system's random number generator.
pub fn os_random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| anyhow!("the operating system's random generator failed: {e}"))
}

/// Random bytes from the operating system, drawn a few hundred at a time: core wants fresh
/// random bytes with every request, and one system call per request would cost more than the
/// decision. Bytes handed out are wiped from the pool.
pub struct RandomPool {
    buf: [u8; 512],
    pos: usize,
}

impl Default for RandomPool {
    fn default() -> Self {
        RandomPool {
            buf: [0; 512],
            pos: 512,
        }
    }
}

impl RandomPool {
    /// The next `N` unused random bytes.
    pub fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        if N > self.buf.len() {
            let mut out = [0u8; N];
            os_random(&mut out)?;
            return Ok(out);
        }
        if self.pos + N > self.buf.len() {
            os_random(&mut self.buf)?;
            self.pos = 0;
        }
        let mut out = [0u8; N];
        let chunk = &mut self.buf[self.pos..self.pos + N];
        out.copy_from_slice(chunk);
        chunk.fill(0);
        self.pos += N;
        Ok(out)
    }
}

impl SessionKeys {
    /// Reads the keys, or creates the file with a fresh key when there is none yet.
    pub fn load_or_create(state_dir: &Path) -> Result<SessionKeys> {
        let path = keys_path(state_dir);
        match crate::files::read_state_file(&path) {
            Ok(bytes) => SessionKeys::parse(&String::from_utf8_lossy(&bytes)).with_context(|| {
                format!(
                    "session keys file {} is corrupt; gatehouse will not overwrite it. Move it \
                     away to start with a new key (everyone will have to log in again)",
                    path.display()
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut current = [0u8; KEY_LEN];
                os_random(&mut current)?;
                let keys = SessionKeys {
                    current,
                    previous: None,
                };
                keys.save(state_dir)?;
                tracing::info!("created new session keys in {}", path.display());
                Ok(keys)
            }
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Makes a new current key; the old one stays valid as the previous key.
    pub fn rotate(&mut self) -> Result<()> {
        let mut fresh = [0u8; KEY_LEN];
        os_random(&mut fresh)?;
        self.previous = Some(self.current);
        self.current = fresh;
        Ok(())
    }

    /// Makes a new current key and drops the previous one: every session signed before is
    /// refused as soon as a gateway reads the file (`rotate-key --log-out-everyone`).
    pub fn replace(&mut self) -> Result<()> {
        let mut fresh = [0u8; KEY_LEN];
        os_random(&mut fresh)?;
        self.previous = None;
        self.current = fresh;
        Ok(())
    }

    pub fn save(&self, state_dir: &Path) -> Result<()> {
        let mut text = format!("current {}\n", hex(&self.current));
        if let Some(p) = &self.previous {
            text.push_str(&format!("previous {}\n", hex(p)));
        }
        let path = keys_path(state_dir);
        write_atomically(&path, text.as_bytes(), 0o600)
            .with_context(|| format!("writing {}", path.display()))
    }

    fn parse(text: &str) -> Result<SessionKeys> {
        let mut current = None;
        let mut previous = None;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (name, value) = line.split_once(' ').ok_or_else(|| {
                anyhow!(
                    "line {}: expected `current <hex>` or `previous <hex>`",
                    n + 1
                )
            })?;
            let key = unhex(value.trim())
                .ok_or_else(|| anyhow!("line {}: not {} bytes of hex", n + 1, KEY_LEN))?;
            let slot = match name {
                "current" => &mut current,
                "previous" => &mut previous,
                other => bail!("line {}: unknown entry `{other}`", n + 1),
            };
            if slot.replace(key).is_some() {
                bail!("line {}: `{name}` appears twice", n + 1);
            }
        }
        let current = current.ok_or_else(|| anyhow!("no `current` key"))?;
        Ok(SessionKeys { current, previous })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; KEY_LEN]> {
    if s.len() != 2 * KEY_LEN || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; KEY_LEN];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_random_pool_never_hands_out_the_same_bytes_twice() {
        let mut pool = RandomPool::default();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100 {
            let r: [u8; 32] = pool.take().expect("random");
            assert!(seen.insert(r), "repeated random bytes");
        }
        assert!(
            pool.buf[..pool.pos].iter().all(|b| *b == 0),
            "used bytes are wiped"
        );
    }

    #[test]
    fn keys_are_created_private_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = SessionKeys::load_or_create(dir.path()).expect("create");
        let mode = std::fs::metadata(keys_path(dir.path()))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = SessionKeys::load_or_create(dir.path()).expect("read");
        assert_eq!(a, b);
        assert_ne!(a.current, [0u8; KEY_LEN]);
    }

    #[test]
    fn rotation_keeps_the_old_key_as_previous() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut k = SessionKeys::load_or_create(dir.path()).expect("create");
        let old = k.current;
        k.rotate().expect("rotate");
        k.save(dir.path()).expect("save");
        let back = SessionKeys::load_or_create(dir.path()).expect("read");
        assert_eq!(back.previous, Some(old));
        assert_ne!(back.current, old);
    }

    #[test]
    fn replacing_keeps_no_key_signed_before() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut k = SessionKeys::load_or_create(dir.path()).expect("create");
        k.rotate().expect("rotate");
        let (old, older) = (k.current, k.previous);
        k.replace().expect("replace");
        k.save(dir.path()).expect("save");
        let back = SessionKeys::load_or_create(dir.path()).expect("read");
        assert_eq!(back.previous, None);
        assert_ne!(back.current, old);
        assert_ne!(Some(back.current), older);
    }

    #[test]
    fn a_corrupt_keys_file_is_an_error_and_stays_as_it_was() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = keys_path(dir.path());
        std::fs::write(&path, "current 12zz\n").expect("write");
        let err = SessionKeys::load_or_create(dir.path()).expect_err("corrupt");
        assert!(format!("{err:#}").contains("corrupt"), "{err:#}");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "current 12zz\n"
        );
    }
}
