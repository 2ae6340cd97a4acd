//! Files on disk, written so that a crash or a full disk never leaves half a file.
//!
//! Every state file is replaced atomically: the new content goes to a temporary file in the
//! same directory, is flushed to disk (`fsync`), renamed over the old name, and the directory
//! is flushed too, so after a power cut the name points at either the whole old file or the
//! whole new one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Replaces `path` with `bytes` atomically; the file gets permissions `mode`.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // The mode given to open() is filtered by the umask; state files must not depend on it.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates the state directory (mode 0700) if it does not exist.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a directory", dir.display()),
        )),
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
        match fs::metadata(path) {
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
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(lock_path)?;
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
    fn a_failed_write_leaves_the_previous_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("users.json");
        write_atomically(&path, b"kept", 0o600).expect("write");
        // A directory where the temporary file would go makes the write fail.
        let blocker = dir
            .path()
            .join(format!(".users.json.tmp-{}", std::process::id()));
        fs::create_dir(&blocker).expect("mkdir");
        assert!(write_atomically(&path, b"lost", 0o600).is_err());
        assert_eq!(fs::read(&path).expect("read"), b"kept");
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
