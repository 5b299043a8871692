//! `gradplan eval`: a trained run's world model with any planner, noise-free.

use crate::planner_arg::PlannerArg;
use crate::video::GifWriter;
use anyhow::{bail, Result};
use clap::Args;
use gradplan_config::EnvBackend;
use gradplan_env::{Frame, Obs};
use gradplan_train::{Decision, DecisionSink, EpisodeStats, EvalOptions, Evaluator};
use std::fmt::Write as _;
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
    /// Write every decision to this CSV: episode, decision, reward, the chosen plan's
    /// predicted return, planning ms, the uncertainty u about the transition taken (the
    /// measure `planner.uncertainty_measure` names, when the checkpoint has it fitted by
    /// `gradplan ensemble`; 1 is the data's edge), the
    /// action taken and, for state observations, the observation it was taken on
    /// (`obs_0…`). Needs `--envs 1`.
    #[arg(long)]
    trace: Option<PathBuf>,
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
    if let Some(path) = &args.trace {
        if args.envs > 1 {
            bail!(
                "--trace needs the episodes one after another: drop --envs {} (or use --envs 1)",
                args.envs
            );
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.is_dir()) {
            bail!(
                "--trace {}: the directory {} does not exist; create it first",
                path.display(),
                dir.display()
            );
        }
    }
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
    // I is always named, first: a run's own I (e.g. the cpu preset's 6 for CEM) is easy to
    // mistake for the harness's (10) when nothing else changes.
    let others: String = evaluator
        .settings()
        .split(';')
        .filter(|kv| !kv.is_empty() && !kv.starts_with("iterations="))
        .map(|kv| format!(", {kv}"))
        .collect();
    let changed = format!(" (iterations={}{others})", evaluator.planner().iterations());
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
    let mut trace = TraceCsv::default();
    let mut keep = |episode: usize, d: &Decision| trace.push(episode, d);
    let tracing: Option<&mut DecisionSink> = if args.trace.is_some() { Some(&mut keep) } else { None };
    let report = evaluator.run_traced(&mut on_episode, frames, tracing)?;
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
    if let Some(path) = &args.trace {
        gradplan_harness::write_atomic(path, trace.text.as_bytes())?;
        println!("wrote {} decisions to {}", trace.rows, path.display());
    }
    if let (Some(gif), Some(path)) = (gif, &args.video) {
        gif.save(path)?;
        println!("wrote {} frames to {}", gif.len(), path.display());
    }
    Ok(())
}

/// The rows of `--trace`, the header written with the first decision (when the action's and
/// the observation's lengths are known).
#[derive(Debug, Default)]
struct TraceCsv {
    text: String,
    rows: usize,
}

impl TraceCsv {
    fn push(&mut self, episode: usize, d: &Decision) {
        let obs: &[f32] = match d.obs {
            Obs::State(v) => v,
            Obs::Pixels(_) => &[],
        };
        if self.rows == 0 {
            self.text.push_str("episode,decision,reward,predicted_return,plan_ms,uncertainty");
            for i in 0..d.action.len() {
                let _ = write!(self.text, ",action_{i}");
            }
            for i in 0..obs.len() {
                let _ = write!(self.text, ",obs_{i}");
            }
            self.text.push('\n');
        }
        let opt = |x: Option<f64>| x.map_or(String::new(), |x| format!("{x:.6}"));
        let _ = write!(
            self.text,
            "{},{},{:.6},{},{},{}",
            episode + 1,
            d.index,
            d.reward,
            opt(d.predicted_return),
            opt(d.plan_ms),
            opt(d.uncertainty)
        );
        for x in d.action.iter().chain(obs) {
            let _ = write!(self.text, ",{x}");
        }
        self.text.push('\n');
        self.rows += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_rows_follow_one_header() {
        let mut t = TraceCsv::default();
        let obs = Obs::State(vec![0.5, -1.0]);
        let d = Decision {
            index: 0,
            obs: &obs,
            action: &[0.25, -1.0],
            reward: 1.5,
            predicted_return: Some(2.0),
            plan_ms: Some(3.0),
            uncertainty: Some(0.5),
        };
        t.push(0, &d);
        t.push(0, &Decision { index: 1, predicted_return: None, uncertainty: None, ..d });
        let lines: Vec<&str> = t.text.lines().collect();
        assert_eq!(
            lines[0],
            "episode,decision,reward,predicted_return,plan_ms,uncertainty,action_0,action_1,obs_0,obs_1"
        );
        assert_eq!(lines[1], "1,0,1.500000,2.000000,3.000000,0.500000,0.25,-1,0.5,-1");
        assert_eq!(lines[2], "1,1,1.500000,,3.000000,,0.25,-1,0.5,-1");
        assert_eq!(t.rows, 2);
    }
}
