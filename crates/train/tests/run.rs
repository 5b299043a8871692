//! Whole runs on the native pendulum (no Python): determinism, exact resume, bad run
//! directories, and a NaN stopping the run while keeping the last good checkpoint.

use gradplan_config::RunConfig;
use gradplan_train::{checkpoint, Error, RunOptions, Trainer};
use std::path::Path;

fn debug_config(extra: &[&str]) -> RunConfig {
    let mut overrides =
        vec!["env.task=native_pendulum-swingup".to_string(), "seed=7".into(), "threads=1".into()];
    overrides.extend(extra.iter().map(|s| s.to_string()));
    RunConfig::resolve("debug", None, &overrides).unwrap()
}

/// metrics.csv without the two timing columns (plan_ms, wall_s), which are the last.
fn metrics(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(|l| l.rsplitn(3, ',').last().unwrap().to_owned())
        .collect()
}

#[test]
fn same_seed_same_run_and_resume_is_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("c"));
    let opts = RunOptions::default();
    Trainer::create(debug_config(&[]), &a).unwrap().run(&opts).unwrap();
    Trainer::create(debug_config(&[]), &b).unwrap().run(&opts).unwrap();
    let full = metrics(&a);
    assert_eq!(full.len(), 1 + 4, "header + 4 episodes: {full:?}");
    assert_eq!(full, metrics(&b), "same seed, different run");

    // Stop after 3 episodes (mid-training), then resume to the end.
    let stop = RunOptions { stop_after_episodes: Some(3), ..Default::default() };
    Trainer::create(debug_config(&[]), &c).unwrap().run(&stop).unwrap();
    assert_eq!(metrics(&c).len(), 1 + 3);
    let mut resumed = Trainer::resume(&c).unwrap();
    assert_eq!(resumed.counters().episodes, 3);
    resumed.run(&opts).unwrap();
    assert_eq!(full, metrics(&c), "resumed run differs from the uninterrupted one");

    let other = tmp.path().join("other-seed");
    Trainer::create(RunConfig { seed: 8, ..debug_config(&[]) }, &other).unwrap().run(&opts).unwrap();
    assert_ne!(full, metrics(&other));
}

#[test]
fn resume_drops_rows_written_after_the_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("r");
    let cfg = debug_config(&["train.checkpoint_interval=2"]);
    let stop = RunOptions { stop_after_episodes: Some(3), ..Default::default() };
    Trainer::create(cfg, &dir).unwrap().run(&stop).unwrap();
    assert_eq!(metrics(&dir).len(), 1 + 3);
    // The checkpoint is from episode 2; episode 3's row is replayed on resume.
    let t = Trainer::resume(&dir).unwrap();
    assert_eq!(t.counters().episodes, 2);
    assert_eq!(metrics(&dir).len(), 1 + 2);
}

#[test]
fn run_directories_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("r");
    let stop = RunOptions { stop_after_episodes: Some(1), ..Default::default() };
    Trainer::create(debug_config(&[]), &dir).unwrap().run(&stop).unwrap();
    let err = Trainer::create(debug_config(&[]), &dir).err().unwrap().to_string();
    assert!(err.contains("gradplan resume"), "{err}");
    let err = Trainer::resume(&tmp.path().join("nothing")).err().unwrap().to_string();
    assert!(err.contains("gradplan train"), "{err}");

    // A corrupt checkpoint is reported, not trusted.
    let latest = checkpoint::latest(&dir).unwrap().unwrap();
    std::fs::write(latest.join("model.safetensors"), b"garbage").unwrap();
    let err = Trainer::resume(&dir).err().unwrap().to_string();
    assert!(err.contains("corrupt"), "{err}");

    // Bad settings fail before anything is written.
    let bad = tmp.path().join("bad");
    let cfg = RunConfig {
        env: gradplan_config::EnvConfig { task: "nope-nope".into(), ..debug_config(&[]).env },
        ..debug_config(&[])
    };
    assert!(Trainer::create(cfg, &bad).is_err());
    assert!(!bad.exists());
}

#[test]
fn a_nan_stops_the_run_and_keeps_the_last_good_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("r");
    let cfg = debug_config(&["optim.learning_rate=1e30", "train.collect_interval=20"]);
    let err = Trainer::create(cfg, &dir).unwrap().run(&RunOptions::default()).unwrap_err();
    assert!(matches!(err, Error::NonFinite { .. }), "{err}");
    assert!(err.to_string().contains("ep-000002"), "{err}");
    let latest = checkpoint::latest(&dir).unwrap().unwrap();
    assert_eq!(checkpoint::read_counters(&latest).unwrap().episodes, 2);
}
