//! The two file-level guarantees gradplan's run directories rest on, with the standard
//! library only, so that every crate can use them without pulling in anything:
//!
//! - [`write_atomic`] / [`replace_with`]: a file is replaced by writing a temporary file in
//!   the same directory and renaming it over the old one, so a crash (or `kill -9`) leaves
//!   the old bytes or the new ones, never a mix.
//! - [`Lock`]: an exclusive advisory lock on a file (`flock(2)` on Unix, through
//!   `File::try_lock`), held while the value lives. The kernel drops it when the process
//!   exits however it exits, so a killed run never leaves a stale lock to clean up by hand.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Makes temporary names unique between threads of one process (the pid separates processes).
static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);

/// A fresh temporary path beside `path`: `.<stem>.<pid>-<n>.tmp.<ext>`. Hidden, unique to
/// this process and call, and with `path`'s extension, which some writers (plotters' bitmap
/// backend) read to choose the format.
pub fn temp_path(path: &Path) -> PathBuf {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let n = NEXT_TEMP.fetch_add(1, Ordering::Relaxed);
    let mut name = format!(".{stem}.{}-{n}.tmp", std::process::id());
    if let Some(ext) = path.extension() {
        name = format!("{name}.{}", ext.to_string_lossy());
    }
    path.with_file_name(name)
}

/// Replaces `path` with `bytes` atomically (see the crate docs); the data is synced to disk
/// before the rename, so a power cut cannot leave a renamed but empty file either.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace_with(path, |tmp| {
        let mut f = File::create(tmp)?;
        f.write_all(bytes)
    })
}

/// Replaces `path` atomically with whatever `write` writes to the temporary path it is
/// handed (for writers that insist on a path, such as libtorch's). The temporary file is
/// synced, renamed over `path`, and the directory synced (best effort); on any failure it
/// is removed and `path` is left as it was.
pub fn replace_with(path: &Path, write: impl FnOnce(&Path) -> io::Result<()>) -> io::Result<()> {
    let tmp = temp_path(path);
    let result =
        write(&tmp).and_then(|()| File::open(&tmp)?.sync_all()).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Makes the rename itself durable; some filesystems refuse to sync a directory.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Why a [`Lock`] could not be taken.
#[derive(Debug)]
pub enum LockError {
    /// Another process (or another handle in this one) holds the lock. `holder` is what it
    /// wrote into the lock file (`<host> <pid>`), when it could be read.
    Busy {
        path: PathBuf,
        holder: Option<String>,
    },
    Io {
        path: PathBuf,
        source: io::Error,
    },
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Busy { path, holder: Some(h) } => {
                write!(f, "{} is held by process {h}", path.display())
            }
            LockError::Busy { path, holder: None } => {
                write!(f, "{} is held by another process", path.display())
            }
            LockError::Io { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for LockError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LockError::Io { source, .. } => Some(source),
            LockError::Busy { .. } => None,
        }
    }
}

/// An exclusive lock on a file, released when dropped or when the process ends.
///
/// The lock file is never deleted: a process that had opened it just before the deletion
/// would lock the unlinked file while a third locks a new one, and both would run.
#[derive(Debug)]
pub struct Lock {
    file: File,
    path: PathBuf,
}

impl Lock {
    /// Takes the lock at `path` (creating the file) or fails at once with
    /// [`LockError::Busy`].
    pub fn try_acquire(path: &Path) -> Result<Lock, LockError> {
        let io = |source| LockError::Io { path: path.to_owned(), source };
        let mut file = open(path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let holder = file.read_to_string(&mut holder).ok().map(|_| holder.trim().to_owned());
                return Err(LockError::Busy {
                    path: path.to_owned(),
                    holder: holder.filter(|h| !h.is_empty()),
                });
            }
            Err(TryLockError::Error(source)) => return Err(io(source)),
        }
        let mut lock = Lock { file, path: path.to_owned() };
        lock.write_holder().map_err(io)?;
        Ok(lock)
    }

    /// Waits until the lock at `path` is free, then takes it.
    pub fn acquire(path: &Path) -> io::Result<Lock> {
        let file = open(path)?;
        file.lock()?;
        let mut lock = Lock { file, path: path.to_owned() };
        lock.write_holder()?;
        Ok(lock)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `<host> <pid>`, for the message another process gets while this one holds the lock.
    fn write_holder(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.rewind()?;
        writeln!(self.file, "{} on {}", std::process::id(), hostname())
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Closing the file releases the lock; the stale holder line goes first so that
        // nobody reads it as current.
        let _ = self.file.set_len(0);
    }
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)
}

/// This machine's name (`/etc/hostname`), or `localhost`.
pub fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn temporary_names_are_hidden_unique_and_keep_the_extension() {
        let (a, b) = (temp_path(Path::new("d/plot.png")), temp_path(Path::new("d/plot.png")));
        assert_ne!(a, b);
        assert_eq!(a.parent(), Some(Path::new("d")));
        assert_eq!(a.extension().unwrap(), "png");
        assert!(a.file_name().unwrap().to_string_lossy().starts_with(".plot."), "{}", a.display());
        assert!(temp_path(Path::new("LATEST")).to_string_lossy().ends_with(".tmp"));
    }

    #[test]
    fn a_failed_replacement_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        write_atomic(&path, b"old").unwrap();
        let err = replace_with(&path, |tmp| {
            std::fs::write(tmp, b"half")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "temporary file left behind");
        assert!(write_atomic(&dir.path().join("no/such/dir"), b"x").is_err());
    }

    #[test]
    fn a_held_lock_is_busy_and_names_its_holder_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let lock = Lock::try_acquire(&path).unwrap();
        let err = Lock::try_acquire(&path).unwrap_err();
        let me = std::process::id().to_string();
        assert!(matches!(&err, LockError::Busy { holder: Some(h), .. } if h.starts_with(&me)), "{err}");
        assert!(err.to_string().contains("is held by process"), "{err}");
        drop(lock);
        let again = Lock::try_acquire(&path).unwrap();
        assert_eq!(again.path(), path);
        drop(again);
        // The blocking form takes a free lock at once.
        let _waited = Lock::acquire(&path).unwrap();
        assert!(path.exists(), "the lock file stays (see Lock's docs)");
    }
}
