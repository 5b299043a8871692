//! `gradplan eval` on a tiny Dreamer run (native pendulum, state observations, no Python):
//! the pure policy and Policy+Grad-MPC compared on the same agent and seeds, and a clear
//! error for the policy planners on a PlaNet run. Its own test binary, so its draws from
//! tch's global generator never interleave with another file's tests.

mod common;

use common::debug_config;
use gradplan_config::RunConfig;
use gradplan_train::{evaluate, Error, EvalOptions, RunOptions, Trainer};

fn config(extra: &[&str]) -> RunConfig {
    let small = [
        "train.total_env_steps=300",
        "dreamer.hidden=8",
        "dreamer.horizon=3",
        "dreamer.actor_layers=2",
        "dreamer.value_layers=2",
    ];
    debug_config(&[&small[..], extra].concat())
}

fn opts(planner: &str, overrides: &[&str]) -> EvalOptions {
    common::eval_opts(planner, overrides, 3)
}

#[test]
fn pure_policy_and_hybrid_on_one_dreamer_agent() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dreamer");
    Trainer::create(config(&["planner.kind=policy"]), &dir).unwrap().run(&RunOptions::default()).unwrap();
    let returns =
        |r: &gradplan_train::EvalReport| r.episodes.iter().map(|e| e.total_return).collect::<Vec<_>>();

    let policy = evaluate(&dir, opts("policy", &[])).unwrap();
    let again = evaluate(&dir, opts("policy", &[])).unwrap();
    assert_eq!(returns(&policy), returns(&again), "same seed, different returns");
    let hybrid =
        evaluate(&dir, opts("policy-grad-mpc", &["planner.iterations=3", "planner.action_lr=0.05"])).unwrap();
    assert_eq!(hybrid.planner.iterations, Some(3));
    assert_eq!(hybrid.settings, "action_lr=0.05;iterations=3");
    assert_eq!(hybrid.episodes.len(), 2);
    assert!(hybrid.episodes.iter().all(|e| e.total_return.is_finite()));
    // Model-only planners still work on a Dreamer run.
    evaluate(&dir, opts("cem", &[])).unwrap();
}

#[test]
fn policy_planners_on_a_planet_run_are_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("planet");
    let stop = RunOptions { stop_after_episodes: Some(2), ..Default::default() };
    Trainer::create(config(&[]), &dir).unwrap().run(&stop).unwrap();
    for planner in ["policy", "policy-grad-mpc"] {
        let err = evaluate(&dir, opts(planner, &[])).err().unwrap();
        assert!(matches!(err, Error::NoActor { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("planner.kind = cem") && msg.contains("PlaNet"), "{msg}");
    }
}
