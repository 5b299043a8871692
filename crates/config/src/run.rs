//! A run's whole configuration, its presets, and `--set key=value` overrides.

use crate::{invalid, positive, EnvConfig, Error, ModelConfig, OptimConfig, Result, MAX_LAYER_SIZE};
use serde::{Deserialize, Serialize};

/// Bounds that turn an impossible setting into an error naming its key before anything is
/// allocated or written (each far above what any published configuration uses).
const MAX_BATCH: usize = 65_536;
const MAX_LAYERS: usize = 64;
const MAX_DREAMER_HORIZON: usize = 10_000;

/// Which planner picks the actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum PlannerKind {
    /// Cross-entropy method, PlaNet's planner (the seed's A.1).
    #[default]
    Cem,
    /// Gradient ascent on the predicted return, the seed's Algorithm 1.
    GradMpc,
    /// Model predictive path integral control.
    Mppi,
    /// CEM with a gradient step on the samples each iteration (Bharadhwaj et al. 2020).
    GradCem,
    /// The best of J random sequences (CEM with I = 1).
    RandomShooting,
    /// Dreamer's actor alone: the mean action q_φ(a|s) (the paper's "Pure Policy"). Trains
    /// a Dreamer agent (actor and value on imagination) alongside the world model.
    Policy,
    /// The hybrid Policy+Grad-MPC (§6): the actor's plan refined by gradient ascent on
    /// Σγ^i r + γ^H v. Trains a Dreamer agent like `policy`.
    PolicyGradMpc,
}

impl PlannerKind {
    pub const ALL: [PlannerKind; 7] = [
        PlannerKind::Cem,
        PlannerKind::GradMpc,
        PlannerKind::Mppi,
        PlannerKind::GradCem,
        PlannerKind::RandomShooting,
        PlannerKind::Policy,
        PlannerKind::PolicyGradMpc,
    ];

    /// The planners that need only the model (reward and dynamics).
    pub const MODEL_ONLY: [PlannerKind; 5] = [
        PlannerKind::Cem,
        PlannerKind::RandomShooting,
        PlannerKind::GradMpc,
        PlannerKind::Mppi,
        PlannerKind::GradCem,
    ];
    /// The planners that also need Dreamer's actor (and, for the hybrid, its value).
    pub const WITH_POLICY: [PlannerKind; 2] = [PlannerKind::Policy, PlannerKind::PolicyGradMpc];

    /// Optimisation iterations I when the configuration leaves them open: Grad-MPC's default
    /// flavour's (the paper flavour has A.7's 40: [`PlannerConfig::iterations`] follows the
    /// configured flavour), PlaNet's 10 for the population methods, 1 for random shooting, 10
    /// ascent steps for Policy+Grad-MPC (our choice; the paper gives none), 0 for the pure
    /// policy.
    pub fn default_iterations(self) -> usize {
        match self {
            PlannerKind::GradMpc => GradMpcFlavour::default().defaults().iterations,
            PlannerKind::RandomShooting => 1,
            PlannerKind::Policy => 0,
            PlannerKind::PolicyGradMpc => 10,
            PlannerKind::Cem | PlannerKind::Mppi | PlannerKind::GradCem => 10,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PlannerKind::Cem => "cem",
            PlannerKind::GradMpc => "grad-mpc",
            PlannerKind::Mppi => "mppi",
            PlannerKind::GradCem => "grad-cem",
            PlannerKind::RandomShooting => "random-shooting",
            PlannerKind::Policy => "policy",
            PlannerKind::PolicyGradMpc => "policy-grad-mpc",
        }
    }

    /// One line for `--help`.
    pub fn summary(self) -> &'static str {
        match self {
            PlannerKind::Cem => "cross-entropy method, PlaNet's planner (the paper's A.1)",
            PlannerKind::GradMpc => {
                "gradient ascent on the predicted return (Algorithm 1; planner.flavour = robust | paper)"
            }
            PlannerKind::Mppi => "model predictive path integral control",
            PlannerKind::GradCem => "CEM with gradient steps on its samples (Bharadhwaj et al. 2020)",
            PlannerKind::RandomShooting => "the best of J random sequences",
            PlannerKind::Policy => "Dreamer's actor alone; trains a Dreamer agent",
            PlannerKind::PolicyGradMpc => {
                "the actor's plan refined by gradient ascent on the value (§6); trains a Dreamer agent"
            }
        }
    }

    /// Whether this planner needs Dreamer's actor and value, which the run then trains.
    pub fn uses_policy(self) -> bool {
        matches!(self, PlannerKind::Policy | PlannerKind::PolicyGradMpc)
    }
}

impl std::fmt::Display for PlannerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for PlannerKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        PlannerKind::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            let names: Vec<&str> = PlannerKind::ALL.iter().map(|k| k.name()).collect();
            invalid("planner.kind", &format!("`{s}` is not a planner; use one of {}", names.join(", ")))
        })
    }
}

/// Update rule for Grad-MPC's action sequences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ActionOptimizer {
    /// `a ← a + α ∇_a R`, as in Algorithm 1.
    #[default]
    Sgd,
    /// Adam on the actions (β₁ 0.9, β₂ 0.999). Its first steps are ≈ ±α in every coordinate
    /// whatever the gradient there: a sign step.
    Adam,
    /// `a ← a + α ∇_a R / rms(∇_a R)`, the RMS over each candidate's H × A gradient: a step
    /// of RMS size α in action units whatever the reward scale (like Adam's), shared among
    /// the coordinates in proportion to their gradients (unlike Adam's first steps).
    Normalized,
}

/// α of gradient ascent with plain SGD when unset: Algorithm 1's (appendix A.7).
pub const SGD_ACTION_LR: f64 = 0.1;

/// α of Grad-MPC with Adam when unset: Adam's step is about α in action units whatever the
/// gradient's scale, which SGD's is not (docs/decisions.md, #10, has the sweep).
pub const ADAM_ACTION_LR: f64 = 0.3;

/// Which Grad-MPC: Algorithm 1 as printed, or our robust variant (docs/decisions.md says
/// what each setting is and the measurement behind it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum GradMpcFlavour {
    /// A forward-only screen of N = 4 CEM rounds of J samples each (one imagination per
    /// sample before the last round), I = 2 Adam steps (α 0.3) on the best J_a = 16 of the
    /// last round, expected returns over S = 3 imaginations for the last round, the ascent and
    /// the selection, the mean of the K = 4 best as the plan.
    #[default]
    Robust,
    /// Algorithm 1 exactly, with appendix A.7's I = 40: J draws from N(0, I), plain gradient
    /// ascent, the argmax of one rollout each.
    Paper,
}

/// What `planner.uncertainty_penalty` measures a transition's distance from the data with;
/// each is fitted to a checkpoint by `gradplan ensemble --measure …` and lives beside its
/// weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum UncertaintyMeasure {
    /// The disagreement of K one-step predictors of the next state (`ensemble.safetensors`).
    #[default]
    Disagreement,
    /// The distance of the action from a Gaussian behaviour prior fitted to the replay's
    /// actions in each state (`behavior_prior.safetensors`).
    Behavior,
    /// The distance of the state a transition leaves from a Gaussian fitted to the model
    /// states the replay filters to (`state_density.safetensors`).
    Density,
}

impl UncertaintyMeasure {
    pub fn as_str(self) -> &'static str {
        match self {
            UncertaintyMeasure::Disagreement => "disagreement",
            UncertaintyMeasure::Behavior => "behavior",
            UncertaintyMeasure::Density => "density",
        }
    }
}

impl std::fmt::Display for UncertaintyMeasure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Grad-MPC settings a flavour fixes, unless the configuration sets them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradMpcDefaults {
    /// I
    pub iterations: usize,
    pub optimizer: ActionOptimizer,
    pub warm_start: bool,
    pub warm_start_copies: usize,
    /// σ_w
    pub warm_start_noise: f64,
    /// J_a; `None`: all J candidates are refined (no screen).
    pub ascent_candidates: Option<usize>,
    /// N, rounds of the forward-only screen (1: one random screen; more: a short CEM).
    pub screen_rounds: usize,
    /// S_r, imaginations of the screen's rounds before the last.
    pub screen_round_samples: usize,
    /// S
    pub imagination_samples: usize,
    /// K of the elite mean, 0: the best candidate.
    pub elite_mean: usize,
}

impl GradMpcFlavour {
    pub fn name(self) -> &'static str {
        match self {
            GradMpcFlavour::Robust => "robust",
            GradMpcFlavour::Paper => "paper",
        }
    }

    /// The flavour's settings.
    pub fn defaults(self) -> GradMpcDefaults {
        match self {
            GradMpcFlavour::Paper => GradMpcDefaults {
                iterations: 40,
                optimizer: ActionOptimizer::Sgd,
                warm_start: false,
                warm_start_copies: 0,
                warm_start_noise: 0.1,
                ascent_candidates: None,
                screen_rounds: 1,
                screen_round_samples: 1,
                imagination_samples: 1,
                elite_mean: 0,
            },
            // Each value and the measurement behind it: docs/decisions.md (#10).
            GradMpcFlavour::Robust => GradMpcDefaults {
                iterations: 2,
                optimizer: ActionOptimizer::Adam,
                warm_start: false,
                warm_start_copies: 4,
                warm_start_noise: 0.1,
                ascent_candidates: Some(16),
                screen_rounds: 4,
                screen_round_samples: 1,
                imagination_samples: 3,
                elite_mean: 4,
            },
        }
    }
}

/// Planner settings (the seed's Table A.7 for CEM and Grad-MPC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlannerConfig {
    pub kind: PlannerKind,
    /// H, planning horizon, 12.
    pub horizon: usize,
    /// I, optimisation iterations; resolved from the kind when not given.
    pub iterations: Option<usize>,
    /// J, candidate action sequences, 1000.
    pub candidates: usize,
    /// K, elites refit by CEM, GradCEM and the rounds of Grad-MPC's screen, 100.
    pub top_k: usize,
    /// α, step size of gradient ascent on the actions (Grad-MPC, GradCEM, Policy+Grad-MPC).
    /// Unset: [`PlannerConfig::action_lr`], which depends on the update rule for Grad-MPC
    /// (Adam and normalized [`ADAM_ACTION_LR`], SGD [`SGD_ACTION_LR`]) and is SGD's elsewhere.
    pub action_lr: Option<f64>,
    /// Update rule of Grad-MPC (from the flavour when unset), GradCEM and Policy+Grad-MPC
    /// (SGD when unset).
    pub optimizer: Option<ActionOptimizer>,
    /// Clip each time step's action-gradient norm to this value; off when absent.
    pub grad_clip_per_step: Option<f64>,
    /// Seed the next decision's candidates with the previous plan shifted by one step
    /// (Grad-MPC, MPPI); Grad-MPC: from the flavour when unset, MPPI: off.
    pub warm_start: Option<bool>,
    /// Grad-MPC's variant; the Grad-MPC settings below left unset take its values.
    pub flavour: GradMpcFlavour,
    /// σ₀, std of the initial samples of CEM, GradCEM, random shooting and Grad-MPC, 1.
    pub init_std: Option<f64>,
    /// Grad-MPC with warm start: noisy copies of the shifted plan among the candidates.
    pub warm_start_copies: Option<usize>,
    /// σ_w, std of those copies' noise, in action units.
    pub warm_start_noise: Option<f64>,
    /// Grad-MPC: J_a, candidates the gradient ascent refines. With a screen (the robust
    /// flavour) they are the best J_a of `candidates` forward-only samples; in the paper
    /// flavour J_a = J.
    pub ascent_candidates: Option<usize>,
    /// Grad-MPC with a screen: N, its rounds. More than 1 makes the screen a short CEM whose
    /// Gaussian is refitted to the `top_k` best draws of each round.
    pub screen_rounds: Option<usize>,
    /// Grad-MPC with screen rounds: S_r, imaginations each draw is scored over in the rounds
    /// before the last (the last, the ascent and the selection use S).
    pub screen_round_samples: Option<usize>,
    /// Grad-MPC: S, imaginations each candidate's R is averaged over.
    pub imagination_samples: Option<usize>,
    /// Grad-MPC: return the mean of the K best optimised candidates (0: the best one).
    pub elite_mean: Option<usize>,
    /// Grad-MPC: κ, the trust region. Each ascent step is projected back to within κ·σ of the
    /// candidate's start, σ the per-coordinate std of the Gaussian the starts were drawn
    /// from (the screen's last refit, else σ₀). `inf`: unbounded.
    pub trust_region: Option<f64>,
    /// Grad-MPC: β, select by `mean − β·std` of R over the S imaginations.
    pub selection_lcb: Option<f64>,
    /// λ, reward per step taken away for each unit of the model's uncertainty about a
    /// transition beyond the edge of its training data (every model-based planner's
    /// objective), 0. Above 0 it needs the run's fitted measure (`gradplan ensemble`).
    pub uncertainty_penalty: f64,
    /// What u is: the ensemble's `disagreement` (default), the `behavior` prior's distance, or
    /// the state `density`'s.
    pub uncertainty_measure: UncertaintyMeasure,
    /// Grad-MPC: σ_n, std of the noise on the actions of every imagination it scores (the
    /// screen's rounds, the ascent and the selection: R expected under execution noise), 0.
    pub smoothing_std: f64,
    /// λ, MPPI temperature, in units of predicted return, 1. Scale-dependent: lower it for
    /// tasks whose returns over the horizon are small.
    pub mppi_temperature: f64,
    /// σ₀, MPPI's initial sampling std around the mean sequence, 1.
    pub mppi_noise_std: f64,
    /// Refit MPPI's σ to the weighted samples each iteration (true), or keep σ₀.
    pub mppi_refit_std: bool,
    /// Gradient steps on the samples per GradCEM iteration, 1.
    pub gradcem_steps: usize,
    /// Sample imagined stochastic states (reparameterised) rather than taking the prior
    /// mean.
    pub sample_imagined: bool,
    /// γ, discount of predicted rewards inside the horizon, 1 (the paper sums them).
    /// Policy+Grad-MPC uses `dreamer.discount` instead, the γ its value was trained with.
    pub discount: f64,
    /// H of Policy+Grad-MPC, 1 (Table 5's planning-horizon).
    pub hybrid_horizon: usize,
    /// J of Policy+Grad-MPC, 1 (Table 5's candidates): the actor's plan, plus J − 1 noisy
    /// copies of it.
    pub hybrid_candidates: usize,
    /// σ of the Gaussian noise on Policy+Grad-MPC's extra candidates, 0.3.
    pub hybrid_noise: f64,
}

impl Default for PlannerConfig {
    fn default() -> Self {
        PlannerConfig {
            kind: PlannerKind::Cem,
            horizon: 12,
            iterations: None,
            candidates: 1000,
            top_k: 100,
            action_lr: None,
            optimizer: None,
            grad_clip_per_step: None,
            warm_start: None,
            flavour: GradMpcFlavour::Robust,
            init_std: None,
            warm_start_copies: None,
            warm_start_noise: None,
            ascent_candidates: None,
            screen_rounds: None,
            screen_round_samples: None,
            imagination_samples: None,
            elite_mean: None,
            trust_region: None,
            selection_lcb: None,
            uncertainty_penalty: 0.0,
            uncertainty_measure: UncertaintyMeasure::Disagreement,
            smoothing_std: 0.0,
            mppi_temperature: 1.0,
            mppi_noise_std: 1.0,
            mppi_refit_std: true,
            gradcem_steps: 1,
            sample_imagined: true,
            discount: 1.0,
            hybrid_horizon: 1,
            hybrid_candidates: 1,
            hybrid_noise: 0.3,
        }
    }
}

impl PlannerConfig {
    /// I, after resolution.
    pub fn iterations(&self) -> usize {
        self.iterations.unwrap_or_else(|| match self.kind {
            PlannerKind::GradMpc => self.flavour.defaults().iterations,
            kind => kind.default_iterations(),
        })
    }

    /// Grad-MPC's update rule after resolution: the setting, else the flavour's.
    pub fn grad_mpc_optimizer(&self) -> ActionOptimizer {
        self.optimizer.unwrap_or(self.flavour.defaults().optimizer)
    }

    /// α after resolution: the setting, else, for Grad-MPC, the step that goes with its
    /// update rule (Adam's is in action units, SGD's multiplies the raw gradient), and SGD's
    /// Algorithm 1 value for the other gradient planners.
    pub fn action_lr(&self) -> f64 {
        self.action_lr.unwrap_or(match (self.kind, self.grad_mpc_optimizer()) {
            (PlannerKind::GradMpc, ActionOptimizer::Adam | ActionOptimizer::Normalized) => ADAM_ACTION_LR,
            _ => SGD_ACTION_LR,
        })
    }

    pub fn validate(&self) -> Result<()> {
        if self.horizon == 0 {
            return Err(invalid("planner.horizon", "must be at least 1"));
        }
        if self.candidates == 0 {
            return Err(invalid("planner.candidates", "must be at least 1"));
        }
        if matches!(self.kind, PlannerKind::Cem | PlannerKind::GradCem)
            && !(1..=self.candidates).contains(&self.top_k)
        {
            return Err(invalid("planner.top_k", "must be between 1 and planner.candidates"));
        }
        if self.action_lr.is_some_and(|lr| !positive(lr)) {
            return Err(invalid("planner.action_lr", "must be positive"));
        }
        if !positive(self.mppi_temperature) || !positive(self.mppi_noise_std) {
            return Err(invalid(
                "planner.mppi_temperature",
                "MPPI temperature and noise std must be positive",
            ));
        }
        if !(self.discount > 0.0 && self.discount <= 1.0) {
            return Err(invalid("planner.discount", "must be in (0, 1]"));
        }
        if let Some(c) = self.grad_clip_per_step {
            if !positive(c) {
                return Err(invalid("planner.grad_clip_per_step", "must be positive"));
            }
        }
        if let Some(v) = self.init_std {
            if !positive(v) {
                return Err(invalid("planner.init_std", "must be positive"));
            }
        }
        if let Some(v) = self.warm_start_noise {
            if !(v.is_finite() && v >= 0.0) {
                return Err(invalid("planner.warm_start_noise", "must be a non-negative number"));
            }
        }
        if self.ascent_candidates == Some(0) {
            return Err(invalid("planner.ascent_candidates", "must be at least 1"));
        }
        if self.screen_rounds == Some(0) {
            return Err(invalid("planner.screen_rounds", "must be at least 1"));
        }
        if self.screen_round_samples == Some(0) {
            return Err(invalid("planner.screen_round_samples", "must be at least 1"));
        }
        if self.imagination_samples == Some(0) {
            return Err(invalid("planner.imagination_samples", "must be at least 1"));
        }
        if self.trust_region.is_some_and(|k| k.is_nan() || k <= 0.0) {
            return Err(invalid("planner.trust_region", "must be positive (`inf`: unbounded)"));
        }
        if self.selection_lcb.is_some_and(|b| !(b.is_finite() && b >= 0.0)) {
            return Err(invalid("planner.selection_lcb", "must be a non-negative number (0: the mean)"));
        }
        if !(self.smoothing_std.is_finite() && self.smoothing_std >= 0.0) {
            return Err(invalid("planner.smoothing_std", "must be a non-negative number (0: off)"));
        }
        if !(self.uncertainty_penalty.is_finite() && self.uncertainty_penalty >= 0.0) {
            return Err(invalid("planner.uncertainty_penalty", "must be a non-negative number (0: off)"));
        }
        if self.hybrid_horizon == 0 {
            return Err(invalid("planner.hybrid_horizon", "must be at least 1"));
        }
        if self.hybrid_candidates == 0 {
            return Err(invalid("planner.hybrid_candidates", "must be at least 1"));
        }
        if !(self.hybrid_noise.is_finite() && self.hybrid_noise >= 0.0) {
            return Err(invalid("planner.hybrid_noise", "must be a non-negative number"));
        }
        Ok(())
    }
}

impl PlannerConfig {
    /// This (a run's) planner section with `kind` and `planner.KEY=VALUE` overrides on top,
    /// resolved and validated: what `gradplan eval`, `report` and `bench trained` plan with,
    /// and what `gradplan resume --planner` collects with.
    /// When the kind or Grad-MPC's flavour changes, I is re-resolved for the new planner (a
    /// stored configuration has the training planner's I filled in) unless an override sets it.
    pub fn overridden(&self, kind: Option<PlannerKind>, overrides: &[String]) -> Result<PlannerConfig> {
        let mut explicit_iterations = false;
        for o in overrides {
            let key = o.split_once('=').map(|(k, _)| k.trim()).unwrap_or(o);
            if !key.starts_with("planner.") {
                return Err(invalid(
                    key,
                    "only planner settings can change here (`--set planner.<key>=<value>`); the \
                     environment and model are the run's",
                ));
            }
            explicit_iterations |= key == "planner.iterations";
        }
        let mut root = toml::Table::new();
        root.insert("planner".into(), toml::Value::try_from(self)?);
        let mut value = toml::Value::Table(root);
        let parse = |value: &toml::Value| -> std::result::Result<PlannerConfig, toml::de::Error> {
            value.get("planner").cloned().unwrap_or_else(|| toml::Value::Table(Default::default())).try_into()
        };
        let kind = kind.map(|k| format!("planner.kind=\"{k}\""));
        // One at a time, so that a bad value is reported with its key.
        for o in kind.iter().chain(overrides) {
            apply_override(&mut value, o)?;
            if let Err(e) = parse(&value) {
                let key = o.split_once('=').map(|(k, _)| k.trim()).unwrap_or(o);
                // The message alone: toml's full error repeats it on a second line.
                return Err(invalid(key, e.message()));
            }
        }
        let mut planner = parse(&value).map_err(|e| invalid("planner", e.message()))?;
        if planner.kind == PlannerKind::GradMpc && self.kind != PlannerKind::GradMpc {
            planner.clear_unset_grad_mpc(self, overrides);
        }
        let changed = planner.kind != self.kind
            || (planner.kind == PlannerKind::GradMpc && planner.flavour != self.flavour);
        if changed && !explicit_iterations {
            planner.iterations = None;
        }
        planner.iterations = Some(planner.iterations());
        planner.validate()?;
        Ok(planner)
    }

    /// Switching a run of another planner to Grad-MPC: the flavour's settings replace what
    /// the run's section holds for them (a configuration written before flavours existed
    /// spells out `warm_start = false` and `optimizer = "sgd"`, which were no choice of the
    /// user's), except where an override sets them.
    fn clear_unset_grad_mpc(&mut self, run: &PlannerConfig, overrides: &[String]) {
        let set =
            |key: &str| overrides.iter().any(|o| o.split_once('=').is_some_and(|(k, _)| k.trim() == key));
        macro_rules! clear {
            ($($field:ident),*) => {$(
                if !set(concat!("planner.", stringify!($field))) && self.$field == run.$field {
                    self.$field = None;
                }
            )*};
        }
        clear!(
            action_lr,
            warm_start,
            optimizer,
            warm_start_copies,
            warm_start_noise,
            ascent_candidates,
            imagination_samples,
            elite_mean,
            trust_region,
            selection_lcb
        );
    }

    /// `k=v;k=v` for every setting in which `other` differs from `self`, the kind excluded
    /// (it has its own column); `none` stands for an unset optional setting.
    pub fn differences(&self, other: &PlannerConfig) -> Result<String> {
        let (a, b) = (toml::Table::try_from(self)?, toml::Table::try_from(other)?);
        let mut keys: Vec<&String> = a.keys().chain(b.keys()).filter(|k| *k != "kind").collect();
        keys.sort();
        keys.dedup();
        let show = |v: Option<&toml::Value>| match v {
            None => "none".to_owned(),
            Some(toml::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        };
        Ok(keys
            .into_iter()
            .filter(|k| a.get(*k) != b.get(*k))
            .map(|k| format!("{k}={}", show(b.get(k))))
            .collect::<Vec<_>>()
            .join(";"))
    }
}

/// The collect/train loop (PlaNet's protocol; the seed's Table A.7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Episodes collected with uniform random actions before training, 5.
    pub seed_episodes: usize,
    /// Model updates between collected episodes (collect-interval), 100.
    pub collect_interval: usize,
    /// Sequences per update (batch-size), 50.
    pub batch_size: usize,
    /// Steps per sequence (chunk-size), 50.
    pub chunk_length: usize,
    /// Std of the Gaussian noise added to planned actions while collecting, 0.3.
    pub exploration_noise: f64,
    /// Test every this many collected episodes, 25.
    pub test_interval: usize,
    /// Noise-free episodes per test, 10.
    pub test_episodes: usize,
    /// Stop after this many environment (simulator) steps, including seed episodes, 100k.
    pub total_env_steps: usize,
    /// Replay capacity in steps, 1M.
    pub replay_capacity: usize,
    /// Write a checkpoint every this many collected episodes, 5.
    pub checkpoint_interval: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            seed_episodes: 5,
            collect_interval: 100,
            batch_size: 50,
            chunk_length: 50,
            exploration_noise: 0.3,
            test_interval: 25,
            test_episodes: 10,
            total_env_steps: 100_000,
            replay_capacity: 1_000_000,
            checkpoint_interval: 5,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        for (key, v) in [
            ("train.seed_episodes", self.seed_episodes),
            ("train.batch_size", self.batch_size),
            ("train.chunk_length", self.chunk_length),
            ("train.test_interval", self.test_interval),
            ("train.total_env_steps", self.total_env_steps),
            ("train.checkpoint_interval", self.checkpoint_interval),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if self.chunk_length < 2 {
            return Err(invalid("train.chunk_length", "must be at least 2"));
        }
        // A batch is `batch_size × chunk_length` steps gathered into one array per update.
        if self.batch_size > MAX_BATCH {
            return Err(invalid("train.batch_size", &format!("must be at most {MAX_BATCH}")));
        }
        if self.replay_capacity < self.chunk_length {
            return Err(invalid("train.replay_capacity", "must hold at least one chunk"));
        }
        if !(self.exploration_noise.is_finite() && self.exploration_noise >= 0.0) {
            return Err(invalid("train.exploration_noise", "must be a non-negative number"));
        }
        Ok(())
    }
}

/// Dreamer's actor and value (Hafner et al. 2020; the seed's A.2 and A.4, eqs. 10–13),
/// trained on imagination when `planner.kind` is `policy` or `policy-grad-mpc`. Defaults are
/// the paper's Table 5 sizes and Dreamer's reference settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DreamerConfig {
    /// H, imagination horizon of the actor and value losses, 15.
    pub horizon: usize,
    /// γ, discount of imagined rewards, 0.99.
    pub discount: f64,
    /// λ of the λ-return (eq. 13), 0.95.
    pub lambda: f64,
    /// Units per hidden layer of actor and value, 400 (Table 5's hidden-size).
    pub hidden: usize,
    /// Hidden layers of the actor, 4 (Dreamer's reference).
    pub actor_layers: usize,
    /// Hidden layers of the value, 3 (Dreamer's reference).
    pub value_layers: usize,
    /// Learning rate of the world model in Dreamer runs (replaces `optim.learning_rate`),
    /// 6e-4.
    pub model_lr: f64,
    /// Learning rate of the actor, 8e-5.
    pub actor_lr: f64,
    /// Learning rate of the value, 8e-5.
    pub value_lr: f64,
    /// Adam ε of all three optimisers in Dreamer runs, 1e-7 (TensorFlow's default, which
    /// Dreamer's reference uses).
    pub adam_epsilon: f64,
    /// Global gradient-norm clip of all three optimisers in Dreamer runs, 100.
    pub grad_clip: f64,
    /// σ₀ of the actor before training (std = softplus(x + softplus⁻¹(σ₀)) + σ_min), 5.
    pub init_std: f64,
    /// σ_min of the actor, 1e-4.
    pub min_std: f64,
    /// Bound of the pre-tanh mean, `mean = s·tanh(μ / s)`, 5.
    pub mean_scale: f64,
}

impl Default for DreamerConfig {
    fn default() -> Self {
        DreamerConfig {
            horizon: 15,
            discount: 0.99,
            lambda: 0.95,
            hidden: 400,
            actor_layers: 4,
            value_layers: 3,
            model_lr: 6e-4,
            actor_lr: 8e-5,
            value_lr: 8e-5,
            adam_epsilon: 1e-7,
            grad_clip: 100.0,
            init_std: 5.0,
            min_std: 1e-4,
            mean_scale: 5.0,
        }
    }
}

impl DreamerConfig {
    pub fn validate(&self) -> Result<()> {
        for (key, v, max) in [
            ("dreamer.horizon", self.horizon, MAX_DREAMER_HORIZON),
            ("dreamer.hidden", self.hidden, MAX_LAYER_SIZE as usize),
            ("dreamer.actor_layers", self.actor_layers, MAX_LAYERS),
            ("dreamer.value_layers", self.value_layers, MAX_LAYERS),
        ] {
            if !(1..=max).contains(&v) {
                return Err(invalid(key, &format!("must be between 1 and {max}")));
            }
        }
        if !(self.discount > 0.0 && self.discount <= 1.0) {
            return Err(invalid("dreamer.discount", "must be in (0, 1]"));
        }
        if !(0.0..=1.0).contains(&self.lambda) {
            return Err(invalid("dreamer.lambda", "must be in [0, 1]"));
        }
        for (key, v) in [
            ("dreamer.model_lr", self.model_lr),
            ("dreamer.actor_lr", self.actor_lr),
            ("dreamer.value_lr", self.value_lr),
            ("dreamer.adam_epsilon", self.adam_epsilon),
            ("dreamer.grad_clip", self.grad_clip),
            ("dreamer.init_std", self.init_std),
            ("dreamer.min_std", self.min_std),
            ("dreamer.mean_scale", self.mean_scale),
        ] {
            if !positive(v) {
                return Err(invalid(key, "must be positive"));
            }
        }
        Ok(())
    }
}

/// Everything a run needs; written to `config.toml` in the run directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// The preset this configuration started from.
    pub preset: String,
    /// Seeds the environment, the replay sampling, the model and the planner.
    pub seed: u64,
    /// `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// libtorch threads (0: one per core).
    pub threads: usize,
    pub env: EnvConfig,
    pub model: ModelConfig,
    pub optim: OptimConfig,
    pub train: TrainConfig,
    pub planner: PlannerConfig,
    /// Used only when `planner.kind` is `policy` or `policy-grad-mpc`.
    pub dreamer: DreamerConfig,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            preset: "paper".into(),
            seed: 0,
            device: "cpu".into(),
            threads: 0,
            env: EnvConfig::default(),
            model: ModelConfig::default(),
            optim: OptimConfig::default(),
            train: TrainConfig::default(),
            planner: PlannerConfig::default(),
            dreamer: DreamerConfig::default(),
        }
    }
}

/// The built-in presets: name, one-line description, TOML overlay on the defaults.
pub const PRESETS: [(&str, &str, &str); 4] = [
    ("paper", "the paper's protocol and PlaNet's sizes (GPU-scale)", include_str!("../presets/paper.toml")),
    ("debug", "tiny sizes and budgets: an end-to-end run in seconds", include_str!("../presets/debug.toml")),
    (
        "cpu",
        "sized to show learning on a 2-core CPU (state observations)",
        include_str!("../presets/cpu.toml"),
    ),
    (
        "cpu-pixels",
        "learning from 64x64 pixels on a 2-core CPU (half-depth convs, batch 16 x 32)",
        include_str!("../presets/cpu-pixels.toml"),
    ),
];

/// The planner iterations I that built-in `preset` sets itself; `None` when it leaves I to
/// the planner's own default (the paper preset) or there is no such preset.
pub fn preset_iterations(preset: &str) -> Option<usize> {
    let (_, _, overlay) = PRESETS.iter().find(|(name, _, _)| *name == preset)?;
    let table: toml::Table = toml::from_str(overlay).ok()?;
    let i = table.get("planner")?.get("iterations")?.as_integer()?;
    usize::try_from(i).ok()
}

impl RunConfig {
    /// Resolves a configuration once: defaults < preset < `file` < `--set` overrides, then
    /// fills in per-planner defaults and validates everything.
    pub fn resolve(preset: &str, file: Option<&str>, overrides: &[String]) -> Result<RunConfig> {
        let (_, _, overlay) = PRESETS.iter().find(|(name, _, _)| *name == preset).ok_or_else(|| {
            let names: Vec<&str> = PRESETS.iter().map(|p| p.0).collect();
            invalid("preset", &format!("`{preset}` is not a preset; use one of {}", names.join(", ")))
        })?;
        let mut value = toml::Value::try_from(RunConfig::default())?;
        merge(&mut value, toml::from_str(overlay)?);
        if let Some(text) = file {
            // A run's config.toml names the preset it started from; laid over another preset
            // it would be recorded under the wrong name (and the harness reads the name).
            if let Some(named) = RunConfig::preset_in(text)? {
                if named != preset {
                    return Err(invalid(
                        "preset",
                        &format!(
                            "the settings file says preset = \"{named}\" but this run's preset is \"{preset}\"; \
                             drop --preset to use the file's, or remove `preset` from the file"
                        ),
                    ));
                }
            }
            merge(&mut value, toml::from_str(text)?);
        }
        for o in overrides {
            apply_override(&mut value, o)?;
        }
        let mut cfg: RunConfig = crate::from_value(value)?;
        cfg.preset = preset.to_owned();
        cfg.planner.iterations = Some(cfg.planner.iterations());
        cfg.validate()?;
        Ok(cfg)
    }

    /// The `preset` a settings file names at its top level, if any (a run's `config.toml`
    /// always does).
    pub fn preset_in(file: &str) -> Result<Option<String>> {
        let table: toml::Table = toml::from_str(file)?;
        match table.get("preset") {
            None => Ok(None),
            Some(toml::Value::String(name)) => Ok(Some(name.clone())),
            Some(other) => Err(invalid("preset", &format!("must be a preset's name, not {other}"))),
        }
    }

    /// Parses a resolved `config.toml` (from a run directory) and validates it.
    pub fn from_toml(text: &str) -> Result<RunConfig> {
        let cfg: RunConfig = crate::from_value(toml::from_str(text)?)?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn to_toml(&self) -> Result<String> {
        Ok(toml::to_string_pretty(self)?)
    }

    /// This run's configuration for the episodes a resume adds: a new budget and another
    /// collecting planner (`kind` and `planner.KEY=VALUE` overrides resolved by
    /// [`PlannerConfig::overridden`], as `gradplan eval` resolves them: I follows the new kind
    /// and Grad-MPC's flavour unless set), validated. `gradplan resume` writes it, and the
    /// harness expects it after a handover. A run's agent is fixed when it is created: a
    /// planner that needs Dreamer's actor cannot take over a run without one, nor the other
    /// way round.
    pub fn continued(
        &self,
        total_env_steps: Option<usize>,
        kind: Option<PlannerKind>,
        overrides: &[String],
    ) -> Result<RunConfig> {
        let mut cfg = self.clone();
        if let Some(budget) = total_env_steps {
            cfg.train.total_env_steps = budget;
        }
        if kind.is_some() || !overrides.is_empty() {
            let planner = self.planner.overridden(kind, overrides)?;
            let (run, new) = (self.planner.kind, planner.kind);
            if new.uses_policy() != run.uses_policy() {
                let agent = |k: PlannerKind| {
                    if k.uses_policy() {
                        "a Dreamer agent (actor and value)"
                    } else {
                        "a world model alone"
                    }
                };
                return Err(invalid(
                    "planner.kind",
                    &format!(
                        "`{new}` cannot collect for this run: the run trains {}, `{new}` needs {}. A run's agent is \
                         fixed when it is created; start a new run with `gradplan train --planner {new}`",
                        agent(run),
                        agent(new)
                    ),
                ));
            }
            cfg.planner = planner;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        self.env.validate()?;
        self.model.validate()?;
        self.optim.validate()?;
        self.train.validate()?;
        self.dreamer.validate()?;
        self.planner.validate()
    }
}

/// Recursively overlays `top` onto `base` (tables merge, everything else replaces).
fn merge(base: &mut toml::Value, top: toml::Value) {
    match (base, top) {
        (toml::Value::Table(b), toml::Value::Table(t)) => {
            for (k, v) in t {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, t) => *b = t,
    }
}

/// Applies one `dotted.key=value` override; the value is parsed as TOML (`32`, `0.5`,
/// `true`, `"x"`) and taken as a plain string when that fails (`cartpole-swingup`).
pub fn apply_override(value: &mut toml::Value, assignment: &str) -> Result<()> {
    let (key, raw) = assignment
        .split_once('=')
        .ok_or_else(|| invalid(assignment, "overrides have the form key=value, e.g. model.belief_size=64"))?;
    let key = key.trim();
    let parsed: toml::Value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.trim().to_owned()));
    let mut node = value;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let table =
            node.as_table_mut().ok_or_else(|| invalid(key, "is not a setting (its parent is a value)"))?;
        if i + 1 == parts.len() {
            table.insert(part.to_string(), parsed);
            return Ok(());
        }
        node = table.entry(part.to_string()).or_insert_with(|| toml::Value::Table(Default::default()));
    }
    Err(invalid(key, "empty key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_preset_is_the_papers_protocol() {
        let cfg = RunConfig::resolve("paper", None, &[]).unwrap();
        assert_eq!((cfg.model.belief_size, cfg.model.state_size, cfg.model.hidden_size), (200, 30, 200));
        assert_eq!((cfg.train.batch_size, cfg.train.chunk_length, cfg.train.collect_interval), (50, 50, 100));
        assert_eq!(
            (cfg.planner.horizon, cfg.planner.iterations, cfg.planner.candidates),
            (12, Some(10), 1000)
        );
        assert_eq!(cfg.train.total_env_steps, 100_000);
        assert_eq!(cfg.optim.adam_epsilon, 1e-4);
    }

    #[test]
    fn planner_iterations_follow_the_kind_unless_set() {
        let g = RunConfig::resolve("paper", None, &["planner.kind=grad-mpc".into()]).unwrap();
        assert_eq!(g.planner.iterations, Some(GradMpcFlavour::Robust.defaults().iterations));
        let g = RunConfig::resolve(
            "paper",
            None,
            &["planner.kind=grad-mpc".into(), "planner.flavour=paper".into()],
        )
        .unwrap();
        assert_eq!(g.planner.iterations, Some(40));
        let g = RunConfig::resolve(
            "paper",
            None,
            &["planner.kind=grad-mpc".into(), "planner.iterations=7".into()],
        )
        .unwrap();
        assert_eq!(g.planner.iterations, Some(7));
    }

    #[test]
    fn overrides_win_and_typos_fail() {
        let file = "seed = 3\n[model]\nbelief_size = 64\n";
        let cfg = RunConfig::resolve(
            "debug",
            Some(file),
            &["model.belief_size=32".into(), "env.task=walker-walk".into(), "env.obs=state".into()],
        )
        .unwrap();
        assert_eq!((cfg.seed, cfg.model.belief_size, cfg.env.task.as_str()), (3, 32, "walker-walk"));
        assert_eq!(cfg.env.obs, crate::ObsKind::State);
        let native = RunConfig::resolve("cpu", None, &["env.backend=native".into()]).unwrap();
        assert_eq!(native.env.backend, crate::EnvBackend::Native);
        let err = RunConfig::resolve("cpu", None, &["env.backend=mujoco".into()]).unwrap_err().to_string();
        assert!(err.contains("env.backend") && err.contains("native"), "{err}");
        let err = RunConfig::resolve("debug", None, &["model.beleif_size=32".into()]).unwrap_err();
        assert!(err.to_string().contains("beleif_size"), "{err}");
        assert!(RunConfig::resolve("debug", None, &["model.belief_size=-1".into()]).is_err());
        assert!(RunConfig::resolve("debug", None, &["nonsense".into()]).is_err());
        assert!(RunConfig::resolve("nope", None, &[]).unwrap_err().to_string().contains("paper"));
    }

    #[test]
    fn dreamer_defaults_and_policy_kinds() {
        let cfg = RunConfig::resolve("paper", None, &["planner.kind=policy-grad-mpc".into()]).unwrap();
        assert!(cfg.planner.kind.uses_policy() && !PlannerKind::Cem.uses_policy());
        assert_eq!(cfg.planner.iterations, Some(10));
        assert_eq!((cfg.planner.hybrid_horizon, cfg.planner.hybrid_candidates), (1, 1));
        let d = &cfg.dreamer;
        assert_eq!((d.horizon, d.hidden, d.discount, d.lambda), (15, 400, 0.99, 0.95));
        assert_eq!((d.model_lr, d.actor_lr, d.value_lr, d.grad_clip), (6e-4, 8e-5, 8e-5, 100.0));
        assert_eq!("policy".parse::<PlannerKind>().unwrap(), PlannerKind::Policy);
        assert!(RunConfig::resolve("paper", None, &["dreamer.lambda=1.5".into()]).is_err());
        assert!(RunConfig::resolve("paper", None, &["dreamer.horizon=0".into()]).is_err());
        assert!(RunConfig::resolve("paper", None, &["planner.hybrid_candidates=0".into()]).is_err());
        // A configuration written before the Dreamer section existed still reads.
        let mut old = toml::Value::try_from(RunConfig::default()).unwrap();
        old.as_table_mut().unwrap().remove("dreamer");
        assert!(RunConfig::from_toml(&toml::to_string(&old).unwrap()).is_ok());
    }

    #[test]
    fn a_continued_run_changes_only_its_budget_and_planner_and_keeps_its_agent() {
        let run = RunConfig::resolve("debug", None, &[]).unwrap();
        assert_eq!(run.continued(None, None, &[]).unwrap().to_toml().unwrap(), run.to_toml().unwrap());
        let next = run.continued(Some(5000), Some(PlannerKind::GradMpc), &[]).unwrap();
        assert_eq!(next.train.total_env_steps, 5000);
        assert_eq!(next.planner, run.planner.overridden(Some(PlannerKind::GradMpc), &[]).unwrap());
        let mut back = next.clone();
        (back.train.total_env_steps, back.planner) = (run.train.total_env_steps, run.planner.clone());
        assert_eq!(back.to_toml().unwrap(), run.to_toml().unwrap(), "nothing else changes");
        let err = run.continued(None, Some(PlannerKind::Policy), &[]).unwrap_err().to_string();
        assert!(err.contains("planner.kind") && err.contains("a Dreamer agent"), "{err}");
        let dreamer = RunConfig::resolve("debug", None, &["planner.kind=\"policy\"".into()]).unwrap();
        let err = dreamer.continued(None, Some(PlannerKind::Cem), &[]).unwrap_err().to_string();
        assert!(err.contains("a world model alone"), "{err}");
        assert!(run.continued(Some(0), None, &[]).is_err(), "the budget is validated");
    }

    #[test]
    fn a_new_kind_gets_its_own_iterations_unless_they_are_set() {
        let run = RunConfig::resolve("debug", None, &[]).unwrap().planner;
        assert_eq!((run.kind, run.iterations), (PlannerKind::Cem, Some(2)));
        let same = run.overridden(Some(PlannerKind::Cem), &[]).unwrap();
        assert_eq!(same, run);
        assert_eq!(run.differences(&same).unwrap(), "");
        let g = run.overridden(Some(PlannerKind::GradMpc), &[]).unwrap();
        assert_eq!(
            (g.kind, g.iterations),
            (PlannerKind::GradMpc, Some(GradMpcFlavour::Robust.defaults().iterations))
        );
        let g = run.overridden(Some(PlannerKind::GradMpc), &["planner.flavour=paper".into()]).unwrap();
        assert_eq!((g.kind, g.iterations), (PlannerKind::GradMpc, Some(40)));
        assert_eq!(run.differences(&g).unwrap(), "flavour=paper;iterations=40");
        let g = run
            .overridden(
                Some(PlannerKind::GradMpc),
                &[
                    "planner.iterations=5".into(),
                    "planner.optimizer=adam".into(),
                    "planner.action_lr=0.05".into(),
                ],
            )
            .unwrap();
        assert_eq!(g.iterations, Some(5));
        assert_eq!(run.differences(&g).unwrap(), "action_lr=0.05;iterations=5;optimizer=adam");
        // Same kind: the run's I stays.
        let c = run.overridden(None, &["planner.candidates=8".into()]).unwrap();
        assert_eq!((c.iterations, c.candidates), (Some(2), 8));
        let clip = run.overridden(None, &["planner.grad_clip_per_step=1.5".into()]).unwrap();
        assert_eq!(run.differences(&clip).unwrap(), "grad_clip_per_step=1.5");
        assert_eq!(clip.differences(&run).unwrap(), "grad_clip_per_step=none");
    }

    #[test]
    fn bad_planners_and_keys_are_refused() {
        let run = RunConfig::resolve("debug", None, &[]).unwrap().planner;
        let err = "cme".parse::<PlannerKind>().unwrap_err().to_string();
        assert!(err.contains("cem, grad-mpc, mppi, grad-cem, random-shooting"), "{err}");
        let err = run.overridden(None, &["planner.iteratons=3".into()]).unwrap_err().to_string();
        assert!(err.contains("iteratons"), "{err}");
        let err = run.overridden(None, &["model.belief_size=3".into()]).unwrap_err().to_string();
        assert!(
            err.contains("model.belief_size") && err.contains("only planner settings can change"),
            "{err}"
        );
        let err = run.overridden(None, &["planner.horizon=0".into()]).unwrap_err().to_string();
        assert!(err.contains("planner.horizon"), "{err}");
        assert!(run.overridden(None, &["planner.horizon".into()]).is_err());
        // κ: positive, `inf` for unbounded; zero would freeze the ascent.
        let err = run.overridden(None, &["planner.trust_region=0".into()]).unwrap_err().to_string();
        assert!(err.contains("planner.trust_region") && err.contains("inf"), "{err}");
        let ok = run.overridden(None, &["planner.trust_region=inf".into()]).unwrap();
        assert_eq!(ok.trust_region, Some(f64::INFINITY));
        assert_eq!(
            run.overridden(None, &["planner.trust_region=0.5".into()]).unwrap().trust_region,
            Some(0.5)
        );
        // β: non-negative and finite.
        for bad in ["-1", "nan", "inf"] {
            let err =
                run.overridden(None, &[format!("planner.selection_lcb={bad}")]).unwrap_err().to_string();
            assert!(err.contains("planner.selection_lcb"), "{bad}: {err}");
        }
        let ok = run.overridden(None, &["planner.selection_lcb=1.5".into()]).unwrap();
        assert_eq!(ok.selection_lcb, Some(1.5));
        // λ: non-negative and finite, 0 (off) by default and named in the differences.
        assert_eq!(run.uncertainty_penalty, 0.0);
        for bad in ["-1", "nan", "inf"] {
            let err = run
                .overridden(None, &[format!("planner.uncertainty_penalty={bad}")])
                .unwrap_err()
                .to_string();
            assert!(err.contains("planner.uncertainty_penalty"), "{bad}: {err}");
        }
        let ok = run.overridden(None, &["planner.uncertainty_penalty=0.3".into()]).unwrap();
        assert_eq!(ok.uncertainty_penalty, 0.3);
        assert_eq!(run.differences(&ok).unwrap(), "uncertainty_penalty=0.3");
        // σ_n: the same rule.
        assert_eq!(run.smoothing_std, 0.0);
        for bad in ["-0.1", "nan", "inf"] {
            let err =
                run.overridden(None, &[format!("planner.smoothing_std={bad}")]).unwrap_err().to_string();
            assert!(err.contains("planner.smoothing_std"), "{bad}: {err}");
        }
        let ok = run.overridden(None, &["planner.smoothing_std=0.3".into()]).unwrap();
        assert_eq!(run.differences(&ok).unwrap(), "smoothing_std=0.3");
        assert_eq!(run.uncertainty_measure, UncertaintyMeasure::Disagreement);
        let ok = run.overridden(None, &["planner.uncertainty_measure=behavior".into()]).unwrap();
        assert_eq!(ok.uncertainty_measure, UncertaintyMeasure::Behavior);
        assert_eq!(run.differences(&ok).unwrap(), "uncertainty_measure=behavior");
        let err =
            run.overridden(None, &["planner.uncertainty_measure=prior".into()]).unwrap_err().to_string();
        assert!(err.contains("uncertainty_measure") && err.contains("behavior"), "{err}");
        let ok = run.overridden(None, &["planner.uncertainty_measure=density".into()]).unwrap();
        assert_eq!(ok.uncertainty_measure, UncertaintyMeasure::Density);
        assert!(err.contains("density"), "{err}");
    }

    #[test]
    fn a_cem_run_evaluated_with_grad_mpc_gets_the_flavours_settings() {
        // What config.toml of a CEM run held before flavours existed.
        let mut run = RunConfig::resolve("cpu", None, &[]).unwrap().planner;
        run.warm_start = Some(false);
        run.optimizer = Some(ActionOptimizer::Sgd);
        let g = run.overridden(Some(PlannerKind::GradMpc), &[]).unwrap();
        assert_eq!((g.warm_start, g.optimizer), (None, None));
        let g = run.overridden(Some(PlannerKind::GradMpc), &["planner.warm_start=false".into()]).unwrap();
        assert_eq!((g.warm_start, g.optimizer), (Some(false), None));
        // The same kind keeps every stored setting.
        let c = run.overridden(None, &[]).unwrap();
        assert_eq!((c.warm_start, c.optimizer), (Some(false), Some(ActionOptimizer::Sgd)));
    }

    #[test]
    fn the_step_size_follows_the_update_rule_unless_set() {
        let robust = RunConfig::resolve("cpu", None, &["planner.kind=grad-mpc".into()]).unwrap().planner;
        assert_eq!(
            (robust.grad_mpc_optimizer(), robust.action_lr()),
            (ActionOptimizer::Adam, ADAM_ACTION_LR)
        );
        let sgd = robust.overridden(None, &["planner.optimizer=sgd".into()]).unwrap();
        assert_eq!(sgd.action_lr(), SGD_ACTION_LR);
        let paper = robust.overridden(None, &["planner.flavour=paper".into()]).unwrap();
        assert_eq!((paper.grad_mpc_optimizer(), paper.action_lr()), (ActionOptimizer::Sgd, SGD_ACTION_LR));
        let normalized = robust.overridden(None, &["planner.optimizer=normalized".into()]).unwrap();
        assert_eq!(
            (normalized.grad_mpc_optimizer(), normalized.action_lr()),
            (ActionOptimizer::Normalized, ADAM_ACTION_LR)
        );
        let set = robust.overridden(None, &["planner.action_lr=0.2".into()]).unwrap();
        assert_eq!(set.action_lr(), 0.2);
        assert_eq!(robust.differences(&set).unwrap(), "action_lr=0.2");
        let gradcem =
            robust.overridden(Some(PlannerKind::GradCem), &["planner.optimizer=adam".into()]).unwrap();
        assert_eq!(gradcem.action_lr(), SGD_ACTION_LR, "only Grad-MPC's default follows Adam");
        // A CEM run written when α was always spelt out (0.1) gets the flavour's step when
        // evaluated with Grad-MPC, unless the evaluation sets one.
        let mut cem = RunConfig::resolve("cpu", None, &[]).unwrap().planner;
        cem.action_lr = Some(SGD_ACTION_LR);
        let g = cem.overridden(Some(PlannerKind::GradMpc), &[]).unwrap();
        assert_eq!((g.action_lr, g.action_lr()), (None, ADAM_ACTION_LR));
        let g = cem.overridden(Some(PlannerKind::GradMpc), &["planner.action_lr=0.1".into()]).unwrap();
        assert_eq!(g.action_lr(), 0.1);
        let err = robust.overridden(None, &["planner.action_lr=0".into()]).unwrap_err().to_string();
        assert!(err.contains("planner.action_lr"), "{err}");
    }

    #[test]
    fn a_new_flavour_gets_its_own_iterations() {
        let run = RunConfig::resolve("paper", None, &["planner.kind=grad-mpc".into()]).unwrap().planner;
        assert_eq!(run.iterations, Some(GradMpcFlavour::Robust.defaults().iterations));
        let paper = run.overridden(None, &["planner.flavour=paper".into()]).unwrap();
        assert_eq!(paper.iterations, Some(40));
        assert_eq!(run.differences(&paper).unwrap(), "flavour=paper;iterations=40");
        let set =
            run.overridden(None, &["planner.flavour=paper".into(), "planner.iterations=10".into()]).unwrap();
        assert_eq!(set.iterations, Some(10));
        let err = run.overridden(None, &["planner.flavour=fast".into()]).unwrap_err().to_string();
        assert!(err.contains("planner.flavour"), "{err}");
    }

    #[test]
    fn type_errors_name_their_key() {
        for (set, key) in [
            ("model.belief_size=abc", "model.belief_size"),
            ("train.batch_size=1.5", "train.batch_size"),
            ("seed=-3", "seed"),
            ("env.camera=\"x\"", "env.camera"),
        ] {
            let err = RunConfig::resolve("debug", None, &[set.into()]).unwrap_err().to_string();
            assert!(err.contains(&format!("`{key}`")), "{set}: {err}");
        }
        let err = RunConfig::from_toml("[model]\nbelief_size = \"big\"\n").unwrap_err().to_string();
        assert!(err.contains("`model.belief_size`"), "{err}");
    }

    #[test]
    fn impossible_sizes_are_refused_by_name() {
        for key in ["model.belief_size", "model.state_size", "model.hidden_size", "model.embedding_size"] {
            let err = RunConfig::resolve("debug", None, &[format!("{key}=100000000000")]).unwrap_err();
            assert!(err.to_string().contains(&format!("`{key}`")), "{err}");
        }
        for key in ["dreamer.hidden", "dreamer.actor_layers", "dreamer.horizon", "train.batch_size"] {
            let err = RunConfig::resolve("debug", None, &[format!("{key}=100000000000")]).unwrap_err();
            assert!(err.to_string().contains(&format!("`{key}`")), "{err}");
        }
        // The paper's and the presets' sizes are far inside the bounds.
        assert!(RunConfig::resolve("paper", None, &["model.hidden_size=4096".into()]).is_ok());
    }

    #[test]
    fn cpu_pixels_preset_is_a_half_depth_pixel_planet() {
        let cfg = RunConfig::resolve("cpu-pixels", None, &[]).unwrap();
        assert_eq!(cfg.env.obs, crate::ObsKind::Pixels);
        assert_eq!(cfg.env.pixel_mode, crate::PixelMode::Direct);
        assert_eq!(cfg.env.image_size, 64);
        assert_eq!(cfg.model.cnn_depth, 16);
        // 32d: the encoder's 2×2×8d map is the embedding itself, no projection layer.
        assert_eq!(cfg.model.embedding_size, 32 * cfg.model.cnn_depth);
        assert_eq!(cfg.model.conv_precision, crate::ConvPrecision::F32);
        assert_eq!((cfg.train.batch_size, cfg.train.chunk_length, cfg.train.collect_interval), (16, 32, 60));
        // The paper preset keeps PlaNet's depth.
        assert_eq!(RunConfig::resolve("paper", None, &[]).unwrap().model.cnn_depth, 32);
        let bf16 = RunConfig::resolve("cpu-pixels", None, &["model.conv_precision=bf16".into()]).unwrap();
        assert_eq!(bf16.model.conv_precision, crate::ConvPrecision::Bf16);
    }

    #[test]
    fn presets_say_which_iterations_they_set() {
        assert_eq!(preset_iterations("cpu"), Some(6));
        assert_eq!(preset_iterations("debug"), Some(2));
        assert_eq!(preset_iterations("paper"), None);
        assert_eq!(preset_iterations("nope"), None);
    }

    #[test]
    fn every_preset_resolves_and_round_trips() {
        for (name, _, _) in PRESETS {
            let cfg = RunConfig::resolve(name, None, &[]).unwrap();
            let back = RunConfig::from_toml(&cfg.to_toml().unwrap()).unwrap();
            assert_eq!(cfg, back, "{name}");
        }
    }

    #[test]
    fn a_runs_config_file_keeps_its_preset_or_is_refused_under_another() {
        let cpu = RunConfig::resolve("cpu", None, &["seed=4".into()]).unwrap();
        let file = cpu.to_toml().unwrap();
        assert_eq!(RunConfig::preset_in(&file).unwrap().as_deref(), Some("cpu"));
        // Under its own preset the file is the same run's settings, recorded as `cpu`.
        assert_eq!(RunConfig::resolve("cpu", Some(&file), &[]).unwrap(), cpu);
        let err = RunConfig::resolve("paper", Some(&file), &[]).unwrap_err().to_string();
        assert!(err.contains("preset = \"cpu\"") && err.contains("drop --preset"), "{err}");
        assert_eq!(RunConfig::preset_in("[model]\nbelief_size = 8\n").unwrap(), None);
        assert!(RunConfig::preset_in("preset = 3\n").unwrap_err().to_string().contains("preset"));
    }
}
