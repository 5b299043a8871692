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
//!
//! A checkpoint is written once: [`save`] refuses to replace the directory `LATEST` names
//! (deleting it first would leave `LATEST` pointing at nothing until the rename, and a kill
//! in that gap lost the run), and the trainer never saves an episode twice. A directory
//! that is not what `LATEST` names (left by a run killed before it updated `LATEST`) is
//! redone and replaced.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically ([`gradplan_fsio::write_atomic`], with this crate's
/// error).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    gradplan_fsio::write_atomic(path, bytes).map_err(|source| Error::Io { path: path.to_owned(), source })
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

/// The checkpoint a run continues from, and how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub dir: PathBuf,
    /// Set when `LATEST` was missing and `dir` is the newest complete checkpoint directory
    /// instead: says so, for the user (resume prints it).
    pub note: Option<String>,
}

/// The newest complete checkpoint of a run, if any: the one `LATEST` names or, when `LATEST`
/// is missing (deleted by hand, or a copy of the run that left it out), the complete
/// `ep-NNNNNN` directory with the most episodes, so that the run is not silently started
/// over. A `LATEST` naming an incomplete directory is an error: that is damage, not a step
/// of a save.
pub fn find_latest(run_dir: &Path) -> Result<Option<Found>> {
    let pointer = root(run_dir).join("LATEST");
    match std::fs::read_to_string(&pointer) {
        Ok(name) => {
            let dir = root(run_dir).join(name.trim());
            if dir.join(STATE_FILE).is_file() {
                Ok(Some(Found { dir, note: None }))
            } else {
                Err(Error::Checkpoint(format!(
                    "{} points at {}, which is incomplete",
                    pointer.display(),
                    dir.display()
                )))
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(newest_complete(run_dir)?.map(|dir| {
            let note = format!(
                "{} is missing; using {}, the newest complete checkpoint",
                pointer.display(),
                dir.display()
            );
            Found { dir, note: Some(note) }
        })),
        Err(source) => Err(Error::Io { path: pointer, source }),
    }
}

/// [`find_latest`]'s directory.
pub fn latest(run_dir: &Path) -> Result<Option<PathBuf>> {
    Ok(find_latest(run_dir)?.map(|f| f.dir))
}

/// [`find_latest`]'s directory, printing its note (a missing `LATEST`) on stderr: for the
/// commands that read a run's model (eval, report, the planner sweep), so that a user
/// learns which checkpoint they got.
pub fn latest_noted(run_dir: &Path) -> Result<Option<PathBuf>> {
    Ok(find_latest(run_dir)?.map(|f| {
        if let Some(note) = &f.note {
            eprintln!("note: {note}");
        }
        f.dir
    }))
}

/// The complete checkpoint directory (`ep-NNNNNN` holding its state file) with the most
/// episodes; `.partial` directories are never complete.
fn newest_complete(run_dir: &Path) -> Result<Option<PathBuf>> {
    let root = root(run_dir);
    let entries = match std::fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(Error::Io { path: root, source }),
    };
    let mut best: Option<(usize, PathBuf)> = None;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let episodes =
            name.to_str().and_then(|n| n.strip_prefix("ep-")).and_then(|n| n.parse::<usize>().ok());
        if let Some(episodes) = episodes {
            let dir = entry.path();
            if dir.join(STATE_FILE).is_file() && best.as_ref().is_none_or(|(b, _)| episodes > *b) {
                best = Some((episodes, dir));
            }
        }
    }
    Ok(best.map(|(_, dir)| dir))
}

/// The directory name `LATEST` holds, if it exists.
fn latest_name(run_dir: &Path) -> Option<String> {
    std::fs::read_to_string(root(run_dir).join("LATEST")).ok().map(|n| n.trim().to_owned())
}

/// Reads a checkpoint's counters.
pub fn read_counters(dir: &Path) -> Result<Counters> {
    let path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
    toml::from_str(&text).map_err(|e| Error::Checkpoint(format!("{} is corrupt: {e}", path.display())))
}

/// Writes a checkpoint: `fill` writes the files into the directory it is given; the
/// counters go last, then the directory is renamed into place and `LATEST` updated. Older
/// checkpoints are removed afterwards. Saving the episode `LATEST` already names is an
/// error and touches nothing (see the module docs).
pub fn save(run_dir: &Path, counters: Counters, fill: impl FnOnce(&Path) -> Result<()>) -> Result<PathBuf> {
    let name = format!("ep-{:06}", counters.episodes);
    if latest_name(run_dir).as_deref() == Some(name.as_str()) {
        return Err(Error::Checkpoint(format!(
            "{} is already the latest checkpoint of {}; a checkpoint is written once",
            name,
            run_dir.display()
        )));
    }
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
    fn the_checkpoint_latest_names_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let c = Counters { episodes: 3, env_steps: 300, updates: 20 };
        let first = save(dir.path(), c, |d| write_atomic(&d.join("x"), b"one")).unwrap();
        let err = save(dir.path(), c, |d| write_atomic(&d.join("x"), b"two")).unwrap_err();
        assert!(err.to_string().contains("written once"), "{err}");
        assert_eq!(latest(dir.path()).unwrap().unwrap(), first);
        assert_eq!(std::fs::read(first.join("x")).unwrap(), b"one");
        assert!(!dir.path().join("checkpoints/ep-000003.partial").exists());
        // A directory LATEST does not name (a save killed before it updated LATEST) is redone.
        let c4 = Counters { episodes: 4, ..c };
        let stale = dir.path().join("checkpoints/ep-000004");
        std::fs::create_dir_all(&stale).unwrap();
        std::fs::write(stale.join("x"), b"stale").unwrap();
        save(dir.path(), c4, |d| write_atomic(&d.join("x"), b"four")).unwrap();
        assert_eq!(std::fs::read(stale.join("x")).unwrap(), b"four");
    }

    #[test]
    fn without_latest_the_newest_complete_checkpoint_is_found_and_said() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("checkpoints");
        for (name, complete) in [("ep-000002", true), ("ep-000010", true), ("ep-000011", false)] {
            std::fs::create_dir_all(root.join(name)).unwrap();
            if complete {
                std::fs::write(root.join(name).join(STATE_FILE), "").unwrap();
            }
        }
        std::fs::create_dir_all(root.join("ep-000012.partial")).unwrap();
        let found = find_latest(dir.path()).unwrap().unwrap();
        assert_eq!(found.dir, root.join("ep-000010"));
        assert!(found.note.unwrap().contains("LATEST is missing"));
        std::fs::write(root.join("LATEST"), "ep-000002").unwrap();
        assert_eq!(
            find_latest(dir.path()).unwrap().unwrap(),
            Found { dir: root.join("ep-000002"), note: None }
        );
    }

    #[test]
    fn no_checkpoint_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(latest(dir.path()).unwrap().is_none());
    }
}
