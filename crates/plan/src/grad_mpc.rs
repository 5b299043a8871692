//! Grad-MPC, the paper's Algorithm 1 ("Planning with Grad-MPC"), and the settings that make
//! it robust on a learned model.
//!
//! Algorithm 1 ([`GradMpcConfig::paper`]): J candidate sequences `a_{t:t+H} ~ N(0, I)`
//! (line 2), clamped to the action box, are improved together for I iterations by gradient
//! ascent on their predicted returns R^(j) through the model (lines 3–9); the first action of
//! the best candidate by R is returned (lines 10–11). Line 7 prints `a ← a − ∇R`; the text
//! (and maximising a reward) means ascent. Appendix A.7: H = 12, I = 40, J = 1000, α = 0.1.
//!
//! Beyond the paper, each a setting (off in the paper flavour):
//! - receding-horizon warm start: the previous plan, shifted, and noisy copies of it start
//!   the next ascent, so iterations accumulate across decisions;
//! - a forward-only screen of P random sequences whose best become the starting candidates
//!   (gradient ascent is local: it polishes the starts it is given), optionally N rounds of
//!   CEM so that the starts of a many-dimensional action space are good ones;
//! - R as the mean over S imaginations ([`Objective::expected_returns`]), so the ascent and
//!   the selection see the expected return rather than one noisy draw;
//! - selection by the mean of the K best optimised candidates instead of the single argmax;
//! - a trust region: each candidate's ascent stays within κ·σ of where it started, σ the
//!   per-coordinate spread of the Gaussian the starts were drawn from, so that the gradient
//!   polishes a start inside the region the screen (and so the model's data) supports rather
//!   than carrying it to actions the model over-rates;
//! - selection by a lower confidence bound `mean − β·std` over the S imaginations.

use crate::ascent::{Ascent, AscentConfig};
use crate::cem::{Elites, Gaussian};
use crate::{
    check_sizes, config_error, finish, positive, shift_sequence, ActionOptimizer, Bounds, Counts,
    LatentDynamics, Objective, Plan, Planner, Result,
};
use tch::Tensor;

/// How [`GradMpc`] picks the sequence it returns from the optimised candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// The candidate with the highest R (Algorithm 1, lines 10–11).
    Best,
    /// The mean of the K candidates with the highest R, clamped, then scored: CEM's elite
    /// averaging, which trades a little model return for plans that do not hinge on one
    /// candidate's (possibly exploited) prediction.
    EliteMean {
        /// K, candidates averaged.
        top_k: i64,
    },
}

/// Settings of [`GradMpc`]; the defaults are the paper's (Algorithm 1, appendix A.7).
#[derive(Debug, Clone, PartialEq)]
pub struct GradMpcConfig {
    /// H, planning horizon. Default 12.
    pub horizon: i64,
    /// I, gradient iterations. Default 40 (A.7 "optimisation-iters").
    pub iterations: usize,
    /// J, candidates optimised in parallel. Default 1000.
    pub candidates: i64,
    /// α, action learning rate. Default 0.1; the paper used 0.1, 0.01, 0.005 or 0.0001 per task.
    pub learning_rate: f64,
    /// The update rule on the actions. Default plain gradient ascent (Algorithm 1).
    pub optimizer: ActionOptimizer,
    /// Clip the gradient norm of each time step's action vector, per candidate. Default off.
    pub grad_clip_per_step: Option<f64>,
    /// σ₀, standard deviation of the initial candidates (before clamping). Default 1 (line 2).
    pub init_std: f64,
    /// Seed candidate 0 with the previous call's returned sequence, shifted by one step.
    /// Default off.
    pub warm_start: bool,
    /// With `warm_start`, this many further candidates are noisy copies of the shifted plan.
    /// Default 0.
    pub warm_start_copies: i64,
    /// σ_w, the noise on those copies, in action units. Default 0.1.
    pub warm_start_noise: f64,
    /// P, random sequences from N(0, σ₀²) scored forward-only (no gradient) before the
    /// ascent; the best of them fill the candidates that warm starts leave. 0 (default): the
    /// random candidates are J fresh draws, as Algorithm 1. Must be 0 or ≥ J.
    pub presample: i64,
    /// N, rounds of the screen: with N > 1 the screen is a short CEM (crate::cem): each
    /// round's P draws come from a diagonal Gaussian refitted to the K_s best of the round
    /// before, and the last round's best fill the candidates. Default 1 (one random screen).
    pub screen_rounds: usize,
    /// K_s, elites the screen's Gaussian is refitted to between rounds. Default 100 (CEM's K).
    pub screen_top_k: i64,
    /// S_r, imaginations R is averaged over in the rounds before the last: they only move the
    /// Gaussian, so one noisy rollout each is cheap enough; the last round, which picks the
    /// starts, uses S. Default 1.
    pub screen_round_samples: i64,
    /// S, imaginations each candidate's R is averaged over, in the screen's last round (its
    /// only one when N = 1), the ascent and the selection. Default 1 (one rollout, Algorithm 1).
    pub imagination_samples: i64,
    /// Which optimised candidate is returned. Default [`Selection::Best`].
    pub selection: Selection,
    /// κ, the trust region: after every ascent step each action is projected back to within
    /// κ·σ of its starting value, σ `[H, 1, A]` the standard deviation of the Gaussian the
    /// random starts were drawn from (the screen's last refit with N > 1 rounds, else σ₀;
    /// warm starts get the same σ). Default `None` (unbounded, Algorithm 1).
    pub trust_region: Option<f64>,
    /// β: rank the optimised candidates for the selection by the lower confidence bound
    /// `mean − β·std` of R over the S imaginations instead of the mean; needs S ≥ 2.
    /// Default `None`.
    pub selection_lcb: Option<f64>,
    /// γ and the terminal value of eq. 3. Default: undiscounted rewards.
    pub objective: Objective,
}

impl Default for GradMpcConfig {
    fn default() -> Self {
        GradMpcConfig::paper()
    }
}

impl GradMpcConfig {
    /// Algorithm 1 exactly, with appendix A.7's sizes.
    pub fn paper() -> Self {
        GradMpcConfig {
            horizon: 12,
            iterations: 40,
            candidates: 1000,
            learning_rate: 0.1,
            optimizer: ActionOptimizer::Sgd,
            grad_clip_per_step: None,
            init_std: 1.0,
            warm_start: false,
            warm_start_copies: 0,
            warm_start_noise: 0.1,
            presample: 0,
            screen_rounds: 1,
            screen_top_k: 100,
            screen_round_samples: 1,
            imagination_samples: 1,
            selection: Selection::Best,
            trust_region: None,
            selection_lcb: None,
            objective: Objective::default(),
        }
    }

    pub fn init(&self) -> GradMpc {
        GradMpc { config: self.clone(), previous: None }
    }

    pub fn validate(&self) -> Result<()> {
        let name = "Grad-MPC";
        check_sizes(name, self.horizon, self.candidates, 1)?;
        positive(name, "learning_rate α", self.learning_rate, true)?;
        positive(name, "init_std σ₀", self.init_std, true)?;
        positive(name, "warm_start_noise σ_w", self.warm_start_noise, true)?;
        if let Some(c) = self.grad_clip_per_step {
            positive(name, "grad_clip_per_step", c, false)?;
        }
        if let Some(k) = self.trust_region {
            positive(name, "trust_region κ", k, false)?;
        }
        if let Some(b) = self.selection_lcb {
            positive(name, "selection_lcb β", b, true)?;
            if self.imagination_samples < 2 {
                let reason = format!(
                    "selection_lcb needs a spread over imaginations: imagination_samples S >= 2, got {}",
                    self.imagination_samples
                );
                return Err(config_error(name, reason));
            }
        }
        if self.warm_start_copies < 0 || self.warm_start_copies >= self.candidates {
            let reason = format!("warm_start_copies must be in 0..J-1, got {}", self.warm_start_copies);
            return Err(config_error(name, reason));
        }
        if self.presample != 0 && self.presample < self.candidates {
            let reason =
                format!("presample P must be 0 (off) or >= J ({}), got {}", self.candidates, self.presample);
            return Err(config_error(name, reason));
        }
        if self.screen_rounds == 0 || (self.screen_rounds > 1 && self.presample == 0) {
            let reason = format!(
                "screen_rounds N must be at least 1, and more than 1 only with a screen (presample P > 0: \
                 planner.ascent_candidates below planner.candidates); got N {} with P {}",
                self.screen_rounds, self.presample
            );
            return Err(config_error(name, reason));
        }
        if self.screen_rounds > 1 && !(1..=self.presample).contains(&self.screen_top_k) {
            let reason =
                format!("screen_top_k K_s must be in 1..=P ({}), got {}", self.presample, self.screen_top_k);
            return Err(config_error(name, reason));
        }
        if self.screen_round_samples < 1 {
            let reason = format!("screen_round_samples S_r must be >= 1, got {}", self.screen_round_samples);
            return Err(config_error(name, reason));
        }
        if self.imagination_samples < 1 {
            let reason = format!("imagination_samples S must be >= 1, got {}", self.imagination_samples);
            return Err(config_error(name, reason));
        }
        if let Selection::EliteMean { top_k } = self.selection {
            if top_k < 1 || top_k > self.candidates {
                let reason = format!("selection top_k K must be in 1..=J ({}), got {top_k}", self.candidates);
                return Err(config_error(name, reason));
            }
        }
        Ok(())
    }

    fn ascent(&self) -> AscentConfig {
        AscentConfig {
            learning_rate: self.learning_rate,
            optimizer: self.optimizer,
            grad_clip_per_step: self.grad_clip_per_step,
            objective: self.objective,
            samples: self.imagination_samples,
        }
    }
}

/// The Grad-MPC planner.
#[derive(Debug)]
pub struct GradMpc {
    config: GradMpcConfig,
    /// Warm-start state: the sequence the last call returned, `[H, A]`; `None` at an
    /// episode start and always when `warm_start` is off.
    pub previous: Option<Tensor>,
}

impl GradMpc {
    pub fn config(&self) -> &GradMpcConfig {
        &self.config
    }

    /// The shifted previous plan and its noisy copies, when warm-starting and there is one.
    ///
    /// # Shapes
    /// → `[H, 1 + copies, A]`
    fn warm_starts(&self, bounds: &Bounds) -> Option<Tensor> {
        let c = &self.config;
        let previous =
            self.previous.as_ref().filter(|p| c.warm_start && p.size() == [c.horizon, bounds.dim()])?;
        let seed = shift_sequence(previous).unsqueeze(1); // [H, 1, A]
        let noise = Tensor::randn([c.horizon, c.warm_start_copies, bounds.dim()], bounds.options());
        let copies = bounds.clamp(&(&seed + noise * c.warm_start_noise));
        Some(Tensor::cat(&[seed, copies], 1))
    }

    /// The initial candidates: the warm starts (if any) first, then N(0, σ₀²) draws clamped
    /// to the box — with a screen (P > 0), the best of P such draws by R; with N > 1 screen
    /// rounds, the best of the last round's P draws from the refitted Gaussian.
    fn initial<D: LatentDynamics>(
        &self,
        dynamics: &D,
        state: &D::State,
        bounds: &Bounds,
        counts: &mut Counts,
    ) -> Starts {
        let c = &self.config;
        let warm = self.warm_starts(bounds);
        let fresh = c.candidates - warm.as_ref().map_or(0, |w| w.size()[1]);
        let Starts { actions, spread } = if c.presample > 0 {
            self.screen(dynamics, state, bounds, fresh, counts)
        } else {
            let belief = Gaussian::new(c.horizon, bounds.dim(), c.init_std, bounds.options());
            Starts { actions: belief.sample(fresh, bounds), spread: belief.std }
        };
        let actions = match warm {
            Some(w) => Tensor::cat(&[w, actions], 1),
            None => actions,
        };
        Starts { actions, spread }
    }

    /// The forward-only screen: N rounds of P draws, the Gaussian refitted to the K_s best by
    /// R over S_r imaginations between rounds (the first round is N(0, σ₀²)); the `keep` best
    /// draws of the last round by R over S imaginations, best first.
    fn screen<D: LatentDynamics>(
        &self,
        dynamics: &D,
        state: &D::State,
        bounds: &Bounds,
        keep: i64,
        counts: &mut Counts,
    ) -> Starts {
        let c = &self.config;
        let mut score = |draws: &Tensor, samples: i64| {
            counts.rollouts(draws, samples);
            c.objective.expected_returns(dynamics, state, draws, samples)
        };
        let mut belief = Gaussian::new(c.horizon, bounds.dim(), c.init_std, bounds.options());
        for _ in 1..c.screen_rounds {
            let draws = belief.sample(c.presample, bounds);
            let returns = score(&draws, c.screen_round_samples);
            belief = Elites::select(&draws, &returns, c.screen_top_k).fit();
        }
        let draws = belief.sample(c.presample, bounds);
        let (_, index) = score(&draws, c.imagination_samples).topk(keep, 0, true, true);
        Starts { actions: draws.index_select(1, &index), spread: belief.std }
    }
}

/// The candidates an ascent starts from, and the spread of the Gaussian they were drawn from.
struct Starts {
    /// `[H, J, A]`
    actions: Tensor,
    /// σ, `[H, 1, A]`
    spread: Tensor,
}

impl Starts {
    /// The trust region's projection: every action of `actions` moved to within κ·σ of its
    /// start. The starts lie in the action box, so the result does too.
    ///
    /// # Shapes
    /// `actions: [H, J, A]` → `[H, J, A]`
    fn project(&self, actions: &Tensor, kappa: f64) -> Tensor {
        let radius = &self.spread * kappa; // [H, 1, A]
        actions.clamp_tensor(Some(&self.actions - &radius), Some(&self.actions + radius))
    }
}

impl<D: LatentDynamics> Planner<D> for GradMpc {
    fn plan(&mut self, dynamics: &D, state: &D::State) -> Result<Plan> {
        self.config.validate()?;
        let bounds = Bounds::of(dynamics)?;
        let c = &self.config;
        c.objective.check(dynamics, state)?;
        let mut counts = Counts::default();
        let starts = tch::no_grad(|| self.initial(dynamics, state, &bounds, &mut counts));
        let mut actions = starts.actions.shallow_clone();
        let mut ascent = Ascent::new(c.ascent());
        for _ in 0..c.iterations {
            actions = ascent.step(dynamics, state, &actions, &bounds, &mut counts);
            if let Some(kappa) = c.trust_region {
                actions = tch::no_grad(|| starts.project(&actions, kappa));
            }
            counts.iterations += 1;
        }
        // Lines 10–11: score the final iterate (the last step's returns predate it).
        let (sequence, ret) = tch::no_grad(|| {
            let sampled = c.objective.sampled_returns(dynamics, state, &actions, c.imagination_samples);
            counts.rollouts(&actions, c.imagination_samples);
            let mean = sampled.mean_dim(0, false, None);
            let returns = match c.selection_lcb {
                Some(beta) => &mean - sampled.std_dim(0, true, false) * beta,
                None => mean.shallow_clone(),
            };
            match c.selection {
                Selection::Best => {
                    let best = returns.argmax(0, false).int64_value(&[]);
                    // A copy, so the kept plan does not pin all J candidates.
                    (actions.select(1, best).copy(), mean.get(best))
                }
                Selection::EliteMean { top_k } => {
                    let elites = Elites::select(&actions, &returns, top_k);
                    let sequence = bounds.clamp(&elites.fit().mean.squeeze_dim(1));
                    let one = sequence.unsqueeze(1); // [H, 1, A]
                    counts.rollouts(&one, c.imagination_samples);
                    let ret =
                        c.objective.expected_returns(dynamics, state, &one, c.imagination_samples).get(0);
                    (sequence, ret)
                }
            }
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

    /// Plans from the example's start with seed 0 and checks the plan against the optimum.
    fn run(config: &GradMpcConfig, rel_gap: f64, action_tol: f64) -> Plan {
        let _rng = crate::tests::rng_lock();
        let lq = LinearQuadratic::example(Kind::Float);
        let x0 = LinearQuadratic::EXAMPLE_START;
        let optimum = lq.optimum(&x0, config.horizon as usize, Objective::default());
        tch::manual_seed(0);
        let plan = config.init().plan(&lq, &lq.start(&x0)).unwrap();
        let name = format!("Grad-MPC {:?} clip {:?}", config.optimizer, config.grad_clip_per_step);
        assert_near_optimum(&name, &lq, &x0, &plan, &optimum, rel_gap, action_tol);
        plan
    }

    #[test]
    fn paper_defaults_reach_the_lq_optimum() {
        // H = 12, I = 40, J = 1000, α = 0.1, SGD. Worst over seeds 0–9 (f32, the ignored
        // `seed_scan` test): gap 1.3e-4 of |R*|, first action off by 6.4e-3.
        let plan = run(&GradMpcConfig::default(), 1e-3, 2e-2);
        assert_eq!(plan.iterations, 40);
        assert_eq!(plan.model_steps, 41 * 1000 * 12);
        assert_eq!(plan.backward_steps, 40 * 1000 * 12);
    }

    #[test]
    fn adam_and_per_step_clipping_also_reach_it() {
        // Adam's early steps are ~α per coordinate whatever the gradient; near the optimum
        // v̂ still remembers the large early gradients and the steps shrink, so it needs more
        // iterations than SGD here: I = 100 (J = 50, H = 8 to keep the test fast). Clipping each
        // step's gradient at 0.5 binds early (initial per-step gradients are ~1) and slows, but
        // does not bias, the ascent. Worst over seeds 0–9 (f32): Adam gap 1.1e-5, first action
        // off by 3.1e-3; clipped SGD (H = 12, J = 1000) gap 4.4e-4, first action off by 1.8e-2.
        let adam = GradMpcConfig {
            candidates: 50,
            horizon: 8,
            iterations: 100,
            optimizer: ActionOptimizer::Adam,
            ..Default::default()
        };
        run(&adam, 1e-4, 1e-2);
        run(&GradMpcConfig { grad_clip_per_step: Some(0.5), ..Default::default() }, 2e-3, 5e-2);
    }

    #[test]
    fn normalized_steps_reach_it_to_within_their_size() {
        // A normalized step has RMS α however close the optimum is, so at a fixed α the
        // iterates end within about α of a* rather than on it: α 0.01 over 200 steps from
        // the robust screen's starts, then the elite mean of the best 4.
        let normalized =
            GradMpcConfig { optimizer: ActionOptimizer::Normalized, learning_rate: 0.01, ..robust(200) };
        run(&normalized, 1e-3, 2e-2);
    }

    #[test]
    fn warm_start_seeds_candidate_zero_with_the_shifted_plan() {
        let _rng = crate::tests::rng_lock();
        let lq = LinearQuadratic::example(Kind::Double);
        let x0 = LinearQuadratic::EXAMPLE_START;
        let config = GradMpcConfig { horizon: 8, candidates: 50, warm_start: true, ..Default::default() };
        let mut planner = config.init();
        tch::manual_seed(0);
        let first = planner.plan(&lq, &lq.start(&x0)).unwrap();
        let stored = planner.previous.as_ref().expect("warm start keeps the plan");
        assert!(stored.equal(&first.sequence));

        // Execute a_0 and re-plan from x_1 with no iterations: the 49 fresh random candidates
        // lose to the shifted plan, which is returned unchanged.
        let a0 = Tensor::from_slice(&first.action).to_kind(Kind::Double).view([1, 2]);
        let x1 = lq.step(&lq.start(&x0), &a0);
        planner.config.iterations = 0;
        let second = planner.plan(&lq, &x1).unwrap();
        assert!(second.sequence.allclose(&shift_sequence(&first.sequence), 1e-12, 1e-12, false));
        // Its return is that of the shifted plan, and far better than a cold start's.
        let x1_vec = Vec::<f64>::try_from(x1.x.flatten(0, -1)).unwrap();
        let shifted = Vec::<f64>::try_from(shift_sequence(&first.sequence).flatten(0, -1)).unwrap();
        let want = lq.simulate_return(&x1_vec, &shifted, Objective::default());
        assert!((second.predicted_return - want).abs() < 1e-9, "{} vs {want}", second.predicted_return);
        let mut cold = GradMpcConfig { iterations: 0, ..config.clone() }.init();
        tch::manual_seed(0);
        let cold = cold.plan(&lq, &x1).unwrap();
        assert!(second.predicted_return > cold.predicted_return);

        // An episode start forgets it.
        Planner::<LinearQuadratic>::reset(&mut planner);
        assert!(planner.previous.is_none());
    }

    #[test]
    fn warm_start_copies_stay_near_the_shifted_plan() {
        let _rng = crate::tests::rng_lock();
        let lq = LinearQuadratic::example(Kind::Float);
        let start = lq.start(&LinearQuadratic::EXAMPLE_START);
        let config = GradMpcConfig {
            horizon: 6,
            candidates: 20,
            iterations: 2,
            warm_start: true,
            warm_start_copies: 5,
            ..Default::default()
        };
        let mut planner = config.init();
        tch::manual_seed(0);
        planner.plan(&lq, &start).unwrap();
        let bounds = Bounds::of(&lq).unwrap();
        let seeds = planner.initial(&lq, &start, &bounds, &mut Counts::default()).actions; // [H, J, A]
        let shifted = shift_sequence(planner.previous.as_ref().unwrap()).unsqueeze(1);
        let distance = (&seeds - &shifted).abs().amax([0, 2], false); // [J]
        let d = Vec::<f32>::try_from(distance).unwrap();
        assert_eq!(d[0], 0.0);
        // σ_w = 0.1: six-sigma over 12 values stays under 0.6; fresh N(0, 1) samples do not.
        assert!(d[1..6].iter().all(|&x| x > 0.0 && x < 0.6), "{d:?}");
        assert!(d[6..].iter().all(|&x| x > 0.3), "{d:?}");
    }

    #[test]
    fn the_trust_region_keeps_each_action_within_kappa_sigma_of_its_start() {
        let _rng = crate::tests::rng_lock();
        let lq = LinearQuadratic::example(Kind::Double);
        let x0 = LinearQuadratic::EXAMPLE_START;
        // One candidate, so the plan is the ascended start; σ₀ 0.5, κ 0.2: radius 0.1.
        let config = GradMpcConfig {
            horizon: 6,
            candidates: 1,
            iterations: 30,
            init_std: 0.5,
            trust_region: Some(0.2),
            ..Default::default()
        };
        let as_vec = |t: &Tensor| Vec::<f64>::try_from(t.flatten(0, -1)).unwrap();
        tch::manual_seed(4);
        let start =
            as_vec(&(Tensor::randn([6, 1, 2], (Kind::Double, tch::Device::Cpu)) * 0.5).clamp(-1.0, 1.0));
        let plan_with = |config: &GradMpcConfig| {
            tch::manual_seed(4);
            config.init().plan(&lq, &lq.start(&x0)).unwrap()
        };
        let bounded = as_vec(&plan_with(&config).sequence);
        let free = as_vec(&plan_with(&GradMpcConfig { trust_region: None, ..config.clone() }).sequence);
        let moved = |plan: &[f64]| plan.iter().zip(&start).map(|(a, s)| (a - s).abs()).fold(0.0, f64::max);
        // The region binds: the unbounded ascent goes further, the bounded one stops at 0.1 …
        assert!(moved(&free) > 0.3, "{free:?}");
        assert!((moved(&bounded) - 0.1).abs() < 1e-12, "{bounded:?} from {start:?}");
        // … having still climbed from its start.
        let r = |a: &[f64]| lq.simulate_return(&x0, a, Objective::default());
        assert!(r(&bounded) > r(&start), "{} vs {}", r(&bounded), r(&start));
        assert!(r(&free) > r(&bounded));
    }

    #[test]
    fn the_projection_uses_each_coordinates_spread() {
        let starts = Starts {
            actions: Tensor::from_slice(&[0.0f64, 0.5, 0.0, 0.5]).view([2, 1, 2]),
            spread: Tensor::from_slice(&[0.1f64, 0.2, 0.3, 0.0]).view([2, 1, 2]),
        };
        let actions = Tensor::from_slice(&[1.0f64, -1.0, 0.1, 0.9]).view([2, 1, 2]);
        let projected = Vec::<f64>::try_from(starts.project(&actions, 2.0).flatten(0, -1)).unwrap();
        let want = [0.2, 0.1, 0.1, 0.5];
        for (p, w) in projected.iter().zip(want) {
            assert!((p - w).abs() < 1e-12, "{projected:?}");
        }
    }

    /// A bandit whose reward is `a + 2|a|·ε` per step (ε ~ N(0, 1)) on one action in
    /// [−1, 1]: the mean prefers a = 1, the lower confidence bound small |a|.
    struct Risky;

    impl LatentDynamics for Risky {
        /// The last step's reward, `[n]`.
        type State = Tensor;
        fn action_dim(&self) -> i64 {
            1
        }
        fn action_low(&self) -> Tensor {
            Tensor::from_slice(&[-1.0f64])
        }
        fn action_high(&self) -> Tensor {
            Tensor::from_slice(&[1.0f64])
        }
        fn expand(&self, state: &Tensor, n: i64) -> Tensor {
            state.expand([n], false)
        }
        fn step(&self, _state: &Tensor, action: &Tensor) -> Tensor {
            let a = action.squeeze_dim(1);
            &a + a.abs() * a.randn_like() * 2.0
        }
        fn reward(&self, state: &Tensor) -> Tensor {
            state.shallow_clone()
        }
    }

    #[test]
    fn lcb_selection_prefers_what_the_imaginations_agree_on() {
        let _rng = crate::tests::rng_lock();
        let start = Tensor::zeros([1], (Kind::Double, tch::Device::Cpu));
        // One step, so a candidate is one action a: mean R = a, std 2|a|, and the lower
        // bound at β 2 is a − 4|a|, best at a = 0 (the mean is best at a = 1). S 64 keeps the
        // estimates close enough that no lucky draw of a large a beats it.
        let config = GradMpcConfig {
            horizon: 1,
            candidates: 300,
            iterations: 0,
            imagination_samples: 64,
            ..Default::default()
        };
        let chosen = |beta: Option<f64>| {
            tch::manual_seed(11);
            let plan =
                GradMpcConfig { selection_lcb: beta, ..config.clone() }.init().plan(&Risky, &start).unwrap();
            Vec::<f64>::try_from(plan.sequence.flatten(0, -1)).unwrap()
        };
        let (by_mean, by_lcb) = (chosen(None), chosen(Some(2.0)));
        assert!(by_mean[0] > 0.8, "{by_mean:?}");
        assert!(by_lcb[0].abs() < 0.2, "{by_lcb:?}");
        assert_eq!(chosen(Some(0.0)), by_mean);
        // One imagination has no spread: an error, not a silent fallback to the mean.
        let e = GradMpcConfig { selection_lcb: Some(1.0), ..Default::default() }.validate().unwrap_err();
        assert!(e.to_string().contains("selection_lcb"), "{e}");
    }

    /// The robust settings, sized for the LQ example.
    fn robust(iterations: usize) -> GradMpcConfig {
        GradMpcConfig {
            iterations,
            candidates: 16,
            presample: 500,
            optimizer: ActionOptimizer::Adam,
            learning_rate: 0.05,
            imagination_samples: 3,
            selection: Selection::EliteMean { top_k: 4 },
            warm_start: true,
            warm_start_copies: 4,
            ..GradMpcConfig::paper()
        }
    }

    #[test]
    fn robust_settings_reach_the_lq_optimum() {
        // Screen 500, refine the best 16 with 150 Adam steps (α 0.05), average the best 4.
        // Seed 0 (f32): gap 1.6e-6 of |R*|, first action off by 1.3e-3.
        let plan = run(&robust(150), 1e-4, 1e-2);
        assert_eq!(plan.iterations, 150);
        // Screen 500·3, 150 ascents and the final scoring of 16·3, then the elite mean ·3.
        assert_eq!(plan.model_steps, (500 * 3 + 151 * 16 * 3 + 3) * 12);
        assert_eq!(plan.backward_steps, 150 * 16 * 3 * 12);
    }

    #[test]
    fn the_screen_keeps_the_best_draws() {
        // No ascent, no warm start, the best candidate: the plan is the best of P = 400 draws,
        // drawn again here from the same seed.
        let _rng = crate::tests::rng_lock();
        let lq = LinearQuadratic::example(Kind::Double);
        let start = lq.start(&LinearQuadratic::EXAMPLE_START);
        let config = GradMpcConfig {
            horizon: 5,
            candidates: 8,
            iterations: 0,
            presample: 400,
            ..GradMpcConfig::paper()
        };
        tch::manual_seed(7);
        let plan = config.init().plan(&lq, &start).unwrap();
        tch::manual_seed(7);
        let draws = Tensor::randn([5, 400, 2], (Kind::Double, tch::Device::Cpu)).clamp(-1.0, 1.0);
        let best = Objective::default().returns(&lq, &start, &draws).max().double_value(&[]);
        assert!((plan.predicted_return - best).abs() < 1e-12, "{} vs {best}", plan.predicted_return);
        assert_eq!(plan.model_steps, (400 + 8) * 5);
    }

    #[test]
    fn screen_rounds_refit_the_screen_towards_the_optimum() {
        // No ascent, the best candidate: the plan is the best draw of the screen's last round.
        // N = 1 is the random screen; each further round (CEM, K_s = 40 of P = 400) moves the
        // draws towards the optimum, so the best of the last round is better and closer to a*.
        let _rng = crate::tests::rng_lock();
        let lq = LinearQuadratic::example(Kind::Double);
        let x0 = LinearQuadratic::EXAMPLE_START;
        let start = lq.start(&x0);
        let optimum = lq.optimum(&x0, 6, Objective::default());
        let plan_with = |rounds: usize| {
            let config = GradMpcConfig {
                horizon: 6,
                candidates: 8,
                iterations: 0,
                presample: 400,
                screen_rounds: rounds,
                screen_top_k: 40,
                ..GradMpcConfig::paper()
            };
            tch::manual_seed(3);
            config.init().plan(&lq, &start).unwrap()
        };
        let gaps: Vec<f64> = [1, 3, 6]
            .iter()
            .map(|&n| (optimum.ret - plan_with(n).predicted_return) / optimum.ret.abs())
            .collect();
        assert!(gaps[0] > 0.0 && gaps[1] < 0.5 * gaps[0] && gaps[2] < 0.5 * gaps[1], "{gaps:?}");
        // Each round scores P draws; the last keeps J of them, which are scored once more.
        assert_eq!(plan_with(3).model_steps, (3 * 400 + 8) * 6);
        // With S = 2, the refit rounds score one imagination per draw (S_r = 1) and the last
        // round, the final scoring of the J kept draws, two.
        let config = GradMpcConfig {
            horizon: 6,
            candidates: 8,
            iterations: 0,
            presample: 400,
            screen_rounds: 3,
            imagination_samples: 2,
            ..GradMpcConfig::paper()
        };
        let plan = config.init().plan(&lq, &start).unwrap();
        assert_eq!(plan.model_steps, (2 * 400 + 400 * 2 + 8 * 2) * 6);
        // Rounds need a screen to refit.
        let e = GradMpcConfig { screen_rounds: 2, ..GradMpcConfig::paper() }.validate().unwrap_err();
        assert!(e.to_string().contains("screen_rounds"), "{e}");
    }

    #[test]
    fn elite_mean_returns_the_mean_of_the_best_candidates() {
        let _rng = crate::tests::rng_lock();
        let lq = LinearQuadratic::example(Kind::Double);
        let start = lq.start(&LinearQuadratic::EXAMPLE_START);
        let config = GradMpcConfig {
            horizon: 4,
            candidates: 30,
            iterations: 0,
            selection: Selection::EliteMean { top_k: 5 },
            ..GradMpcConfig::paper()
        };
        tch::manual_seed(11);
        let plan = config.init().plan(&lq, &start).unwrap();
        tch::manual_seed(11);
        let draws = Tensor::randn([4, 30, 2], (Kind::Double, tch::Device::Cpu)).clamp(-1.0, 1.0);
        let returns = Objective::default().returns(&lq, &start, &draws);
        let (_, index) = returns.topk(5, 0, true, true);
        let mean = draws.index_select(1, &index).mean_dim(1, false, None);
        assert!(plan.sequence.allclose(&mean, 1e-12, 1e-12, false));
        // The reported return is the mean sequence's own.
        let seq = Vec::<f64>::try_from(mean.flatten(0, -1)).unwrap();
        let want = lq.simulate_return(&LinearQuadratic::EXAMPLE_START, &seq, Objective::default());
        assert!((plan.predicted_return - want).abs() < 1e-9);
    }

    #[test]
    fn expected_returns_average_over_imaginations() {
        // The LQ model is deterministic, so S copies average to the single rollout.
        let lq = LinearQuadratic::example(Kind::Double);
        let start = lq.start(&LinearQuadratic::EXAMPLE_START);
        let actions = Tensor::randn([6, 9, 2], (Kind::Double, tch::Device::Cpu)).clamp(-1.0, 1.0);
        let one = Objective::default().returns(&lq, &start, &actions);
        let four = Objective::default().expected_returns(&lq, &start, &actions, 4);
        assert_eq!(four.size(), [9]);
        assert!(one.allclose(&four, 1e-12, 1e-12, false));
    }

    #[test]
    fn new_settings_are_validated() {
        let p = GradMpcConfig::paper();
        assert!(GradMpcConfig { presample: 10, ..p.clone() }
            .validate()
            .unwrap_err()
            .to_string()
            .contains("presample"));
        assert!(GradMpcConfig { imagination_samples: 0, ..p.clone() }.validate().is_err());
        let k = GradMpcConfig { selection: Selection::EliteMean { top_k: 2000 }, ..p.clone() };
        assert!(k.validate().unwrap_err().to_string().contains("top_k"));
        assert!(robust(3).validate().is_ok());
    }
}
