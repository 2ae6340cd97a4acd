//! The users file in the state directory: core's one JSON format, written atomically, read
//! back when someone else changed it, and never overwritten when it does not parse.
//!
//! The table itself and every rule about it (names, first admin, provisioning) are core's
//! [`UserTable`]; this file only moves it between memory and disk. `gatehouse users` and a
//! running gateway may both change the file, so every read-modify-write holds an exclusive
//! lock on `users.lock` beside it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use gatehouse_core::password::{GENERATED_PASSWORD_RANDOM_LEN, SALT_LEN};
use gatehouse_core::users::{TABLE_ID_RANDOM_LEN, UserTable};

use crate::files::{DirLock, FileStamp, ensure_private_dir, write_atomically};
use crate::keys::os_random;

/// Most users the daemon holds.
pub const USERS_CAPACITY: usize = 256;

/// The daemon's users table.
pub type Users = UserTable<USERS_CAPACITY>;

/// File name of the users file in the state directory.
pub const USERS_FILE: &str = "users.json";
const LOCK_FILE: &str = "users.lock";

/// The users file of one state directory.
#[derive(Debug, Clone)]
pub struct UsersFile {
    dir: PathBuf,
}

/// A users table as read from disk, with the stamp of the file it came from.
pub struct Loaded {
    pub users: Box<Users>,
    /// `None` when there was no file yet.
    pub stamp: Option<FileStamp>,
}

impl UsersFile {
    /// The users file in `state_dir`, creating the directory (mode 0700) if needed.
    pub fn open(state_dir: &Path) -> Result<UsersFile> {
        ensure_private_dir(state_dir).with_context(|| {
            format!(
                "creating state directory `state_dir` = {}",
                state_dir.display()
            )
        })?;
        Ok(UsersFile {
            dir: state_dir.to_owned(),
        })
    }

    /// The users file of `state_dir`, without creating anything (to read it elsewhere).
    pub fn at(state_dir: &Path) -> UsersFile {
        UsersFile {
            dir: state_dir.to_owned(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(USERS_FILE)
    }

    /// The stamp of the file now (to notice changes made by someone else).
    pub fn stamp(&self) -> Result<Option<FileStamp>> {
        FileStamp::of(&self.path()).with_context(|| format!("reading {}", self.path().display()))
    }

    /// Reads the table. No file yet is an empty table; a file that core refuses is an error
    /// naming the file and the reason, and the file is left exactly as it is.
    pub fn load(&self) -> Result<Loaded> {
        let path = self.path();
        let stamp = self.stamp()?;
        let bytes = match crate::files::read_state_file(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A table made anew: an id of its own, so that no session issued for a users
                // file that was here before (moved away, deleted) is accepted by this one.
                let mut random = [0u8; TABLE_ID_RANDOM_LEN];
                os_random(&mut random)?;
                return Ok(Loaded {
                    users: Box::new(Users::with_id(random)),
                    stamp: None,
                });
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let users = Users::from_json(&bytes).map_err(|e| {
            anyhow!(
                "users file {} is corrupt: {e}. gatehouse will not overwrite it; fix it or move \
                 it away (then create users again with `gatehouse users add`)",
                path.display()
            )
        })?;
        Ok(Loaded {
            users: Box::new(users),
            stamp,
        })
    }

    /// Writes the table atomically (mode 0600). Call with the lock held.
    pub fn save(&self, users: &Users) -> Result<Option<FileStamp>> {
        let mut buf = vec![0u8; Users::JSON_CAPACITY];
        let n = users
            .to_json(&mut buf)
            .map_err(|e| anyhow!("encoding the users table: {e}"))?;
        buf.truncate(n);
        buf.push(b'\n');
        let path = self.path();
        write_atomically(&path, &buf, 0o600)
            .with_context(|| format!("writing {}", path.display()))?;
        self.stamp()
    }

    /// Takes the lock that serialises changes to the file.
    pub fn lock(&self) -> Result<DirLock> {
        let path = self.dir.join(LOCK_FILE);
        DirLock::acquire(&path).with_context(|| format!("locking {}", path.display()))
    }

    /// Read, change, write, under the lock: what `gatehouse users` does. A corrupt file stops
    /// here, before `change` runs, so it is never overwritten.
    pub fn modify<T>(&self, change: impl FnOnce(&mut Users) -> Result<T>) -> Result<T> {
        let _lock = self.lock()?;
        let mut loaded = self.load()?;
        let out = change(&mut loaded.users)?;
        self.save(&loaded.users)?;
        Ok(out)
    }
}

/// Random bytes for a generated password and its salt.
pub fn password_randomness() -> Result<([u8; GENERATED_PASSWORD_RANDOM_LEN], [u8; SALT_LEN])> {
    let mut random = [0u8; GENERATED_PASSWORD_RANDOM_LEN];
    let mut salt = [0u8; SALT_LEN];
    os_random(&mut random)?;
    os_random(&mut salt)?;
    Ok((random, salt))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_core::password::{MIN_ITERATIONS, hash_password};

    fn hash(pw: &str) -> gatehouse_core::password::PasswordHash {
        hash_password(pw.as_bytes(), &[7u8; SALT_LEN], MIN_ITERATIONS).expect("hash")
    }

    #[test]
    fn no_file_is_an_empty_table_and_changes_are_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = UsersFile::open(&dir.path().join("state")).expect("open");
        assert!(file.load().expect("load").users.is_empty());
        file.modify(|u| {
            u.add("Alice", true, hash("pw"))
                .map_err(|e| anyhow!("{e}"))?;
            Ok(())
        })
        .expect("modify");
        let back = file.load().expect("load");
        let alice = back.users.find("alice").expect("found ignoring case");
        assert_eq!(alice.name.as_str(), "Alice");
        assert!(alice.admin);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file.path())
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    /// The advice for a corrupt users file ("move it away, create users again") makes a new
    /// table with the same session key: the old `alice`'s session is not the new `alice`'s.
    #[test]
    fn a_users_file_made_anew_refuses_the_sessions_of_the_one_before() {
        use gatehouse_core::session::{SessionError, SessionKey, SessionKeys};
        let dir = tempfile::tempdir().expect("tempdir");
        let file = UsersFile::open(dir.path()).expect("open");
        let add_alice = || {
            file.modify(|u| {
                u.add("alice", false, hash("pw"))
                    .map_err(|e| anyhow!("{e}"))?;
                Ok(())
            })
            .expect("add alice");
        };
        add_alice();
        let old = file.load().expect("load").users;
        assert_ne!(old.table_id(), 0, "a new file has a random id");
        let keys = SessionKeys::new(SessionKey::from_bytes([3; 32]));
        let generation = old.generation_of("alice").expect("alice");
        let token = keys
            .issue(old.table_id(), "alice", generation, 1_800_000_000, 3600)
            .expect("token");
        assert!(
            keys.verify_user(token.as_bytes(), 1_800_000_000, &old)
                .is_ok()
        );

        std::fs::rename(file.path(), dir.path().join("users.json.broken")).expect("move away");
        add_alice();
        let new = file.load().expect("load").users;
        assert_eq!(new.generation_of("alice"), Some(generation));
        assert_eq!(
            keys.verify_user(token.as_bytes(), 1_800_000_000, &new)
                .map(|_| ()),
            Err(SessionError::OtherTable)
        );
        // The id is the file's: read again, it is the same.
        assert_eq!(file.load().expect("load").users.table_id(), new.table_id());
    }

    #[test]
    fn a_corrupt_file_is_refused_and_never_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = UsersFile::open(dir.path()).expect("open");
        std::fs::write(file.path(), b"{\"version\":1,\"users\":[{\"name\":").expect("write");
        let err = file.load().err().expect("corrupt");
        assert!(err.to_string().contains("corrupt"), "{err}");
        let attempt = file.modify(|u| {
            u.add("bob", false, hash("pw"))
                .map_err(|e| anyhow!("{e}"))?;
            Ok(())
        });
        assert!(attempt.is_err());
        assert_eq!(
            std::fs::read(file.path()).expect("read"),
            b"{\"version\":1,\"users\":[{\"name\":"
        );
    }

    #[test]
    fn a_refused_change_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = UsersFile::open(dir.path()).expect("open");
        let r: Result<()> = file.modify(|_| Err(anyhow!("no")));
        assert!(r.is_err());
        assert!(!file.path().exists());
    }
}
