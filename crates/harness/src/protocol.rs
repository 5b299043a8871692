//! The paper's protocol as a list of independent jobs.
//!
//! A job is one training run (task × training planner × seed) followed by noise-free
//! evaluations of its final model under every evaluation planner, all with the same
//! evaluation seed, so every planner meets the same start states. Table 1 trains PlaNet's
//! model with CEM (the paper's "PlaNet" column) and with Grad-MPC (its "Grad-MPC" column)
//! for 100k env steps from pixels; Table 2 trains Dreamer (`policy`) for 500k env steps and
//! compares its pure policy with Policy+Grad-MPC. `--scale` shrinks every budget. A
//! [`Collector`] `A-then-B` trains with A and hands the run over to B for the last 30% of the
//! budget (a [`Handover`]): the data of one planner, then another's.

use crate::{Error, Result};
use gradplan_config::{EnvBackend, GradMpcFlavour, PlannerKind, RunConfig};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Which of the paper's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Table {
    /// DMC 100k from pixels, five tasks.
    One,
    /// Sparse tasks, Dreamer pretrained 500k steps, pure policy vs Policy+Grad-MPC.
    Two,
}

impl Table {
    pub fn number(self) -> u8 {
        match self {
            Table::One => 1,
            Table::Two => 2,
        }
    }

    pub fn from_number(n: u8) -> Result<Table> {
        match n {
            1 => Ok(Table::One),
            2 => Ok(Table::Two),
            _ => Err(Error::Usage(format!(
                "--table {n}: the paper has Table 1 (DMC 100k) and Table 2 (sparse, Dreamer); use 1 or 2"
            ))),
        }
    }

    /// The paper's tasks for this table.
    pub fn tasks(self) -> Vec<String> {
        let names: &[&str] = match self {
            Table::One => &["cartpole-swingup", "reacher-easy", "finger-spin", "walker-walk", "cheetah-run"],
            Table::Two => &["ball_in_cup-catch", "cartpole-swingup_sparse"],
        };
        names.iter().map(|s| s.to_string()).collect()
    }

    /// The planners the models are trained with.
    pub fn train_planners(self) -> Vec<Collector> {
        match self {
            Table::One => vec![BenchPlanner::GRAD_MPC_PAPER.into(), BenchPlanner::CEM.into()],
            Table::Two => vec![BenchPlanner::POLICY.into()],
        }
    }

    /// The planners every final model is evaluated with: Table 1's are every model-only
    /// planner, both Grad-MPC flavours included.
    pub fn eval_planners(self) -> Vec<BenchPlanner> {
        match self {
            Table::One => BenchPlanner::ALL.into_iter().filter(|p| !p.kind().uses_policy()).collect(),
            Table::Two => vec![BenchPlanner::POLICY, BenchPlanner::POLICY_GRAD_MPC],
        }
    }
}

/// A planner as the harness names it: a kind and, for Grad-MPC, its flavour. The names are
/// the workspace's (`--planner`, `planner.kind`): `grad-mpc` is the default, robust
/// flavour, as everywhere else, and `grad-mpc-paper` is Algorithm 1 exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BenchPlanner {
    kind: PlannerKind,
    /// Only Grad-MPC's is meaningful; the other kinds carry the default.
    flavour: GradMpcFlavour,
}

impl BenchPlanner {
    pub const CEM: BenchPlanner = BenchPlanner::of(PlannerKind::Cem);
    /// Grad-MPC, robust flavour (the project's default).
    pub const GRAD_MPC: BenchPlanner = BenchPlanner::of(PlannerKind::GradMpc);
    /// Grad-MPC, Algorithm 1 as the paper prints it.
    pub const GRAD_MPC_PAPER: BenchPlanner =
        BenchPlanner { kind: PlannerKind::GradMpc, flavour: GradMpcFlavour::Paper };
    pub const POLICY: BenchPlanner = BenchPlanner::of(PlannerKind::Policy);
    pub const POLICY_GRAD_MPC: BenchPlanner = BenchPlanner::of(PlannerKind::PolicyGradMpc);

    /// Every name the harness accepts, in `--help` order.
    pub const ALL: [BenchPlanner; 8] = [
        BenchPlanner::CEM,
        BenchPlanner::GRAD_MPC,
        BenchPlanner::GRAD_MPC_PAPER,
        BenchPlanner::of(PlannerKind::Mppi),
        BenchPlanner::of(PlannerKind::GradCem),
        BenchPlanner::of(PlannerKind::RandomShooting),
        BenchPlanner::POLICY,
        BenchPlanner::POLICY_GRAD_MPC,
    ];

    /// `kind` with the default flavour.
    pub const fn of(kind: PlannerKind) -> BenchPlanner {
        BenchPlanner { kind, flavour: GradMpcFlavour::Robust }
    }

    pub fn kind(self) -> PlannerKind {
        self.kind
    }

    /// Grad-MPC's flavour; `None` for the other kinds.
    pub fn flavour(self) -> Option<GradMpcFlavour> {
        (self.kind == PlannerKind::GradMpc).then_some(self.flavour)
    }

    pub fn name(self) -> &'static str {
        match self.flavour() {
            Some(GradMpcFlavour::Paper) => "grad-mpc-paper",
            _ => self.kind.name(),
        }
    }

    /// The column title in `results.md`.
    pub fn title(self) -> &'static str {
        match (self.kind, self.flavour()) {
            (PlannerKind::GradMpc, Some(GradMpcFlavour::Paper)) => "Grad-MPC paper",
            (PlannerKind::GradMpc, _) => "Grad-MPC robust",
            (PlannerKind::Cem, _) => "CEM",
            (PlannerKind::Mppi, _) => "MPPI",
            (PlannerKind::GradCem, _) => "GradCEM",
            (PlannerKind::RandomShooting, _) => "Random shooting",
            (PlannerKind::Policy, _) => "Pure policy",
            (PlannerKind::PolicyGradMpc, _) => "Policy+Grad-MPC",
        }
    }

    /// `planner.kind` and, for Grad-MPC, `planner.flavour`, as `--set` settings.
    pub fn settings(self) -> Vec<String> {
        let mut s = vec![format!("planner.kind=\"{}\"", self.kind.name())];
        if let Some(f) = self.flavour() {
            s.push(format!("planner.flavour=\"{}\"", f.name()));
        }
        s
    }

    /// The planner's own I: its kind's default, or its Grad-MPC flavour's.
    pub fn default_iterations(self) -> usize {
        match self.flavour() {
            Some(f) => f.defaults().iterations,
            None => self.kind.default_iterations(),
        }
    }
}

impl std::fmt::Display for BenchPlanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BenchPlanner {
    type Err = Error;
    fn from_str(s: &str) -> Result<BenchPlanner> {
        BenchPlanner::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| {
            let names: Vec<&str> = BenchPlanner::ALL.iter().map(|p| p.name()).collect();
            Error::Usage(format!("`{s}` is not a planner; use one of {}", names.join(", ")))
        })
    }
}

impl TryFrom<String> for BenchPlanner {
    type Error = Error;
    fn try_from(s: String) -> Result<BenchPlanner> {
        s.parse()
    }
}

impl From<BenchPlanner> for String {
    fn from(p: BenchPlanner) -> String {
        p.name().to_owned()
    }
}

/// Who collects a model's data: one planner for the whole budget (`cem`), or one that hands
/// over to another for the last [`HANDOVER_SHARE`] of it (`cem-then-grad-mpc`): the first
/// bootstraps the model, the second collects the rest, as `gradplan resume --planner` would.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Collector {
    first: BenchPlanner,
    then: Option<BenchPlanner>,
}

/// How a collector's name joins its two planners.
const THEN: &str = "-then-";

/// The share of the budget the second planner of a handover collects: the last 30% (15k of
/// the `state` scale's 50k env steps, 30k of the paper's 100k).
pub const HANDOVER_SHARE: (usize, usize) = (3, 10);

impl Collector {
    /// `planner` for the whole budget.
    pub const fn only(planner: BenchPlanner) -> Collector {
        Collector { first: planner, then: None }
    }

    /// `first`, then `then` from [`Collector::handover_env_steps`] on.
    pub fn handover(first: BenchPlanner, then: BenchPlanner) -> Result<Collector> {
        if first == then {
            return Err(Error::Usage(format!("`{first}{THEN}{then}` hands over to itself; use `{first}`")));
        }
        if first.kind().uses_policy() != then.kind().uses_policy() {
            return Err(Error::Usage(format!(
                "`{first}{THEN}{then}`: one of the two needs Dreamer's actor and the other a world model alone; a \
                 run's agent is fixed when it is created, so both must be of one kind"
            )));
        }
        Ok(Collector { first, then: Some(then) })
    }

    /// The planner that collects first (the whole budget without a handover).
    pub fn first(self) -> BenchPlanner {
        self.first
    }

    /// The planner that takes over, if any.
    pub fn then(self) -> Option<BenchPlanner> {
        self.then
    }

    /// Both planners, the first first.
    pub fn planners(self) -> impl Iterator<Item = BenchPlanner> {
        std::iter::once(self.first).chain(self.then)
    }

    /// The env step at which the second planner takes over a budget of `total_env_steps`.
    pub fn handover_env_steps(total_env_steps: usize) -> usize {
        total_env_steps - total_env_steps * HANDOVER_SHARE.0 / HANDOVER_SHARE.1
    }

    /// `cem`, or `cem-then-grad-mpc`: the run directory's and the records' name.
    pub fn name(self) -> String {
        match self.then {
            Some(then) => format!("{}{THEN}{}", self.first.name(), then.name()),
            None => self.first.name().to_owned(),
        }
    }

    /// The row title in `results.md`: Dreamer for a run of the actor alone, else the
    /// planners' titles (`CEM, then Grad-MPC robust (last 30%)`).
    pub fn title(self) -> String {
        match self.then {
            Some(then) => format!(
                "{}, then {} (last {}%)",
                self.first.title(),
                then.title(),
                100 * HANDOVER_SHARE.0 / HANDOVER_SHARE.1
            ),
            None if self.first.kind().uses_policy() => "Dreamer".to_owned(),
            None => self.first.title().to_owned(),
        }
    }
}

impl From<BenchPlanner> for Collector {
    fn from(planner: BenchPlanner) -> Collector {
        Collector::only(planner)
    }
}

impl std::fmt::Display for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

impl std::str::FromStr for Collector {
    type Err = Error;
    fn from_str(s: &str) -> Result<Collector> {
        match s.split_once(THEN) {
            Some((first, then)) => Collector::handover(first.parse()?, then.parse()?),
            None => Ok(Collector::only(s.parse()?)),
        }
    }
}

impl TryFrom<String> for Collector {
    type Error = Error;
    fn try_from(s: String) -> Result<Collector> {
        s.parse()
    }
}

impl From<Collector> for String {
    fn from(c: Collector) -> String {
        c.name()
    }
}

/// How far every budget is shrunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// Tiny models and a few hundred env steps: the whole pipeline in seconds per run.
    Debug,
    /// The `cpu` preset (state observations, a smaller model and planner), 20k env steps:
    /// learning on a 2-core CPU in minutes per run. Not the paper's setting.
    Cpu,
    /// The `cpu` preset's model from state observations trained longer: 50k env steps with
    /// 100 updates per episode, tested every 10 episodes. Long enough for reacher-easy to
    /// learn on a 2-core CPU (minutes to tens of minutes per run), where `cpu` only learns
    /// cartpole. Not the paper's setting.
    State,
    /// The paper's protocol: the `paper` preset, 100k (Table 1) or 500k (Table 2) env steps,
    /// 10 test episodes per seed. Sized for a GPU.
    Paper,
}

impl std::str::FromStr for Scale {
    type Err = Error;
    fn from_str(s: &str) -> Result<Scale> {
        match s {
            "debug" => Ok(Scale::Debug),
            "cpu" => Ok(Scale::Cpu),
            "state" => Ok(Scale::State),
            "paper" => Ok(Scale::Paper),
            other => Err(Error::Usage(format!("--scale {other}: use debug, cpu, state or paper"))),
        }
    }
}

impl std::fmt::Display for Scale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Scale::Debug => "debug",
            Scale::Cpu => "cpu",
            Scale::State => "state",
            Scale::Paper => "paper",
        })
    }
}

/// The budgets of one table at one scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// Settings preset every run starts from.
    pub preset: String,
    /// Env steps (simulator steps, action repeat included) each model is trained for.
    pub total_env_steps: usize,
    /// Noise-free test episodes per seed and evaluation planner.
    pub eval_episodes: usize,
    /// Further settings every run gets (`key=value`, applied after the preset).
    pub overrides: Vec<String>,
}

/// I of the paper flavour in the evaluations of a shrunk scale. Algorithm 1's own I = 40
/// costs ten times CEM's decision on a CPU (0.46 s at J 200, 1 thread); at I 10 it keeps
/// most of its open-loop value (docs/decisions.md, #10).
pub const SHRUNK_PAPER_ITERATIONS: usize = 10;

impl Scale {
    pub fn budget(self, table: Table) -> Budget {
        let (preset, steps, episodes, overrides): (&str, usize, usize, &[&str]) = match (self, table) {
            (Scale::Paper, Table::One) => ("paper", 100_000, 10, &[]),
            (Scale::Paper, Table::Two) => ("paper", 500_000, 10, &[]),
            (Scale::Cpu, Table::One) => ("cpu", 20_000, 5, &[]),
            (Scale::State, Table::One) => {
                ("cpu", 50_000, 5, &["train.collect_interval=100", "train.test_interval=10"])
            }
            // The settings under which Dreamer learned on this CPU (docs/benchmarks.md).
            (Scale::Cpu | Scale::State, Table::Two) => (
                "cpu",
                30_000,
                5,
                &["dreamer.hidden=128", "dreamer.actor_lr=3e-4", "dreamer.value_lr=3e-4", "threads=1"],
            ),
            (Scale::Debug, Table::One) => ("debug", 800, 2, &[]),
            (Scale::Debug, Table::Two) => ("debug", 800, 2, &["dreamer.hidden=32", "dreamer.horizon=5"]),
        };
        Budget {
            preset: preset.into(),
            total_env_steps: steps,
            eval_episodes: episodes,
            overrides: overrides.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// I of `planner` in this scale's evaluations: the planner's own default (CEM, MPPI,
    /// GradCEM 10, Grad-MPC robust 2 and paper 40, random shooting 1, Policy+Grad-MPC 10),
    /// so one planner column means one planner whatever a preset set for training; the
    /// paper flavour at [`SHRUNK_PAPER_ITERATIONS`] below the paper scale.
    pub fn eval_iterations(self, planner: BenchPlanner) -> usize {
        let own = planner.default_iterations();
        match (self, planner.flavour()) {
            (Scale::Paper, _) => own,
            (_, Some(GradMpcFlavour::Paper)) => own.min(SHRUNK_PAPER_ITERATIONS),
            _ => own,
        }
    }

    /// Settings every model is evaluated with under `planner`, whatever it was trained with:
    /// the planner's kind, flavour and [`Scale::eval_iterations`]. H, J and the rest are the
    /// run's planner section, the same for every model of a table.
    pub fn eval_settings(self, planner: BenchPlanner) -> Vec<String> {
        let mut settings = planner.settings();
        let iterations = self.eval_iterations(planner);
        if iterations > 0 {
            settings.push(format!("planner.iterations={iterations}"));
        }
        settings
    }
}

/// What one invocation of `gradplan bench dmc` asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Protocol {
    pub table: Table,
    pub scale: Scale,
    pub tasks: Vec<String>,
    pub seeds: Vec<u64>,
    /// Who collects each model's data (Table 1: grad-mpc-paper and cem; Table 2: policy).
    pub train_planners: Vec<Collector>,
    /// Planners every final model is evaluated with.
    pub eval_planners: Vec<BenchPlanner>,
    /// `cpu`, `cuda` or `cuda:N`, for every run and evaluation.
    pub device: String,
    /// libtorch threads per run (0: one per core).
    pub threads: usize,
    /// Which implementation runs the tasks (`env.backend`): dm_control, or the native MuJoCo
    /// backend (the same episodes without Python).
    pub backend: EnvBackend,
    /// Environments each evaluation steps at once, on their own threads (`gradplan eval
    /// --envs`): the same episodes, less wall time where simulating and rendering cost
    /// something. More than one needs the native backend.
    pub eval_envs: usize,
    /// Settings every training run gets over the scale's budget (`bench dmc --set`), e.g. a
    /// model-training option; empty for the paper's protocol. The harness's own keys (task,
    /// planner, seed, budget, device, backend) are not among them ([`Protocol::set`]).
    #[serde(default)]
    pub train_settings: Vec<String>,
}

/// Keys the harness sets itself for every job, which `--set` may not change: a job's
/// planner comes from `--planners`, its task, seed and budget from the protocol.
const HARNESS_KEYS: [&str; 6] =
    ["env.task", "seed", "train.total_env_steps", "device", "threads", "env.backend"];

impl Protocol {
    /// Adds training settings (`key=value`, applied after the scale's budget), refusing the
    /// keys the harness owns and, by resolving them over the scale's preset, a misspelt key
    /// or a bad value: once, here, not in every job.
    pub fn set(&mut self, settings: &[String]) -> Result<()> {
        for setting in settings {
            let key = setting.split_once('=').map_or(setting.as_str(), |(k, _)| k).trim();
            if key.starts_with("planner.") || HARNESS_KEYS.contains(&key) {
                return Err(Error::Usage(format!(
                    "--set {setting}: `{key}` is the harness's to set (planners come from --planners and \
                     --eval-planners at the scale's sizes; task, seed, budget, device and backend from their own \
                     flags); --set is for training settings such as model.*"
                )));
            }
        }
        let budget = self.budget();
        let all: Vec<String> =
            budget.overrides.iter().chain(&self.train_settings).chain(settings).cloned().collect();
        gradplan_config::RunConfig::resolve(&budget.preset, None, &all)
            .map_err(|e| Error::Usage(format!("--set {}: {e}", settings.join(" --set "))))?;
        self.train_settings.extend(settings.iter().cloned());
        Ok(())
    }

    /// The paper's protocol for `table`, with the choices the user made (empty: the paper's).
    pub fn new(
        table: Table,
        scale: Scale,
        tasks: Vec<String>,
        seeds: Vec<u64>,
        train_planners: Vec<Collector>,
        eval_planners: Vec<BenchPlanner>,
    ) -> Result<Protocol> {
        let tasks = if tasks.is_empty() { table.tasks() } else { tasks };
        let seeds = if seeds.is_empty() { vec![0, 1, 2] } else { seeds };
        let train_planners = if train_planners.is_empty() { table.train_planners() } else { train_planners };
        let eval_planners = if eval_planners.is_empty() { table.eval_planners() } else { eval_planners };
        let every: Vec<BenchPlanner> =
            train_planners.iter().flat_map(|c| c.planners()).chain(eval_planners.iter().copied()).collect();
        for p in &every {
            if table == Table::Two && !p.kind().uses_policy() {
                return Err(Error::Usage(format!(
                    "Table 2 is about Dreamer's actor: planner {} has none; use policy or policy-grad-mpc",
                    p.name()
                )));
            }
        }
        if table == Table::One {
            if let Some(p) = every.iter().find(|p| p.kind().uses_policy()) {
                return Err(Error::Usage(format!(
                    "Table 1 compares planners on PlaNet models; {} needs a Dreamer run (use --table 2)",
                    p.name()
                )));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(dup) = seeds.iter().find(|s| !seen.insert(**s)) {
            return Err(Error::Usage(format!("seed {dup} is listed twice in --seeds")));
        }
        let names = |list: &[String], flag: &str| {
            let mut seen = std::collections::BTreeSet::new();
            match list.iter().find(|p| !seen.insert(p.as_str())) {
                Some(dup) => Err(Error::Usage(format!("planner {dup} is listed twice in {flag}"))),
                None => Ok(()),
            }
        };
        names(&train_planners.iter().map(|c| c.name()).collect::<Vec<_>>(), "--planners")?;
        names(&eval_planners.iter().map(|p| p.name().to_owned()).collect::<Vec<_>>(), "--eval-planners")?;
        Ok(Protocol {
            table,
            scale,
            tasks,
            seeds,
            train_planners,
            eval_planners,
            device: "cpu".into(),
            threads: 0,
            backend: EnvBackend::Dmc,
            eval_envs: 1,
            train_settings: Vec::new(),
        })
    }

    pub fn budget(&self) -> Budget {
        self.scale.budget(self.table)
    }

    /// Every job, task-major then planner then seed (the order they are run in).
    pub fn jobs(&self) -> Vec<Job> {
        let budget = self.budget();
        // The preset's I is sized for CEM (cpu 6, debug 2; the paper preset sets none).
        let preset_iterations = gradplan_config::preset_iterations(&budget.preset);
        let mut jobs = Vec::new();
        for task in &self.tasks {
            for collector in &self.train_planners {
                let planner = collector.first();
                // A handover run trains to the handover under its first planner; `resume`
                // takes it from there to the budget under the second.
                let handover = collector.then().map(|then| Handover {
                    at_env_steps: Collector::handover_env_steps(budget.total_env_steps),
                    planner: then,
                    settings: then
                        .settings()
                        .into_iter()
                        .chain(
                            train_iterations(then, preset_iterations)
                                .or(preset_iterations)
                                .map(|i| format!("planner.iterations={i}")),
                        )
                        .collect(),
                });
                let first_steps = handover.as_ref().map_or(budget.total_env_steps, |h| h.at_env_steps);
                for &seed in &self.seeds {
                    let mut overrides = budget.overrides.clone();
                    overrides.extend(self.train_settings.iter().cloned());
                    overrides.push(format!("env.task=\"{task}\""));
                    overrides.extend(planner.settings());
                    overrides.extend([
                        format!("seed={seed}"),
                        format!("train.total_env_steps={first_steps}"),
                        format!("device=\"{}\"", self.device),
                    ]);
                    if let Some(iterations) = train_iterations(planner, preset_iterations) {
                        overrides.push(format!("planner.iterations={iterations}"));
                    }
                    if self.threads > 0 {
                        overrides.push(format!("threads={}", self.threads));
                    }
                    // Only the native backend is named, so dm_control jobs keep their
                    // settings (and a directory written before the key existed stays valid).
                    if self.backend == EnvBackend::Native {
                        overrides.push(format!("env.backend=\"{}\"", self.backend));
                    }
                    jobs.push(Job {
                        id: format!("t{}-{task}-{collector}-s{seed}", self.table.number()),
                        task: task.clone(),
                        trained_with: *collector,
                        seed,
                        run_dir: PathBuf::from(format!("table{}", self.table.number()))
                            .join(task)
                            .join(collector.name())
                            .join(format!("seed{seed}")),
                        preset: budget.preset.clone(),
                        overrides,
                        handover: handover.clone(),
                        total_env_steps: budget.total_env_steps,
                        eval_planners: self.eval_planners.clone(),
                        eval_episodes: budget.eval_episodes,
                        eval_seed: eval_seed(seed),
                    });
                }
            }
        }
        jobs
    }

    /// The settings every model is evaluated with under `planner` at this protocol's scale.
    pub fn eval_settings(&self, planner: BenchPlanner) -> Vec<String> {
        self.scale.eval_settings(planner)
    }
}

/// I a model collects its data with when trained with `planner`: a Grad-MPC flavour's own I,
/// capped by the preset's (CEM's budget on a shrunk scale), so the robust flavour collects
/// at its I 2 and the paper flavour at the preset's I where that is below its 40; `None`
/// (the preset's or the kind's I) for every other planner.
pub fn train_iterations(planner: BenchPlanner, preset: Option<usize>) -> Option<usize> {
    let own = planner.flavour().map(|f| f.defaults().iterations)?;
    Some(preset.map_or(own, |p| own.min(p)))
}

/// The evaluation seed of training seed `seed`: the same for every planner, apart from the
/// seeds the run trained and tested with.
pub fn eval_seed(seed: u64) -> u64 {
    1_000_000 + seed
}

/// One training run and the evaluations of its final model.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// `t<table>-<task>-<planner>-s<seed>`: names the job in logs, SLURM and `--job`.
    pub id: String,
    pub task: String,
    pub trained_with: Collector,
    pub seed: u64,
    /// The run directory, relative to the harness's `--out`.
    pub run_dir: PathBuf,
    pub preset: String,
    /// Settings over the preset, in order (task, planner, seed, budget, device …): the
    /// run's configuration when it is created (for a handover, to the handover's env step).
    pub overrides: Vec<String>,
    /// Where the second planner of a handover collector takes over.
    pub handover: Option<Handover>,
    /// Env steps the final model is trained for.
    pub total_env_steps: usize,
    pub eval_planners: Vec<BenchPlanner>,
    pub eval_episodes: usize,
    pub eval_seed: u64,
}

/// The second phase of a handover job: from `at_env_steps` on, `planner` collects.
#[derive(Debug, Clone, PartialEq)]
pub struct Handover {
    pub at_env_steps: usize,
    pub planner: BenchPlanner,
    /// `planner.*` settings over the run's planner section (kind, flavour, I), as `gradplan
    /// resume --planner P --set …` takes them.
    pub settings: Vec<String>,
}

impl Handover {
    /// The run's configuration after the handover, `first` being the one it was created
    /// with: the budget `total_env_steps` and the second planner, by the same
    /// [`RunConfig::continued`] `gradplan resume --planner` writes.
    pub fn config(&self, first: &RunConfig, total_env_steps: usize) -> Result<RunConfig> {
        first
            .continued(Some(total_env_steps), Some(self.planner.kind()), &self.settings)
            .map_err(|e| Error::Usage(format!("handing over to {}: {e}", self.planner)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_protocol_has_the_papers_jobs() {
        let p = Protocol::new(Table::One, Scale::Paper, vec![], vec![], vec![], vec![]).unwrap();
        let jobs = p.jobs();
        assert_eq!(jobs.len(), 5 * 2 * 3);
        assert!(jobs.iter().all(|j| j.total_env_steps == 100_000 && j.eval_episodes == 10));
        assert!(jobs.iter().all(|j| j.eval_planners.len() == 6));
        // The paper's Grad-MPC column is Algorithm 1 collecting the data, at its I 40.
        assert_eq!(jobs[0].id, "t1-cartpole-swingup-grad-mpc-paper-s0");
        assert_eq!(jobs[0].run_dir, PathBuf::from("table1/cartpole-swingup/grad-mpc-paper/seed0"));
        assert!(jobs[0].overrides.contains(&"planner.iterations=40".to_string()), "{:?}", jobs[0].overrides);
        let ids: std::collections::BTreeSet<_> = jobs.iter().map(|j| j.id.clone()).collect();
        assert_eq!(ids.len(), jobs.len(), "job ids are unique");
        let t2 = Protocol::new(Table::Two, Scale::Paper, vec![], vec![], vec![], vec![]).unwrap();
        assert_eq!(t2.jobs().len(), 2 * 3);
        assert!(t2.jobs().iter().all(|j| j.total_env_steps == 500_000));
    }

    #[test]
    fn every_planner_of_a_run_gets_the_same_eval_seed() {
        let p =
            Protocol::new(Table::One, Scale::Debug, vec!["cartpole-swingup".into()], vec![3], vec![], vec![])
                .unwrap();
        let jobs = p.jobs();
        assert!(jobs.iter().all(|j| j.eval_seed == eval_seed(3)));
        assert_ne!(eval_seed(3), 3);
    }

    #[test]
    fn every_model_meets_the_same_planner_settings() {
        let paper = BenchPlanner::GRAD_MPC_PAPER;
        let algorithm_1 = ["planner.kind=\"grad-mpc\"", "planner.flavour=\"paper\""];
        assert_eq!(
            Scale::Paper.eval_settings(paper),
            [&algorithm_1[..], &["planner.iterations=40"]].concat()
        );
        // Below the paper scale Algorithm 1 runs at I 10 (its I 40 is 10× CEM's time on a CPU).
        assert_eq!(
            Scale::State.eval_settings(paper),
            [&algorithm_1[..], &["planner.iterations=10"]].concat()
        );
        assert_eq!(
            Scale::Cpu.eval_settings(BenchPlanner::GRAD_MPC),
            ["planner.kind=\"grad-mpc\"", "planner.flavour=\"robust\"", "planner.iterations=2"]
        );
        assert_eq!(
            Scale::Cpu.eval_settings(BenchPlanner::CEM),
            ["planner.kind=\"cem\"", "planner.iterations=10"]
        );
        assert_eq!(Scale::Paper.eval_settings(BenchPlanner::POLICY), ["planner.kind=\"policy\""]);
    }

    #[test]
    fn planner_names_round_trip_and_grad_mpc_means_the_robust_flavour() {
        for p in BenchPlanner::ALL {
            assert_eq!(p.name().parse::<BenchPlanner>().unwrap(), p);
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.name()));
            assert_eq!(serde_json::from_str::<BenchPlanner>(&json).unwrap(), p);
        }
        let g: BenchPlanner = "grad-mpc".parse().unwrap();
        assert_eq!(g.flavour(), Some(GradMpcFlavour::Robust));
        assert_eq!(BenchPlanner::CEM.flavour(), None);
        let err = "grad-mpc-robust".parse::<BenchPlanner>().unwrap_err().to_string();
        assert!(err.contains("grad-mpc-paper") && err.contains("random-shooting"), "{err}");
    }

    #[test]
    fn grad_mpc_trains_at_its_own_iterations_capped_by_the_preset() {
        let p = Protocol::new(
            Table::One,
            Scale::State,
            vec!["cartpole-swingup".into()],
            vec![0],
            vec![
                BenchPlanner::CEM.into(),
                BenchPlanner::GRAD_MPC.into(),
                BenchPlanner::GRAD_MPC_PAPER.into(),
            ],
            vec![],
        )
        .unwrap();
        let jobs = p.jobs();
        let iterations = |j: &Job| j.overrides.iter().find(|o| o.starts_with("planner.iterations=")).cloned();
        // CEM keeps the cpu preset's I 6; robust collects at its I 2, the paper flavour at the preset's 6.
        assert_eq!(iterations(&jobs[0]), None);
        assert_eq!(iterations(&jobs[1]).as_deref(), Some("planner.iterations=2"));
        assert_eq!(iterations(&jobs[2]).as_deref(), Some("planner.iterations=6"));
        assert_eq!(jobs[2].run_dir, PathBuf::from("table1/cartpole-swingup/grad-mpc-paper/seed0"));
        assert!(jobs[1].overrides.contains(&"train.collect_interval=100".to_string()));
        assert_eq!(jobs[1].total_env_steps, 50_000);
        // Table 1's evaluations: every model-only planner, both flavours of Grad-MPC.
        assert_eq!(jobs[0].eval_planners.len(), 6);
        assert_eq!(train_iterations(BenchPlanner::GRAD_MPC_PAPER, None), Some(40));
        for job in &jobs {
            gradplan_config::RunConfig::resolve(&job.preset, None, &job.overrides).unwrap();
        }
    }

    #[test]
    fn the_native_backend_reaches_every_job_and_dm_control_jobs_are_unchanged() {
        let mut p = Protocol::new(Table::One, Scale::Debug, vec![], vec![0], vec![], vec![]).unwrap();
        let dmc = p.jobs();
        assert!(dmc.iter().all(|j| !j.overrides.iter().any(|o| o.starts_with("env.backend"))));
        p.backend = EnvBackend::Native;
        for job in p.jobs() {
            assert!(job.overrides.contains(&"env.backend=\"native\"".to_string()), "{:?}", job.overrides);
            let cfg = gradplan_config::RunConfig::resolve(&job.preset, None, &job.overrides).unwrap();
            assert_eq!(cfg.env.backend, EnvBackend::Native);
        }
    }

    #[test]
    fn training_settings_reach_every_job_but_not_the_harness_keys() {
        let mut p = Protocol::new(Table::One, Scale::State, vec![], vec![0, 1], vec![], vec![]).unwrap();
        let noise = ["model.perturbation=\"noise\"".to_string(), "model.perturbation_state=0.2".to_string()];
        p.set(&noise).unwrap();
        for job in p.jobs() {
            let cfg = gradplan_config::RunConfig::resolve(&job.preset, None, &job.overrides).unwrap();
            assert_eq!(cfg.model.perturbation, gradplan_config::Perturbation::Noise, "{}", job.id);
            assert_eq!(cfg.model.perturbation_state, 0.2);
            assert_eq!(cfg.seed, job.seed, "the harness's own keys still decide the job");
        }
        for owned in ["planner.horizon=3", "seed=5", "env.task=\"walker-walk\"", "train.total_env_steps=10"] {
            let err = p.clone().set(&[owned.to_string()]).unwrap_err().to_string();
            assert!(err.contains("harness's to set"), "{owned}: {err}");
        }
        let err = p.clone().set(&["model.perturbaton=\"noise\"".to_string()]).unwrap_err().to_string();
        assert!(err.contains("perturbaton"), "a misspelt key is refused up front: {err}");
        assert_eq!(p.train_settings, noise, "a refused setting adds nothing");
    }

    #[test]
    fn a_handover_collector_is_named_parsed_and_refused_like_a_planner() {
        let c: Collector = "cem-then-grad-mpc".parse().unwrap();
        assert_eq!((c.first(), c.then()), (BenchPlanner::CEM, Some(BenchPlanner::GRAD_MPC)));
        assert_eq!(c.name(), "cem-then-grad-mpc");
        assert_eq!(c.title(), "CEM, then Grad-MPC robust (last 30%)");
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"cem-then-grad-mpc\"");
        assert_eq!(serde_json::from_str::<Collector>("\"cem-then-grad-mpc\"").unwrap(), c);
        let plain: Collector = "grad-mpc-paper".parse().unwrap();
        assert_eq!(
            (plain, plain.name()),
            (BenchPlanner::GRAD_MPC_PAPER.into(), "grad-mpc-paper".to_string())
        );
        assert_eq!(Collector::from(BenchPlanner::POLICY).title(), "Dreamer");
        for (bad, says) in [
            ("cem-then-cem", "hands over to itself"),
            ("cem-then-policy", "agent is fixed"),
            ("cem-then-grad", "not a planner"),
            ("then-cem", "not a planner"),
        ] {
            let err = bad.parse::<Collector>().unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
        // 70% of the budget, then the second planner.
        assert_eq!(Collector::handover_env_steps(50_000), 35_000);
        assert_eq!(Collector::handover_env_steps(100_000), 70_000);
        assert_eq!(Collector::handover_env_steps(800), 560);
    }

    #[test]
    fn a_handover_job_trains_to_the_handover_then_resumes_with_the_second_planner() {
        let collectors = vec!["cem".parse().unwrap(), "cem-then-grad-mpc".parse().unwrap()];
        let p =
            Protocol::new(Table::One, Scale::State, vec!["cheetah-run".into()], vec![2], collectors, vec![])
                .unwrap();
        let jobs = p.jobs();
        let (plain, handover) = (&jobs[0], &jobs[1]);
        assert_eq!(handover.id, "t1-cheetah-run-cem-then-grad-mpc-s2");
        assert_eq!(handover.run_dir, PathBuf::from("table1/cheetah-run/cem-then-grad-mpc/seed2"));
        assert_eq!(handover.total_env_steps, 50_000);
        assert!(plain.handover.is_none());
        let h = handover.handover.as_ref().unwrap();
        assert_eq!((h.at_env_steps, h.planner), (35_000, BenchPlanner::GRAD_MPC));
        // Until the handover the run is the CEM run with a shorter budget.
        let first = RunConfig::resolve(&handover.preset, None, &handover.overrides).unwrap();
        let cem = RunConfig::resolve(&plain.preset, None, &plain.overrides).unwrap();
        assert_eq!(first.train.total_env_steps, 35_000);
        let mut shorter = cem.clone();
        shorter.train.total_env_steps = 35_000;
        assert_eq!(first.to_toml().unwrap(), shorter.to_toml().unwrap());
        // After it: robust Grad-MPC at its I 2, to the budget; everything else unchanged.
        let after = h.config(&first, handover.total_env_steps).unwrap();
        assert_eq!(after.train.total_env_steps, 50_000);
        assert_eq!(after.planner.kind, PlannerKind::GradMpc);
        assert_eq!(after.planner.flavour, GradMpcFlavour::Robust);
        assert_eq!(after.planner.iterations, Some(2));
        assert_eq!(after.planner.horizon, cem.planner.horizon);
        assert_eq!((after.model.clone(), after.seed), (cem.model.clone(), cem.seed));
        // Handing over to CEM gives it the preset's training I, as a CEM-trained run has.
        let back: Collector = "grad-mpc-then-cem".parse().unwrap();
        let p =
            Protocol::new(Table::One, Scale::State, vec!["cheetah-run".into()], vec![0], vec![back], vec![])
                .unwrap();
        let job = &p.jobs()[0];
        let first = RunConfig::resolve(&job.preset, None, &job.overrides).unwrap();
        let after = job.handover.as_ref().unwrap().config(&first, job.total_env_steps).unwrap();
        assert_eq!(
            (after.planner.kind, after.planner.iterations),
            (PlannerKind::Cem, cem.planner.iterations)
        );
        // A handover is refused where the table refuses either of its planners.
        let mixed: Collector = "policy-then-policy-grad-mpc".parse().unwrap();
        let err = Protocol::new(Table::One, Scale::Debug, vec![], vec![], vec![mixed], vec![]).unwrap_err();
        assert!(err.to_string().contains("--table 2"), "{err}");
        let twice = vec![mixed, mixed];
        let err = Protocol::new(Table::Two, Scale::Debug, vec![], vec![], twice, vec![]).unwrap_err();
        assert!(err.to_string().contains("policy-then-policy-grad-mpc is listed twice"), "{err}");
    }

    #[test]
    fn wrong_planners_for_a_table_are_refused() {
        let err =
            Protocol::new(Table::Two, Scale::Debug, vec![], vec![], vec![BenchPlanner::CEM.into()], vec![]);
        assert!(err.unwrap_err().to_string().contains("Table 2"));
        let err = Protocol::new(Table::One, Scale::Debug, vec![], vec![], vec![], vec![BenchPlanner::POLICY]);
        assert!(err.unwrap_err().to_string().contains("--table 2"));
        let err = Protocol::new(Table::One, Scale::Debug, vec![], vec![1, 1], vec![], vec![]);
        assert!(err.unwrap_err().to_string().contains("twice"));
        let twice = vec![BenchPlanner::GRAD_MPC, BenchPlanner::GRAD_MPC];
        let err = Protocol::new(Table::One, Scale::Debug, vec![], vec![], vec![], twice);
        assert!(err.unwrap_err().to_string().contains("twice in --eval-planners"));
        assert!("huge".parse::<Scale>().is_err());
        assert!(Table::from_number(3).is_err());
    }
}
