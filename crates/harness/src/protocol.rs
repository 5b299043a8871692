//! The paper's protocol as a list of independent jobs.
//!
//! A job is one training run (task × training planner × seed) followed by noise-free
//! evaluations of its final model under every evaluation planner, all with the same
//! evaluation seed, so every planner meets the same start states. Table 1 trains PlaNet's
//! model with CEM (the paper's "PlaNet" column) and with Grad-MPC (its "Grad-MPC" column)
//! for 100k env steps from pixels; Table 2 trains Dreamer (`policy`) for 500k env steps and
//! compares its pure policy with Policy+Grad-MPC. `--scale` shrinks every budget.

use crate::{Error, Result};
use gradplan_config::{GradMpcFlavour, PlannerKind};
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
    pub fn train_planners(self) -> Vec<PlannerKind> {
        match self {
            Table::One => vec![PlannerKind::GradMpc, PlannerKind::Cem],
            Table::Two => vec![PlannerKind::Policy],
        }
    }

    /// The planners every final model is evaluated with.
    pub fn eval_planners(self) -> Vec<PlannerKind> {
        match self {
            Table::One => vec![
                PlannerKind::Cem,
                PlannerKind::GradMpc,
                PlannerKind::Mppi,
                PlannerKind::GradCem,
                PlannerKind::RandomShooting,
            ],
            Table::Two => vec![PlannerKind::Policy, PlannerKind::PolicyGradMpc],
        }
    }
}

/// How far every budget is shrunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// Tiny models and a few hundred env steps: the whole pipeline in seconds per run.
    Debug,
    /// The `cpu` preset (state observations, a smaller model and planner): learning on a
    /// 2-core CPU in minutes per run. Not the paper's setting.
    Cpu,
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
            "paper" => Ok(Scale::Paper),
            other => Err(Error::Usage(format!("--scale {other}: use debug, cpu or paper"))),
        }
    }
}

impl std::fmt::Display for Scale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Scale::Debug => "debug",
            Scale::Cpu => "cpu",
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

impl Scale {
    pub fn budget(self, table: Table) -> Budget {
        let (preset, steps, episodes, overrides): (&str, usize, usize, &[&str]) = match (self, table) {
            (Scale::Paper, Table::One) => ("paper", 100_000, 10, &[]),
            (Scale::Paper, Table::Two) => ("paper", 500_000, 10, &[]),
            (Scale::Cpu, Table::One) => ("cpu", 20_000, 5, &[]),
            // The settings under which Dreamer learned on this CPU (docs/benchmarks.md).
            (Scale::Cpu, Table::Two) => (
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
}

/// What one invocation of `gradplan bench dmc` asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Protocol {
    pub table: Table,
    pub scale: Scale,
    pub tasks: Vec<String>,
    pub seeds: Vec<u64>,
    /// Planners the models are trained with (Table 1: grad-mpc and cem; Table 2: policy).
    pub train_planners: Vec<PlannerKind>,
    /// Planners every final model is evaluated with.
    pub eval_planners: Vec<PlannerKind>,
    /// `cpu`, `cuda` or `cuda:N`, for every run and evaluation.
    pub device: String,
    /// libtorch threads per run (0: one per core).
    pub threads: usize,
}

impl Protocol {
    /// The paper's protocol for `table`, with the choices the user made (empty: the paper's).
    pub fn new(
        table: Table,
        scale: Scale,
        tasks: Vec<String>,
        seeds: Vec<u64>,
        train_planners: Vec<PlannerKind>,
        eval_planners: Vec<PlannerKind>,
    ) -> Result<Protocol> {
        let tasks = if tasks.is_empty() { table.tasks() } else { tasks };
        let seeds = if seeds.is_empty() { vec![0, 1, 2] } else { seeds };
        let train_planners = if train_planners.is_empty() { table.train_planners() } else { train_planners };
        let eval_planners = if eval_planners.is_empty() { table.eval_planners() } else { eval_planners };
        for p in train_planners.iter().chain(&eval_planners) {
            if table == Table::Two && !p.uses_policy() {
                return Err(Error::Usage(format!(
                    "Table 2 is about Dreamer's actor: planner {} has none; use policy or policy-grad-mpc",
                    p.name()
                )));
            }
        }
        if table == Table::One {
            if let Some(p) = train_planners.iter().chain(&eval_planners).find(|p| p.uses_policy()) {
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
        Ok(Protocol {
            table,
            scale,
            tasks,
            seeds,
            train_planners,
            eval_planners,
            device: "cpu".into(),
            threads: 0,
        })
    }

    pub fn budget(&self) -> Budget {
        self.scale.budget(self.table)
    }

    /// Every job, task-major then planner then seed (the order they are run in).
    pub fn jobs(&self) -> Vec<Job> {
        let budget = self.budget();
        let mut jobs = Vec::new();
        for task in &self.tasks {
            for planner in &self.train_planners {
                for &seed in &self.seeds {
                    let mut overrides = budget.overrides.clone();
                    overrides.extend([
                        format!("env.task=\"{task}\""),
                        format!("planner.kind=\"{}\"", planner.name()),
                        format!("seed={seed}"),
                        format!("train.total_env_steps={}", budget.total_env_steps),
                        format!("device=\"{}\"", self.device),
                    ]);
                    overrides.extend(paper_flavour(*planner));
                    if self.threads > 0 {
                        overrides.push(format!("threads={}", self.threads));
                    }
                    jobs.push(Job {
                        id: format!("t{}-{task}-{}-s{seed}", self.table.number(), planner.name()),
                        task: task.clone(),
                        trained_with: *planner,
                        seed,
                        run_dir: PathBuf::from(format!("table{}", self.table.number()))
                            .join(task)
                            .join(planner.name())
                            .join(format!("seed{seed}")),
                        preset: budget.preset.clone(),
                        overrides,
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
}

/// Settings every model is evaluated with under `planner`, whatever it was trained with:
/// the planner's own default iterations I (CEM, MPPI, GradCEM 10, Grad-MPC 40, random
/// shooting 1, Policy+Grad-MPC 10), so one planner column means one planner, even where a
/// preset set I for its training planner (the debug and cpu presets do). H, J and the rest
/// are the run's planner section, the same for every model of a table. Grad-MPC is the paper
/// flavour (Algorithm 1 with A.7's I = 40): these are the paper's tables;
/// `scripts/grad_mpc_study.sh` compares the robust flavour.
pub fn eval_settings(planner: PlannerKind) -> Vec<String> {
    let mut settings = paper_flavour(planner);
    let iterations = eval_iterations(planner);
    if iterations > 0 {
        settings.push(format!("planner.iterations={iterations}"));
    }
    settings
}

/// I of `planner` in the harness's evaluations (see [`eval_settings`]).
pub fn eval_iterations(planner: PlannerKind) -> usize {
    match planner {
        PlannerKind::GradMpc => GradMpcFlavour::Paper.defaults().iterations,
        other => other.default_iterations(),
    }
}

/// `planner.flavour="paper"` for Grad-MPC, nothing for the others: the harness reproduces
/// the paper, so its Grad-MPC trains and plans as Algorithm 1.
pub fn paper_flavour(planner: PlannerKind) -> Vec<String> {
    match planner {
        PlannerKind::GradMpc => vec![format!("planner.flavour=\"{}\"", GradMpcFlavour::Paper.name())],
        _ => Vec::new(),
    }
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
    pub trained_with: PlannerKind,
    pub seed: u64,
    /// The run directory, relative to the harness's `--out`.
    pub run_dir: PathBuf,
    pub preset: String,
    /// Settings over the preset, in order (task, planner, seed, budget, device …).
    pub overrides: Vec<String>,
    pub total_env_steps: usize,
    pub eval_planners: Vec<PlannerKind>,
    pub eval_episodes: usize,
    pub eval_seed: u64,
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
        assert!(jobs.iter().all(|j| j.eval_planners.len() == 5));
        assert_eq!(jobs[0].id, "t1-cartpole-swingup-grad-mpc-s0");
        assert_eq!(jobs[0].run_dir, PathBuf::from("table1/cartpole-swingup/grad-mpc/seed0"));
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
        assert_eq!(
            eval_settings(PlannerKind::GradMpc),
            ["planner.flavour=\"paper\"", "planner.iterations=40"]
        );
        assert_eq!(eval_settings(PlannerKind::Cem), ["planner.iterations=10"]);
        assert!(eval_settings(PlannerKind::Policy).is_empty());
    }

    #[test]
    fn wrong_planners_for_a_table_are_refused() {
        let err = Protocol::new(Table::Two, Scale::Debug, vec![], vec![], vec![PlannerKind::Cem], vec![]);
        assert!(err.unwrap_err().to_string().contains("Table 2"));
        let err = Protocol::new(Table::One, Scale::Debug, vec![], vec![], vec![], vec![PlannerKind::Policy]);
        assert!(err.unwrap_err().to_string().contains("--table 2"));
        let err = Protocol::new(Table::One, Scale::Debug, vec![], vec![1, 1], vec![], vec![]);
        assert!(err.unwrap_err().to_string().contains("twice"));
        assert!("huge".parse::<Scale>().is_err());
        assert!(Table::from_number(3).is_err());
    }
}
