//! Files on disk, written so that a crash or a full disk never leaves half a file.
//!
//! Every state file is replaced atomically: the new content goes to a temporary file in the
//! same directory, is flushed to disk (`fsync`), renamed over the old name, and the directory
//! is flushed too, so after a power cut the name points at either the whole old file or the
//! whole new one.
//!
//! The state directory belongs to the service user, and `gatehouse users` often runs as root:
//! whoever can write the directory must not be able to make root write or read another file.
//! So nothing in it is followed: the directory and every file in it are opened with
//! `O_NOFOLLOW`, a temporary file is created with `O_EXCL` under a random name, and a state
//! directory or file that is a symbolic link, or that group or others may write, is refused
//! with an error that names it ([`check_state_dir`], [`read_state_file`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode bits that let group or others write.
const WRITABLE_BY_OTHERS: u32 = 0o022;

/// Why a state directory or file is refused, as an error naming it.
fn refused(what: &str, path: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "{what} {} {why}; gatehouse refuses to use it",
            path.display()
        ),
    )
}

/// Checks the state directory: a real directory (not a symbolic link to one) that neither
/// group nor others may write.
pub fn check_state_dir(dir: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(dir)?;
    if meta.file_type().is_symlink() {
        return Err(refused(
            "state directory",
            dir,
            "is a symbolic link (point state_dir at the directory itself)",
        ));
    }
    if !meta.is_dir() {
        return Err(refused("state directory", dir, "is not a directory"));
    }
    if meta.mode() & WRITABLE_BY_OTHERS != 0 {
        return Err(refused(
            "state directory",
            dir,
            &format!(
                "is writable by group or others (mode {:o}; `chmod 700` it)",
                meta.mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

/// Checks an opened state file: a regular file that neither group nor others may write.
fn check_state_file(file: &File, path: &Path) -> io::Result<()> {
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(refused("state file", path, "is not a regular file"));
    }
    if meta.mode() & WRITABLE_BY_OTHERS != 0 {
        return Err(refused(
            "state file",
            path,
            &format!(
                "is writable by group or others (mode {:o}; `chmod 600` it)",
                meta.mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

/// `O_NOFOLLOW` fails with `ELOOP` on a symbolic link: said in words.
fn no_follow_error(e: io::Error, path: &Path) -> io::Error {
    if e.raw_os_error() == Some(libc::ELOOP) {
        refused("state file", path, "is a symbolic link")
    } else {
        e
    }
}

/// Reads a file in the state directory without following a symbolic link, after checking
/// the directory and the file ([`check_state_dir`]).
pub fn read_state_file(path: &Path) -> io::Result<Vec<u8>> {
    check_state_dir(&parent_dir(path))?;
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| no_follow_error(e, path))?;
    check_state_file(&file, path)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Replaces `path` with `bytes` atomically; the file gets permissions `mode`.
///
/// The temporary file beside it gets a random name and is created exclusively, never
/// following a link: whatever someone planted under that name makes the write fail, it is
/// never written through.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = parent_dir(path);
    check_state_dir(&dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(|e| io::Error::other(e.to_string()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(
        ".tmp-{}-{:016x}",
        std::process::id(),
        u64::from_ne_bytes(random)
    ));
    let tmp = dir.join(tmp_name);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)?;
    let result = (|| {
        // The mode given to open() is filtered by the umask; state files must not depend on it.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(&dir)?.sync_all()
    })();
    drop(file);
    if result.is_err() {
        // Only the file this call created: the name was free when it was made.
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates the state directory (mode 0700) if it does not exist, and checks it
/// ([`check_state_dir`]).
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(_) => check_state_dir(dir),
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir),
        Err(e) => Err(e),
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// What identifies one version of a file on disk, to notice when someone else changed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    modified: Option<std::time::SystemTime>,
    len: u64,
    inode: u64,
}

impl FileStamp {
    /// The stamp of the file now, or `None` when it does not exist.
    pub fn of(path: &Path) -> io::Result<Option<FileStamp>> {
        use std::os::unix::fs::MetadataExt;
        match fs::symlink_metadata(path) {
            Ok(m) => Ok(Some(FileStamp {
                modified: m.modified().ok(),
                len: m.len(),
                inode: m.ino(),
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// An exclusive advisory lock on a file beside the state, held while reading, changing and
/// writing it, so `gatehouse users` and a running gateway never interleave their writes.
pub struct DirLock {
    _file: File,
}

impl DirLock {
    pub fn acquire(lock_path: &Path) -> io::Result<DirLock> {
        check_state_dir(&parent_dir(lock_path))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(lock_path)
            .map_err(|e| no_follow_error(e, lock_path))?;
        check_state_file(&file, lock_path)?;
        loop {
            match rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive) {
                Ok(()) => return Ok(DirLock { _file: file }),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_atomic_write_replaces_the_whole_file_with_the_mode_asked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("users.json");
        write_atomically(&path, b"first", 0o600).expect("write");
        write_atomically(&path, b"second", 0o600).expect("write");
        assert_eq!(fs::read(&path).expect("read"), b"second");
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn a_failed_write_leaves_what_was_there_and_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("users.json");
        // A directory that is not empty cannot be renamed over.
        fs::create_dir(&path).expect("mkdir");
        fs::write(path.join("kept"), b"kept").expect("write");
        assert!(write_atomically(&path, b"lost", 0o600).is_err());
        assert_eq!(fs::read(path.join("kept")).expect("read"), b"kept");
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 1);
    }

    #[test]
    fn links_in_the_state_directory_are_never_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        fs::create_dir(&state).expect("mkdir");
        fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).expect("chmod");
        let victim = dir.path().join("victim");
        fs::write(&victim, b"precious").expect("write");
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).expect("chmod");

        // The lock file and a state file read as links to another file.
        let lock = state.join("users.lock");
        std::os::unix::fs::symlink(&victim, &lock).expect("symlink");
        let err = DirLock::acquire(&lock).err().expect("refused");
        assert!(
            err.to_string().contains("users.lock is a symbolic link"),
            "{err}"
        );
        let users = state.join("users.json");
        std::os::unix::fs::symlink(&victim, &users).expect("symlink");
        let err = read_state_file(&users).expect_err("refused");
        assert!(
            err.to_string().contains("users.json is a symbolic link"),
            "{err}"
        );
        // Writing replaces the link itself, never the file it points at.
        write_atomically(&users, b"new", 0o600).expect("write");
        assert!(!fs::symlink_metadata(&users).expect("meta").is_symlink());
        assert_eq!(fs::read(&victim).expect("read"), b"precious");
        assert_eq!(fs::metadata(&victim).expect("meta").mode() & 0o777, 0o600);

        // The state directory itself as a link.
        let linked = dir.path().join("linked");
        std::os::unix::fs::symlink(&state, &linked).expect("symlink");
        let err = write_atomically(&linked.join("users.json"), b"x", 0o600).expect_err("refused");
        assert!(
            err.to_string().contains("linked is a symbolic link"),
            "{err}"
        );
        assert!(ensure_private_dir(&linked).is_err());
    }

    #[test]
    fn a_state_directory_or_file_others_may_write_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        ensure_private_dir(&state).expect("create");
        let users = state.join("users.json");
        write_atomically(&users, b"{}", 0o600).expect("write");
        fs::set_permissions(&users, fs::Permissions::from_mode(0o620)).expect("chmod");
        let err = read_state_file(&users).expect_err("refused");
        assert!(
            err.to_string()
                .contains("users.json is writable by group or others"),
            "{err}"
        );
        fs::set_permissions(&users, fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(read_state_file(&users).expect("read"), b"{}");

        fs::set_permissions(&state, fs::Permissions::from_mode(0o777)).expect("chmod");
        for err in [
            read_state_file(&users).expect_err("refused"),
            write_atomically(&users, b"x", 0o600).expect_err("refused"),
            ensure_private_dir(&state).expect_err("refused"),
        ] {
            assert!(
                err.to_string().contains("state directory")
                    && err
                        .to_string()
                        .contains("writable by group or others (mode 777"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_stamp_changes_when_the_file_is_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        assert_eq!(FileStamp::of(&path).expect("stat"), None);
        write_atomically(&path, b"one", 0o600).expect("write");
        let a = FileStamp::of(&path).expect("stat");
        write_atomically(&path, b"two!", 0o600).expect("write");
        let b = FileStamp::of(&path).expect("stat");
        assert_ne!(a, b);
    }
}
