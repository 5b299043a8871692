//! The parity check shared by the native-vs-dm_control tests.
#![allow(dead_code)]

use gradplan_config::{EnvBackend, EnvConfig, ObsKind};
use gradplan_env::{make_env, Obs};

/// How rewards must agree.
#[derive(Debug, Clone, Copy)]
pub enum Rewards {
    /// Bit for bit.
    Exact,
    /// At most this many units in the last place apart (numpy's AVX-512 `exp`).
    WithinUlps(u64),
}

/// What a parity run compared.
#[derive(Debug, Default)]
pub struct Count {
    pub decisions: usize,
    /// Decisions whose rewards were not bit-identical (only counted for `WithinUlps`).
    pub rewards_off: u64,
    /// Decisions with a non-zero reward, so that a test can show its rewards were not all 0.
    pub rewarded: usize,
}

/// An action sequence: decision index, seed, action dimension to action.
pub type Policy = fn(usize, u64, usize) -> Vec<f32>;

pub fn config(task: &str, backend: EnvBackend, repeat: Option<usize>) -> EnvConfig {
    EnvConfig {
        task: task.into(),
        obs: ObsKind::State,
        backend,
        action_repeat: repeat,
        ..EnvConfig::default()
    }
}

fn state(obs: Obs) -> Vec<f32> {
    match obs {
        Obs::State(v) => v,
        Obs::Pixels(_) => panic!("asked for state observations"),
    }
}

/// Every actuator flicked together, slowly: spins finger-spin's spinner, which the sweep
/// never does.
pub fn flick(t: usize, _seed: u64, dim: usize) -> Vec<f32> {
    vec![(t as f32 * 0.3).sin(); dim]
}

/// A fixed, deterministic action for decision `t`: a slow sweep with a seed-dependent
/// phase, reaching both bounds (and beyond, to exercise clipping).
pub fn sweep(t: usize, seed: u64, dim: usize) -> Vec<f32> {
    (0..dim).map(|i| (1.3 * ((t as f32) * 0.21 + seed as f32 + i as f32).sin()).clamp(-1.2, 1.2)).collect()
}

/// Runs both backends through `episodes` episodes (the first reseeded with `seed`, the
/// rest continuing the random stream) and asserts every number is identical.
pub fn assert_parity(
    rewards: Rewards,
    task: &str,
    seed: u64,
    repeat: Option<usize>,
    episodes: usize,
) -> Count {
    assert_parity_with(sweep, rewards, task, seed, repeat, episodes)
}

/// [`assert_parity`] with another action sequence.
pub fn assert_parity_with(
    policy: Policy,
    rewards: Rewards,
    task: &str,
    seed: u64,
    repeat: Option<usize>,
    episodes: usize,
) -> Count {
    let mut dmc_env = make_env(&config(task, EnvBackend::Dmc, repeat)).unwrap();
    let mut native = make_env(&config(task, EnvBackend::Native, repeat)).unwrap();
    assert_eq!(dmc_env.action_spec(), native.action_spec(), "{task}");
    assert_eq!(dmc_env.obs_spec(), native.obs_spec(), "{task}");
    assert_eq!(dmc_env.action_repeat(), native.action_repeat(), "{task}");
    let dim = native.action_spec().dim();
    let mut decisions = 0;
    let mut count = Count::default();
    for episode in 0..episodes {
        let reseed = (episode == 0).then_some(seed);
        let first_dmc = state(dmc_env.reset(reseed).unwrap());
        let first_native = state(native.reset(reseed).unwrap());
        assert_eq!(
            bits(&first_native),
            bits(&first_dmc),
            "{task} seed {seed} episode {episode}: initial obs"
        );
        for t in 0.. {
            let a = policy(t, seed, dim);
            let d = dmc_env.step(&a).unwrap();
            let n = native.step(&a).unwrap();
            let at = format!("{task} seed {seed} episode {episode} decision {t}");
            match rewards {
                Rewards::Exact => {
                    assert_eq!(
                        n.reward.to_bits(),
                        d.reward.to_bits(),
                        "{at}: reward {} vs {}",
                        n.reward,
                        d.reward
                    )
                }
                Rewards::WithinUlps(ulps) => {
                    let apart = n.reward.to_bits().abs_diff(d.reward.to_bits());
                    assert!(apart <= ulps, "{at}: reward {} vs {} ({apart} ulps apart)", n.reward, d.reward);
                    count.rewards_off += u64::from(apart != 0);
                }
            }
            assert_eq!((n.terminated, n.truncated), (d.terminated, d.truncated), "{at}");
            assert_eq!(bits(&state(n.obs)), bits(&state(d.obs)), "{at}: observation");
            decisions += 1;
            count.rewarded += usize::from(d.reward != 0.0);
            if d.terminated || d.truncated {
                break;
            }
        }
    }
    assert!(decisions >= 50, "{task}: only {decisions} decisions compared");
    count.decisions = decisions;
    count
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}
