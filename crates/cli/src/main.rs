//! `gradplan`: gradient-based planning with learned world models, from the command line.

mod bench;
mod ensemble;
mod eval;
mod planner_arg;
mod report;
mod rollout;
mod train;
mod video;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Model-based RL that plans by gradient descent through a learned world model
/// (S V, Jalagam, LeCun, Sobal 2023), on the real DeepMind Control Suite.
#[derive(Debug, Parser)]
#[command(name = "gradplan", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List tasks with their action dimension, action repeat and observation shapes.
    Tasks(rollout::TasksArgs),
    /// Run real episodes with a fixed policy, print each return, optionally save a GIF.
    Rollout(rollout::RolloutArgs),
    /// Train a world model and planner on a task (PlaNet's protocol).
    Train(train::TrainArgs),
    /// Continue a stopped run from its last checkpoint.
    Resume(train::ResumeArgs),
    /// Evaluate a run's world model with any planner, noise-free; appends to its eval.csv.
    Eval(eval::EvalArgs),
    /// Fit a measure of data support (--measure: the disagreement ensemble, the behaviour
    /// prior or the state density) of a run's latest checkpoint, which `--set
    /// planner.uncertainty_penalty=λ` plans with.
    Ensemble(ensemble::EnsembleArgs),
    /// Figures of a run in <run>/report/: curves, losses, planning cost, an open-loop video.
    Report(report::ReportArgs),
    /// Benchmarks that print a table.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: Result<()> = match cli.command {
        Command::Tasks(args) => rollout::tasks(&args),
        Command::Rollout(args) => rollout::rollout(&args),
        Command::Train(args) => train::train(&args),
        Command::Resume(args) => train::resume(&args),
        Command::Eval(args) => eval::eval(&args),
        Command::Ensemble(args) => ensemble::ensemble(&args),
        Command::Report(args) => report::report(&args),
        Command::Bench(cmd) => bench::run(&cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let line = render(&err);
            if let Some(message) = interrupted(&line) {
                eprintln!("{message}");
                return ExitCode::from(130);
            }
            eprintln!("error: {line}");
            ExitCode::FAILURE
        }
    }
}

/// Ctrl-C while dm_control runs reaches us as Python's `KeyboardInterrupt` (the embedded
/// interpreter owns SIGINT): say what it means for the run instead of printing Python's name
/// for it. Checkpoints are written atomically, so the last one is intact.
fn interrupted(line: &str) -> Option<&'static str> {
    line.contains("KeyboardInterrupt").then_some(
        "interrupted (Ctrl-C). A training run keeps its last complete checkpoint: continue it with \
         `gradplan resume --run-dir <run dir>`; an evaluation appended nothing.",
    )
}

/// The error and its causes on one line, like `{:#}`, but without a cause whose text the
/// line already holds: our error types print their `source` in their own message
/// (`path: No such file or directory`) and also return it as the cause, which `{:#}` then
/// prints a second time.
fn render(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    #[test]
    fn ctrl_c_says_how_to_resume() {
        let line = "dm_control failed: KeyboardInterrupt: ";
        assert!(super::interrupted(line).unwrap().contains("gradplan resume"));
        assert!(super::interrupted("the file is missing").is_none());
    }

    use super::*;

    #[test]
    fn an_os_error_is_printed_once() {
        let source = std::io::Error::from_raw_os_error(2);
        let os = source.to_string();
        let err = gradplan_train::Error::Io { path: "runs/x/metrics.csv".into(), source };
        let err = anyhow::Error::from(err).context("resuming runs/x");
        let line = render(&err);
        assert_eq!(line.matches(&os).count(), 1, "{line}");
        assert!(line.starts_with("resuming runs/x: runs/x/metrics.csv: "), "{line}");
    }
}
