//! Open-loop predictions on a tiny pixel run of the native pendulum (no Python): shapes,
//! the context shared by both predictions, the episode being `gradplan eval`'s first one,
//! and reproducibility.
//!
//! One test, so tch's global generator is drawn from by one thread only.

use gradplan_config::RunConfig;
use gradplan_env::Frame;
use gradplan_train::openloop::{open_loop, OpenLoopOptions, Trace};
use gradplan_train::{EvalOptions, Evaluator, RunOptions, Trainer};

/// The debug preset (pixels) with 50-decision episodes, 3 episodes in all.
fn pixel_config() -> RunConfig {
    let overrides = [
        "env.task=native_pendulum-swingup",
        "env.obs=pixels",
        "env.episode_steps=100",
        "train.total_env_steps=300",
        "seed=3",
        "threads=1",
    ]
    .map(String::from);
    RunConfig::resolve("debug", None, &overrides).unwrap()
}

#[test]
fn open_loop_predictions_of_a_tiny_pixel_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    Trainer::create(pixel_config(), &dir).unwrap().run(&RunOptions::default()).unwrap();

    let opts = OpenLoopOptions { seed: 11, context: 5, device: Some("cpu".into()), threads: Some(1) };
    let ol = open_loop(&dir, &opts).unwrap();
    let n = ol.episode.decisions;
    assert_eq!(n, 50);
    assert_eq!(ol.context, 5);
    let Trace::Pixels { real, reconstructed, imagined } = &ol.trace else {
        panic!("a pixel run gives frames")
    };
    assert_eq!((real.len(), reconstructed.len(), imagined.len()), (n + 1, n + 1, n + 1));
    for f in real.iter().chain(reconstructed).chain(imagined) {
        assert_eq!((f.height, f.width, f.data.len()), (64, 64, 64 * 64 * 3));
    }
    assert_eq!((ol.real_rewards.len(), ol.posterior_rewards.len(), ol.open_loop_rewards.len()), (n, n, n));
    let sum: f64 = ol.real_rewards.iter().sum();
    assert!((sum - ol.episode.total_return).abs() < 1e-3 * (1.0 + sum.abs()), "{sum} vs {:?}", ol.episode);

    // The context: both predictions are the same posterior states before C, and differ after.
    let c = ol.context;
    assert_eq!(imagined[..c], reconstructed[..c]);
    assert_eq!(ol.open_loop_rewards[..c - 1], ol.posterior_rewards[..c - 1]);
    assert_ne!(imagined[c..], reconstructed[c..], "the prior alone predicts the same as the posterior");
    assert_ne!(ol.open_loop_rewards[c - 1..], ol.posterior_rewards[c - 1..]);

    // The episode is `gradplan eval --seed 11`'s first one, frame for frame.
    let eval_opts = EvalOptions {
        episodes: 1,
        seed: 11,
        device: Some("cpu".into()),
        threads: Some(1),
        ..Default::default()
    };
    let mut eval_frames: Vec<Frame> = Vec::new();
    let mut push = |f: &Frame| eval_frames.push(f.clone());
    let report = Evaluator::new(&dir, eval_opts).unwrap().run(&mut |_, _| {}, Some(&mut push)).unwrap();
    assert_eq!(report.episodes[0].total_return, ol.episode.total_return);
    assert_eq!(&eval_frames, real);

    // Same seed, same everything (planner samples and posterior samples alike).
    let mut again = open_loop(&dir, &opts).unwrap();
    again.episode.plan_ms = ol.episode.plan_ms; // wall time
    assert!(again == ol, "same seed, different open-loop predictions");

    // C is clamped to the episode; then the open loop never leaves the posterior.
    let all = open_loop(&dir, &OpenLoopOptions { context: 1000, ..opts.clone() }).unwrap();
    assert_eq!(all.context, n + 1);
    let Trace::Pixels { reconstructed, imagined, .. } = &all.trace else { unreachable!() };
    assert_eq!(imagined, reconstructed);
    let err = open_loop(&dir, &OpenLoopOptions { context: 0, ..opts }).unwrap_err();
    assert!(err.to_string().contains("context"), "{err}");
}
