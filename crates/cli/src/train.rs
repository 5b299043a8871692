//! `gradplan train` and `gradplan resume`.

use crate::planner_arg::PlannerArg;
use anyhow::{Context, Result};
use clap::Args;
use gradplan_config::RunConfig;
use gradplan_train::{ResumeOptions, RunOptions, Trainer};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Task as `domain-task` (default: the preset's, cartpole-swingup).
    #[arg(long)]
    task: Option<String>,
    /// The planner that collects the data (default: the preset's, cem).
    #[arg(long, value_enum)]
    planner: Option<PlannerArg>,
    /// pixels or state.
    #[arg(long)]
    obs: Option<String>,
    /// dmc (dm_control through Python) or native (the same tasks on MuJoCo from Rust, no
    /// Python): `env.backend`; default dmc, or native in a build without Python.
    #[arg(long)]
    backend: Option<String>,
    /// Seeds everything in the run.
    #[arg(long)]
    seed: Option<u64>,
    /// Settings preset: paper, debug, cpu or cpu-pixels (default: the one the --config file
    /// names, else paper).
    #[arg(long)]
    preset: Option<String>,
    /// A TOML file of settings, applied over the preset (a run's config.toml starts a new
    /// run with the same settings).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override any setting, e.g. `--set model.belief_size=64` (repeatable; applied last).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// cpu, cuda or cuda:N.
    #[arg(long)]
    device: Option<String>,
    /// libtorch threads (0: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Where the run writes config.toml, metrics.csv, checkpoints and images
    /// (default: runs/<task>-<planner>-seed<seed>).
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Stop after this many episodes in this invocation; `gradplan resume` continues.
    #[arg(long, hide = true)]
    stop_after_episodes: Option<usize>,
    /// Do not write <run>/report/ when the run stops (`gradplan report` writes it later).
    #[arg(long)]
    no_report: bool,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The run directory to continue.
    #[arg(long)]
    run_dir: PathBuf,
    /// cpu, cuda or cuda:N for this invocation (default: the run's).
    #[arg(long)]
    device: Option<String>,
    /// libtorch threads for this invocation, 0: one per core (default: the run's).
    #[arg(long)]
    threads: Option<usize>,
    /// A new budget in env steps (train.total_env_steps), e.g. to continue a finished run;
    /// written to the run's config.toml.
    #[arg(long)]
    total_env_steps: Option<usize>,
    /// Another planner collects the episodes from here on, e.g. Grad-MPC continuing a
    /// CEM-trained run; written to the run's config.toml. I follows the new kind (and
    /// Grad-MPC's flavour) unless set, as in `gradplan eval`. policy and policy-grad-mpc
    /// continue only Dreamer runs, the others only runs without an actor.
    #[arg(long, value_enum)]
    planner: Option<PlannerArg>,
    /// Change a planner setting for the episodes from here on, e.g. `--set
    /// planner.iterations=4` (repeatable; written to the run's config.toml).
    #[arg(long = "set", value_name = "planner.KEY=VALUE")]
    overrides: Vec<String>,
    #[arg(long, hide = true)]
    stop_after_episodes: Option<usize>,
    /// Do not write <run>/report/ when the run stops (`gradplan report` writes it later).
    #[arg(long)]
    no_report: bool,
}

pub fn train(args: &TrainArgs) -> Result<()> {
    let file = match &args.config {
        Some(p) => Some(std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?),
        None => None,
    };
    // Command-line flags sit between the file and the explicit --set overrides.
    let mut overrides = Vec::new();
    let flag = |key: &str, v: &Option<String>| v.as_ref().map(|v| format!("{key}=\"{v}\""));
    overrides.extend(flag("env.task", &args.task));
    overrides.extend(flag("planner.kind", &args.planner.map(|p| p.0.name().to_owned())));
    overrides.extend(flag("env.obs", &args.obs));
    // A build without dm_control can only run the native backend, so it is the default there.
    let backend = args.backend.clone().or((!cfg!(feature = "dmc")).then(|| "native".to_owned()));
    overrides.extend(flag("env.backend", &backend));
    overrides.extend(flag("device", &args.device));
    overrides.extend(args.seed.map(|s| format!("seed={s}")));
    overrides.extend(args.threads.map(|t| format!("threads={t}")));
    overrides.extend(args.overrides.iter().cloned());
    let named = file.as_deref().map(RunConfig::preset_in).transpose()?.flatten();
    let preset = args.preset.clone().or(named).unwrap_or_else(|| "paper".to_owned());
    let cfg = RunConfig::resolve(&preset, file.as_deref(), &overrides)?;
    let run_dir = args.run_dir.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(format!("{}-{}-seed{}", cfg.env.task, cfg.planner.kind, cfg.seed))
    });
    println!(
        "training {} from {} with {} (preset {}, seed {}, {}) in {}",
        cfg.env.task,
        cfg.env.obs,
        cfg.planner.kind,
        cfg.preset,
        cfg.seed,
        cfg.device,
        run_dir.display()
    );
    let mut trainer = Trainer::create(cfg, &run_dir)?;
    run(&mut trainer, args.stop_after_episodes, &run_dir)?;
    after_run(&run_dir, args.no_report);
    Ok(())
}

pub fn resume(args: &ResumeArgs) -> Result<()> {
    let opts = ResumeOptions {
        device: args.device.clone(),
        threads: args.threads,
        total_env_steps: args.total_env_steps,
        planner: args.planner.map(|p| p.0),
        planner_overrides: args.overrides.clone(),
    };
    let mut trainer = Trainer::resume_with(&args.run_dir, &opts)?;
    let c = trainer.counters();
    println!(
        "resuming {} at episode {} ({} env steps, {} updates), collecting with {} (I {})",
        args.run_dir.display(),
        c.episodes,
        c.env_steps,
        c.updates,
        trainer.config().planner.kind,
        trainer.config().planner.iterations()
    );
    run(&mut trainer, args.stop_after_episodes, &args.run_dir)?;
    after_run(&args.run_dir, args.no_report);
    Ok(())
}

fn run(trainer: &mut Trainer, stop_after_episodes: Option<usize>, run_dir: &std::path::Path) -> Result<()> {
    trainer.run(&RunOptions { stop_after_episodes, verbose: true })?;
    let c = trainer.counters();
    println!(
        "stopped at episode {} after {} env steps and {} model updates; metrics in {}",
        c.episodes,
        c.env_steps,
        c.updates,
        run_dir.join("metrics.csv").display()
    );
    Ok(())
}

/// Writes the run's report. A failure here is a warning, not an error: the run's data is
/// already safe on disk and `gradplan report` can retry (docs/decisions.md).
fn after_run(run_dir: &std::path::Path, no_report: bool) {
    if no_report {
        return;
    }
    // The trainer's model is still loaded; the report loads the checkpoint on its own.
    match crate::report::generate(run_dir, &crate::report::ReportOptions::default()) {
        Ok(written) => {
            let index = written.last().map(|p| p.display().to_string()).unwrap_or_default();
            println!("report: {} files in {}, start at {index}", written.len(), run_dir.join("report").display());
        }
        Err(err) => eprintln!(
            "warning: the run is complete but its report failed: {err:#}; retry with gradplan report --run-dir {}",
            run_dir.display()
        ),
    }
}
