//! `gradplan ensemble`: fits the measure of data support that `planner.uncertainty_penalty`
//! plans with (the disagreement ensemble, the behaviour prior or the state density), for a
//! run's latest checkpoint.

use anyhow::Result;
use clap::Args;
use gradplan_config::UncertaintyMeasure;
use gradplan_train::{fit_ensemble, FitOptions};
use std::path::PathBuf;

/// `--measure`: what to fit, with one help line each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum MeasureArg {
    /// K one-step predictors of the next state; u is their disagreement (ensemble.safetensors)
    Disagreement,
    /// A Gaussian over the replay's actions in each state; u is an action's standardised
    /// distance from it (behavior_prior.safetensors; plan with
    /// planner.uncertainty_measure=behavior)
    Behavior,
    /// A Gaussian over the model states the replay filters to; u is a state's standardised
    /// distance from it, priced at every imagined step (state_density.safetensors; plan with
    /// planner.uncertainty_measure=density)
    Density,
}

#[derive(Debug, Args)]
pub struct EnsembleArgs {
    /// The run whose latest checkpoint (its model, frozen, and its replay) the ensemble is
    /// fitted to; the file is written into that checkpoint's directory.
    #[arg(long)]
    run_dir: PathBuf,
    /// What to fit.
    #[arg(long, value_enum, default_value_t = MeasureArg::Disagreement)]
    measure: MeasureArg,
    /// K, members of the ensemble (at least 2; the behaviour prior is one network).
    #[arg(long, default_value_t = FitOptions::default().members)]
    members: i64,
    /// Units per hidden layer (default: the run's model.hidden_size).
    #[arg(long)]
    hidden: Option<i64>,
    /// Hidden layers per member.
    #[arg(long, default_value_t = FitOptions::default().layers)]
    layers: i64,
    /// Adam steps, each on one batch of the run's train.batch_size × train.chunk_length
    /// (the density: the batches its mean and covariance are summed over).
    #[arg(long, default_value_t = FitOptions::default().updates)]
    updates: usize,
    #[arg(long, default_value_t = FitOptions::default().learning_rate)]
    learning_rate: f64,
    /// ε in [0, 1): the density's covariance is shrunk by it towards its average variance, so
    /// directions the data barely moves along do not dominate the distance.
    #[arg(long, default_value_t = FitOptions::default().shrinkage)]
    shrinkage: f64,
    /// The quantile of the replay's disagreement (or distance) that is the data's edge
    /// (u = 1): only transitions beyond it are penalised. Default: 0.99 for the
    /// disagreement and the density, 0.5 for the behaviour prior.
    #[arg(long)]
    quantile: Option<f64>,
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
    let measure = match args.measure {
        MeasureArg::Disagreement => UncertaintyMeasure::Disagreement,
        MeasureArg::Behavior => UncertaintyMeasure::Behavior,
        MeasureArg::Density => UncertaintyMeasure::Density,
    };
    let opts = FitOptions {
        measure,
        members: args.members,
        hidden: args.hidden,
        layers: args.layers,
        updates: args.updates,
        learning_rate: args.learning_rate,
        shrinkage: args.shrinkage,
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
    let what = match measure {
        UncertaintyMeasure::Disagreement => {
            format!("ensemble of {} members ({} × {} hidden)", s.members, s.layers, s.hidden)
        }
        UncertaintyMeasure::Behavior => format!("behaviour prior ({} × {} hidden)", s.layers, s.hidden),
        UncertaintyMeasure::Density => {
            format!("state density over {} features (shrinkage {})", s.hidden, opts.shrinkage)
        }
    };
    match (report.first_loss, report.last_loss) {
        (Some(first), Some(last)) => println!(
            "{what} fitted to {}: loss {first:.5} → {last:.5} (on fresh replay chunks {:.5})",
            report.checkpoint.display(),
            report.calibration_loss
        ),
        _ => println!(
            "{what} fitted to {}: mean distance on fresh replay chunks {:.5} (1 for states like the fit's at \
                 shrinkage 0; shrinkage lowers it)",
            report.checkpoint.display(),
            report.calibration_loss
        ),
    }
    println!(
        "the replay's {} over {} fresh transitions, in units of the edge d_q = {:.3e} (quantile {}): median {:.2}, \
         90% {:.2}, max {:.2}",
        match measure {
            UncertaintyMeasure::Disagreement => "disagreement",
            UncertaintyMeasure::Behavior => "distance from the prior",
            UncertaintyMeasure::Density => "distance from the state density",
        },
        report.transitions, report.threshold, opts.quantile(), report.median, report.p90, report.max
    );
    println!("wrote {}", report.path.display());
    Ok(())
}
