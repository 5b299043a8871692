//! Planners that start from a learned policy: Dreamer's actor alone ("Pure Policy") and the
//! seed paper's hybrid Policy+Grad-MPC (§6, Table 3; objective eq. 6 / eq. 3 with the
//! terminal value).
//!
//! Policy+Grad-MPC initialises the H-step sequence from the actor: its mean action at the
//! start state, then the actor's mean along the imagined rollout of those actions. J − 1
//! further candidates are that plan plus N(0, σ²) noise. All J are improved by I steps of
//! gradient ascent on `R = Σ_{i<H} γ^i r(ŝ_{i+1}) + γ^H v(ŝ_H)` (shared with Grad-MPC,
//! `ascent.rs`), clamped to the action box, and the first action of the best one by R is
//! returned — the untouched actor plan is scored with them, so the result is never worse
//! than the actor's own plan under the model's objective (as evaluated in that final pass).

use crate::ascent::{Ascent, AscentConfig};
use crate::{
    check_sizes, finish, positive, ActionOptimizer, Bounds, Counts, Error, LatentDynamics, Objective, Plan,
    Planner, Result,
};
use tch::Tensor;

/// The actor's first action, clamped to the box. `state: [1, …]` → `[A]`.
fn prior_action<D: LatentDynamics>(
    planner: &'static str,
    dynamics: &D,
    state: &D::State,
    bounds: &Bounds,
) -> Result<Tensor> {
    let mean = dynamics.policy(state).ok_or(Error::NoPolicy(planner))?;
    Ok(bounds.clamp(&mean.to_kind(bounds.options().0)))
}

/// Settings of the pure policy "planner".
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyPlannerConfig {
    /// γ of the reported predicted return `r(ŝ_1) + γ v(ŝ_1)` (the value term only when the
    /// dynamics has one), 0.99 (Dreamer's). It does not change the action.
    pub discount: f64,
}

impl Default for PolicyPlannerConfig {
    fn default() -> Self {
        PolicyPlannerConfig { discount: 0.99 }
    }
}

impl PolicyPlannerConfig {
    pub fn init(&self) -> PolicyPlanner {
        PolicyPlanner { config: self.clone() }
    }
}

/// Returns the actor's mean action; no optimisation.
#[derive(Debug)]
pub struct PolicyPlanner {
    config: PolicyPlannerConfig,
}

impl<D: LatentDynamics> Planner<D> for PolicyPlanner {
    fn plan(&mut self, dynamics: &D, state: &D::State) -> Result<Plan> {
        let bounds = Bounds::of(dynamics)?;
        tch::no_grad(|| {
            let action = prior_action("policy", dynamics, state, &bounds)?; // [1, A]
            let actions = action.unsqueeze(0); // [1, 1, A]
            let has_value = dynamics.value(state).is_some();
            let ret = crate::rollout_return(dynamics, state, &actions, self.config.discount, has_value);
            let mut counts = Counts::default();
            counts.rollout(&actions);
            finish(action, &ret.get(0), counts)
        })
    }
}

/// Settings of Policy+Grad-MPC.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyGradMpcConfig {
    /// H, 1 (Table 5).
    pub horizon: i64,
    /// J, candidates: the actor's plan and J − 1 noisy copies, 1 (Table 5).
    pub candidates: i64,
    /// I, gradient-ascent steps, 10 (our choice; the paper does not give it).
    pub iterations: usize,
    /// α, step size, 0.1 (Grad-MPC's, Table A.7).
    pub learning_rate: f64,
    pub optimizer: ActionOptimizer,
    /// Per-time-step gradient-norm clip; off by default.
    pub grad_clip_per_step: Option<f64>,
    /// σ of the noise on the extra candidates, 0.3 (Dreamer's exploration noise).
    pub noise: f64,
    /// γ = 0.99 (Dreamer's) and the terminal value on: the objective the value was
    /// trained for.
    pub objective: Objective,
}

impl Default for PolicyGradMpcConfig {
    fn default() -> Self {
        PolicyGradMpcConfig {
            horizon: 1,
            candidates: 1,
            iterations: 10,
            learning_rate: 0.1,
            optimizer: ActionOptimizer::Sgd,
            grad_clip_per_step: None,
            noise: 0.3,
            objective: Objective::new(0.99, true),
        }
    }
}

impl PolicyGradMpcConfig {
    pub fn init(&self) -> PolicyGradMpc {
        PolicyGradMpc { config: self.clone() }
    }

    pub fn validate(&self) -> Result<()> {
        let name = "Policy+Grad-MPC";
        check_sizes(name, self.horizon, self.candidates, 1)?;
        positive(name, "learning_rate α", self.learning_rate, true)?;
        positive(name, "noise σ", self.noise, true)?;
        positive(name, "discount γ", self.objective.discount, false)?;
        if let Some(c) = self.grad_clip_per_step {
            positive(name, "grad_clip_per_step", c, false)?;
        }
        Ok(())
    }
}

/// The hybrid planner (module docs).
#[derive(Debug)]
pub struct PolicyGradMpc {
    config: PolicyGradMpcConfig,
}

impl PolicyGradMpc {
    pub fn config(&self) -> &PolicyGradMpcConfig {
        &self.config
    }

    /// The actor's H-step plan from `state`: its mean at each imagined state.
    ///
    /// # Shapes
    /// `state: [1, …]` → `[H, 1, A]`
    pub fn actor_plan<D: LatentDynamics>(&self, dynamics: &D, state: &D::State) -> Result<Tensor> {
        let bounds = Bounds::of(dynamics)?;
        tch::no_grad(|| {
            let mut s = dynamics.expand(state, 1);
            let mut actions = Vec::with_capacity(self.config.horizon as usize);
            for t in 0..self.config.horizon {
                let a = prior_action("policy-grad-mpc", dynamics, &s, &bounds)?; // [1, A]
                if t + 1 < self.config.horizon {
                    s = dynamics.step(&s, &a);
                }
                actions.push(a);
            }
            Ok(Tensor::stack(&actions, 0))
        })
    }
}

impl<D: LatentDynamics> Planner<D> for PolicyGradMpc {
    fn plan(&mut self, dynamics: &D, state: &D::State) -> Result<Plan> {
        let c = &self.config;
        c.validate()?;
        let bounds = Bounds::of(dynamics)?;
        c.objective.check(dynamics, state)?;
        let mut counts = Counts::default();
        let prior = self.actor_plan(dynamics, state)?; // [H, 1, A]
        counts.model_steps += (c.horizon - 1) as u64;
        let mut actions = tch::no_grad(|| {
            let noise = Tensor::randn([c.horizon, c.candidates - 1, bounds.dim()], bounds.options());
            let copies = bounds.clamp(&(&prior + noise * c.noise));
            Tensor::cat(&[prior.shallow_clone(), copies], 1)
        });
        let mut ascent = Ascent::new(AscentConfig {
            learning_rate: c.learning_rate,
            optimizer: c.optimizer,
            grad_clip_per_step: c.grad_clip_per_step,
            objective: c.objective,
            samples: 1,
        });
        for _ in 0..c.iterations {
            actions = ascent.step(dynamics, state, &actions, &bounds, &mut counts);
            counts.iterations += 1;
        }
        // Score the final iterates together with the untouched actor plan (the last column),
        // so the result is never worse than the prior under the model's objective.
        let (sequence, ret) = tch::no_grad(|| {
            let all = Tensor::cat(&[&actions, &prior], 1); // [H, J + 1, A]
            let returns = c.objective.returns(dynamics, state, &all);
            counts.rollout(&all);
            let best = returns.argmax(0, false).int64_value(&[]);
            (all.select(1, best).copy(), returns.get(best))
        });
        finish(sequence, &ret, counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::LinearQuadratic;
    use tch::Kind;

    /// A stabilising prior (close to the LQ optimum's sign) and a deliberately bad one that
    /// pushes the state away.
    const GOOD: [f64; 6] = [-0.1, -0.2, -0.3, -0.1, 0.0, -0.6];
    const BAD: [f64; 6] = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0];

    fn lq(gain: &[f64]) -> LinearQuadratic {
        LinearQuadratic::example(Kind::Double).with_value(1.0).with_policy(gain)
    }

    fn plan(lq: &LinearQuadratic, config: &PolicyGradMpcConfig, seed: i64) -> (Plan, f64) {
        let start = lq.start(&LinearQuadratic::EXAMPLE_START);
        let mut planner = config.init();
        let prior = planner.actor_plan(lq, &start).unwrap();
        let prior_return = tch::no_grad(|| config.objective.returns(lq, &start, &prior)).double_value(&[0]);
        tch::manual_seed(seed);
        (planner.plan(lq, &start).unwrap(), prior_return)
    }

    #[test]
    fn never_worse_than_the_actor_plan() {
        let _rng = crate::tests::rng_lock();
        // A huge step overshoots, so the ascent's iterates are worse than the prior: the
        // prior must be what comes back.
        for (gain, lr) in [(GOOD, 0.05), (GOOD, 50.0), (BAD, 50.0)] {
            for j in [1, 4] {
                let config = PolicyGradMpcConfig {
                    horizon: 3,
                    candidates: j,
                    learning_rate: lr,
                    ..Default::default()
                };
                let (p, prior) = plan(&lq(&gain), &config, 0);
                assert!(
                    p.predicted_return >= prior - 1e-12,
                    "lr {lr}, J {j}: {} < {prior}",
                    p.predicted_return
                );
            }
        }
    }

    #[test]
    fn improves_a_bad_prior_towards_the_optimum() {
        let _rng = crate::tests::rng_lock();
        let lq = lq(&BAD);
        let config = PolicyGradMpcConfig { horizon: 4, iterations: 50, ..Default::default() };
        let (p, prior) = plan(&lq, &config, 0);
        let optimum = lq.optimum(&LinearQuadratic::EXAMPLE_START, 4, config.objective);
        assert!(
            p.predicted_return > prior + 0.1 * (optimum.ret - prior),
            "{} vs prior {prior}",
            p.predicted_return
        );
        assert!(p.predicted_return <= optimum.ret + 1e-9);
        // The model's reported return is that of the returned sequence.
        let seq = Vec::<f64>::try_from(p.sequence.flatten(0, -1)).unwrap();
        let simulated = lq.simulate_return(&LinearQuadratic::EXAMPLE_START, &seq, config.objective);
        assert!((simulated - p.predicted_return).abs() < 1e-9);
        assert_eq!(p.iterations, 50);
    }

    #[test]
    fn actions_stay_in_the_box_and_seeds_repeat() {
        let _rng = crate::tests::rng_lock();
        let lq =
            LinearQuadratic::example(Kind::Float).with_value(1.0).with_policy(&BAD).with_bounds(-0.2, 0.2);
        let config =
            PolicyGradMpcConfig { horizon: 3, candidates: 5, learning_rate: 5.0, ..Default::default() };
        let (a, _) = plan(&lq, &config, 3);
        let (b, _) = plan(&lq, &config, 3);
        assert_eq!(a.action, b.action);
        assert!(a.sequence.abs().max().double_value(&[]) <= 0.2 + 1e-7, "{}", a.sequence);
        // The pure policy clamps the actor's (here out-of-box) mean too.
        let start = lq.start(&LinearQuadratic::EXAMPLE_START);
        let pure = PolicyPlannerConfig::default().init().plan(&lq, &start).unwrap();
        assert_eq!(pure.action, vec![0.2f32, 0.2]);
    }

    #[test]
    fn the_pure_policy_returns_the_actor_mean_and_both_need_an_actor() {
        let lq = lq(&GOOD);
        let start = lq.start(&LinearQuadratic::EXAMPLE_START);
        let p = PolicyPlannerConfig::default().init().plan(&lq, &start).unwrap();
        let x = LinearQuadratic::EXAMPLE_START;
        let want = [
            GOOD[0] * x[0] + GOOD[1] * x[1] + GOOD[2] * x[2],
            GOOD[3] * x[0] + GOOD[4] * x[1] + GOOD[5] * x[2],
        ];
        for (a, w) in p.action.iter().zip(want) {
            assert!((*a as f64 - w).abs() < 1e-6, "{:?} vs {want:?}", p.action);
        }
        let plain = LinearQuadratic::example(Kind::Double).with_value(1.0);
        let err = PolicyPlannerConfig::default().init().plan(&plain, &start).unwrap_err();
        assert!(matches!(err, Error::NoPolicy(_)), "{err}");
        let err = PolicyGradMpcConfig::default().init().plan(&plain, &start).unwrap_err();
        assert!(matches!(err, Error::NoPolicy(_)), "{err}");
        let no_value = LinearQuadratic::example(Kind::Double).with_policy(&GOOD);
        let err = PolicyGradMpcConfig::default().init().plan(&no_value, &start).unwrap_err();
        assert!(matches!(err, Error::NoValue), "{err}");
    }
}
