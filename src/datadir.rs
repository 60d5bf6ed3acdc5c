//! The data directory: one per process, locked, versioned.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The layout version of the directory as a whole; each store inside has its own too.
const FORMAT: u32 = 1;
const FORMAT_FILE: &str = "VIGIE_DATA_FORMAT";

/// An open, locked data directory. The lock is released when this is dropped (or the
/// process dies: it is an OS file lock, never a stale pid file).
#[derive(Debug)]
pub(crate) struct DataDir {
    path: PathBuf,
    _lock: File,
}

impl DataDir {
    pub(crate) fn open(path: &Path) -> anyhow::Result<DataDir> {
        std::fs::create_dir_all(path).with_context(|| {
            format!(
                "cannot create the data directory {}; choose another with --data or fix its permissions",
                path.display()
            )
        })?;
        let lock_path = path.join("vigie.lock");
        let mut lock =
            OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&lock_path).with_context(
                || {
                    format!(
                        "the data directory {} is not writable; choose another with --data or fix its permissions",
                        path.display()
                    )
                },
            )?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&lock_path).unwrap_or_default();
                bail!(
                    "the data directory {} is in use by another vigie process ({}); stop it or use another --data",
                    path.display(),
                    holder.trim()
                );
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", lock_path.display()));
            }
        }
        lock.set_len(0)?;
        writeln!(lock, "pid {}", std::process::id())?;

        let format_path = path.join(FORMAT_FILE);
        match std::fs::read_to_string(&format_path) {
            Ok(text) => {
                let found: u32 = text.trim().parse().with_context(|| {
                    format!(
                        "{} is damaged (expected a number); restore it or use another --data",
                        format_path.display()
                    )
                })?;
                if found > FORMAT {
                    bail!(
                        "the data directory {} was written by a newer vigie (format {found}, this one understands {FORMAT}); \
                         run the newer version or use another --data",
                        path.display()
                    );
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::write(&format_path, format!("{FORMAT}\n"))
                    .with_context(|| format!("cannot write {}", format_path.display()))?;
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", format_path.display())),
        }
        Ok(DataDir { path: path.to_owned(), _lock: lock })
    }

    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_process_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = DataDir::open(dir.path()).unwrap();
        let err = DataDir::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("in use by another vigie process"), "{err}");
    }

    #[test]
    fn a_newer_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FORMAT_FILE), "99\n").unwrap();
        let err = DataDir::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("newer vigie"), "{err}");
    }

    #[test]
    fn reopening_after_release_works() {
        let dir = tempfile::tempdir().unwrap();
        drop(DataDir::open(dir.path()).unwrap());
        DataDir::open(dir.path()).unwrap();
    }
}
