//! The paper-table harness behind `gradplan bench dmc`: the paper's protocol as independent
//! jobs ([`protocol`]), the records they leave and the reports made from them
//! ([`results`]: `results.csv`, `results.md` beside the published numbers of [`paper`],
//! per-task plots), SLURM scripts for a cluster ([`slurm`]), and the small file-level
//! guarantees the harness needs (atomic writes, a lock per job, the directory's protocol).
//!
//! Running a job (training, evaluation) needs the model and lives in the CLI; this crate is
//! everything around it, so it is testable without libtorch.

pub mod paper;
pub mod protocol;
pub mod results;
pub mod slurm;

pub use protocol::{Budget, Job, Protocol, Scale, Table};

use std::path::{Path, PathBuf};

/// Everything that can go wrong in the harness.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Corrupt(String),
    #[error("{0}")]
    Busy(String),
    #[error("could not draw a plot: {0}")]
    Report(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`
/// (`gradplan_report::write_atomic`, with this crate's error).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    gradplan_report::write_atomic(path, bytes).map_err(|e| match e {
        gradplan_report::Error::Io { path, source } => Error::Io { path, source },
        other => Error::Report(other.to_string()),
    })
}

/// `<out>/harness.json`: the table and scale a harness directory holds, so that a second
/// invocation with another scale cannot mix budgets in one results table.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DirState {
    pub table: Table,
    pub scale: Scale,
}

/// Checks `out` holds nothing or the same table and scale, and records them.
pub fn claim_dir(out: &Path, table: Table, scale: Scale) -> Result<()> {
    let path = out.join("harness.json");
    let want = DirState { table, scale };
    if let Ok(have) = std::fs::read_to_string(&path) {
        let have: DirState = serde_json::from_str(&have).map_err(|e| {
            Error::Corrupt(format!("{} is corrupt ({e}); delete it or use another --out", path.display()))
        })?;
        if have != want {
            return Err(Error::Usage(format!(
                "{} holds Table {} at scale {}; this is Table {} at scale {}. Use another --out so budgets never mix",
                out.display(),
                have.table.number(),
                have.scale,
                table.number(),
                scale
            )));
        }
        return Ok(());
    }
    results::write_json(&path, &want)
}

/// A job's lock (`harness/lock` in its run directory): one process per job at a time, so a
/// local run and a cluster array (or two local runs) never write the same run. A lock whose
/// process is gone (killed) is taken over.
pub struct JobLock {
    path: PathBuf,
}

impl JobLock {
    pub fn acquire(run_dir: &Path) -> Result<JobLock> {
        let dir = run_dir.join(results::HARNESS_DIR);
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io { path: dir.clone(), source })?;
        let path = dir.join("lock");
        let me = format!("{} {}", hostname(), std::process::id());
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    use std::io::Write;
                    f.write_all(me.as_bytes()).map_err(|source| Error::Io { path: path.clone(), source })?;
                    return Ok(JobLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&path).unwrap_or_default();
                    let mut words = holder.split_whitespace();
                    let (host, pid) =
                        (words.next().unwrap_or(""), words.next().and_then(|p| p.parse::<u32>().ok()));
                    let alive = match pid {
                        Some(pid) if host == hostname() => process_alive(pid),
                        // Another host (a cluster node): we cannot tell, so we respect it.
                        Some(_) => true,
                        None => false,
                    };
                    if alive {
                        return Err(Error::Busy(format!(
                            "{} is being run by process {} on {} (lock {}); wait for it, or delete the lock if \
                             that process is gone",
                            run_dir.display(),
                            pid.unwrap_or(0),
                            host,
                            path.display()
                        )));
                    }
                    let _ = std::fs::remove_file(&path);
                }
                Err(source) => return Err(Error::Io { path, source }),
            }
        }
        Err(Error::Busy(format!("could not take the lock {}", path.display())))
    }
}

impl Drop for JobLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether process `pid` runs on this machine: it exists and is not a zombie (a killed job
/// whose parent died stays a zombie until init reaps it, which in containers may be never).
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may itself hold spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

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
    fn a_directory_keeps_its_table_and_scale() {
        let dir = tempfile::tempdir().unwrap();
        claim_dir(dir.path(), Table::One, Scale::Debug).unwrap();
        claim_dir(dir.path(), Table::One, Scale::Debug).unwrap();
        let err = claim_dir(dir.path(), Table::One, Scale::Paper).unwrap_err().to_string();
        assert!(err.contains("scale debug") && err.contains("another --out"), "{err}");
    }

    #[test]
    fn a_live_lock_is_respected_and_a_dead_one_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let lock = JobLock::acquire(dir.path()).unwrap();
        let err = JobLock::acquire(dir.path()).err().unwrap().to_string();
        assert!(err.contains("being run by process"), "{err}");
        drop(lock);
        // A lock left by a process that no longer exists (pid beyond pid_max).
        std::fs::write(dir.path().join("harness/lock"), format!("{} 4194305", hostname())).unwrap();
        let _lock = JobLock::acquire(dir.path()).unwrap();
    }
}
