//! Planners on a trained world model: the model's return of the chosen plan against
//! milliseconds per decision, over a sweep of J and I (issue #4's planner study, part 2),
//! so a user can pick a planner for a time budget.
//!
//! Start states are real beliefs: chunks sampled from the checkpoint's replay, filtered
//! through the model, and the last posterior state of each taken. Every planner plans from
//! the same states with the same seed. Each returned plan (the planner's full H-step
//! sequence) is scored by the model's prior-mean rollout, undiscounted: the same
//! deterministic yardstick for every planner, free of the optimistic bias of a planner's own
//! best-of-many noisy estimate.

use crate::checkpoint::{self, MODEL_FILE, REPLAY_FILE};
use crate::dynamics::ModelDynamics;
use crate::tensors::batch_to_tensors;
use crate::trainer::read_run_config;
use crate::{Error, Result};
use gradplan_backend::DeviceSpec;
use gradplan_config::PlannerKind;
use gradplan_model::{ObsShape, RssmState, WorldModel};
use gradplan_plan::rollout_return;
use gradplan_replay::Replay;
use rand::SeedableRng;
use std::path::Path;
use std::rc::Rc;
use std::time::Instant;

/// What to sweep.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    pub planners: Vec<PlannerKind>,
    /// J values.
    pub candidates: Vec<usize>,
    /// I values (random shooting always uses 1).
    pub iterations: Vec<usize>,
    /// Number of start beliefs.
    pub states: usize,
    pub seed: u64,
    pub threads: usize,
    pub device: DeviceSpec,
    /// `planner.KEY=VALUE` settings for every point, under its J and I (e.g.
    /// `planner.flavour=paper`).
    pub overrides: Vec<String>,
}

/// One (planner, J, I) point, averaged over the start states.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepRow {
    pub planner: PlannerKind,
    pub candidates: usize,
    pub iterations: usize,
    pub ms_per_decision: f64,
    pub model_return_mean: f64,
    pub model_return_std: f64,
}

/// Runs the sweep on the latest checkpoint of `run_dir`.
pub fn sweep(run_dir: &Path, opts: &SweepOptions) -> Result<Vec<SweepRow>> {
    let cfg = read_run_config(run_dir)?;
    gradplan_backend::set_threads(opts.threads);
    let device = opts.device.resolve()?;
    let ckpt = checkpoint::latest_noted(run_dir)?
        .ok_or_else(|| Error::RunDir(format!("{} has no checkpoint yet", run_dir.display())))?;
    let replay = Replay::load(ckpt.join(REPLAY_FILE))?;
    let obs = match replay.obs_spec() {
        gradplan_env::ObsSpec::Pixels { height, .. } => ObsShape::Pixels { size: height as i64 },
        gradplan_env::ObsSpec::State { dim } => ObsShape::State { dim: dim as i64 },
    };
    let spec = replay.action_spec().clone();
    let mut model = WorldModel::new(&cfg.model, obs, spec.dim() as i64, device)?;
    model.load(&ckpt.join(MODEL_FILE))?;
    let model = Rc::new(model);

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(opts.seed);
    tch::manual_seed(opts.seed as i64);
    let chunk = cfg.train.chunk_length.min(16);
    let batch = replay.sample(opts.states.max(1), chunk, &mut rng)?;
    let seq = batch_to_tensors(&batch, cfg.model.bit_depth, device, false);
    let beliefs = tch::no_grad(|| model.observe(&seq).last()); // [n, ...]
    let mut dynamics =
        ModelDynamics::new(model.clone(), None, cfg.planner.sample_imagined, &spec.low, &spec.high);
    // The checkpoint's fitted measure, for `--set planner.uncertainty_penalty=λ` (as in eval).
    let measure = cfg.planner.overridden(None, &opts.overrides)?.uncertainty_measure;
    dynamics.support = crate::ensemble::load(&ckpt, &model, measure)?;
    // Every plan is re-scored the same way: the prior-mean rollout of its action sequence.
    // Planners' own `predicted_return` is one noisy sample, and for the ones that pick the
    // best of many noisy candidates (random shooting, Grad-MPC) it is biased upwards.
    let scorer = ModelDynamics::new(model.clone(), None, false, &spec.low, &spec.high);

    let mut rows = Vec::new();
    for &kind in &opts.planners {
        let iterations: &[usize] = if kind == PlannerKind::RandomShooting { &[1] } else { &opts.iterations };
        for &j in &opts.candidates {
            for &i in iterations {
                let mut overrides = opts.overrides.clone();
                overrides.extend([format!("planner.candidates={j}"), format!("planner.iterations={i}")]);
                let mut p = cfg.planner.overridden(Some(kind), &overrides)?;
                p.top_k = p.top_k.min(j).max(1);
                let mut planner = gradplan_plan::PlannerConfig::from_settings(&p, cfg.dreamer.discount)
                    .init::<ModelDynamics>();
                tch::manual_seed(opts.seed as i64);
                let (mut returns, mut ms) = (Vec::new(), 0.0);
                for s in 0..opts.states.max(1) as i64 {
                    let state = RssmState {
                        belief: beliefs.belief.narrow(0, s, 1),
                        stoch: beliefs.stoch.narrow(0, s, 1),
                    };
                    planner.reset();
                    let start = Instant::now();
                    let plan = planner.plan(&dynamics, &state)?;
                    ms += start.elapsed().as_secs_f64() * 1e3;
                    let sequence = plan.sequence.to_kind(tch::Kind::Float).unsqueeze(1); // [H, 1, A]
                    let score = tch::no_grad(|| rollout_return(&scorer, &state, &sequence, 1.0, false));
                    returns.push(score.double_value(&[0]));
                }
                let n = returns.len() as f64;
                let mean = returns.iter().sum::<f64>() / n;
                let std = (returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n).sqrt();
                rows.push(SweepRow {
                    planner: kind,
                    candidates: j,
                    iterations: i,
                    ms_per_decision: ms / n,
                    model_return_mean: mean,
                    model_return_std: std,
                });
            }
        }
    }
    Ok(rows)
}
