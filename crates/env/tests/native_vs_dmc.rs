//! The native MuJoCo backend against the dm_control backend, both in this test process:
//! for the same seed and actions, the same initial observation, every reward and every
//! state observation, bit for bit. Also the `np.random.RandomState` clone against numpy.
//!
//! Needs the project's `.venv/` (scripts/setup.sh), like `tests/dmc.rs`.
//!
//! numpy is imported with its AVX-512 kernels disabled (`NPY_DISABLE_CPU_FEATURES`), which
//! is what numpy runs on any CPU without AVX-512: there its float64 `exp` is the C
//! library's, which Rust's `f64::exp` also calls. numpy's own AVX-512 `exp` differs from it
//! in the last bit for a few percent of inputs, so on such CPUs the dense rewards that use a
//! Gaussian `tolerance` can differ by an ulp (docs/decisions.md, #12). Everything else —
//! initial states, observations, sparse rewards — is exact either way.
#![cfg(all(feature = "dmc", feature = "mujoco"))]

mod common;

use common::{assert_parity, assert_parity_with, config, flick, Rewards};
use gradplan_config::{EnvBackend, EnvConfig};
use gradplan_env::suite::random::RandomState;
use gradplan_env::{dmc, make_env, Error};
use std::process::Command;
use std::sync::Once;

static NUMPY_PORTABLE: Once = Once::new();

/// Must run before the embedded interpreter starts (numpy reads the variable on import);
/// every test calls it first, so no other thread reads the environment meanwhile.
fn setup() {
    NUMPY_PORTABLE.call_once(|| {
        std::env::set_var("NPY_DISABLE_CPU_FEATURES", "X86_V4 AVX512_ICL AVX512_SPR");
        std::env::set_var("MUJOCO_GL", "egl");
    });
}

#[test]
fn cartpole_swingup_is_bit_identical() {
    setup();
    for seed in [0, 1, 7, 12345, u64::from(u32::MAX)] {
        assert_parity(Rewards::Exact, "cartpole-swingup", seed, None, 2);
    }
    // Every simulator step's reward on its own, without summing over the repeat.
    assert_parity(Rewards::Exact, "cartpole-swingup", 3, Some(1), 1);
}

#[test]
fn cartpole_swingup_sparse_is_bit_identical() {
    setup();
    let mut rewarded = 0;
    for seed in [0, 2, 42, 99_999] {
        rewarded += assert_parity(Rewards::Exact, "cartpole-swingup_sparse", seed, None, 2).rewarded;
    }
    assert!(rewarded > 0, "no sparse reward was ever earned, so none was compared");
    assert_parity(Rewards::Exact, "cartpole-swingup_sparse", 5, Some(1), 1);
}

#[test]
fn cartpole_balance_is_bit_identical() {
    setup();
    for seed in [0, 11] {
        assert_parity(Rewards::Exact, "cartpole-balance", seed, None, 2);
        assert_parity(Rewards::Exact, "cartpole-balance_sparse", seed, None, 1);
    }
}

#[test]
fn reacher_is_bit_identical() {
    setup();
    let mut rewarded = 0;
    for seed in [0, 4, 31] {
        rewarded += assert_parity(Rewards::Exact, "reacher-easy", seed, None, 2).rewarded;
    }
    assert!(rewarded > 0, "the target was never reached, so no reward of 1 was compared");
    assert_parity(Rewards::Exact, "reacher-hard", 8, Some(1), 1);
}

#[test]
fn finger_spin_is_bit_identical() {
    setup();
    let mut rewarded = 0;
    for seed in [0, 6] {
        assert_parity(Rewards::Exact, "finger-spin", seed, None, 2);
        rewarded += assert_parity_with(flick, Rewards::Exact, "finger-spin", seed, None, 1).rewarded;
    }
    assert!(rewarded > 0, "the spinner never spun, so no reward of 1 was compared");
}

#[test]
fn ball_in_cup_catch_is_bit_identical() {
    setup();
    let mut rewarded = 0;
    for seed in [0, 9] {
        rewarded += assert_parity(Rewards::Exact, "ball_in_cup-catch", seed, None, 2).rewarded;
    }
    assert!(rewarded > 0, "the ball was never caught, so no reward of 1 was compared");
}

#[test]
fn cheetah_run_is_bit_identical() {
    setup();
    for seed in [0, 13] {
        assert_parity(Rewards::Exact, "cheetah-run", seed, None, 2);
    }
}

#[test]
fn walker_is_bit_identical() {
    setup();
    // Seed 21 once caught numpy's scalar `** 2` (glibc pow) differing from a product.
    for seed in [0, 5, 21] {
        assert_parity(Rewards::Exact, "walker-walk", seed, None, 2);
    }
    assert_parity(Rewards::Exact, "walker-stand", 2, None, 1);
    assert_parity(Rewards::Exact, "walker-run", 3, None, 1);
}

#[test]
fn native_backend_refuses_unported_tasks_and_impossible_frames() {
    setup();
    let err = make_env(&config("humanoid-run", EnvBackend::Native, None)).err().unwrap();
    assert!(matches!(err, Error::UnknownTask { .. }), "{err}");
    assert!(err.to_string().contains("env.backend = \"dmc\""), "{err}");
    let mut env = make_env(&config("cartpole-swingup", EnvBackend::Native, None)).unwrap();
    assert!(matches!(env.step(&[0.0]), Err(Error::NotReset)));
    env.reset(Some(0)).unwrap();
    // MuJoCo's default offscreen buffer is 640×480.
    let err = env.render(481, 640).err().unwrap().to_string();
    assert!(err.contains("offscreen buffer") && err.contains("480x640"), "{err}");
    let big = EnvConfig {
        obs: gradplan_config::ObsKind::Pixels,
        image_size: 256,
        ..config("cartpole-swingup", EnvBackend::Native, None)
    };
    let err = make_env(&big).err().unwrap().to_string();
    assert!(err.contains("env.image_size") && err.contains("at most 240"), "{err}");
    let far = EnvConfig { camera: Some(5), ..config("cartpole-swingup", EnvBackend::Native, None) };
    let err = make_env(&far).err().unwrap().to_string();
    assert!(err.contains("env.camera") && err.contains("got 5"), "{err}");
    assert!(env.reset(Some(1 << 32)).is_err());
}

/// The RandomState clone against numpy itself, run from the project's `.venv/` now: the
/// raw MT19937 words after seeding, `random_sample`, `uniform` and `randn` (scalar and
/// vector draws interleaved, so the cached Box–Muller value is exercised).
#[test]
fn random_state_matches_numpy() {
    let venv = dmc::find_venv().expect("the project's .venv (run scripts/setup.sh)");
    let script = r#"
import numpy as np
for seed in [0, 1, 42, 123456789, 4294967295]:
    r = np.random.RandomState(seed)
    key = r.get_state()[1]
    out = [int(key[0]), int(key[1]), int(key[623])]
    out += [r.random_sample(), r.uniform(-.1, .1)]
    out += list(r.uniform(-.034, .034, 3))
    out += [r.randn()]
    out += list(r.randn(3))
    out += [r.randn(), r.uniform(-1, 1)]
    out += list(r.randn(1000)[-3:])
    print(' '.join(repr(float(x)) if isinstance(x, float) or hasattr(x, 'dtype') else str(x) for x in out))
"#;
    let output = Command::new(venv.join("bin").join("python")).args(["-c", script]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5);
    for (line, seed) in lines.iter().zip([0u32, 1, 42, 123_456_789, 4_294_967_295]) {
        let fields: Vec<&str> = line.split(' ').collect();
        let mut r = RandomState::new(seed);
        // The seeded key words, before any draw (numpy's state right after seeding).
        let probe = RandomState::new(seed);
        let words = vec![probe.key()[0], probe.key()[1], probe.key()[623]];
        let expected_key: Vec<u32> = fields[..3].iter().map(|s| s.parse().unwrap()).collect();
        assert_eq!(words, expected_key, "seed {seed}: MT19937 key");
        let mut ours = vec![r.next_f64(), r.uniform(-0.1, 0.1)];
        ours.extend(r.uniform_n(-0.034, 0.034, 3));
        ours.push(r.randn());
        ours.extend(r.randn_n(3));
        ours.extend([r.randn(), r.uniform(-1.0, 1.0)]);
        ours.extend(r.randn_n(1000)[997..].iter().copied());
        let theirs: Vec<f64> = fields[3..].iter().map(|s| s.parse().unwrap()).collect();
        assert_eq!(ours.len(), theirs.len());
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "seed {seed}, draw {i}: {a} vs numpy {b}");
        }
    }
}
