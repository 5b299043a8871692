//! What the run-level tests share: a tiny run on the native pendulum (no Python).

use gradplan_config::RunConfig;
use gradplan_train::EvalOptions;

/// The debug preset on `native_pendulum-swingup` from state, 100-step episodes, 400 env
/// steps (4 episodes), seed 7, one thread; `extra` overrides go on top (the last one wins).
pub fn debug_config(extra: &[&str]) -> RunConfig {
    let mut overrides: Vec<String> = [
        "env.task=native_pendulum-swingup",
        "env.obs=state",
        "env.episode_steps=100",
        "train.total_env_steps=400",
        "seed=7",
        "threads=1",
    ]
    .map(String::from)
    .into();
    overrides.extend(extra.iter().map(|s| s.to_string()));
    RunConfig::resolve("debug", None, &overrides).unwrap()
}

/// Two evaluation episodes of `planner` at `seed` on one thread, with these `planner.*`
/// overrides.
pub fn eval_opts(planner: &str, overrides: &[&str], seed: u64) -> EvalOptions {
    EvalOptions {
        planner: Some(planner.parse().unwrap()),
        overrides: overrides.iter().map(|s| s.to_string()).collect(),
        episodes: 2,
        seed,
        threads: Some(1),
        ..Default::default()
    }
}
