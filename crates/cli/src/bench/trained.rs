//! `gradplan bench trained`: planners on a trained run's world model.

use anyhow::Result;
use clap::Args;
use gradplan_backend::DeviceSpec;
use gradplan_config::PlannerKind;
use gradplan_train::study::{sweep, SweepOptions};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct TrainedBenchArgs {
    /// A run directory with at least one checkpoint.
    #[arg(long)]
    run_dir: PathBuf,
    /// Planners to compare.
    #[arg(long, value_delimiter = ',', default_value = "cem,grad-mpc,mppi,grad-cem,random-shooting")]
    planners: Vec<PlannerKind>,
    /// Candidate counts J.
    #[arg(long, value_delimiter = ',', default_value = "100,300,1000")]
    candidates: Vec<usize>,
    /// Iteration counts I (random shooting always uses 1).
    #[arg(long, value_delimiter = ',', default_value = "5,10,20,40")]
    iterations: Vec<usize>,
    /// Start beliefs drawn from the run's replay.
    #[arg(long, default_value_t = 8)]
    states: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// libtorch threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    #[arg(long, default_value = "cpu")]
    device: DeviceSpec,
    /// A planner setting for every point, e.g. `--set planner.flavour=paper` (repeatable;
    /// J and I come from --candidates and --iterations).
    #[arg(long = "set", value_name = "planner.KEY=VALUE")]
    overrides: Vec<String>,
    /// Also write the table as CSV here.
    #[arg(long)]
    csv: Option<PathBuf>,
}

pub fn run(args: &TrainedBenchArgs) -> Result<()> {
    let opts = SweepOptions {
        planners: args.planners.clone(),
        candidates: args.candidates.clone(),
        iterations: args.iterations.clone(),
        states: args.states,
        seed: args.seed,
        threads: args.threads,
        device: args.device,
        overrides: args.overrides.clone(),
    };
    let rows = sweep(&args.run_dir, &opts)?;
    println!(
        "model return of the chosen plan (prior-mean rollout) vs ms per decision, {} start beliefs",
        args.states
    );
    println!("| planner | J | I | ms / decision | model return of the plan |");
    println!("|---|---|---|---|---|");
    let mut csv =
        String::from("planner,candidates,iterations,ms_per_decision,model_return_mean,model_return_std\n");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.1} | {:.2} ± {:.2} |",
            r.planner, r.candidates, r.iterations, r.ms_per_decision, r.model_return_mean, r.model_return_std
        );
        csv += &format!(
            "{},{},{},{:.3},{:.4},{:.4}\n",
            r.planner, r.candidates, r.iterations, r.ms_per_decision, r.model_return_mean, r.model_return_std
        );
    }
    if let Some(path) = &args.csv {
        gradplan_report::write_atomic(path, csv.as_bytes())?;
    }
    Ok(())
}
