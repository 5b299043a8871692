//! Model predictive path integral control (Williams et al. 2017), the paper's other
//! gradient-free baseline (sec. 4).
//!
//! Each of I rounds samples J sequences around a mean μ with noise σ, clamps them to the
//! action box, and moves μ to their return-weighted average with `w_j ∝ exp((R_j − max R)/λ)`
//! (eq. 3 returns, temperature λ). Unlike CEM every sample counts, in proportion to its
//! weight. The first action of the final mean is returned.

use crate::cem::{evaluate, Gaussian};
use crate::{
    check_sizes, finish, positive, shift_sequence, Bounds, Counts, LatentDynamics, Objective, Plan, Planner,
    Result,
};
use tch::Tensor;

/// Settings of [`Mppi`].
#[derive(Debug, Clone, PartialEq)]
pub struct MppiConfig {
    /// H, planning horizon. Default 12, as the other planners.
    pub horizon: i64,
    /// I, rounds. Default 10, as CEM, so that the two cost the same.
    pub iterations: usize,
    /// J, samples per round. Default 1000, as CEM.
    pub candidates: i64,
    /// σ₀, the initial sampling noise around μ₀ = 0. Default 1, as CEM's σ₀.
    pub init_std: f64,
    /// λ, temperature, in units of return. Default 1: a sample one planning step of full DMC
    /// reward (1 per environment step) ahead weighs e times more. Too small and the weights
    /// collapse onto the single best sample, σ refits to ~0 and the search stalls; too large
    /// and all samples weigh the same and μ barely moves. On the LQ test problem (R* ≈ −2.5),
    /// λ = 0.3–1 ends within 1% of R* and λ ≤ 0.1 ends 4–100% below it. Scale it with the
    /// task's reward, like Grad-MPC's α.
    pub temperature: f64,
    /// Refit σ to the weighted spread of the samples each round, so MPPI narrows its search as
    /// CEM does. Default on: with σ fixed at 1 on a [−1, 1] box μ stays a noisy average of
    /// mostly clamped samples (on the LQ test: gap 1–2% of R* without, 0.6% with).
    pub refit_std: bool,
    /// Start μ at the previous call's mean, shifted by one step. Default off.
    pub warm_start: bool,
    /// γ and the terminal value of eq. 3. Default: undiscounted rewards.
    pub objective: Objective,
}

impl Default for MppiConfig {
    fn default() -> Self {
        MppiConfig {
            horizon: 12,
            iterations: 10,
            candidates: 1000,
            init_std: 1.0,
            temperature: 1.0,
            refit_std: true,
            warm_start: false,
            objective: Objective::default(),
        }
    }
}

impl MppiConfig {
    pub fn init(&self) -> Mppi {
        Mppi { config: self.clone(), previous: None }
    }

    pub fn validate(&self) -> Result<()> {
        let name = "MPPI";
        check_sizes(name, self.horizon, self.candidates, 1)?;
        positive(name, "init_std σ₀", self.init_std, false)?;
        positive(name, "temperature λ", self.temperature, false)
    }
}

/// The MPPI planner.
#[derive(Debug)]
pub struct Mppi {
    config: MppiConfig,
    /// Warm-start state: the last call's final mean, `[H, A]`; `None` at an episode start and
    /// always when `warm_start` is off.
    pub previous: Option<Tensor>,
}

impl Mppi {
    pub fn config(&self) -> &MppiConfig {
        &self.config
    }
}

impl<D: LatentDynamics> Planner<D> for Mppi {
    fn plan(&mut self, dynamics: &D, state: &D::State) -> Result<Plan> {
        let c = &self.config;
        c.validate()?;
        let bounds = Bounds::of(dynamics)?;
        c.objective.check(dynamics, state)?;
        let (sequence, ret, counts) = tch::no_grad(|| {
            let mut counts = Counts::default();
            let mut belief = Gaussian::new(c.horizon, bounds.dim(), c.init_std, bounds.options());
            let previous =
                self.previous.as_ref().filter(|p| c.warm_start && p.size() == [c.horizon, bounds.dim()]);
            if let Some(previous) = previous {
                belief.mean = shift_sequence(previous).unsqueeze(1);
            }
            for _ in 0..c.iterations {
                let samples = belief.sample(c.candidates, &bounds);
                let returns = c.objective.returns(dynamics, state, &samples);
                counts.rollout(&samples);
                counts.iterations += 1;
                // softmax subtracts max R itself, so large returns cannot overflow exp.
                let weights = (returns / c.temperature).softmax(0, None).view([1, -1, 1]); // [1, J, 1]
                let mean = (&samples * &weights).sum_dim_intlist(1, true, None); // [H, 1, A]
                if c.refit_std {
                    belief.std =
                        ((&samples - &mean).square() * &weights).sum_dim_intlist(1, true, None).sqrt();
                }
                belief.mean = mean;
            }
            let sequence = bounds.clamp(&belief.mean.squeeze_dim(1));
            let ret = evaluate(dynamics, state, &sequence, c.objective, &mut counts);
            (sequence, ret, counts)
        });
        if c.warm_start {
            self.previous = Some(sequence.shallow_clone());
        }
        finish(sequence, &ret, counts)
    }

    fn reset(&mut self) {
        self.previous = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::LinearQuadratic;
    use crate::tests::assert_near_optimum;
    use tch::Kind;

    #[test]
    fn mppi_reaches_the_lq_optimum() {
        let _rng = crate::tests::rng_lock();
        // Defaults (H = 12, I = 10, J = 1000, λ = 1, σ refit). MPPI is the loosest of the family
        // here: with σ refitted each round is a Gaussian posterior update N(μ, Σ)·exp(R/λ), so
        // on a quadratic the mean's error shrinks only like (Id + 2kM/λ)⁻¹ after k rounds,
        // harmonically rather than geometrically, and clamped samples add a bias; hence the wider
        // tolerances. Worst over seeds 0–9 (f32, the ignored `seed_scan` test): gap 1.1e-2 of
        // |R*|, first action off by 0.12.
        let lq = LinearQuadratic::example(Kind::Float);
        let x0 = LinearQuadratic::EXAMPLE_START;
        let optimum = lq.optimum(&x0, 12, Objective::default());
        tch::manual_seed(0);
        let plan = MppiConfig::default().init().plan(&lq, &lq.start(&x0)).unwrap();
        assert_near_optimum("MPPI", &lq, &x0, &plan, &optimum, 3e-2, 0.2);
        assert_eq!(plan.model_steps, 10 * 1000 * 12 + 12);
    }

    #[test]
    fn warm_start_centres_the_next_search_on_the_shifted_mean() {
        let _rng = crate::tests::rng_lock();
        let lq = LinearQuadratic::example(Kind::Float);
        let start = lq.start(&LinearQuadratic::EXAMPLE_START);
        let mut planner =
            MppiConfig { horizon: 5, candidates: 100, warm_start: true, ..Default::default() }.init();
        tch::manual_seed(0);
        let first = planner.plan(&lq, &start).unwrap();
        assert!(planner.previous.as_ref().unwrap().equal(&first.sequence));
        // With no rounds the mean is just the shifted previous mean.
        planner.config.iterations = 0;
        let second = planner.plan(&lq, &start).unwrap();
        assert!(second.sequence.equal(&shift_sequence(&first.sequence)));
        Planner::<LinearQuadratic>::reset(&mut planner);
        assert!(planner.previous.is_none());
    }
}
