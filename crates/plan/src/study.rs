//! The planner study of issue #4, part 1: how the return each planner reaches depends on the
//! compute it spends, as the action dimension m grows.
//!
//! The paper (sec. 1–2, and "Sub-Optimal Local Minima" in sec. 6) says gradient-free,
//! population-based planners such as CEM scale badly to high-dimensional actions while
//! Grad-MPC does not, but shows no experiment. This module runs one: for each problem, action
//! dimension m, planner, compute budget and seed, one `plan` call from a fixed start state,
//! scored by the return R (eq. 3, γ = 1, no value) of the sequence it returns, open loop.
//! That is the optimisation problem every MPC step solves; closed-loop episodes are another
//! study.
//!
//! * [`ProblemKind::Lq`]: [`ChainLq::chain`], a linear-quadratic ring with an analytic
//!   optimum R*; score `(R* − R) / |R*|`, the relative gap (0 is optimal).
//! * [`ProblemKind::Pendulums`]: [`PendulumChain`], m coupled pendulums to swing up, not
//!   concave; score `R / R_best`, where R_best is the best return any planner found for that
//!   m at any budget and seed (1 is the best found, 0 is hanging still).
//!
//! Compute is counted in forward-equivalent candidate-steps: [`Plan::model_steps`] plus
//! twice [`Plan::backward_steps`], since a backward pass through a step costs about two
//! forward ones. A budget is given in candidate-rollouts (candidate-steps / H), and
//! [`allocate`] turns it into each planner's J and I so that all spend about the same.

mod lq;
mod pendulums;

pub use lq::{ChainLq, ChainLqOptimum, ChainLqState, LqMatrices};
pub use pendulums::{PendulumChain, PendulumChainConfig, PendulumState};

use crate::{
    CemConfig, GradCemConfig, GradMpcConfig, LatentDynamics, MppiConfig, Objective, Plan, PlannerConfig,
    PlannerKind, RandomShootingConfig, Result,
};
use std::fmt::{self, Write as _};
use std::str::FromStr;
use std::time::Instant;
use tch::{Kind, Tensor};

/// Which problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProblemKind {
    /// [`ChainLq::chain`], concave, with an analytic optimum.
    Lq,
    /// [`PendulumChain`], nonconvex swing-up.
    Pendulums,
}

impl ProblemKind {
    pub const ALL: [ProblemKind; 2] = [ProblemKind::Lq, ProblemKind::Pendulums];

    pub fn name(self) -> &'static str {
        match self {
            ProblemKind::Lq => "lq",
            ProblemKind::Pendulums => "pendulums",
        }
    }

    /// What the score of this problem means.
    pub fn score_name(self) -> &'static str {
        match self {
            ProblemKind::Lq => "gap (R* − R)/|R*| (0 = optimal)",
            ProblemKind::Pendulums => "R / R_best (1 = best found)",
        }
    }

    /// Whether a larger score is better.
    pub fn higher_is_better(self) -> bool {
        self == ProblemKind::Pendulums
    }

    /// The planner settings every budget shares on this problem.
    ///
    /// α and λ₀ were picked once per problem, not per m or budget, from a pilot at a 4k-rollout
    /// budget on m ∈ {1, 6, 16}, seed 0: the best return of α ∈ {0.1, 0.3, 1, 3} and of
    /// λ₀ ∈ {0.01, 0.03, 0.1, 0.3, 1, 10} (pendulums) or {1, 3, 10} (LQ). On the LQ problem
    /// α = 0.1 (the paper's default) is set by the curvature instead: α < 2/14.8 is needed for
    /// stability.
    pub fn settings(self) -> ProblemSettings {
        match self {
            // H = 12 is the paper's.
            ProblemKind::Lq => ProblemSettings { horizon: 12, learning_rate: 0.1, temperature: 3.0 },
            // 2 s at dt = 0.05: fast swing-ups take 1–1.5 s, leaving time to stay up. With the
            // box clamp, α = 3 makes most coordinates jump to ±1 in one step: projected
            // gradient ascent close to a sign method, which suits the bang-bang optimum.
            ProblemKind::Pendulums => ProblemSettings { horizon: 40, learning_rate: 3.0, temperature: 0.1 },
        }
    }
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ProblemKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        ProblemKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("`{s}` is not a study problem; use lq or pendulums"))
    }
}

/// Planner settings that depend on the problem, not on the budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProblemSettings {
    /// H, planning horizon.
    pub horizon: i64,
    /// α, the action learning rate of Grad-MPC and GradCEM (SGD).
    pub learning_rate: f64,
    /// λ₀: MPPI's temperature is `λ = λ₀·√m`. The return is a sum over the m actuators, so
    /// its spread over samples grows like √m; a fixed λ would let the weights collapse onto
    /// one sample as m grows, which is a tuning failure rather than a scaling result.
    pub temperature: f64,
}

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct StudyConfig {
    pub problems: Vec<ProblemKind>,
    /// m, action dimensions. Default 1, 2, 6, 16, 64.
    pub action_dims: Vec<i64>,
    /// Default CEM, MPPI, Grad-MPC, GradCEM.
    pub planners: Vec<PlannerKind>,
    /// Compute budgets per plan call, in forward-equivalent candidate-rollouts (candidate-steps
    /// / H). Default 1k, 4k, 16k, 64k (PlaNet's CEM, I = 10 × J = 1000, spends 10k; Grad-MPC's
    /// paper setting, I = 40 × J = 1000, about 120k).
    pub budgets: Vec<u64>,
    /// Seeds 0..n of tch's generator, the same for every planner. Default 3.
    pub seeds: u64,
    /// I of Grad-MPC at every budget (its J takes up the rest). Default 40, the paper's.
    pub grad_mpc_iterations: usize,
    /// H, α and λ₀ on the LQ problem. Default [`ProblemKind::settings`].
    pub lq: ProblemSettings,
    /// H, α and λ₀ on the pendulums. Default [`ProblemKind::settings`].
    pub pendulums: ProblemSettings,
}

impl Default for StudyConfig {
    fn default() -> Self {
        StudyConfig {
            problems: ProblemKind::ALL.to_vec(),
            action_dims: vec![1, 2, 6, 16, 64],
            planners: vec![PlannerKind::Cem, PlannerKind::Mppi, PlannerKind::GradMpc, PlannerKind::GradCem],
            budgets: vec![1_000, 4_000, 16_000, 64_000],
            seeds: 3,
            grad_mpc_iterations: 40,
            lq: ProblemKind::Lq.settings(),
            pendulums: ProblemKind::Pendulums.settings(),
        }
    }
}

impl StudyConfig {
    /// The settings in force for `problem`.
    pub fn settings(&self, problem: ProblemKind) -> ProblemSettings {
        match problem {
            ProblemKind::Lq => self.lq,
            ProblemKind::Pendulums => self.pendulums,
        }
    }
}

/// Each planner's sizes for a budget of `budget` candidate-rollouts, so that all spend about
/// the same forward-equivalent compute:
///
/// | planner | per-call cost (rollouts) | I | J | K |
/// |---|---|---|---|---|
/// | CEM, MPPI | I·J | 10 | budget/10 | J/10 |
/// | random shooting | J | 1 | budget | – |
/// | Grad-MPC | I·J forward + I·J backward (×2) + J | `grad_mpc_iterations` | budget/(3I + 1) | – |
/// | GradCEM (G = 1) | I·(2J forward + J backward ×2) | 10 | budget/40 | J/10 |
///
/// K is at least 2 (one elite has no spread) and J at least K. Everything else is the
/// planners' defaults, except α and λ from `settings`.
pub fn allocate(
    planner: PlannerKind,
    budget: u64,
    settings: &ProblemSettings,
    action_dim: i64,
    grad_mpc_iterations: usize,
) -> PlannerConfig {
    let horizon = settings.horizon;
    let budget = budget as i64;
    let elites = |j: i64| (j / 10).max(2);
    match planner {
        PlannerKind::Cem => {
            let candidates = (budget / 10).max(2);
            PlannerConfig::Cem(CemConfig {
                horizon,
                iterations: 10,
                candidates,
                top_k: elites(candidates).min(candidates),
                ..Default::default()
            })
        }
        PlannerKind::RandomShooting => PlannerConfig::RandomShooting(RandomShootingConfig {
            horizon,
            candidates: budget.max(1),
            ..Default::default()
        }),
        PlannerKind::Mppi => PlannerConfig::Mppi(MppiConfig {
            horizon,
            iterations: 10,
            candidates: (budget / 10).max(2),
            temperature: settings.temperature * (action_dim as f64).sqrt(),
            ..Default::default()
        }),
        // The study's problems have no policy: these fail with `Error::NoPolicy` when run.
        PlannerKind::Policy => PlannerConfig::Policy(Default::default()),
        PlannerKind::PolicyGradMpc => PlannerConfig::PolicyGradMpc(crate::PolicyGradMpcConfig {
            horizon,
            iterations: grad_mpc_iterations,
            candidates: (budget / (3 * grad_mpc_iterations as i64 + 1)).max(1),
            learning_rate: settings.learning_rate,
            ..Default::default()
        }),
        PlannerKind::GradMpc => PlannerConfig::GradMpc(GradMpcConfig {
            horizon,
            iterations: grad_mpc_iterations,
            candidates: (budget / (3 * grad_mpc_iterations as i64 + 1)).max(1),
            learning_rate: settings.learning_rate,
            ..Default::default()
        }),
        PlannerKind::GradCem => {
            let candidates = (budget / 40).max(2);
            PlannerConfig::GradCem(GradCemConfig {
                horizon,
                iterations: 10,
                candidates,
                top_k: elites(candidates).min(candidates),
                gradient_steps: 1,
                learning_rate: settings.learning_rate,
                ..Default::default()
            })
        }
    }
}

/// One `plan` call of the study.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub problem: ProblemKind,
    /// m
    pub action_dim: i64,
    pub planner: PlannerKind,
    /// The nominal budget, candidate-rollouts.
    pub budget: u64,
    pub seed: u64,
    /// H
    pub horizon: i64,
    /// I
    pub iterations: usize,
    /// J
    pub candidates: i64,
    /// Candidate-steps rolled forward ([`Plan::model_steps`]).
    pub model_steps: u64,
    /// Of those, candidate-steps back-propagated through ([`Plan::backward_steps`]).
    pub backward_steps: u64,
    /// Wall time of the `plan` call, ms (indicative: the machine may be shared).
    pub wall_ms: f64,
    /// R of the returned sequence, recomputed in f64.
    pub ret: f64,
    /// R of doing nothing (all-zero actions), for scale.
    pub zero_return: f64,
    /// R* (LQ) or R_best (pendulums); NaN until the group is complete.
    pub reference: f64,
    /// The problem's score of `ret` against `reference` (see [`ProblemKind::score_name`]).
    pub score: f64,
}

impl Record {
    /// Forward-equivalent candidate-steps: forward steps + 2 × backward steps.
    pub fn cost(&self) -> u64 {
        self.model_steps + 2 * self.backward_steps
    }

    /// The score of a return `ret` on this record's problem and reference.
    pub fn score_of(&self, ret: f64) -> f64 {
        match self.problem {
            ProblemKind::Lq => (self.reference - ret) / self.reference.abs(),
            ProblemKind::Pendulums => ret / self.reference,
        }
    }
}

/// The columns of [`Study::to_csv`], in order.
pub const CSV_COLUMNS: [&str; 17] = [
    "problem",
    "action_dim",
    "planner",
    "budget_rollouts",
    "seed",
    "horizon",
    "iterations",
    "candidates",
    "model_steps",
    "backward_steps",
    "cost_steps",
    "wall_ms",
    "return",
    "zero_return",
    "reference",
    "score",
    "zero_score",
];

/// The mean over seeds of one (problem, m, planner, budget) cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub problem: ProblemKind,
    pub action_dim: i64,
    pub planner: PlannerKind,
    pub budget: u64,
    /// Seeds averaged.
    pub runs: usize,
    pub score_mean: f64,
    /// Sample standard deviation over seeds (0 for one seed).
    pub score_std: f64,
    /// Mean forward-equivalent candidate-steps.
    pub cost: f64,
    pub wall_ms: f64,
    /// The score of doing nothing, for scale.
    pub zero_score: f64,
}

/// Every record of a study.
#[derive(Debug, Clone, Default)]
pub struct Study {
    pub records: Vec<Record>,
}

/// Runs the study, calling `progress` after each `plan` call (before the pendulums' scores,
/// which need the whole group, are known).
pub fn run(config: &StudyConfig, progress: &mut dyn FnMut(&Record)) -> Result<Study> {
    let mut study = Study::default();
    for &problem in &config.problems {
        for &m in &config.action_dims {
            let group = match problem {
                ProblemKind::Lq => {
                    let lq = ChainLq::chain(m as usize, Kind::Float);
                    let reference = ChainLq::chain(m as usize, Kind::Double);
                    let x0 = ChainLq::chain_start(m as usize);
                    let horizon = config.lq.horizon as usize;
                    let optimum = reference.optimum(&x0, horizon).ret;
                    let evaluate = |sequence: &Tensor| {
                        let actions = Vec::<f64>::try_from(sequence.to_kind(Kind::Double).flatten(0, -1));
                        actions.map(|a| reference.simulate_return(&x0, &a))
                    };
                    let mut group = sweep(config, problem, m, &lq, &lq.start(&x0), &evaluate, progress)?;
                    for r in &mut group {
                        r.reference = optimum;
                    }
                    group
                }
                ProblemKind::Pendulums => {
                    let physics = PendulumChainConfig::default();
                    let chain = PendulumChain::new(m, physics, Kind::Float);
                    let reference = PendulumChain::new(m, physics, Kind::Double);
                    let start = reference.start();
                    let evaluate = |sequence: &Tensor| {
                        let actions = sequence.to_kind(Kind::Double).unsqueeze(1);
                        let ret = Objective::default().returns(&reference, &start, &actions);
                        ret.f_double_value(&[0])
                    };
                    let mut group = sweep(config, problem, m, &chain, &chain.start(), &evaluate, progress)?;
                    let best = group.iter().map(|r| r.ret).fold(f64::NEG_INFINITY, f64::max);
                    for r in &mut group {
                        r.reference = best;
                    }
                    group
                }
            };
            study.records.extend(group.into_iter().map(|mut r| {
                r.score = r.score_of(r.ret);
                r
            }));
        }
    }
    Ok(study)
}

/// Every planner × budget × seed on one problem instance; references are left NaN.
fn sweep<D: LatentDynamics>(
    config: &StudyConfig,
    problem: ProblemKind,
    action_dim: i64,
    dynamics: &D,
    start: &D::State,
    evaluate: &dyn Fn(&Tensor) -> std::result::Result<f64, tch::TchError>,
    progress: &mut dyn FnMut(&Record),
) -> Result<Vec<Record>> {
    let settings = config.settings(problem);
    let zeros = Tensor::zeros([settings.horizon, action_dim], (Kind::Double, tch::Device::Cpu));
    let zero_return = evaluate(&zeros)?;
    let mut records = Vec::new();
    for &planner in &config.planners {
        let smallest = config.budgets.iter().copied().min().unwrap_or(1);
        // An untimed call first, so that no timed one pays for libtorch's first-use setup.
        allocate(planner, smallest, &settings, action_dim, config.grad_mpc_iterations)
            .init::<D>()
            .plan(dynamics, start)?;
        for &budget in &config.budgets {
            let planner_config = allocate(planner, budget, &settings, action_dim, config.grad_mpc_iterations);
            planner_config.validate()?;
            for seed in 0..config.seeds {
                let mut p = planner_config.init::<D>();
                tch::manual_seed(seed as i64);
                let clock = Instant::now();
                let plan: Plan = p.plan(dynamics, start)?;
                let wall_ms = clock.elapsed().as_secs_f64() * 1e3;
                let record = Record {
                    problem,
                    action_dim,
                    planner,
                    budget,
                    seed,
                    horizon: settings.horizon,
                    iterations: plan.iterations,
                    candidates: candidates_of(&planner_config),
                    model_steps: plan.model_steps,
                    backward_steps: plan.backward_steps,
                    wall_ms,
                    ret: evaluate(&plan.sequence)?,
                    zero_return,
                    reference: f64::NAN,
                    score: f64::NAN,
                };
                progress(&record);
                records.push(record);
            }
        }
    }
    Ok(records)
}

fn candidates_of(config: &PlannerConfig) -> i64 {
    match config {
        PlannerConfig::Cem(c) => c.candidates,
        PlannerConfig::RandomShooting(c) => c.candidates,
        PlannerConfig::GradMpc(c) => c.candidates,
        PlannerConfig::Mppi(c) => c.candidates,
        PlannerConfig::GradCem(c) => c.candidates,
        PlannerConfig::Policy(_) => 1,
        PlannerConfig::PolicyGradMpc(c) => c.candidates,
    }
}

impl Study {
    /// One row per record, columns [`CSV_COLUMNS`], full precision.
    pub fn to_csv(&self) -> String {
        let mut out = CSV_COLUMNS.join(",");
        out.push('\n');
        for r in &self.records {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{:.3},{},{},{},{},{}",
                r.problem,
                r.action_dim,
                r.planner,
                r.budget,
                r.seed,
                r.horizon,
                r.iterations,
                r.candidates,
                r.model_steps,
                r.backward_steps,
                r.cost(),
                r.wall_ms,
                r.ret,
                r.zero_return,
                r.reference,
                r.score,
                r.score_of(r.zero_return),
            );
        }
        out
    }

    /// Means over seeds, in the order the cells were run.
    pub fn summaries(&self) -> Vec<Summary> {
        let mut out: Vec<Summary> = Vec::new();
        let mut members: Vec<Vec<&Record>> = Vec::new();
        for r in &self.records {
            let key = (r.problem, r.action_dim, r.planner, r.budget);
            match out.iter().position(|s| (s.problem, s.action_dim, s.planner, s.budget) == key) {
                Some(i) => members[i].push(r),
                None => {
                    out.push(Summary {
                        problem: r.problem,
                        action_dim: r.action_dim,
                        planner: r.planner,
                        budget: r.budget,
                        runs: 0,
                        score_mean: 0.0,
                        score_std: 0.0,
                        cost: 0.0,
                        wall_ms: 0.0,
                        zero_score: r.score_of(r.zero_return),
                    });
                    members.push(vec![r]);
                }
            }
        }
        for (s, rs) in out.iter_mut().zip(&members) {
            let n = rs.len() as f64;
            s.runs = rs.len();
            s.score_mean = rs.iter().map(|r| r.score).sum::<f64>() / n;
            s.cost = rs.iter().map(|r| r.cost() as f64).sum::<f64>() / n;
            s.wall_ms = rs.iter().map(|r| r.wall_ms).sum::<f64>() / n;
            s.score_std = if rs.len() > 1 {
                (rs.iter().map(|r| (r.score - s.score_mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
            } else {
                0.0
            };
        }
        out
    }

    /// A markdown table per problem: one row per (m, planner), the mean score ± std over seeds
    /// at each budget, and the mean wall time per plan call at the largest budget.
    pub fn markdown(&self) -> String {
        let summaries = self.summaries();
        let mut out = String::new();
        let mut problems: Vec<ProblemKind> = summaries.iter().map(|s| s.problem).collect();
        problems.dedup();
        for problem in problems {
            let cells: Vec<&Summary> = summaries.iter().filter(|s| s.problem == problem).collect();
            let mut budgets: Vec<u64> = cells.iter().map(|s| s.budget).collect();
            budgets.sort_unstable();
            budgets.dedup();
            let horizon = self.records.iter().find(|r| r.problem == problem).map_or(0, |r| r.horizon as u64);
            let largest = budgets.last().copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "**{problem}** (H = {horizon}), score: {}, mean ± std over seeds\n",
                problem.score_name()
            );
            let mut header = "| m | planner |".to_string();
            let mut rule = "|---|---|".to_string();
            for b in &budgets {
                let _ = write!(header, " {} steps |", human(b * horizon));
                rule.push_str("---|");
            }
            let _ = writeln!(out, "{header} ms/call at {} |\n{rule}---|", human(largest * horizon));
            let mut dims: Vec<i64> = cells.iter().map(|s| s.action_dim).collect();
            dims.sort_unstable();
            dims.dedup();
            for m in dims {
                let row: Vec<&&Summary> = cells.iter().filter(|s| s.action_dim == m).collect();
                let mut planners: Vec<PlannerKind> = row.iter().map(|s| s.planner).collect();
                planners.dedup();
                for planner in planners {
                    let _ = write!(out, "| {m} | {planner} |");
                    let mut wall = f64::NAN;
                    for b in &budgets {
                        match row.iter().find(|s| s.planner == planner && s.budget == *b) {
                            Some(s) => {
                                let _ = write!(out, " {} ± {} |", sig(s.score_mean), sig(s.score_std));
                                if *b == largest {
                                    wall = s.wall_ms;
                                }
                            }
                            None => out.push_str(" – |"),
                        }
                    }
                    let _ = writeln!(out, " {wall:.0} |");
                }
                if let Some(s) = row.first() {
                    let _ = write!(out, "| {m} | *zero actions* |");
                    for _ in &budgets {
                        let _ = write!(out, " {} |", sig(s.zero_score));
                    }
                    out.push_str(" – |\n");
                }
            }
            out.push('\n');
        }
        out
    }
}

/// 3 significant digits, plain for moderate magnitudes, scientific otherwise.
fn sig(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let magnitude = x.abs().log10().floor() as i32;
    if (-3..4).contains(&magnitude) {
        format!("{:.*}", (2 - magnitude).max(0) as usize, x)
    } else {
        format!("{x:.2e}")
    }
}

/// 12000 → "12k", 768000 → "768k", 3200000 → "3.2M".
fn human(x: u64) -> String {
    match x {
        0..1_000 => x.to_string(),
        1_000..1_000_000 => {
            let thousands = x as f64 / 1e3;
            let digits = if thousands.fract() == 0.0 { 0 } else { 1 };
            format!("{thousands:.digits$}k")
        }
        _ => format!("{:.1}M", x as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_buy_about_the_same_compute_for_every_planner() {
        let _rng = crate::tests::rng_lock();
        let lq = ChainLq::chain(2, Kind::Float);
        let x0 = ChainLq::chain_start(2);
        let settings = ProblemKind::Lq.settings();
        let budget = 4_000;
        for planner in PlannerKind::MODEL_ONLY {
            tch::manual_seed(0);
            let plan = allocate(planner, budget, &settings, 2, 40).init().plan(&lq, &lq.start(&x0)).unwrap();
            let cost = plan.model_steps + 2 * plan.backward_steps;
            let nominal = budget * settings.horizon as u64;
            let ratio = cost as f64 / nominal as f64;
            assert!((0.9..1.05).contains(&ratio), "{planner}: {cost} steps for a budget of {nominal}");
        }
    }

    #[test]
    fn tiny_study_scores_and_tables() {
        let _rng = crate::tests::rng_lock();
        let config = StudyConfig {
            action_dims: vec![1, 2],
            planners: vec![PlannerKind::Cem, PlannerKind::GradMpc],
            budgets: vec![100, 400],
            seeds: 2,
            grad_mpc_iterations: 10,
            ..Default::default()
        };
        let mut seen = 0;
        let study = run(&config, &mut |_| seen += 1).unwrap();
        assert_eq!(seen, 2 * 2 * 2 * 2 * 2);
        assert_eq!(study.records.len(), seen);
        for r in &study.records {
            assert!(r.ret.is_finite() && r.reference.is_finite() && r.score.is_finite(), "{r:?}");
            assert!(r.cost() > 0 && r.wall_ms >= 0.0);
            match r.problem {
                // No plan beats the optimum (f32 planning, f64 scoring: a hair of slack).
                ProblemKind::Lq => assert!(r.score > -1e-6, "{r:?}"),
                ProblemKind::Pendulums => assert!(r.score <= 1.0, "{r:?}"),
            }
        }
        // Some pendulum run is the best one, by construction.
        assert!(study.records.iter().any(|r| r.problem == ProblemKind::Pendulums && r.score == 1.0));
        // The same seed gives the same plan.
        let again = run(&StudyConfig { problems: vec![ProblemKind::Lq], ..config }, &mut |_| {}).unwrap();
        let first: Vec<f64> =
            study.records.iter().filter(|r| r.problem == ProblemKind::Lq).map(|r| r.ret).collect();
        assert_eq!(first, again.records.iter().map(|r| r.ret).collect::<Vec<_>>());

        let summaries = study.summaries();
        assert_eq!(summaries.len(), 2 * 2 * 2 * 2);
        assert!(summaries.iter().all(|s| s.runs == 2));
        let table = study.markdown();
        assert!(table.contains("**lq** (H = 12)") && table.contains("**pendulums** (H = 40)"), "{table}");
        assert!(table.contains("| 2 | grad-mpc |") && table.contains("| 1 | *zero actions* |"), "{table}");
        assert!(table.contains("1.2k steps") && table.contains("4.8k steps"), "{table}");
    }

    #[test]
    fn csv_has_the_documented_columns() {
        let _rng = crate::tests::rng_lock();
        let config = StudyConfig {
            problems: vec![ProblemKind::Lq],
            action_dims: vec![1],
            planners: vec![PlannerKind::Mppi],
            budgets: vec![50],
            seeds: 1,
            ..Default::default()
        };
        let csv = run(&config, &mut |_| {}).unwrap().to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 2, "{csv}");
        assert_eq!(lines[0], CSV_COLUMNS.join(","));
        let row: Vec<&str> = lines[1].split(',').collect();
        assert_eq!(row.len(), CSV_COLUMNS.len());
        assert_eq!(&row[..6], ["lq", "1", "mppi", "50", "0", "12"]);
        for (name, value) in CSV_COLUMNS.iter().zip(&row).skip(6) {
            assert!(value.parse::<f64>().is_ok_and(f64::is_finite), "{name} = {value}");
        }
    }

    #[test]
    fn grad_mpc_reaches_the_lq_optimum_at_m_16() {
        // The study's largest default budget (64k rollouts: I = 40, J = 528), three seeds.
        let _rng = crate::tests::rng_lock();
        let config = StudyConfig {
            problems: vec![ProblemKind::Lq],
            action_dims: vec![16],
            planners: vec![PlannerKind::GradMpc],
            budgets: vec![64_000],
            ..Default::default()
        };
        let study = run(&config, &mut |_| {}).unwrap();
        for r in &study.records {
            eprintln!("seed {}: gap {:.2e}", r.seed, r.score);
            assert!(r.score < 0.05 && r.score > -1e-6, "{r:?}");
            // Far better than doing nothing, which is what a stalled search returns.
            assert!(r.score_of(r.zero_return) > 1.0, "{r:?}");
            assert_eq!((r.iterations, r.candidates), (40, 528));
        }
    }

    #[test]
    fn numbers_print_compactly() {
        assert_eq!(human(12_000), "12k");
        assert_eq!(human(4_800), "4.8k");
        assert_eq!(human(3_200_000), "3.2M");
        assert_eq!(sig(0.012345), "0.0123");
        assert_eq!(sig(1.0), "1.00");
        assert_eq!(sig(2.5e-6), "2.50e-6");
    }
}
