//! The native backend against dm_control with numpy as a user gets it: its CPU dispatch
//! left alone, so on a CPU with AVX-512 numpy computes float64 `exp` with its own kernel,
//! which differs from the C library's (and so from Rust's) in the last bit for a few percent
//! of inputs. Initial states, observations and the rewards without `exp` stay bit-identical
//! (every ported task is run); dense rewards that use a Gaussian `tolerance` (cartpole-swingup,
//! walker) agree to within a few ulps. Without AVX-512 this
//! test sees exact rewards too. (`tests/native_vs_dmc.rs` disables the AVX-512 kernels and
//! asserts exact rewards everywhere.) A separate test binary, because numpy picks its
//! kernels once, when the embedded interpreter imports it.
#![cfg(all(feature = "dmc", feature = "mujoco"))]

mod common;

use common::{assert_parity, Rewards};

#[test]
fn gaussian_rewards_within_ulps_and_everything_else_exact() {
    let mut off = 0;
    let mut decisions = 0;
    for seed in [0, 1, 7] {
        let count = assert_parity(Rewards::WithinUlps(4), "cartpole-swingup", seed, Some(1), 1);
        off += count.rewards_off;
        decisions += count.decisions;
    }
    println!("cartpole-swingup with numpy's own kernels: {off} of {decisions} rewards not bit-identical");
    for seed in [0, 3] {
        assert_parity(Rewards::Exact, "cartpole-swingup_sparse", seed, None, 1);
        assert_parity(Rewards::Exact, "cartpole-balance_sparse", seed, None, 1);
        assert_parity(Rewards::WithinUlps(4), "walker-walk", seed, None, 1);
        assert_parity(Rewards::Exact, "cheetah-run", seed, None, 1);
        assert_parity(Rewards::Exact, "reacher-easy", seed, None, 1);
        assert_parity(Rewards::Exact, "ball_in_cup-catch", seed, None, 1);
        assert_parity(Rewards::Exact, "finger-spin", seed, None, 1);
    }
}
