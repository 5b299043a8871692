//! `gradplan ensemble`: fits the disagreement ensemble that `planner.uncertainty_penalty`
//! plans with, for a run's latest checkpoint.

use anyhow::Result;
use clap::Args;
use gradplan_train::{fit_ensemble, FitOptions};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct EnsembleArgs {
    /// The run whose latest checkpoint (its model, frozen, and its replay) the ensemble is
    /// fitted to; the file is written into that checkpoint's directory.
    #[arg(long)]
    run_dir: PathBuf,
    /// K, members of the ensemble (at least 2).
    #[arg(long, default_value_t = FitOptions::default().members)]
    members: i64,
    /// Units per hidden layer (default: the run's model.hidden_size).
    #[arg(long)]
    hidden: Option<i64>,
    /// Hidden layers per member.
    #[arg(long, default_value_t = FitOptions::default().layers)]
    layers: i64,
    /// Adam steps, each on one batch of the run's train.batch_size × train.chunk_length.
    #[arg(long, default_value_t = FitOptions::default().updates)]
    updates: usize,
    #[arg(long, default_value_t = FitOptions::default().learning_rate)]
    learning_rate: f64,
    /// The quantile of the replay's disagreement that is the data's edge (u = 1): only
    /// transitions beyond it are penalised.
    #[arg(long, default_value_t = FitOptions::default().quantile)]
    quantile: f64,
    /// Batches of fresh replay chunks the quantile is measured on.
    #[arg(long, default_value_t = FitOptions::default().calibration_batches)]
    calibration_batches: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// cpu, cuda or cuda:N (default: the run's).
    #[arg(long)]
    device: Option<String>,
    /// libtorch threads, 0 for one per core (default: the run's).
    #[arg(long)]
    threads: Option<usize>,
}

pub fn ensemble(args: &EnsembleArgs) -> Result<()> {
    let opts = FitOptions {
        members: args.members,
        hidden: args.hidden,
        layers: args.layers,
        updates: args.updates,
        learning_rate: args.learning_rate,
        quantile: args.quantile,
        calibration_batches: args.calibration_batches,
        seed: args.seed,
        device: args.device.clone(),
        threads: args.threads,
    };
    let report = fit_ensemble(&args.run_dir, &opts, &mut |update, loss| {
        eprintln!("update {update:>6} | loss {loss:.5}");
    })?;
    let s = report.shape;
    println!(
        "ensemble of {} members ({} × {} hidden) fitted to {}: loss {:.5} → {:.5} (on fresh replay chunks {:.5})",
        s.members,
        s.layers,
        s.hidden,
        report.checkpoint.display(),
        report.first_loss,
        report.last_loss,
        report.calibration_loss
    );
    println!(
        "the replay's disagreement over {} fresh transitions, in units of the edge d_q = {:.3e} (quantile {}): median {:.2}, \
         90% {:.2}, max {:.2}",
        report.transitions, report.threshold, args.quantile, report.median, report.p90, report.max
    );
    println!("wrote {}", report.path.display());
    Ok(())
}
