//! Whole runs on the native pendulum (no Python): determinism, exact resume, bad run
//! directories, and a NaN stopping the run while keeping the last good checkpoint.

use gradplan_config::RunConfig;
use gradplan_train::metrics::COLUMNS;
use gradplan_train::{checkpoint, Error, RunOptions, Trainer};
use std::path::Path;

fn debug_config(extra: &[&str]) -> RunConfig {
    let mut overrides =
        vec!["env.task=native_pendulum-swingup".to_string(), "seed=7".into(), "threads=1".into()];
    overrides.extend(extra.iter().map(|s| s.to_string()));
    RunConfig::resolve("debug", None, &overrides).unwrap()
}

/// metrics.csv without the two timing columns (plan_ms, wall_s).
fn metrics(dir: &Path) -> Vec<String> {
    let timing = ["plan_ms", "wall_s"].map(|c| COLUMNS.iter().position(|&n| n == c).unwrap());
    std::fs::read_to_string(dir.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(|l| {
            let cells: Vec<&str> =
                l.split(',').enumerate().filter(|(i, _)| !timing.contains(i)).map(|(_, c)| c).collect();
            cells.join(",")
        })
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
    // The wall clock continues across the resume instead of restarting at 0.
    let wall = COLUMNS.iter().position(|&n| n == "wall_s").unwrap();
    let walls: Vec<f64> = std::fs::read_to_string(c.join("metrics.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(wall).unwrap().parse().unwrap())
        .collect();
    assert!(walls.windows(2).all(|w| w[0] <= w[1]), "wall_s went backwards: {walls:?}");
    assert_eq!(full, metrics(&c), "resumed run differs from the uninterrupted one");

    let other = tmp.path().join("other-seed");
    Trainer::create(RunConfig { seed: 8, ..debug_config(&[]) }, &other).unwrap().run(&opts).unwrap();
    assert_ne!(full, metrics(&other));
}

/// A Dreamer run (policy planner) with tiny actor and value: actor and value losses are
/// logged, their weights and optimiser states are checkpointed, and resume is exact.
#[test]
fn policy_runs_train_an_actor_and_resume_exactly() {
    let dreamer = [
        "planner.kind=policy",
        "dreamer.hidden=8",
        "dreamer.horizon=3",
        "dreamer.actor_layers=2",
        "dreamer.value_layers=2",
        "train.total_env_steps=600",
    ];
    let tmp = tempfile::tempdir().unwrap();
    let (a, c) = (tmp.path().join("a"), tmp.path().join("c"));
    Trainer::create(debug_config(&dreamer), &a).unwrap().run(&RunOptions::default()).unwrap();
    let full = metrics(&a);
    assert_eq!(full.len(), 1 + 3, "header + 3 episodes: {full:?}");
    assert!(full[0].ends_with("actor_loss,value_loss"), "{}", full[0]);
    // Seed episodes have no losses; the collected one has both.
    let last: Vec<&str> = full[3].split(',').collect();
    let (actor, value) = (last[last.len() - 2], last[last.len() - 1]);
    assert!(actor.parse::<f64>().is_ok() && value.parse::<f64>().unwrap() >= 0.0, "{}", full[3]);
    let latest = checkpoint::latest(&a).unwrap().unwrap();
    for f in [
        checkpoint::ACTOR_FILE,
        checkpoint::VALUE_FILE,
        checkpoint::ACTOR_OPTIMIZER_FILE,
        checkpoint::VALUE_OPTIMIZER_FILE,
    ] {
        assert!(latest.join(f).is_file(), "{f} missing");
    }

    // Stop after the seed episodes and the first collected one, resume to the end.
    let stop = RunOptions { stop_after_episodes: Some(3), ..Default::default() };
    let mut cfg = debug_config(&dreamer);
    cfg.train.total_env_steps = 800;
    let full_long = tmp.path().join("long");
    Trainer::create(cfg.clone(), &full_long).unwrap().run(&RunOptions::default()).unwrap();
    Trainer::create(cfg, &c).unwrap().run(&stop).unwrap();
    let mut resumed = Trainer::resume(&c).unwrap();
    assert_eq!(resumed.counters().episodes, 3);
    resumed.run(&RunOptions::default()).unwrap();
    assert_eq!(metrics(&full_long), metrics(&c), "resumed Dreamer run differs from the uninterrupted one");
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
