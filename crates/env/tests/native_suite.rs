//! The native MuJoCo backend on its own, as a build without the `dmc` feature runs it: every
//! ported task loads, steps, ends at dm_control's time limit and reproduces its episodes
//! from a seed, and renders pixel observations without Python. (Its parity with dm_control
//! is `tests/native_vs_dmc.rs` and `tests/native_pixels_vs_dmc.rs`.)
#![cfg(feature = "mujoco")]

mod common;

use common::config;
use gradplan_config::{EnvBackend, EnvConfig, ObsKind, PixelMode};
use gradplan_env::suite::NATIVE_SUITE_TASKS;
use gradplan_env::{decisions_per_episode, make_env, Obs, ObsSpec};

fn episode(task: &str, seed: u64) -> (Vec<f32>, Vec<f64>, usize) {
    let mut env = make_env(&config(task, EnvBackend::Native, None)).unwrap();
    let ObsSpec::State { dim } = env.obs_spec() else { panic!("{task}: state observations") };
    let Obs::State(first) = env.reset(Some(seed)).unwrap() else { panic!("{task}: state observation") };
    assert_eq!(first.len(), dim, "{task}");
    let actions = env.action_spec().dim();
    let (mut rewards, mut decisions) = (Vec::new(), 0);
    loop {
        let a: Vec<f32> = (0..actions).map(|i| ((decisions + i) as f32 * 0.37).sin()).collect();
        let step = env.step(&a).unwrap();
        let Obs::State(obs) = &step.obs else { panic!("{task}: state observation") };
        assert!(obs.len() == dim && obs.iter().all(|x| x.is_finite()), "{task}: {obs:?}");
        assert!(step.reward.is_finite() && step.reward >= 0.0, "{task}: reward {}", step.reward);
        rewards.push(step.reward);
        decisions += 1;
        if step.done() {
            assert!(step.truncated && !step.terminated, "{task}: the suite's tasks end by time only");
            break;
        }
    }
    (first, rewards, decisions)
}

#[test]
fn every_native_task_runs_whole_seeded_episodes() {
    for task in NATIVE_SUITE_TASKS {
        let (first, rewards, decisions) = episode(task, 3);
        let repeat = gradplan_env::TaskName::parse(task).unwrap().default_action_repeat();
        assert_eq!(decisions, decisions_per_episode(1000, repeat), "{task}");
        let (again, rewards_again, _) = episode(task, 3);
        assert_eq!((first.clone(), rewards), (again, rewards_again), "{task}: same seed, same episode");
        let (other, _, _) = episode(task, 4);
        assert_ne!(first, other, "{task}: another seed, another initial state");
    }
}

/// The renderer in a process without Python: MuJoCo's GL loader must find EGL from the
/// library this crate opened, not from one PyOpenGL loaded.
#[test]
fn every_native_task_renders_pixel_observations() {
    for task in NATIVE_SUITE_TASKS {
        for (pixel_mode, size) in [(PixelMode::Direct, 64), (PixelMode::Resize, 48)] {
            let cfg = EnvConfig {
                obs: ObsKind::Pixels,
                pixel_mode,
                image_size: size,
                ..config(task, EnvBackend::Native, None)
            };
            let mut env = make_env(&cfg).unwrap();
            assert_eq!(env.obs_spec(), ObsSpec::Pixels { height: size, width: size }, "{task}");
            let Obs::Pixels(first) = env.reset(Some(1)).unwrap() else { panic!("{task}: pixels") };
            assert_eq!((first.height, first.width, first.data.len()), (size, size, size * size * 3));
            assert!(first.data.chunks_exact(3).any(|p| p != &first.data[..3]), "{task}: a uniform frame");
            let actions = env.action_spec().dim();
            let mut last = first.clone();
            for t in 0..10 {
                let a: Vec<f32> = (0..actions).map(|i| ((t + i) as f32 * 0.9).sin()).collect();
                let Obs::Pixels(frame) = env.step(&a).unwrap().obs else { panic!("{task}: pixels") };
                last = frame;
            }
            assert_ne!(last, first, "{task} ({pixel_mode}): ten decisions later, the same frame");
            let video = env.render(240, 320).unwrap();
            assert_eq!(video.data.len(), 240 * 320 * 3, "{task}");
        }
    }
}
