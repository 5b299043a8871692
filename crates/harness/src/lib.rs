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

pub use protocol::{BenchPlanner, Budget, Collector, Handover, Job, Protocol, Scale, Table};

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
    /// Which planner names the directory's runs and records use ([`PLANNER_NAMES`]); absent
    /// (1) in directories written before Grad-MPC's flavours had names.
    #[serde(default = "first_planner_names")]
    pub planner_names: u32,
    /// The training settings every run of the directory got (`bench dmc --set`); absent
    /// (none) in directories written before the flag existed.
    #[serde(default)]
    pub train_settings: Vec<String>,
}

/// Version of the harness's planner names: 2 since `grad-mpc` means the robust flavour and
/// Algorithm 1 is `grad-mpc-paper` (in version 1 `grad-mpc` was Algorithm 1); 3 since the
/// robust flavour ascends with Adam (α 0.3) instead of SGD (α 0.1); 4 while its screen was
/// N = 4 CEM rounds of S = 3 imaginations each; 5 since the rounds before the last score one
/// imagination (S_r = 1).
pub const PLANNER_NAMES: u32 = 5;

fn first_planner_names() -> u32 {
    1
}

/// Checks `out` holds nothing or the same table, scale and training settings, and records
/// them.
pub fn claim_dir(out: &Path, table: Table, scale: Scale, train_settings: &[String]) -> Result<()> {
    let path = out.join("harness.json");
    let want =
        DirState { table, scale, planner_names: PLANNER_NAMES, train_settings: train_settings.to_vec() };
    if let Ok(have) = std::fs::read_to_string(&path) {
        let have: DirState = serde_json::from_str(&have).map_err(|e| {
            Error::Corrupt(format!("{} is corrupt ({e}); delete it or use another --out", path.display()))
        })?;
        if have.planner_names != PLANNER_NAMES {
            let then = match have.planner_names {
                1 => "are Algorithm 1 (now named grad-mpc-paper; `grad-mpc` is the robust flavour)",
                2 => "are the robust flavour with SGD at α 0.1 (it now ascends with Adam at α 0.3)",
                3 => {
                    "are the robust flavour with a one-round random screen (it now screens with 4 CEM \
                     rounds; `--set planner.screen_rounds=1` at eval time gives the old planner)"
                }
                _ => {
                    "are the robust flavour whose screen rounds scored 3 imaginations each (now 1 before \
                     the last round; `--set planner.screen_round_samples=3` at eval time gives the old \
                     planner)"
                }
            };
            return Err(Error::Usage(format!(
                "{} was written by an older gradplan, whose `grad-mpc` runs and records {then}; use another \
                 --out so the two never mix",
                out.display()
            )));
        }
        if have.train_settings != want.train_settings {
            let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(" ") };
            return Err(Error::Usage(format!(
                "{} holds runs trained with --set {}; this is --set {}. Use another --out so the two never mix",
                out.display(),
                list(&have.train_settings),
                list(&want.train_settings)
            )));
        }
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
/// local run and a cluster array (or two local runs) never write the same run. It is a
/// [`gradplan_fsio::Lock`] (`flock`): the kernel releases it when the job's process ends,
/// however it ends, so a killed job's lock never has to be taken over by hand.
pub struct JobLock {
    _lock: gradplan_fsio::Lock,
}

impl JobLock {
    pub fn acquire(run_dir: &Path) -> Result<JobLock> {
        let dir = run_dir.join(results::HARNESS_DIR);
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io { path: dir.clone(), source })?;
        match gradplan_fsio::Lock::try_acquire(&dir.join("lock")) {
            Ok(lock) => Ok(JobLock { _lock: lock }),
            Err(gradplan_fsio::LockError::Busy { path, holder }) => Err(Error::Busy(format!(
                "{} is being run by process {} (lock {}); wait for it, or stop it",
                run_dir.display(),
                holder.unwrap_or_else(|| "(unknown)".into()),
                path.display()
            ))),
            Err(gradplan_fsio::LockError::Io { path, source }) => Err(Error::Io { path, source }),
        }
    }
}

pub use gradplan_fsio::hostname;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_keeps_its_table_and_scale() {
        let dir = tempfile::tempdir().unwrap();
        claim_dir(dir.path(), Table::One, Scale::Debug, &[]).unwrap();
        claim_dir(dir.path(), Table::One, Scale::Debug, &[]).unwrap();
        let err = claim_dir(dir.path(), Table::One, Scale::Paper, &[]).unwrap_err().to_string();
        assert!(err.contains("scale debug") && err.contains("another --out"), "{err}");
        // A directory from before the flavours' names: its grad-mpc is another planner.
        std::fs::write(dir.path().join("harness.json"), r#"{"table":"One","scale":"debug"}"#).unwrap();
        let err = claim_dir(dir.path(), Table::One, Scale::Debug, &[]).unwrap_err().to_string();
        assert!(err.contains("grad-mpc-paper") && err.contains("another --out"), "{err}");
        // One from before the robust flavour ascended with Adam.
        let v2 = r#"{"table":"One","scale":"debug","planner_names":2}"#;
        std::fs::write(dir.path().join("harness.json"), v2).unwrap();
        let err = claim_dir(dir.path(), Table::One, Scale::Debug, &[]).unwrap_err().to_string();
        assert!(err.contains("SGD") && err.contains("Adam") && err.contains("another --out"), "{err}");
        assert_eq!(std::fs::read_to_string(dir.path().join("harness.json")).unwrap(), v2, "left as it was");
        // One from before the robust flavour's screen had CEM rounds.
        let v3 = r#"{"table":"One","scale":"debug","planner_names":3}"#;
        std::fs::write(dir.path().join("harness.json"), v3).unwrap();
        let err = claim_dir(dir.path(), Table::One, Scale::Debug, &[]).unwrap_err().to_string();
        assert!(err.contains("screen_rounds=1") && err.contains("another --out"), "{err}");
        let v4 = r#"{"table":"One","scale":"debug","planner_names":4}"#;
        std::fs::write(dir.path().join("harness.json"), v4).unwrap();
        let err = claim_dir(dir.path(), Table::One, Scale::Debug, &[]).unwrap_err().to_string();
        assert!(err.contains("screen_round_samples=3") && err.contains("another --out"), "{err}");
        // Models trained with other settings: one directory, one set.
        let fresh = tempfile::tempdir().unwrap();
        let adv = vec!["model.perturbation=\"adversarial\"".to_string()];
        claim_dir(fresh.path(), Table::One, Scale::Debug, &adv).unwrap();
        claim_dir(fresh.path(), Table::One, Scale::Debug, &adv).unwrap();
        let err = claim_dir(fresh.path(), Table::One, Scale::Debug, &[]).unwrap_err().to_string();
        assert!(
            err.contains("adversarial") && err.contains("--set none") && err.contains("another --out"),
            "{err}"
        );
        // A directory from before the flag holds runs trained with no settings.
        std::fs::write(
            fresh.path().join("harness.json"),
            r#"{"table":"One","scale":"debug","planner_names":5}"#,
        )
        .unwrap();
        claim_dir(fresh.path(), Table::One, Scale::Debug, &[]).unwrap();
        assert!(claim_dir(fresh.path(), Table::One, Scale::Debug, &adv).is_err());
    }

    #[test]
    fn a_live_lock_is_respected_and_a_dead_one_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let lock = JobLock::acquire(dir.path()).unwrap();
        let err = JobLock::acquire(dir.path()).err().unwrap().to_string();
        assert!(err.contains("being run by process"), "{err}");
        drop(lock);
        // What a killed job leaves: the file with its holder line, but no lock on it.
        std::fs::write(dir.path().join("harness/lock"), format!("4194305 on {}", hostname())).unwrap();
        let _lock = JobLock::acquire(dir.path()).unwrap();
    }
}
