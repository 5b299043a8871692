//! Checkpoints: everything needed to continue a run exactly.
//!
//! A checkpoint is a directory `checkpoints/ep-NNNNNN/` holding `model.safetensors`,
//! `optimizer.safetensors`, `replay.safetensors` and `state.toml` (the counters), plus in
//! Dreamer runs `actor.safetensors`, `value.safetensors` and their optimisers'
//! `actor_optimizer.safetensors` and `value_optimizer.safetensors`. It is
//! written under a temporary name and renamed when complete; then `checkpoints/LATEST`
//! (one line, the directory name) is replaced atomically. A crash at any point leaves the
//! previous checkpoint intact and pointed to. Random streams are derived from the run seed
//! and the counters, so they need no saving.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, then a
/// rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| Error::Io { path: path.to_owned(), source };
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(name);
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}

/// Progress counters of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Episodes collected, seed episodes included.
    pub episodes: usize,
    /// Simulator steps taken while collecting (test episodes excluded).
    pub env_steps: usize,
    /// Model updates taken.
    pub updates: usize,
}

pub const MODEL_FILE: &str = "model.safetensors";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const REPLAY_FILE: &str = "replay.safetensors";
pub const STATE_FILE: &str = "state.toml";
/// Dreamer runs only (`planner.kind` = `policy` or `policy-grad-mpc`): the actor's and
/// value's weights (`actor.fc1.weight`, …) and their optimisers' states.
pub const ACTOR_FILE: &str = "actor.safetensors";
pub const VALUE_FILE: &str = "value.safetensors";
pub const ACTOR_OPTIMIZER_FILE: &str = "actor_optimizer.safetensors";
pub const VALUE_OPTIMIZER_FILE: &str = "value_optimizer.safetensors";

fn root(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoints")
}

/// The newest complete checkpoint of a run, if any.
pub fn latest(run_dir: &Path) -> Result<Option<PathBuf>> {
    let pointer = root(run_dir).join("LATEST");
    match std::fs::read_to_string(&pointer) {
        Ok(name) => {
            let dir = root(run_dir).join(name.trim());
            if dir.join(STATE_FILE).is_file() {
                Ok(Some(dir))
            } else {
                Err(Error::Checkpoint(format!(
                    "{} points at {}, which is incomplete",
                    pointer.display(),
                    dir.display()
                )))
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io { path: pointer, source }),
    }
}

/// Reads a checkpoint's counters.
pub fn read_counters(dir: &Path) -> Result<Counters> {
    let path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
    toml::from_str(&text).map_err(|e| Error::Checkpoint(format!("{} is corrupt: {e}", path.display())))
}

/// Writes a checkpoint: `fill` writes the files into the directory it is given; the
/// counters go last, then the directory is renamed into place and `LATEST` updated. Older
/// checkpoints are removed afterwards.
pub fn save(run_dir: &Path, counters: Counters, fill: impl FnOnce(&Path) -> Result<()>) -> Result<PathBuf> {
    let name = format!("ep-{:06}", counters.episodes);
    let final_dir = root(run_dir).join(&name);
    let tmp = root(run_dir).join(format!("{name}.partial"));
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    fill(&tmp)?;
    let state = toml::to_string(&counters).map_err(|e| Error::Checkpoint(e.to_string()))?;
    write_atomic(&tmp.join(STATE_FILE), state.as_bytes())?;
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir).map_err(io(&final_dir))?;
    }
    std::fs::rename(&tmp, &final_dir).map_err(io(&final_dir))?;
    write_atomic(&root(run_dir).join("LATEST"), name.as_bytes())?;
    for entry in std::fs::read_dir(root(run_dir)).map_err(io(&root(run_dir)))?.flatten() {
        let path = entry.path();
        if path.is_dir() && path != final_dir {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
    Ok(final_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_save_keeps_the_previous_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let c1 = Counters { episodes: 3, env_steps: 300, updates: 20 };
        save(dir.path(), c1, |d| write_atomic(&d.join("x"), b"one")).unwrap();
        let c2 = Counters { episodes: 4, ..c1 };
        let err = save(dir.path(), c2, |_| Err(Error::Checkpoint("disk full".into()))).unwrap_err();
        assert!(err.to_string().contains("disk full"));
        let kept = latest(dir.path()).unwrap().unwrap();
        assert_eq!(read_counters(&kept).unwrap(), c1);
        assert_eq!(std::fs::read(kept.join("x")).unwrap(), b"one");
        // The next successful save replaces it and cleans up.
        save(dir.path(), c2, |d| write_atomic(&d.join("x"), b"two")).unwrap();
        let newest = latest(dir.path()).unwrap().unwrap();
        assert_eq!(read_counters(&newest).unwrap(), c2);
        let dirs = std::fs::read_dir(dir.path().join("checkpoints"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().is_dir())
            .count();
        assert_eq!(dirs, 1);
    }

    #[test]
    fn no_checkpoint_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(latest(dir.path()).unwrap().is_none());
    }
}
