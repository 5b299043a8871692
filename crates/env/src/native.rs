//! Native Rust environments: a pendulum swing-up with pixel rendering and a known good policy.
//!
//! These exist so that everything above the environment (replay, world model, planner,
//! training loop) can be tested in milliseconds without Python or MuJoCo. They follow the
//! same [`Env`] contract as the dm_control backend: action repeat with rewards summed in f64,
//! 1000 simulator steps per episode ending in `truncated`, seeded resets.
//!
//! # `native_pendulum-swingup`
//!
//! A frictionless point mass `MASS` on a massless rod of length `LENGTH`, hinged at the centre
//! of the image. `θ = 0` is upright and `θ` grows clockwise on screen, so
//!
//! ```text
//! θ̈ = (g / l)·sin θ + τ / (m·l²),        τ = MAX_TORQUE · clip(a, -1, 1)
//! ```
//!
//! integrated with semi-implicit Euler (velocity first, then angle with the new velocity),
//! which keeps the energy bounded rather than drifting as explicit Euler would, at
//! `DT = 0.01` s per simulator step. `MAX_TORQUE` is 41% of the gravity torque `m·g·l` at the
//! horizontal, so the pendulum cannot be lifted directly and must be swung up by pumping.
//!
//! Episodes start hanging down, `θ = π ± INIT_NOISE`, `θ̇ = ±INIT_NOISE`, drawn uniformly.
//! Each simulator step earns `(1 + cos θ) / 2 ∈ [0, 1]`: 1 upright, 0 hanging. Unlike
//! dm_control's 1°-tolerance pendulum reward this is smooth, so a model-based learner sees
//! progress from a partial swing. State observations are `[cos θ, sin θ, θ̇]`.

use crate::{ActionSpec, Env, Error, Frame, Obs, ObsSpec, Result, Step, TaskName};
use gradplan_config::{EnvConfig, ObsKind};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::f64::consts::{PI, TAU};

/// Every task this module implements.
pub const TASKS: &[&str] = &["native_pendulum-swingup"];

/// Gravitational acceleration, m/s².
pub const GRAVITY: f64 = 9.81;
/// Bob mass, kg.
pub const MASS: f64 = 1.0;
/// Rod length, m.
pub const LENGTH: f64 = 0.5;
/// Torque at action ±1, N·m; below `MASS * GRAVITY * LENGTH` (4.9 N·m), see the module doc.
pub const MAX_TORQUE: f64 = 2.0;
/// Simulator time step, s.
pub const DT: f64 = 0.01;
/// Half-width of the uniform noise on the initial angle (rad) and velocity (rad/s).
pub const INIT_NOISE: f64 = 0.1;

/// `swingup_policy` balances with PD once `cos θ` exceeds this (|θ| < ~0.5 rad).
const BALANCE_COS: f64 = 0.88;
/// PD gains in N·m per rad and per rad/s; `BALANCE_KP > m·g·l` is needed to overcome gravity.
const BALANCE_KP: f64 = 10.0;
const BALANCE_KD: f64 = 2.0;
/// Action per joule of missing energy; large enough that the pump runs saturated.
const PUMP_GAIN: f64 = 5.0;

/// The pendulum's physical state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PendulumState {
    /// Angle from upright in `[-π, π)`, rad.
    pub theta: f64,
    /// Angular velocity, rad/s.
    pub theta_dot: f64,
}

/// Builds a native task by name.
pub fn make(name: &TaskName, cfg: &EnvConfig) -> Result<Pendulum> {
    match (name.domain.as_str(), name.task.as_str()) {
        ("native_pendulum", "swingup") => Pendulum::new(name, cfg),
        _ => Err(Error::UnknownTask {
            name: name.to_string(),
            hint: format!("the native tasks are: {}", TASKS.join(", ")),
        }),
    }
}

/// A known good policy: energy pumping until near the top, then PD balancing.
///
/// Torque changes the energy `E = ½·m·l²·θ̇² + m·g·l·cos θ` at the rate `τ·θ̇`, so pushing
/// along the velocity while `E` is below the upright energy `m·g·l` (and against it above)
/// drives the swing towards the top, where the PD law takes over.
pub fn swingup_policy(theta: f64, theta_dot: f64) -> f32 {
    let theta = wrap_angle(theta);
    let action = if theta.cos() > BALANCE_COS {
        -(BALANCE_KP * theta + BALANCE_KD * theta_dot) / MAX_TORQUE
    } else {
        let energy = 0.5 * MASS * LENGTH * LENGTH * theta_dot.powi(2) + MASS * GRAVITY * LENGTH * theta.cos();
        // At rest the velocity has no sign; push either way to start the swing.
        let direction = if theta_dot.abs() < 1e-3 { 1.0 } else { theta_dot.signum() };
        PUMP_GAIN * (MASS * GRAVITY * LENGTH - energy) * direction
    };
    action.clamp(-1.0, 1.0) as f32
}

/// The `native_pendulum-swingup` environment.
#[derive(Debug, Clone)]
pub struct Pendulum {
    name: String,
    obs_kind: ObsKind,
    image_size: usize,
    repeat: usize,
    episode_steps: usize,
    action_spec: ActionSpec,
    rng: ChaCha8Rng,
    state: PendulumState,
    /// Simulator steps taken this episode; `None` before the first reset.
    elapsed: Option<usize>,
}

impl Pendulum {
    fn new(name: &TaskName, cfg: &EnvConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Pendulum {
            name: name.to_string(),
            obs_kind: cfg.obs,
            image_size: cfg.image_size,
            repeat: cfg.action_repeat.unwrap_or(name.default_action_repeat()),
            episode_steps: cfg.episode_steps,
            action_spec: ActionSpec::symmetric(1),
            // Seed 0 until the first `reset(Some(seed))`, mirroring an unseeded-but-fixed task.
            rng: ChaCha8Rng::seed_from_u64(0),
            state: PendulumState { theta: -PI, theta_dot: 0.0 },
            elapsed: None,
        })
    }

    /// The current physical state, e.g. to drive [`swingup_policy`].
    pub fn state(&self) -> PendulumState {
        self.state
    }

    fn observe(&self) -> Obs {
        match self.obs_kind {
            ObsKind::State => {
                let PendulumState { theta, theta_dot } = self.state;
                Obs::State(vec![theta.cos() as f32, theta.sin() as f32, theta_dot as f32])
            }
            ObsKind::Pixels => Obs::Pixels(draw(self.state.theta, self.image_size, self.image_size)),
        }
    }

    /// Advances one simulator step under `torque` and returns that step's reward.
    fn physics_step(&mut self, torque: f64) -> f64 {
        let s = &mut self.state;
        let accel = GRAVITY / LENGTH * s.theta.sin() + torque / (MASS * LENGTH * LENGTH);
        s.theta_dot += DT * accel;
        s.theta = wrap_angle(s.theta + DT * s.theta_dot);
        (1.0 + s.theta.cos()) / 2.0
    }
}

impl Env for Pendulum {
    fn name(&self) -> &str {
        &self.name
    }

    fn action_spec(&self) -> &ActionSpec {
        &self.action_spec
    }

    fn obs_spec(&self) -> ObsSpec {
        match self.obs_kind {
            ObsKind::State => ObsSpec::State { dim: 3 },
            ObsKind::Pixels => ObsSpec::Pixels { height: self.image_size, width: self.image_size },
        }
    }

    fn action_repeat(&self) -> usize {
        self.repeat
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<Obs> {
        if let Some(seed) = seed {
            self.rng = ChaCha8Rng::seed_from_u64(seed);
        }
        let theta = PI + self.rng.random_range(-INIT_NOISE..=INIT_NOISE);
        let theta_dot = self.rng.random_range(-INIT_NOISE..=INIT_NOISE);
        self.state = PendulumState { theta: wrap_angle(theta), theta_dot };
        self.elapsed = Some(0);
        Ok(self.observe())
    }

    fn step(&mut self, action: &[f32]) -> Result<Step> {
        let elapsed = self.elapsed.ok_or(Error::NotReset)?;
        if elapsed >= self.episode_steps {
            return Err(Error::EpisodeOver);
        }
        let action = self.action_spec.clip(action)?;
        let torque = MAX_TORQUE * f64::from(action[0]);
        let n = self.repeat.min(self.episode_steps - elapsed);
        let mut reward = 0.0;
        for _ in 0..n {
            reward += self.physics_step(torque);
        }
        self.elapsed = Some(elapsed + n);
        Ok(Step {
            obs: self.observe(),
            reward,
            terminated: false,
            truncated: elapsed + n == self.episode_steps,
        })
    }

    fn render(&mut self, height: usize, width: usize) -> Result<Frame> {
        Ok(draw(self.state.theta, height, width))
    }
}

/// Maps an angle into `[-π, π)`, so `θ` stays bounded however many turns the pendulum makes.
fn wrap_angle(theta: f64) -> f64 {
    (theta + PI).rem_euclid(TAU) - PI
}

const BACKGROUND: [f64; 3] = [30.0, 34.0, 48.0];
const ROD: [f64; 3] = [225.0, 190.0, 90.0];
const BOB: [f64; 3] = [220.0, 70.0, 60.0];

/// Rasterises the pendulum at angle `theta` into a `height × width` RGB frame.
///
/// Sizes are fractions of the shorter side so any resolution shows the same picture. Shapes
/// are anti-aliased by treating a pixel as covered by `0.5 - d` of a shape whose signed
/// distance from the pixel centre is `d` (in pixels), which keeps thin rods visible at 64×64.
fn draw(theta: f64, height: usize, width: usize) -> Frame {
    let side = height.min(width) as f64;
    let pivot = [width as f64 / 2.0, height as f64 / 2.0];
    let rod_len = 0.36 * side;
    let tip = [pivot[0] + rod_len * theta.sin(), pivot[1] - rod_len * theta.cos()];
    let rod_half_width = (0.035 * side).max(0.75);
    let bob_radius = (0.09 * side).max(1.5);
    let coverage = |d: f64| (0.5 - d).clamp(0.0, 1.0);
    let mut data = Vec::with_capacity(height * width * 3);
    for y in 0..height {
        for x in 0..width {
            let p = [x as f64 + 0.5, y as f64 + 0.5];
            let mut colour = BACKGROUND;
            let rod = coverage(segment_distance(p, pivot, tip) - rod_half_width);
            let bob = coverage(((p[0] - tip[0]).hypot(p[1] - tip[1])) - bob_radius);
            for (shape, alpha) in [(ROD, rod), (BOB, bob)] {
                for (c, s) in colour.iter_mut().zip(shape) {
                    *c += alpha * (s - *c);
                }
            }
            data.extend(colour.iter().map(|c| c.round() as u8));
        }
    }
    Frame { height, width, data }
}

/// Distance from `p` to the segment `a`–`b`.
fn segment_distance(p: [f64; 2], a: [f64; 2], b: [f64; 2]) -> f64 {
    let ab = [b[0] - a[0], b[1] - a[1]];
    let ap = [p[0] - a[0], p[1] - a[1]];
    let len2 = ab[0] * ab[0] + ab[1] * ab[1];
    let t = if len2 > 0.0 { ((ap[0] * ab[0] + ap[1] * ab[1]) / len2).clamp(0.0, 1.0) } else { 0.0 };
    (ap[0] - t * ab[0]).hypot(ap[1] - t * ab[1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decisions_per_episode;

    fn env(obs: ObsKind, action_repeat: Option<usize>) -> Pendulum {
        let cfg = EnvConfig { task: TASKS[0].into(), obs, action_repeat, ..EnvConfig::default() };
        make(&TaskName::parse(TASKS[0]).unwrap(), &cfg).unwrap()
    }

    /// Runs one seeded episode and returns its return.
    fn episode(env: &mut Pendulum, seed: u64, mut policy: impl FnMut(PendulumState) -> f32) -> f64 {
        env.reset(Some(seed)).unwrap();
        let mut total = 0.0;
        loop {
            let step = env.step(&[policy(env.state())]).unwrap();
            total += step.reward;
            if step.done() {
                return total;
            }
        }
    }

    #[test]
    fn native_policy_swings_up_and_random_does_not() {
        // Measured (seeds 0, 1, 2): the policy earns 823.5, 822.1, 820.1 (upright after about
        // 2.5 s of pumping, out of 1000); uniform random actions earn 16.6, 4.0, 14.9.
        let mut e = env(ObsKind::State, None);
        assert_eq!(e.action_repeat(), 2);
        let mut noise = ChaCha8Rng::seed_from_u64(7);
        for seed in 0..3 {
            let good = episode(&mut e, seed, |s| swingup_policy(s.theta, s.theta_dot));
            let random = episode(&mut e, seed, |_| noise.random_range(-1.0..=1.0));
            assert!(good > 750.0, "policy return {good}");
            assert!(random < 100.0, "random return {random}");
            assert!(e.state().theta.abs() < PI, "wrapped angle");
        }
    }

    #[test]
    fn native_seeds_are_reproducible() {
        let mut e = env(ObsKind::State, None);
        let trace = |e: &mut Pendulum, seed| {
            let mut out = vec![(e.reset(Some(seed)).unwrap(), 0.0)];
            for i in 0..50 {
                let step = e.step(&[(i as f32 * 0.3).sin()]).unwrap();
                out.push((step.obs, step.reward));
            }
            out
        };
        let first = trace(&mut e, 11);
        assert_eq!(first, trace(&mut e, 11));
        assert_ne!(first[0].0, trace(&mut e, 12)[0].0);
        // `None` continues the stream: a second reset differs from the first, reproducibly.
        let a = (e.reset(Some(5)).unwrap(), e.reset(None).unwrap());
        let b = (e.reset(Some(5)).unwrap(), e.reset(None).unwrap());
        assert_eq!(a, b);
        assert_ne!(a.0, a.1);
    }

    #[test]
    fn native_action_repeat_sums_rewards() {
        // 3 does not divide 1000, so the last decision covers a single simulator step.
        let (mut coarse, mut fine) = (env(ObsKind::State, Some(3)), env(ObsKind::State, Some(1)));
        assert_eq!(coarse.reset(Some(4)).unwrap(), fine.reset(Some(4)).unwrap());
        let mut decisions = 0;
        let mut sim_steps = 0;
        loop {
            let a = [swingup_policy(coarse.state().theta, coarse.state().theta_dot)];
            let step = coarse.step(&a).unwrap();
            decisions += 1;
            let n = 3.min(1000 - sim_steps);
            let mut sum = 0.0;
            for _ in 0..n {
                let s = fine.step(&a).unwrap();
                assert!(!s.terminated);
                sum += s.reward;
            }
            sim_steps += n;
            assert_eq!(step.reward, sum, "decision {decisions}");
            assert_eq!(coarse.state(), fine.state());
            assert!(!step.terminated);
            assert_eq!(step.truncated, sim_steps == 1000, "decision {decisions}");
            if step.done() {
                break;
            }
        }
        assert_eq!(decisions, decisions_per_episode(1000, 3));
        assert_eq!(decisions, 334);
    }

    #[test]
    fn native_pixels_follow_the_angle() {
        let mut e = env(ObsKind::Pixels, None);
        assert_eq!(e.obs_spec().shape(), vec![64, 64, 3]);
        let obs = e.reset(Some(1)).unwrap();
        let down = obs.frame().unwrap().clone();
        assert_eq!((down.height, down.width, down.data.len()), (64, 64, 64 * 64 * 3));
        while e.state().theta.cos() < 0.9 {
            let a = [swingup_policy(e.state().theta, e.state().theta_dot)];
            let step = e.step(&a).unwrap();
            assert!(!step.done(), "policy never reached the top");
        }
        let up = e.step(&[0.0]).unwrap().obs.frame().unwrap().clone();
        let changed = down.data.chunks(3).zip(up.data.chunks(3)).filter(|(a, b)| a != b).count();
        assert!(changed > 200, "only {changed} pixels changed between hanging and upright");
        let video = e.render(48, 80).unwrap();
        assert_eq!((video.height, video.width, video.data.len()), (48, 80, 48 * 80 * 3));
        assert!(video.data.chunks(3).any(|px| px != [30, 34, 48]), "frame is all background");
    }

    #[test]
    fn native_rejects_bad_input() {
        let mut e = env(ObsKind::State, Some(8));
        assert!(matches!(e.step(&[0.0]), Err(Error::NotReset)));
        e.reset(Some(0)).unwrap();
        assert!(matches!(e.step(&[0.0, 0.0]), Err(Error::ActionDim { expected: 1, got: 2 })));
        assert!(matches!(e.step(&[f32::NAN]), Err(Error::NonFiniteAction { index: 0, .. })));
        // Rejected actions do not advance the episode; out-of-bounds ones are clipped.
        let clipped = e.step(&[5.0]).unwrap();
        e.reset(Some(0)).unwrap();
        assert_eq!(clipped, e.step(&[1.0]).unwrap());
        for _ in 1..decisions_per_episode(1000, 8) {
            e.step(&[0.0]).unwrap();
        }
        assert!(matches!(e.step(&[0.0]), Err(Error::EpisodeOver)));
        let other = TaskName::parse("native_pendulum-balance").unwrap();
        match make(&other, &EnvConfig::default()) {
            Err(Error::UnknownTask { hint, .. }) => assert!(hint.contains(TASKS[0]), "{hint}"),
            other => panic!("expected UnknownTask, got {other:?}"),
        }
    }

    #[test]
    fn native_task_is_reachable_from_make_env() {
        let cfg = EnvConfig { task: TASKS[0].into(), ..EnvConfig::default() };
        let e = crate::make_env(&cfg).unwrap();
        assert_eq!(e.name(), TASKS[0]);
        assert_eq!(e.obs_spec(), ObsSpec::Pixels { height: 64, width: 64 });
    }
}
