//! TensorBoard itself (the `.venv`'s `tensorboard` package, pinned in requirements.txt)
//! reads our files: scalars, steps, and the purge of orphaned steps after a restart.

use gradplan_tensorboard::EventWriter;
use std::path::Path;
use std::process::Command;

const PYTHON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/python");

/// Prints `tag step value` for every scalar TensorBoard's `EventAccumulator` holds for `dir`.
const DUMP: &str = r#"
import sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1])
acc.Reload()
for tag in sorted(acc.Tags()["scalars"]):
    for s in acc.Scalars(tag):
        print(tag, s.step, repr(s.value), s.wall_time)
"#;

fn tensorboard_available() -> bool {
    Command::new(PYTHON)
        .args(["-c", "import tensorboard.backend.event_processing.event_accumulator"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `(tag, step, value)` as TensorBoard sees them.
fn tensorboard_scalars(dir: &Path) -> Vec<(String, i64, f32)> {
    let out = Command::new(PYTHON).arg("-c").arg(DUMP).arg(dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let c: Vec<&str> = l.split(' ').collect();
            assert!(c[3].parse::<f64>().unwrap() > 1.5e9, "wall time {l}");
            (c[0].to_owned(), c[1].parse().unwrap(), c[2].parse().unwrap())
        })
        .collect()
}

#[test]
fn tensorboard_reads_scalars_and_purges_after_a_restart() {
    if !tensorboard_available() {
        eprintln!("note: {PYTHON} cannot import tensorboard (run scripts/setup.sh); test skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut first = EventWriter::create(tmp.path()).unwrap();
    for step in [10, 20, 30] {
        first.scalars(step, &[("train/return", step as f64 * 1.5), ("loss/kl", 0.1)]).unwrap();
    }
    drop(first);
    let expected = |rows: &[(i64, f64)]| {
        let mut v: Vec<(String, i64, f32)> =
            rows.iter().map(|&(s, _)| ("loss/kl".into(), s, 0.1f32)).collect();
        v.extend(rows.iter().map(|&(s, r)| ("train/return".into(), s, r as f32)));
        v
    };
    assert_eq!(tensorboard_scalars(tmp.path()), expected(&[(10, 15.0), (20, 30.0), (30, 45.0)]));

    // A resume from the checkpoint at step 20 redoes steps 21.. in a second file.
    let mut resumed = EventWriter::create(tmp.path()).unwrap();
    resumed.restart_at(21).unwrap();
    for step in [25, 35] {
        resumed.scalars(step, &[("train/return", step as f64 * 2.0), ("loss/kl", 0.1)]).unwrap();
    }
    drop(resumed);
    assert_eq!(
        tensorboard_scalars(tmp.path()),
        expected(&[(10, 15.0), (20, 30.0), (25, 50.0), (35, 70.0)]),
        "step 30 of the first file should be purged"
    );
}
