//! A nonconvex problem of any action dimension m: a chain of m torque-limited pendulums to
//! swing up, written in tch so that it is differentiable.
//!
//! Each pendulum is the native `native_pendulum-swingup` one (a point mass on a rod,
//! `g / l = 19.62 s⁻²`, top torque 41% of the gravity torque, so it cannot be lifted directly
//! and has to be pumped), and neighbours are joined by torsion springs:
//!
//! ```text
//! θ̈_i = (g/l)·sin θ_i + (τ_max/ml²)·a_i + κ·[sin(θ_{i+1} − θ_i) + sin(θ_{i−1} − θ_i)]
//! ```
//!
//! (θ = 0 upright; absent neighbours at the chain's ends contribute nothing), integrated by
//! semi-implicit Euler at `dt` per planning step. Each step earns `Σ_i (1 + cos θ_i) / 2`.
//! The return is not concave in the actions: swinging left first or right first, and how many
//! pumps, are separate local optima, and the springs make the pendulums' choices interact.
//! The torque limit is the action box [−1, 1], which every planner projects onto.

use crate::LatentDynamics;
use tch::{Device, Kind, Tensor};

/// The physical settings of a [`PendulumChain`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PendulumChainConfig {
    /// g / l, s⁻². Default 19.62 (the native pendulum: g = 9.81, l = 0.5 m).
    pub gravity: f64,
    /// τ_max / (m·l²), angular acceleration at action ±1, s⁻². Default 8 (2 N·m on 1 kg at
    /// 0.5 m: 41% of the gravity torque at the horizontal).
    pub torque: f64,
    /// κ, spring stiffness between neighbours, s⁻². Default 4.
    pub coupling: f64,
    /// Seconds per planning step. Default 0.05: semi-implicit Euler, with the fastest swing
    /// (≈ 9 rad/s through the bottom) turning 0.45 rad a step.
    pub dt: f64,
}

impl Default for PendulumChainConfig {
    fn default() -> Self {
        PendulumChainConfig { gravity: 19.62, torque: 8.0, coupling: 4.0, dt: 0.05 }
    }
}

/// m coupled pendulums as [`LatentDynamics`].
#[derive(Debug)]
pub struct PendulumChain {
    m: i64,
    config: PendulumChainConfig,
    kind: Kind,
}

/// A batch of [`PendulumChain`] states.
#[derive(Debug)]
pub struct PendulumState {
    /// θ, `[B, m]`, rad from upright.
    pub theta: Tensor,
    /// θ̇, `[B, m]`, rad/s.
    pub omega: Tensor,
}

impl PendulumChain {
    pub fn new(m: i64, config: PendulumChainConfig, kind: Kind) -> Self {
        PendulumChain { m, config, kind }
    }

    /// The study's start: every pendulum hanging down, `θ_i = π + 0.1·sin(2.3 i + 1)`,
    /// `θ̇_i = 0.1·cos(1.1 i)`, so that no two are alike and none is exactly at rest.
    pub fn start(&self) -> PendulumState {
        let angle: Vec<f64> =
            (0..self.m).map(|i| std::f64::consts::PI + 0.1 * (2.3 * i as f64 + 1.0).sin()).collect();
        let omega: Vec<f64> = (0..self.m).map(|i| 0.1 * (1.1 * i as f64).cos()).collect();
        let row = |v: &[f64]| Tensor::from_slice(v).view([1, self.m]).to_kind(self.kind);
        PendulumState { theta: row(&angle), omega: row(&omega) }
    }
}

impl LatentDynamics for PendulumChain {
    type State = PendulumState;

    fn action_dim(&self) -> i64 {
        self.m
    }
    fn action_low(&self) -> Tensor {
        Tensor::full([self.m], -1.0, (self.kind, Device::Cpu))
    }
    fn action_high(&self) -> Tensor {
        Tensor::full([self.m], 1.0, (self.kind, Device::Cpu))
    }
    fn expand(&self, state: &PendulumState, n: i64) -> PendulumState {
        PendulumState { theta: state.theta.expand([n, -1], false), omega: state.omega.expand([n, -1], false) }
    }
    fn step(&self, state: &PendulumState, action: &Tensor) -> PendulumState {
        let c = &self.config;
        let mut accel = state.theta.sin() * c.gravity + action * c.torque; // [B, m]
        if self.m > 1 && c.coupling != 0.0 {
            let (b, m) = (state.theta.size()[0], self.m);
            // Spring i ↔ i+1 pulls i towards i+1 and i+1 back: +s on i, −s on i+1.
            let spring = (state.theta.narrow(1, 1, m - 1) - state.theta.narrow(1, 0, m - 1)).sin(); // [B, m-1]
            let zero = Tensor::zeros([b, 1], (state.theta.kind(), state.theta.device()));
            let on_left = Tensor::cat(&[&spring, &zero], 1);
            let on_right = Tensor::cat(&[&zero, &spring], 1);
            accel += (on_left - on_right) * c.coupling;
        }
        // Semi-implicit Euler: velocity first, then the angle with the new velocity.
        let omega = &state.omega + accel * c.dt;
        let theta = &state.theta + &omega * c.dt;
        PendulumState { theta, omega }
    }
    fn reward(&self, state: &PendulumState) -> Tensor {
        ((state.theta.cos() + 1.0) * 0.5).sum_dim_intlist(1, false, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Objective;

    /// The energy-pumping controller of the native pendulum, per pendulum, ignoring the springs.
    fn pump(state: &PendulumState, config: &PendulumChainConfig) -> Tensor {
        // Energy per m·l², zero upright at rest: ½θ̇² + (g/l)(cos θ − 1).
        let energy = state.omega.square() * 0.5 + (state.theta.cos() - 1.0) * config.gravity;
        (state.omega.sign() * (-energy).sign()).clamp(-1.0, 1.0)
    }

    #[test]
    fn hanging_still_earns_nothing_and_pumping_swings_up() {
        let chain = PendulumChain::new(3, PendulumChainConfig::default(), Kind::Double);
        let h = 60;
        let zeros = Tensor::zeros([h, 1, 3], (Kind::Double, Device::Cpu));
        let idle = Objective::default().returns(&chain, &chain.start(), &zeros).double_value(&[0]);
        assert!(idle < 0.05 * h as f64, "idle return {idle}");
        // Pumping reaches the top within 3 s, though not at once: the torque is too weak.
        let mut s = chain.start();
        let mut first_top: [Option<i64>; 3] = [None; 3];
        for t in 0..h {
            s = chain.step(&s, &pump(&s, &chain.config));
            let up = Vec::<f64>::try_from(s.theta.cos().squeeze_dim(0)).unwrap();
            for (first, c) in first_top.iter_mut().zip(up) {
                if first.is_none() && c > 0.9 {
                    *first = Some(t);
                }
            }
        }
        for t in first_top {
            let t = t.expect("the pump never brought a pendulum up");
            assert!(t > 10, "up after {t} steps: no swinging needed");
        }
    }

    #[test]
    fn springs_are_equal_and_opposite() {
        let chain =
            PendulumChain::new(4, PendulumChainConfig { gravity: 0.0, ..Default::default() }, Kind::Double);
        let s = PendulumState {
            theta: Tensor::from_slice(&[0.0f64, 0.5, -0.2, 1.0]).view([1, 4]),
            omega: Tensor::zeros([1, 4], (Kind::Double, Device::Cpu)),
        };
        let next = chain.step(&s, &Tensor::zeros([1, 4], (Kind::Double, Device::Cpu)));
        // Without gravity or torque the springs only exchange momentum.
        let total = next.omega.sum(Kind::Double).double_value(&[]);
        assert!(total.abs() < 1e-12, "{total}");
        // The first pendulum is pulled towards the second (θ_1 > θ_0).
        assert!(next.omega.double_value(&[0, 0]) > 0.0);
    }
}
