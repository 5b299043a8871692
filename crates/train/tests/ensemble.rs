//! `gradplan ensemble` on a tiny native-pendulum run (no Python): the fit is written beside
//! the checkpoint's weights and is reproducible, an evaluation with an uncertainty penalty
//! plans with it, and every way of asking for one that does not exist is a clear error.

mod common;

use common::debug_config;
use gradplan_train::{evaluate, fit_ensemble, EvalOptions, FitOptions, RunOptions, Trainer, ENSEMBLE_FILE};

fn fit_opts(seed: u64) -> FitOptions {
    FitOptions { updates: 60, seed, threads: Some(1), ..FitOptions::default() }
}

#[test]
fn the_ensemble_is_fitted_beside_the_weights_and_planned_with() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    Trainer::create(debug_config(&[]), &dir).unwrap().run(&RunOptions::default()).unwrap();
    let eval = |overrides: &[&str]| EvalOptions {
        planner: Some("grad-mpc".parse().unwrap()),
        overrides: overrides.iter().map(|s| s.to_string()).collect(),
        episodes: 1,
        seed: 3,
        threads: Some(1),
        ..Default::default()
    };

    // Asked for before it exists: one error that says how to fit it.
    let err = evaluate(&dir, eval(&["planner.uncertainty_penalty=1"])).unwrap_err().to_string();
    assert!(err.contains("gradplan ensemble --run-dir"), "{err}");

    let mut lines = 0;
    let report = fit_ensemble(&dir, &fit_opts(0), &mut |_, _| lines += 1).unwrap();
    assert_eq!(lines, 0, "progress every 100 updates; 60 were asked");
    assert_eq!(report.path, report.checkpoint.join(ENSEMBLE_FILE));
    assert!(report.checkpoint.ends_with("checkpoints/ep-000004"), "{:?}", report.checkpoint);
    assert!(report.last_loss < report.first_loss, "{report:?}");
    assert!(report.median <= report.p90 && report.p90 <= 1.0 && report.max >= 1.0, "{report:?}");
    assert!(report.transitions > 0 && report.threshold > 0.0);
    // Same seed, same file; another seed, another.
    let bytes = std::fs::read(&report.path).unwrap();
    fit_ensemble(&dir, &fit_opts(0), &mut |_, _| {}).unwrap();
    assert_eq!(std::fs::read(&report.path).unwrap(), bytes);
    fit_ensemble(&dir, &fit_opts(1), &mut |_, _| {}).unwrap();
    assert_ne!(std::fs::read(&report.path).unwrap(), bytes);
    let names: Vec<_> =
        std::fs::read_dir(&report.checkpoint).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(names.iter().all(|n| !n.to_string_lossy().contains("tmp")), "temporary left: {names:?}");

    // Planned with: same seed, same returns; the settings column names λ.
    let penalised = evaluate(&dir, eval(&["planner.uncertainty_penalty=1"])).unwrap();
    let again = evaluate(&dir, eval(&["planner.uncertainty_penalty=1"])).unwrap();
    assert_eq!(penalised.episodes[0].total_return, again.episodes[0].total_return);
    assert!(penalised.settings.contains("uncertainty_penalty=1"), "{}", penalised.settings);
    // λ reaches every model-based planner, CEM included.
    let mut cem = eval(&["planner.uncertainty_penalty=0.5"]);
    cem.planner = Some("cem".parse().unwrap());
    evaluate(&dir, cem).unwrap();

    // Bad options are refused before anything loads; a corrupt file is a clear error.
    let err = fit_ensemble(&dir, &FitOptions { members: 1, ..fit_opts(0) }, &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("--members"), "{err}");
    let err = fit_ensemble(&dir, &FitOptions { quantile: 1.0, ..fit_opts(0) }, &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("--quantile"), "{err}");
    std::fs::write(&report.path, b"garbage").unwrap();
    let err = evaluate(&dir, eval(&["planner.uncertainty_penalty=1"])).unwrap_err().to_string();
    assert!(err.contains(ENSEMBLE_FILE), "{err}");
    let err = evaluate(&dir, eval(&["planner.uncertainty_penalty=-1"])).unwrap_err().to_string();
    assert!(err.contains("planner.uncertainty_penalty"), "{err}");
}

#[test]
fn training_with_a_penalty_is_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let err = Trainer::create(debug_config(&["planner.uncertainty_penalty=1"]), &dir).err().unwrap();
    assert!(err.to_string().contains("evaluation setting"), "{err}");
    assert!(!dir.join("config.toml").exists());
    assert!(!dir.join("checkpoints").exists());
}
