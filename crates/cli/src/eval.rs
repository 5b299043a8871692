//! `gradplan eval`: a trained run's world model with any planner, noise-free.

use crate::planner_arg::PlannerArg;
use crate::video::GifWriter;
use anyhow::Result;
use clap::Args;
use gradplan_config::EnvBackend;
use gradplan_env::Frame;
use gradplan_train::{EpisodeStats, EvalOptions, Evaluator};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The run to evaluate: its config.toml and the model of its latest checkpoint.
    #[arg(long)]
    run_dir: PathBuf,
    /// The planner to evaluate (default: the run's); policy and policy-grad-mpc need a
    /// Dreamer run. Its settings are the run's planner section; I follows the new kind (and
    /// Grad-MPC's flavour) unless set.
    #[arg(long, value_enum)]
    planner: Option<PlannerArg>,
    /// Change a planner setting, e.g. `--set planner.iterations=20` or
    /// `--set planner.action_lr=0.05` (repeatable).
    #[arg(long = "set", value_name = "planner.KEY=VALUE")]
    overrides: Vec<String>,
    /// Noise-free episodes to play.
    #[arg(long, default_value_t = 10)]
    episodes: usize,
    /// Seeds the episodes: the same seed gives the same episodes (and on CPU the same
    /// returns) whatever the planner.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write a GIF of the frames the agent saw (upscaled 4×) to this path.
    #[arg(long)]
    video: Option<PathBuf>,
    /// cpu, cuda or cuda:N (default: the run's).
    #[arg(long)]
    device: Option<String>,
    /// libtorch threads, 0 for one per core (default: the run's).
    #[arg(long)]
    threads: Option<usize>,
    /// Environments stepping at once, each on its own thread, while this thread plans for
    /// each in turn: the same episodes and returns, less wall time where simulating and
    /// rendering cost something. More than one needs the native backend (`--backend native`).
    #[arg(long, default_value_t = 1)]
    envs: usize,
    /// dmc or native: run the task on this backend instead of the run's (the two play the same
    /// episodes). Default: the run's, or native in a build without Python.
    #[arg(long)]
    backend: Option<EnvBackend>,
}

pub fn eval(args: &EvalArgs) -> Result<()> {
    let opts = EvalOptions {
        planner: args.planner.map(|p| p.0),
        overrides: args.overrides.clone(),
        episodes: args.episodes,
        seed: args.seed,
        device: args.device.clone(),
        threads: args.threads,
        envs: args.envs,
        backend: args.backend.or((!cfg!(feature = "dmc")).then_some(EnvBackend::Native)),
    };
    let mut evaluator = Evaluator::new(&args.run_dir, opts)?;
    let changed = match evaluator.settings() {
        "" => String::new(),
        s => format!(" ({})", s.replace(';', ", ")),
    };
    let checkpoint = evaluator.checkpoint().file_name().map(|n| n.to_string_lossy().into_owned());
    println!(
        "evaluating {}{changed} on {} with the model of {} ({} env steps), seed {}",
        evaluator.planner().kind,
        evaluator.run_config().env.task,
        checkpoint.unwrap_or_default(),
        evaluator.counters().env_steps,
        args.seed
    );
    let mut on_episode = |i: usize, e: &EpisodeStats| {
        println!(
            "episode {:>3}: return {:>9.3} over {} decisions | {:.2} ms/decision | predicted return {:.3}",
            i + 1,
            e.total_return,
            e.decisions,
            e.plan_ms.unwrap_or(0.0),
            e.predicted_return.unwrap_or(0.0)
        );
    };
    let mut gif = args.video.as_ref().map(|_| GifWriter::new(4, 5));
    let mut push = |f: &Frame| {
        if let Some(gif) = gif.as_mut() {
            gif.push(f);
        }
    };
    let frames: Option<&mut dyn FnMut(&Frame)> = if args.video.is_some() { Some(&mut push) } else { None };
    let report = evaluator.run(&mut on_episode, frames)?;
    println!(
        "{}: mean return {:.3} ± {:.3} over {} episodes | {:.2} ms per decision | mean predicted return {:.3}",
        report.planner.kind,
        report.return_mean,
        report.return_std,
        report.episodes.len(),
        report.ms_per_decision,
        report.predicted_return_mean
    );
    println!("appended a row to {}", report.csv.display());
    if let (Some(gif), Some(path)) = (gif, &args.video) {
        gif.save(path)?;
        println!("wrote {} frames to {}", gif.len(), path.display());
    }
    Ok(())
}
