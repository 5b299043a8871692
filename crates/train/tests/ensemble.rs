//! `gradplan ensemble` on a tiny native-pendulum run (no Python): the fit is written beside
//! the checkpoint's weights and is reproducible, an evaluation with an uncertainty penalty
//! plans with it, and every way of asking for one that does not exist is a clear error.

mod common;

use common::debug_config;
use gradplan_config::UncertaintyMeasure;
use gradplan_train::{
    evaluate, fit_ensemble, EvalOptions, FitOptions, RunOptions, Trainer, BEHAVIOR_PRIOR_FILE, ENSEMBLE_FILE,
    STATE_DENSITY_FILE,
};

fn fit_opts(seed: u64) -> FitOptions {
    FitOptions { updates: 60, seed, threads: Some(1), ..FitOptions::default() }
}

/// Held by every test here that trains, fits or plans: libtorch's random stream is
/// process-wide, and `cargo test` (scripts/test.sh's fallback without nextest) runs this
/// file's tests on threads of one process, where two fits would interleave their draws and
/// "same seed, same file" would fail.
static TORCH_STREAM: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn hold_stream() -> std::sync::MutexGuard<'static, ()> {
    TORCH_STREAM.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A finished debug run (4 episodes) in a temporary directory, which the guard keeps.
fn trained_run() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    Trainer::create(debug_config(&[]), &dir).unwrap().run(&RunOptions::default()).unwrap();
    (tmp, dir)
}

/// One Grad-MPC episode at seed 3 with these `planner.*` overrides.
fn eval(overrides: &[&str]) -> EvalOptions {
    EvalOptions { episodes: 1, ..common::eval_opts("grad-mpc", overrides, 3) }
}

/// Grad-MPC plans with the fitted `measure` at λ 0.1 reproducibly, names it in the settings,
/// and at λ 100 plays another episode than without the penalty.
fn assert_planned_with(dir: &std::path::Path, measure: &str) {
    let chosen = format!("planner.uncertainty_measure={measure}");
    let a = evaluate(dir, eval(&[&chosen, "planner.uncertainty_penalty=0.1"])).unwrap();
    let b = evaluate(dir, eval(&[&chosen, "planner.uncertainty_penalty=0.1"])).unwrap();
    assert_eq!(a.episodes[0].total_return, b.episodes[0].total_return);
    assert!(a.settings.contains(&format!("uncertainty_measure={measure}")), "{}", a.settings);
    let strong = evaluate(dir, eval(&[&chosen, "planner.uncertainty_penalty=100"])).unwrap();
    let plain = evaluate(dir, eval(&[])).unwrap();
    assert_ne!(strong.episodes[0].total_return, plain.episodes[0].total_return, "{measure}");
}

#[test]
fn the_ensemble_is_fitted_beside_the_weights_and_planned_with() {
    let _stream = hold_stream();
    let (_tmp, dir) = trained_run();

    // Asked for before it exists: one error that says how to fit it.
    let err = evaluate(&dir, eval(&["planner.uncertainty_penalty=1"])).unwrap_err().to_string();
    assert!(err.contains("gradplan ensemble --run-dir"), "{err}");

    let mut lines = 0;
    let report = fit_ensemble(&dir, &fit_opts(0), &mut |_, _| lines += 1).unwrap();
    assert_eq!(lines, 0, "progress every 100 updates; 60 were asked");
    assert_eq!(report.path, report.checkpoint.join(ENSEMBLE_FILE));
    assert!(report.checkpoint.ends_with("checkpoints/ep-000004"), "{:?}", report.checkpoint);
    assert!(report.last_loss.unwrap() < report.first_loss.unwrap(), "{report:?}");
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
    let err =
        fit_ensemble(&dir, &FitOptions { quantile: Some(1.0), ..fit_opts(0) }, &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("--quantile"), "{err}");
    std::fs::write(&report.path, b"garbage").unwrap();
    let err = evaluate(&dir, eval(&["planner.uncertainty_penalty=1"])).unwrap_err().to_string();
    assert!(err.contains(ENSEMBLE_FILE), "{err}");
    let err = evaluate(&dir, eval(&["planner.uncertainty_penalty=-1"])).unwrap_err().to_string();
    assert!(err.contains("planner.uncertainty_penalty"), "{err}");
}

#[test]
fn the_behavior_prior_is_its_own_file_and_measure() {
    let _stream = hold_stream();
    let (_tmp, dir) = trained_run();
    let behavior = ["planner.uncertainty_measure=behavior", "planner.uncertainty_penalty=0.1"];
    // The ensemble does not stand in for the prior: each measure needs its own fit.
    fit_ensemble(&dir, &fit_opts(0), &mut |_, _| {}).unwrap();
    let err = evaluate(&dir, eval(&behavior)).unwrap_err().to_string();
    assert!(err.contains("behaviour prior") && err.contains("--measure behavior"), "{err}");

    // A prior is one network: --members does not apply, so 1 is fine.
    let opts = FitOptions { measure: UncertaintyMeasure::Behavior, members: 1, ..fit_opts(0) };
    let report = fit_ensemble(&dir, &opts, &mut |_, _| {}).unwrap();
    assert_eq!(report.path, report.checkpoint.join(BEHAVIOR_PRIOR_FILE));
    assert_eq!(report.shape.members, 1);
    assert!(report.last_loss.unwrap() < report.first_loss.unwrap(), "{report:?}");
    // The prior's edge is the replay's median distance (the ensemble's is its 99th percentile).
    assert_eq!(opts.quantile(), 0.5);
    assert!((report.median - 1.0).abs() < 1e-9 && report.p90 >= 1.0, "{report:?}");
    let bytes = std::fs::read(&report.path).unwrap();
    fit_ensemble(&dir, &opts, &mut |_, _| {}).unwrap();
    assert_eq!(std::fs::read(&report.path).unwrap(), bytes, "same seed, same file");
    // The ensemble's file is untouched by the prior's fit.
    assert!(report.checkpoint.join(ENSEMBLE_FILE).is_file());

    assert_planned_with(&dir, "behavior");
    // A file that is not a prior is refused by name.
    std::fs::copy(report.checkpoint.join(ENSEMBLE_FILE), &report.path).unwrap();
    let err = evaluate(&dir, eval(&behavior)).unwrap_err().to_string();
    assert!(err.contains("not a behaviour prior") && err.contains("5 members"), "{err}");
}

#[test]
fn the_state_density_is_its_own_file_and_prices_imagined_states() {
    let _stream = hold_stream();
    let (_tmp, dir) = trained_run();
    let density = ["planner.uncertainty_measure=density", "planner.uncertainty_penalty=0.1"];
    let err = evaluate(&dir, eval(&density)).unwrap_err().to_string();
    assert!(err.contains("state density") && err.contains("--measure density"), "{err}");

    let opts = FitOptions { measure: UncertaintyMeasure::Density, ..fit_opts(0) };
    let mut lines = 0;
    let report = fit_ensemble(&dir, &opts, &mut |_, _| lines += 1).unwrap();
    assert_eq!(lines, 0, "no updates, no progress");
    assert_eq!(report.path, report.checkpoint.join(STATE_DENSITY_FILE));
    assert_eq!((report.first_loss, report.last_loss), (None, None));
    // The features' size; the edge is the replay's 99th percentile.
    assert_eq!(report.shape.hidden, 16 + 4, "{report:?}");
    assert_eq!(opts.quantile(), 0.99);
    assert!(report.median < 1.0 && report.p90 <= 1.0 && report.max >= 1.0, "{report:?}");
    // Fresh chunks of the replay are about as far from the Gaussian as the fit's own (d ≈ 1).
    assert!(report.calibration_loss > 0.3 && report.calibration_loss < 3.0, "{report:?}");
    let bytes = std::fs::read(&report.path).unwrap();
    fit_ensemble(&dir, &opts, &mut |_, _| {}).unwrap();
    assert_eq!(std::fs::read(&report.path).unwrap(), bytes, "same seed, same file");
    let err = fit_ensemble(&dir, &FitOptions { shrinkage: 1.0, ..opts.clone() }, &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("--shrinkage"), "{err}");

    assert_planned_with(&dir, "density");
    // Another measure's file is refused by name.
    fit_ensemble(&dir, &fit_opts(0), &mut |_, _| {}).unwrap();
    std::fs::copy(report.checkpoint.join(ENSEMBLE_FILE), &report.path).unwrap();
    let err = evaluate(&dir, eval(&density)).unwrap_err().to_string();
    assert!(err.contains("not a state density"), "{err}");
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
