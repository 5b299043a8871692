//! Whole runs on the native pendulum (no Python): determinism, exact resume, bad run
//! directories, a NaN stopping the run while keeping the last good checkpoint, and the
//! TensorBoard events that mirror metrics.csv.

use gradplan_config::RunConfig;
use gradplan_tensorboard::{event_files, read_events, Payload, SessionStatus};
use gradplan_train::metrics::COLUMNS;
use gradplan_train::{checkpoint, Error, RunOptions, Trainer};
use std::path::Path;
use std::process::Command;

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
    let header: Vec<&str> = full[0].split(',').collect();
    let col = |name: &str| header.iter().position(|&c| c == name).unwrap();
    // Seed episodes have no losses; the collected one has both.
    let last: Vec<&str> = full[3].split(',').collect();
    let (actor, value) = (last[col("actor_loss")], last[col("value_loss")]);
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

/// metrics.csv as `(column → cell)` rows.
fn metric_rows(dir: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header, COLUMNS);
    lines
        .map(|l| header.iter().map(|h| h.to_string()).zip(l.split(',').map(String::from)).collect())
        .collect()
}

/// `(step, value)` of `tag` over the run's event files, read in name order as TensorBoard
/// does, with its purge on a `START` session log (every earlier step ≥ the START's goes).
fn scalar_series(dir: &Path, tag: &str) -> Vec<(i64, f32)> {
    let mut series: Vec<(i64, f32)> = Vec::new();
    for file in event_files(dir).unwrap() {
        for e in read_events(&file).unwrap() {
            if let Payload::SessionLog(log) = &e.payload {
                if log.status == SessionStatus::Start {
                    series.retain(|&(step, _)| step < e.step);
                }
            }
            if let Some(v) = e.scalar(tag) {
                series.push((e.step, v));
            }
        }
    }
    series
}

/// The `(step, value)` series of `tag` in metrics.csv's column `column` (empty cells left out).
fn csv_series(dir: &Path, column: &str) -> Vec<(i64, f32)> {
    metric_rows(dir)
        .iter()
        .filter(|r| !r[column].is_empty())
        .map(|r| (r["env_steps"].parse().unwrap(), r[column].parse::<f64>().unwrap() as f32))
        .collect()
}

/// Same steps, and values equal up to metrics.csv's six decimals.
fn assert_same_series(events: &[(i64, f32)], csv: &[(i64, f32)], what: &str) {
    let steps = |s: &[(i64, f32)]| s.iter().map(|p| p.0).collect::<Vec<_>>();
    assert_eq!(steps(events), steps(csv), "{what}: steps");
    for (&(step, e), &(_, c)) in events.iter().zip(csv) {
        assert!((e - c).abs() <= 1e-5 * c.abs().max(1.0), "{what} at step {step}: events {e}, csv {c}");
    }
}

#[test]
fn tensorboard_events_mirror_metrics_csv_across_a_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("r");
    // Overshooting KL on and its reward term off: one new loss column filled, one empty.
    let cfg = debug_config(&[
        "train.checkpoint_interval=2",
        "model.overshooting_kl_beta=1",
        "model.overshooting_distance=3",
    ]);
    let stop = RunOptions { stop_after_episodes: Some(3), ..Default::default() };
    Trainer::create(cfg.clone(), &dir).unwrap().run(&stop).unwrap();
    let files = event_files(&dir).unwrap();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].file_name().unwrap().to_str().unwrap().starts_with("events.out.tfevents."));
    assert_eq!(csv_series(&dir, "train_return").len(), 3);
    assert_same_series(
        &scalar_series(&dir, "train/return"),
        &csv_series(&dir, "train_return"),
        "before resume",
    );

    // Checkpoint at episode 2: episode 3 is redone by the resumed process.
    let mut resumed = Trainer::resume(&dir).unwrap();
    let redo_from = resumed.counters().env_steps as i64 + 1;
    assert_eq!(resumed.counters().episodes, 2);
    resumed.run(&RunOptions::default()).unwrap();
    let files = event_files(&dir).unwrap();
    assert_eq!(files.len(), 2, "one event file per process: {files:?}");
    let second = read_events(&files[1]).unwrap();
    assert_eq!(second[0].payload, Payload::FileVersion("brain.Event:2".into()));
    assert!(
        matches!(&second[1].payload, Payload::SessionLog(l) if l.status == SessionStatus::Start)
            && second[1].step == redo_from,
        "{:?}",
        second[1]
    );

    let rows = metric_rows(&dir);
    assert_eq!(rows.len(), 4);
    for (tag, column) in [
        ("train/return", "train_return"),
        ("train/episode", "episode"),
        ("test/return_mean", "test_return_mean"),
        ("loss/total", "loss_total"),
        ("loss/kl", "loss_kl"),
        ("loss/overshooting_kl", "loss_overshooting_kl"),
        ("loss/grad_norm", "grad_norm"),
        ("plan/predicted_return", "plan_predicted_return"),
        ("plan/iterations", "plan_iterations"),
    ] {
        assert_same_series(&scalar_series(&dir, tag), &csv_series(&dir, column), tag);
    }
    // The two collected episodes ran the planner (I = 2 in the debug preset) and trained with
    // overshooting; the seed episodes did neither.
    let steps: Vec<i64> = rows.iter().map(|r| r["env_steps"].parse().unwrap()).collect();
    assert_eq!(scalar_series(&dir, "plan/iterations"), [(steps[2], 2.0), (steps[3], 2.0)]);
    assert_eq!(csv_series(&dir, "loss_overshooting_kl").len(), 2);
    assert!(scalar_series(&dir, "loss/overshooting_reward").is_empty());
    assert!(rows.iter().all(|r| r["loss_overshooting_reward"].is_empty()));

    // TensorBoard itself, when the .venv has it (scripts/setup.sh installs it).
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/python");
    let import = "from tensorboard.backend.event_processing.event_accumulator import EventAccumulator";
    if !Command::new(python).args(["-c", import]).output().is_ok_and(|o| o.status.success()) {
        eprintln!(
            "note: {python} cannot import tensorboard (run scripts/setup.sh); TensorBoard check skipped"
        );
        return;
    }
    let script = format!(
        "import sys\n{import}\nacc = EventAccumulator(sys.argv[1]); acc.Reload()\n\
         print(' '.join(str(s.step) for s in acc.Scalars('train/return')))"
    );
    let out = Command::new(python).arg("-c").arg(script).arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tb: Vec<i64> =
        String::from_utf8(out.stdout).unwrap().split_whitespace().map(|s| s.parse().unwrap()).collect();
    assert_eq!(tb, steps, "TensorBoard's train/return steps (the redone episode 3 counted once)");
}
