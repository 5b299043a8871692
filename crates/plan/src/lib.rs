//! Planners over a learned world model, as compared in "Gradient-based Planning with World
//! Models" (S V, Jalagam, LeCun, Sobal 2023).
//!
//! Every planner maximises the paper's eq. 3 over an action sequence `a_{t:t+H}`:
//!
//! ```text
//! R(a) = Σ_{i=0}^{H-1} γ^i r(ŝ_{i+1}) + γ^H v(ŝ_H),   ŝ_0 = s_t,  ŝ_{i+1} = f(ŝ_i, a_i)
//! ```
//!
//! through [`rollout_return`], and sees the model only through [`LatentDynamics`]: it never
//! names the RSSM. The family:
//!
//! | planner | file | optimiser |
//! |---|---|---|
//! | [`Cem`] | `cem.rs` | PlaNet's cross-entropy method (appendix A.1) |
//! | random shooting | `cem.rs` | one CEM round, best sample ([`RandomShootingConfig`]) |
//! | [`GradMpc`] | `grad_mpc.rs` | Algorithm 1: gradient ascent on J candidates |
//! | [`Mppi`] | `mppi.rs` | model predictive path integral (Williams et al.) |
//! | [`GradCem`] | `grad_cem.rs` | CEM with gradient steps on the samples (Bharadhwaj et al. 2020) |
//! | [`PolicyPlanner`] | `policy.rs` | the actor's mean action (Dreamer's "pure policy") |
//! | [`PolicyGradMpc`] | `policy.rs` | §6's hybrid: the actor's plan refined by gradient ascent |
//!
//! All work in the dynamics' own kind and device (those of [`LatentDynamics::action_low`]),
//! batched over candidates, and draw randomness from tch's global generator, so
//! `tch::manual_seed` before `plan` makes the action reproducible.
//! That generator is process-wide: planning on several threads at once interleaves their
//! draws, and tests that seed it take a lock for that reason.
//!
//! # Shapes
//! Action sequences are time-major `[H, J, A]` (horizon, candidates, action dimension); a
//! planned sequence is `[H, A]`.

mod ascent;
mod cem;
mod grad_cem;
mod grad_mpc;
mod mppi;
mod policy;
mod settings;
#[cfg(any(test, feature = "testing"))]
pub mod study;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use cem::{Cem, CemConfig, CemOutput, RandomShootingConfig};
pub use grad_cem::{GradCem, GradCemConfig};
pub use grad_mpc::{GradMpc, GradMpcConfig, Selection};
pub use mppi::{Mppi, MppiConfig};
pub use policy::{PolicyGradMpc, PolicyGradMpcConfig, PolicyPlanner, PolicyPlannerConfig};

/// The planner vocabulary is the configuration's: one kind enum and one update rule for
/// the whole workspace.
pub use gradplan_config::{ActionOptimizer, PlannerKind};
use tch::{Device, Kind, Tensor};

/// Everything that can go wrong while planning.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid {planner} setting: {reason}")]
    Config { planner: &'static str, reason: String },
    #[error(
        "the dynamics' action bounds must be two [A] tensors with low <= high and A = {action_dim}; \
         got low {low:?} and high {high:?}"
    )]
    Bounds { action_dim: i64, low: Vec<i64>, high: Vec<i64> },
    #[error(
        "the objective asks for a terminal value γ^H v(s_H) but the dynamics has no value function; \
         set use_value = false"
    )]
    NoValue,
    #[error(
        "the objective penalises uncertain transitions (planner.uncertainty_penalty = {0}) but the dynamics \
         has no measure of uncertainty; fit one with `gradplan ensemble --run-dir <run>` (with `--measure` \
         set to planner.uncertainty_measure) or set the penalty to 0"
    )]
    NoUncertainty(f64),
    #[error(
        "the {0} planner needs a policy (an actor) but the dynamics has none; it needs a run trained \
         with planner.kind = policy or policy-grad-mpc (Dreamer)"
    )]
    NoPolicy(&'static str),
    #[error(
        "the planned action {action:?} is not finite; lower the action learning rate α or the initial std"
    )]
    NonFinite { action: Vec<f32> },
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

pub type Result<T> = std::result::Result<T, Error>;

/// What a planner sees of a world model: batched, differentiable latent dynamics.
pub trait LatentDynamics {
    /// Batched latent state; for the RSSM this will be a struct of belief h `[B, 200]` and
    /// stochastic state s `[B, 30]`.
    type State;
    fn action_dim(&self) -> i64;
    /// Per-dimension action bounds, each `[A]` (DMC: -1..1).
    fn action_low(&self) -> Tensor;
    fn action_high(&self) -> Tensor;
    /// The start state repeated for `n` candidates: `[1, ...] -> [n, ...]`.
    fn expand(&self, state: &Self::State, n: i64) -> Self::State;
    /// One imagined step s_{t+1} = f(s_t, a_t); `action` `[n, A]`. Differentiable in `action`.
    fn step(&self, state: &Self::State, action: &Tensor) -> Self::State;
    /// Predicted reward r(s_t) `[n]`.
    fn reward(&self, state: &Self::State) -> Tensor;
    /// Optional learned value v(s) `[n]` (Dreamer); None when the model has none.
    fn value(&self, _state: &Self::State) -> Option<Tensor> {
        None
    }
    /// Optional action prior: the mean action of a learned policy q_φ(a|s) `[n, A]`
    /// (Dreamer's actor), for the pure policy and the Policy+Grad-MPC hybrid; None when the
    /// model has none. A method with a default rather than a second trait, so that every
    /// planner stays generic over one bound and `PlannerConfig::init` serves them all.
    fn policy(&self, _state: &Self::State) -> Option<Tensor> {
        None
    }
    /// Optional doubt about the transition `s_{t+1} = f(s_t, a_t)`, `u(s_t, a_t) ≥ 0` `[n]`,
    /// in units where 1 is the edge of the model's training data (for the RSSM: an
    /// ensemble's relative disagreement, the action's distance from a behaviour prior over
    /// the replay's actions, or the state's from a density over the replay's states).
    /// Differentiable in `action`, directly or through `state`. None when the model carries
    /// no such measure.
    fn uncertainty(&self, _state: &Self::State, _action: &Tensor) -> Option<Tensor> {
        None
    }
}

/// A model predictive controller: re-plans from every new belief.
pub trait Planner<D: LatentDynamics> {
    /// Plans from `state` (`[1, ...]`, the current belief) and returns the first action to execute.
    fn plan(&mut self, dynamics: &D, state: &D::State) -> Result<Plan>;
    /// Forget warm-start state at an episode start.
    fn reset(&mut self) {}
}

/// The outcome of one planning call.
#[derive(Debug)]
pub struct Plan {
    /// a_t, the first action of [`Plan::sequence`], to execute now.
    pub action: Vec<f32>,
    /// R of [`Plan::sequence`] under the model (eq. 3), as last evaluated.
    pub predicted_return: f64,
    /// I, optimisation iterations run.
    pub iterations: usize,
    /// Candidate-steps the model was rolled forward (J·H per rollout), for compute accounting.
    pub model_steps: u64,
    /// Of those, candidate-steps also back-propagated through (gradient planners only); a
    /// backward step costs roughly two forward ones.
    pub backward_steps: u64,
    /// The planned sequence a_{t:t+H} (CEM/MPPI: the final mean; Grad-MPC: the best
    /// candidate), detached, in the dynamics' kind and device.
    ///
    /// # Shapes
    /// `[H, A]`
    pub sequence: Tensor,
}

/// The planning objective of eq. 3, shared by every planner's config, with an optional
/// penalty on transitions the model is unsure of:
///
/// ```text
/// R(a) = Σ_{i=0}^{H-1} γ^i [r(ŝ_{i+1}) − λ max(u(ŝ_i, a_i) − 1, 0)] (+ γ^H v(ŝ_H))
/// ```
///
/// where u is [`LatentDynamics::uncertainty`] (1 at the edge of the training data), so only
/// transitions beyond that edge cost anything and plans inside the data are ranked by the
/// model's return alone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Objective {
    /// γ, per-step discount. Default 1: Algorithm 1 and PlaNet sum predicted rewards undiscounted.
    pub discount: f64,
    /// Add the terminal value γ^H v(s_H) (the hybrid Policy+Grad-MPC planner). Default false.
    pub use_value: bool,
    /// λ, reward per step taken away per unit of uncertainty beyond the data's edge. Default
    /// 0 (the paper's objective); > 0 needs dynamics with an uncertainty.
    pub uncertainty_penalty: f64,
    /// σ_n, std of Gaussian noise added to the actions of every imagination that
    /// [`Objective::expected_returns`] and [`Objective::sampled_returns`] roll out (clamped
    /// to the action box): R is then the return expected under execution noise, a smoothed
    /// objective whose narrow peaks (plans the model over-rates only at one exact action)
    /// are averaged away. [`Objective::returns`] never perturbs. Default 0.
    pub action_noise: f64,
}

impl Default for Objective {
    fn default() -> Self {
        Objective { discount: 1.0, use_value: false, uncertainty_penalty: 0.0, action_noise: 0.0 }
    }
}

impl Objective {
    /// The paper's objective (no uncertainty penalty) with this discount and terminal value.
    pub fn new(discount: f64, use_value: bool) -> Objective {
        Objective { discount, use_value, uncertainty_penalty: 0.0, action_noise: 0.0 }
    }

    /// R of every candidate under this objective.
    ///
    /// # Shapes
    /// `state: [1, ...]` (expanded here to J), `actions: [H, J, A]` → `[J]`.
    pub fn returns<D: LatentDynamics>(&self, dynamics: &D, state: &D::State, actions: &Tensor) -> Tensor {
        rollout(dynamics, state, actions, self)
    }

    /// The mean of [`Objective::returns`] over `samples` (S) independent imaginations of every
    /// candidate: with a stochastic model (sampled imagined states) one rollout is one noisy
    /// draw of R, and a planner that takes the argmax over J single draws picks the luckiest
    /// noise rather than the best actions. S = 1 is exactly [`Objective::returns`].
    ///
    /// # Shapes
    /// `state: [1, ...]`, `actions: [H, J, A]` → `[J]`
    pub fn expected_returns<D: LatentDynamics>(
        &self,
        dynamics: &D,
        state: &D::State,
        actions: &Tensor,
        samples: i64,
    ) -> Tensor {
        if self.one_plain_rollout(samples) {
            return self.returns(dynamics, state, actions);
        }
        self.sampled_returns(dynamics, state, actions, samples).mean_dim(0, false, None)
    }

    /// R of every candidate in each of `samples` (S) independent imaginations.
    ///
    /// # Shapes
    /// `state: [1, ...]`, `actions: [H, J, A]` → `[S, J]`
    pub fn sampled_returns<D: LatentDynamics>(
        &self,
        dynamics: &D,
        state: &D::State,
        actions: &Tensor,
        samples: i64,
    ) -> Tensor {
        if self.one_plain_rollout(samples) {
            return self.returns(dynamics, state, actions).unsqueeze(0);
        }
        let (j, samples) = (actions.size()[1], samples.max(1));
        // [H, S·J, A]: copy s of candidate j sits at s·J + j.
        let mut repeated = actions.repeat([1, samples, 1]);
        if self.action_noise > 0.0 {
            let noise =
                Tensor::randn(repeated.size(), (repeated.kind(), repeated.device())) * self.action_noise;
            let (low, high) = (dynamics.action_low(), dynamics.action_high());
            repeated = (repeated + noise).clamp_tensor(Some(&low), Some(&high));
        }
        self.returns(dynamics, state, &repeated).view([samples, j])
    }

    /// S ≤ 1 imaginations without action noise: one unperturbed rollout, [`Objective::returns`].
    fn one_plain_rollout(&self, samples: i64) -> bool {
        samples <= 1 && self.action_noise == 0.0
    }

    /// Fails early, on the `[1, ...]` start state, when a value is asked of a model without one.
    fn check<D: LatentDynamics>(&self, dynamics: &D, state: &D::State) -> Result<()> {
        if self.use_value && tch::no_grad(|| dynamics.value(state)).is_none() {
            return Err(Error::NoValue);
        }
        if !(self.uncertainty_penalty.is_finite() && self.uncertainty_penalty >= 0.0) {
            return Err(config_error(
                "objective",
                format!("uncertainty_penalty λ must be finite and >= 0, got {}", self.uncertainty_penalty),
            ));
        }
        if !(self.action_noise.is_finite() && self.action_noise >= 0.0) {
            return Err(config_error(
                "objective",
                format!("action_noise σ_n must be finite and >= 0, got {}", self.action_noise),
            ));
        }
        if self.uncertainty_penalty > 0.0 {
            let low = dynamics.action_low();
            let probe = Tensor::zeros([1, dynamics.action_dim()], (low.kind(), low.device()));
            if tch::no_grad(|| dynamics.uncertainty(state, &probe)).is_none() {
                return Err(Error::NoUncertainty(self.uncertainty_penalty));
            }
        }
        Ok(())
    }
}

/// The return of every candidate action sequence, eq. 3:
/// `R_j = Σ_{t=0}^{H-1} γ^t r(s_{t+1}) (+ γ^H v(s_H) when `use_value` and the model has a value)`.
///
/// Differentiable in `actions` unless called under `tch::no_grad`. A model without a value
/// contributes no terminal term even when `use_value` is set; planners reject that
/// combination before they roll out ([`Error::NoValue`]).
///
/// # Shapes
/// `state: [1, ...]` (expanded here to J), `actions: [H, J, A]` → `[J]`.
pub fn rollout_return<D: LatentDynamics>(
    dynamics: &D,
    state: &D::State,
    actions: &Tensor,
    discount: f64,
    use_value: bool,
) -> Tensor {
    rollout(dynamics, state, actions, &Objective::new(discount, use_value))
}

/// [`rollout_return`] with the objective's uncertainty penalty ([`Objective`]); a dynamics
/// without an uncertainty pays none (planners refuse that combination before they roll
/// out, [`Error::NoUncertainty`]).
fn rollout<D: LatentDynamics>(
    dynamics: &D,
    state: &D::State,
    actions: &Tensor,
    objective: &Objective,
) -> Tensor {
    let size = actions.size();
    debug_assert!(size.len() == 3 && size[2] == dynamics.action_dim(), "actions {size:?}");
    let (horizon, candidates) = (size[0], size[1]);
    let (discount, use_value, penalty) =
        (objective.discount, objective.use_value, objective.uncertainty_penalty);
    let mut s = dynamics.expand(state, candidates);
    let mut discounted = Vec::with_capacity(horizon as usize); // H × [J]
    let mut weight = 1.0;
    for t in 0..horizon {
        let action = actions.get(t);
        let doubt = if penalty > 0.0 { dynamics.uncertainty(&s, &action) } else { None };
        s = dynamics.step(&s, &action);
        // Out of place: the reward may still be needed by the backward pass.
        let reward = match doubt {
            Some(u) => dynamics.reward(&s) - (u - 1.0).clamp_min(0.0) * penalty,
            None => dynamics.reward(&s),
        };
        discounted.push(reward * weight);
        weight *= discount;
    }
    let rewards = if discounted.is_empty() {
        Tensor::zeros([candidates], (actions.kind(), actions.device()))
    } else {
        Tensor::stack(&discounted, 0).sum_dim_intlist(0, false, None)
    };
    match use_value.then(|| dynamics.value(&s)).flatten() {
        Some(v) => rewards + v * weight,
        None => rewards,
    }
}

/// The dynamics' action box, checked once per `plan`.
pub(crate) struct Bounds {
    /// `[A]`
    low: Tensor,
    /// `[A]`
    high: Tensor,
}

impl Bounds {
    pub(crate) fn of<D: LatentDynamics>(dynamics: &D) -> Result<Bounds> {
        let (low, high, a) = (dynamics.action_low(), dynamics.action_high(), dynamics.action_dim());
        let ok = low.size() == [a] && high.size() == [a] && bool::try_from(low.le_tensor(&high).all())?;
        if !ok {
            return Err(Error::Bounds { action_dim: a, low: low.size(), high: high.size() });
        }
        Ok(Bounds { low, high })
    }

    /// Projects actions of any shape `[..., A]` onto the box.
    pub(crate) fn clamp(&self, actions: &Tensor) -> Tensor {
        actions.clamp_tensor(Some(&self.low), Some(&self.high))
    }

    /// The dynamics' kind and device, which every planner tensor follows.
    pub(crate) fn options(&self) -> (Kind, Device) {
        (self.low.kind(), self.low.device())
    }

    pub(crate) fn dim(&self) -> i64 {
        self.low.size()[0]
    }
}

/// Receding-horizon warm start: drops the executed first action and repeats the last one,
/// the plan's best guess for the step that has just come into the horizon.
///
/// # Shapes
/// `[H, A]` → `[H, A]`
pub fn shift_sequence(sequence: &Tensor) -> Tensor {
    let h = sequence.size()[0];
    if h <= 1 {
        return sequence.copy();
    }
    Tensor::cat(&[sequence.narrow(0, 1, h - 1), sequence.narrow(0, h - 1, 1)], 0)
}

/// Builds the [`Plan`] for a chosen `[H, A]` sequence, refusing a non-finite action.
pub(crate) fn finish(sequence: Tensor, predicted_return: &Tensor, counts: Counts) -> Result<Plan> {
    let sequence = sequence.detach();
    let action = Vec::<f32>::try_from(sequence.get(0).to_device(Device::Cpu))?;
    if action.iter().any(|a| !a.is_finite()) {
        return Err(Error::NonFinite { action });
    }
    Ok(Plan {
        action,
        predicted_return: predicted_return.double_value(&[]),
        iterations: counts.iterations,
        model_steps: counts.model_steps,
        backward_steps: counts.backward_steps,
        sequence,
    })
}

/// Work done by one `plan` call.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counts {
    pub iterations: usize,
    pub model_steps: u64,
    pub backward_steps: u64,
}

impl Counts {
    /// Records one forward rollout of `[H, J, A]` actions.
    pub(crate) fn rollout(&mut self, actions: &Tensor) {
        self.rollouts(actions, 1);
    }

    /// Records S forward rollouts of `[H, J, A]` actions ([`Objective::expected_returns`]).
    pub(crate) fn rollouts(&mut self, actions: &Tensor, samples: i64) {
        let size = actions.size();
        self.model_steps += (size[0] * size[1] * samples.max(1)) as u64;
    }
}

pub(crate) fn config_error(planner: &'static str, reason: String) -> Error {
    Error::Config { planner, reason }
}

/// H ≥ 1 and 1 ≤ K ≤ J.
pub(crate) fn check_sizes(planner: &'static str, horizon: i64, candidates: i64, top_k: i64) -> Result<()> {
    if horizon < 1 {
        return Err(config_error(planner, format!("horizon H must be >= 1, got {horizon}")));
    }
    if candidates < 1 {
        return Err(config_error(planner, format!("candidates J must be >= 1, got {candidates}")));
    }
    if top_k < 1 || top_k > candidates {
        return Err(config_error(planner, format!("top_k K must be in 1..=J ({candidates}), got {top_k}")));
    }
    Ok(())
}

/// Checks `value > 0` (or `>= 0` when `allow_zero`) for a config field.
pub(crate) fn positive(planner: &'static str, name: &str, value: f64, allow_zero: bool) -> Result<()> {
    let ok = if allow_zero { value >= 0.0 } else { value > 0.0 };
    if ok && value.is_finite() {
        Ok(())
    } else {
        let bound = if allow_zero { ">= 0" } else { "> 0" };
        Err(Error::Config { planner, reason: format!("{name} must be finite and {bound}, got {value}") })
    }
}

/// The settings of any one planner.
#[derive(Debug, Clone, PartialEq)]
pub enum PlannerConfig {
    Cem(CemConfig),
    RandomShooting(RandomShootingConfig),
    GradMpc(GradMpcConfig),
    Mppi(MppiConfig),
    GradCem(GradCemConfig),
    Policy(PolicyPlannerConfig),
    PolicyGradMpc(PolicyGradMpcConfig),
}

impl PlannerConfig {
    /// This planner with its own crate defaults (the paper's settings).
    pub fn defaults(kind: PlannerKind) -> PlannerConfig {
        match kind {
            PlannerKind::Cem => PlannerConfig::Cem(CemConfig::default()),
            PlannerKind::RandomShooting => PlannerConfig::RandomShooting(RandomShootingConfig::default()),
            PlannerKind::GradMpc => PlannerConfig::GradMpc(GradMpcConfig::default()),
            PlannerKind::Mppi => PlannerConfig::Mppi(MppiConfig::default()),
            PlannerKind::GradCem => PlannerConfig::GradCem(GradCemConfig::default()),
            PlannerKind::Policy => PlannerConfig::Policy(PolicyPlannerConfig::default()),
            PlannerKind::PolicyGradMpc => PlannerConfig::PolicyGradMpc(PolicyGradMpcConfig::default()),
        }
    }

    pub fn kind(&self) -> PlannerKind {
        match self {
            PlannerConfig::Cem(_) => PlannerKind::Cem,
            PlannerConfig::RandomShooting(_) => PlannerKind::RandomShooting,
            PlannerConfig::GradMpc(_) => PlannerKind::GradMpc,
            PlannerConfig::Mppi(_) => PlannerKind::Mppi,
            PlannerConfig::GradCem(_) => PlannerKind::GradCem,
            PlannerConfig::Policy(_) => PlannerKind::Policy,
            PlannerConfig::PolicyGradMpc(_) => PlannerKind::PolicyGradMpc,
        }
    }

    /// Checks every setting; `plan` checks again, so this is for failing before an episode.
    pub fn validate(&self) -> Result<()> {
        match self {
            PlannerConfig::Cem(c) => c.validate(),
            PlannerConfig::RandomShooting(c) => c.cem().validate(),
            PlannerConfig::GradMpc(c) => c.validate(),
            PlannerConfig::Mppi(c) => c.validate(),
            PlannerConfig::GradCem(c) => c.validate(),
            PlannerConfig::Policy(_) => Ok(()),
            PlannerConfig::PolicyGradMpc(c) => c.validate(),
        }
    }

    /// The planner, for any dynamics.
    pub fn init<D: LatentDynamics>(&self) -> Box<dyn Planner<D>> {
        match self {
            PlannerConfig::Cem(c) => Box::new(c.init()),
            PlannerConfig::RandomShooting(c) => Box::new(c.init()),
            PlannerConfig::GradMpc(c) => Box::new(c.init()),
            PlannerConfig::Mppi(c) => Box::new(c.init()),
            PlannerConfig::GradCem(c) => Box::new(c.init()),
            PlannerConfig::Policy(c) => Box::new(c.init()),
            PlannerConfig::PolicyGradMpc(c) => Box::new(c.init()),
        }
    }
}

#[cfg(test)]
mod tests;
