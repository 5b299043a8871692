//! What a kill-and-corrupt probe found (#13), each as a run on the native pendulum: a
//! checkpoint is written once and never replaced while LATEST names it, one process trains a
//! run directory at a time, non-finite weights never reach a checkpoint, impossible settings
//! fail before anything is written, counters are checked on resume, a resumed run leaves the
//! same files, and a missing LATEST falls back to the newest complete checkpoint.

use gradplan_config::RunConfig;
use gradplan_train::{checkpoint, Error, RunOptions, Trainer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The debug preset (pixels, checkpoints every episode) on the native pendulum: 2 seed
/// episodes and 2 collected ones.
fn debug_config(extra: &[&str]) -> RunConfig {
    let mut overrides =
        vec!["env.task=native_pendulum-swingup".to_string(), "seed=7".into(), "threads=1".into()];
    overrides.extend(extra.iter().map(|s| s.to_string()));
    RunConfig::resolve("debug", None, &overrides).unwrap()
}

fn stop_after(n: usize) -> RunOptions {
    RunOptions { stop_after_episodes: Some(n), ..Default::default() }
}

/// Every file under `dir` (relative path → bytes), leaving out the timing-dependent ones.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(path.strip_prefix(root).unwrap().to_owned(), std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn resuming_a_finished_run_saves_nothing_again() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("r");
    Trainer::create(debug_config(&[]), &dir).unwrap().run(&RunOptions::default()).unwrap();
    let latest = checkpoint::latest(&dir).unwrap().unwrap();
    // A marker inside the checkpoint LATEST names: a repeat save would delete the directory
    // (and with it the marker) before renaming a new one in.
    std::fs::write(latest.join("marker"), b"kept").unwrap();
    let before = files(&latest);
    let mut resumed = Trainer::resume(&dir).unwrap();
    resumed.run(&RunOptions::default()).unwrap();
    drop(resumed);
    assert_eq!(checkpoint::latest(&dir).unwrap().unwrap(), latest);
    assert_eq!(files(&latest), before, "the finished run's checkpoint was written again");
}

#[test]
fn a_second_trainer_on_a_run_dir_is_refused_while_the_first_lives() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("r");
    let first = Trainer::create(debug_config(&[]), &dir).unwrap();
    for err in [Trainer::create(debug_config(&[]), &dir).err().unwrap(), Trainer::resume(&dir).err().unwrap()]
    {
        assert!(matches!(err, Error::Busy(_)), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("is being trained by process") && msg.contains(&dir.display().to_string()),
            "{msg}"
        );
    }
    drop(first);
    // Once the first is gone (here dropped; a killed process's lock goes with it), resume works.
    Trainer::resume(&dir).unwrap().run(&stop_after(1)).unwrap();
}

#[test]
fn a_nan_never_reaches_a_checkpoint() {
    // One update at lr 1e30 leaves finite but absurd weights (~1e30) whose next loss is not
    // finite: the checkpoint after it must not be written.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("r");
    let cfg = debug_config(&["optim.learning_rate=1e30", "train.collect_interval=1"]);
    let err = Trainer::create(cfg, &dir).unwrap().run(&RunOptions::default()).unwrap_err();
    assert!(matches!(err, Error::NonFinite { .. }), "{err}");
    let latest = checkpoint::latest(&dir).unwrap().unwrap();
    assert_eq!(checkpoint::read_counters(&latest).unwrap().updates, 0, "{}", latest.display());
    let weights = tch::Tensor::read_safetensors(latest.join(checkpoint::MODEL_FILE)).unwrap();
    for (name, t) in weights {
        let max = t.abs().max().double_value(&[]);
        assert!(max.is_finite() && max < 1e3, "{name}: max |w| = {max}");
    }
    // The hint names a command that works.
    let msg = err.to_string();
    assert!(msg.contains("gradplan train") || msg.contains("--set"), "{msg}");
}

#[test]
fn impossible_settings_fail_before_the_run_dir_exists() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, (set, key)) in [
        // Longer than the 2 seed episodes' 2 × 101 steps: nothing to sample at the first update.
        ("train.chunk_length=500", "train.chunk_length"),
        ("model.belief_size=100000000000", "model.belief_size"),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = tmp.path().join(format!("r{i}"));
        let mut cfg = debug_config(&[]);
        // Set behind `resolve`'s back, as a hand-written config would be.
        let mut value = toml::Value::try_from(&cfg).unwrap();
        gradplan_config::apply_override(&mut value, set).unwrap();
        cfg = value.try_into().unwrap();
        let err = Trainer::create(cfg, &dir).err().unwrap().to_string();
        assert!(err.contains(key), "{set}: {err}");
        assert!(!dir.exists(), "{set}: {} was created", dir.display());
    }
}

#[test]
fn counters_that_disagree_with_the_replay_or_metrics_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("r");
    Trainer::create(debug_config(&[]), &dir).unwrap().run(&stop_after(3)).unwrap();
    let latest = checkpoint::latest(&dir).unwrap().unwrap();
    let state = latest.join(checkpoint::STATE_FILE);
    let good = std::fs::read_to_string(&state).unwrap();
    let c = checkpoint::read_counters(&latest).unwrap();
    for (bad, what) in [
        (checkpoint::Counters { episodes: 99, env_steps: 1, ..c }, "episodes"),
        (checkpoint::Counters { env_steps: c.env_steps + 1, ..c }, "env_steps"),
        (checkpoint::Counters { updates: c.updates + 5, ..c }, "updates"),
    ] {
        std::fs::write(&state, toml::to_string(&bad).unwrap()).unwrap();
        let err = Trainer::resume(&dir).err().unwrap().to_string();
        assert!(err.contains(what) && err.contains(checkpoint::STATE_FILE), "{what}: {err}");
    }
    std::fs::write(&state, good).unwrap();
    assert_eq!(Trainer::resume(&dir).unwrap().counters(), c);
}

#[test]
fn a_stopped_and_resumed_run_leaves_the_same_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    Trainer::create(debug_config(&[]), &a).unwrap().run(&RunOptions::default()).unwrap();
    Trainer::create(debug_config(&[]), &b).unwrap().run(&stop_after(3)).unwrap();
    Trainer::resume(&b).unwrap().run(&RunOptions::default()).unwrap();
    let (ca, cb) = (checkpoint::latest(&a).unwrap().unwrap(), checkpoint::latest(&b).unwrap().unwrap());
    let (fa, fb) = (files(&ca), files(&cb));
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (name, bytes) in &fa {
        assert!(bytes == &fb[name], "{} differs", name.display());
    }
    let (ra, rb) = (files(&a.join("recon")), files(&b.join("recon")));
    assert_eq!(ra.len(), 4, "one reconstruction per checkpoint: {:?}", ra.keys());
    assert_eq!(ra, rb, "reconstruction images differ");
}

#[test]
fn a_checkpoint_is_committed_only_with_its_reconstruction_image() {
    // A kill between committing a checkpoint and writing its recon image used to lose the
    // image for good (the resumed run starts after it). Here the image cannot be written (a
    // file stands where the recon directory goes): the checkpoint must not be committed.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("r");
    let mut trainer = Trainer::create(debug_config(&[]), &dir).unwrap();
    std::fs::write(dir.join("recon"), b"in the way").unwrap();
    assert!(trainer.run(&RunOptions::default()).is_err());
    drop(trainer);
    if let Some(latest) = checkpoint::latest(&dir).unwrap() {
        let episodes = checkpoint::read_counters(&latest).unwrap().episodes;
        let png = dir.join("recon").join(format!("ep-{episodes:06}.png"));
        assert!(png.is_file(), "checkpoint {} has no {}", latest.display(), png.display());
    }
}

#[test]
fn a_missing_latest_resumes_from_the_newest_complete_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("r");
    Trainer::create(debug_config(&[]), &dir).unwrap().run(&stop_after(3)).unwrap();
    let root = dir.join("checkpoints");
    std::fs::remove_file(root.join("LATEST")).unwrap();
    // A half-written later checkpoint is not complete and is passed over.
    std::fs::create_dir_all(root.join("ep-000004.partial")).unwrap();
    let found = checkpoint::find_latest(&dir).unwrap().unwrap();
    assert_eq!(found.dir, root.join("ep-000003"));
    let note = found.note.unwrap();
    assert!(note.contains("LATEST") && note.contains("ep-000003"), "{note}");
    assert_eq!(Trainer::resume(&dir).unwrap().counters().episodes, 3);
}
