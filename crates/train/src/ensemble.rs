//! `gradplan ensemble`: fits a run's latest checkpoint's measure of data support
//! ([`gradplan_model::DataSupport`]) on that checkpoint's own replay, with the world model
//! frozen: the disagreement ensemble ([`gradplan_model::Ensemble`]), the behaviour prior
//! ([`gradplan_model::BehaviorPrior`]) or the state density
//! ([`gradplan_model::StateDensity`]).
//!
//! For each sampled chunk the frozen model filters the observations; every transition
//! `(h_t, s_t, a_{t+1}) → E_q[s_{t+1}]` that does not cross an episode start is a training
//! pair (`a_{t+1}` is the action that led to `o_{t+1}`, the replay's convention): the
//! ensemble regresses the next state's posterior mean, the prior the action. The density
//! has no updates: the same number of batches give the features' mean and covariance. Then
//! the measure on fresh chunks of the same replay (another random stream; the
//! replay is the data, so these are not held out from it) calibrates the threshold: its
//! `quantile` is the edge of the data, u = 1. The file lands in the checkpoint
//! directory it belongs to ([`support_file`], written atomically), so an evaluation finds
//! it beside the weights it was fitted to, and a later checkpoint has none until it is
//! fitted again.

use crate::checkpoint::{self, MODEL_FILE, REPLAY_FILE};
use crate::tensors::batch_to_tensors;
use crate::trainer::{derive_seed, obs_shape, read_run_config, Stream};
use crate::{Error, Result};
use gradplan_backend::DeviceSpec;
use gradplan_config::UncertaintyMeasure;
use gradplan_model::{
    BehaviorPrior, BehaviorPriorShape, DataSupport, Ensemble, EnsembleDims, EnsembleShape, Moments,
    SequenceBatch, StateDensity, WorldModel,
};
use gradplan_replay::Replay;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use tch::nn::OptimizerConfig;
use tch::{Device, Kind, Tensor};

/// Name of the ensemble's file inside a checkpoint directory.
pub const ENSEMBLE_FILE: &str = "ensemble.safetensors";

/// Name of the behaviour prior's file inside a checkpoint directory.
pub const BEHAVIOR_PRIOR_FILE: &str = "behavior_prior.safetensors";

/// Name of the state density's file inside a checkpoint directory.
pub const STATE_DENSITY_FILE: &str = "state_density.safetensors";

/// The file `measure` is stored in, inside its checkpoint's directory.
pub fn support_file(measure: UncertaintyMeasure) -> &'static str {
    match measure {
        UncertaintyMeasure::Disagreement => ENSEMBLE_FILE,
        UncertaintyMeasure::Behavior => BEHAVIOR_PRIOR_FILE,
        UncertaintyMeasure::Density => STATE_DENSITY_FILE,
    }
}

/// How to fit.
#[derive(Debug, Clone)]
pub struct FitOptions {
    /// What to fit: the disagreement ensemble, the behaviour prior or the state density.
    pub measure: UncertaintyMeasure,
    /// K members (the ensemble's; a prior is one network); hidden units default to the
    /// run's `model.hidden_size`.
    pub members: i64,
    pub hidden: Option<i64>,
    pub layers: i64,
    /// Gradient steps (Adam), each on one chunk batch of the run's `train.batch_size` ×
    /// `train.chunk_length`; for the density, the batches its moments are summed over.
    pub updates: usize,
    pub learning_rate: f64,
    /// ε, the density's shrinkage of its covariance towards the average variance, in [0, 1).
    pub shrinkage: f64,
    /// The quantile of the replay's measure that becomes u = 1, in (0, 1); `None` takes the
    /// measure's own ([`FitOptions::quantile`]).
    pub quantile: Option<f64>,
    /// Fresh replay batches the threshold is measured on.
    pub calibration_batches: usize,
    pub seed: u64,
    /// `cpu`, `cuda` or `cuda:N`; `None` keeps the run's.
    pub device: Option<String>,
    /// libtorch threads (0: one per core); `None` keeps the run's.
    pub threads: Option<usize>,
}

impl Default for FitOptions {
    fn default() -> Self {
        let shape = EnsembleShape::default();
        FitOptions {
            measure: UncertaintyMeasure::Disagreement,
            members: shape.members,
            hidden: None,
            layers: shape.layers,
            updates: 2000,
            learning_rate: 1e-3,
            shrinkage: gradplan_model::density::DEFAULT_SHRINKAGE,
            quantile: None,
            calibration_batches: 8,
            seed: 0,
            device: None,
            threads: None,
        }
    }
}

/// What a fit did.
#[derive(Debug, Clone)]
pub struct FitReport {
    /// The checkpoint whose model and replay it was fitted on, and the file written there.
    pub checkpoint: PathBuf,
    pub path: PathBuf,
    pub measure: UncertaintyMeasure,
    /// Members (1 for the prior), hidden units, hidden layers; for the density, 0 members,
    /// and its feature size as the hidden units.
    pub shape: EnsembleShape,
    /// Mean loss (the ensemble's: summed member MSE; the prior's: Gaussian NLL per action
    /// coordinate) over the first and the last tenth of the updates; `None` for the
    /// density, which has no updates.
    pub first_loss: Option<f64>,
    pub last_loss: Option<f64>,
    /// Mean loss on the calibration transitions (the density's: its mean distance d, 1 for
    /// features like the fit's when unshrunk; shrinkage lowers it).
    pub calibration_loss: f64,
    /// The calibration transitions' measure at the 50th and 90th percentiles and its maximum, in units of
    /// the threshold (so the threshold itself is 1).
    pub median: f64,
    pub p90: f64,
    pub max: f64,
    /// d_q, the measure at `quantile`.
    pub threshold: f64,
    pub transitions: usize,
}

/// The training pairs of one batch under the frozen model.
struct Transitions {
    /// `[N, belief + state]`
    features: Tensor,
    /// `[N, A]`
    actions: Tensor,
    /// `[N, S]`
    targets: Tensor,
    /// `[N]`, 0 where `o_{t+1}` starts an episode.
    mask: Tensor,
}

fn transitions(model: &WorldModel, seq: &SequenceBatch) -> Transitions {
    tch::no_grad(|| {
        let observed = model.observe(seq);
        let steps = seq.actions.size()[0];
        let flat = |t: Tensor| t.flatten(0, 1);
        let features = flat(observed.features().narrow(0, 0, steps - 1));
        let actions = flat(seq.actions.narrow(0, 1, steps - 1));
        let targets = flat(observed.posterior.mean.narrow(0, 1, steps - 1));
        let mask = flat(1.0 - seq.is_first.narrow(0, 1, steps - 1));
        Transitions { features, actions, targets, mask }
    })
}

fn invalid(key: &str, reason: &str) -> Error {
    Error::Config(gradplan_config::Error::Invalid { key: key.into(), reason: reason.into() })
}

impl FitOptions {
    /// The quantile that becomes u = 1: the setting, else the measure's. The disagreement's
    /// edge is its 99th percentile (only transitions beyond nearly all the data pay). The
    /// prior's is its median: the replay's own actions carry the collector's exploration
    /// noise, so its tail is the noise's, and plans sit well inside it: at the 99th
    /// percentile's edge, on a CEM-trained cheetah-run model, CEM's executed actions had
    /// median u 0.17 and the robust Grad-MPC plans that tipped the cheetah 0.43, above 1 on
    /// only 6% of decisions (docs/results.md, "A behaviour prior"). The density's is its
    /// 99th percentile, like the disagreement's: the states a plan passes through should
    /// pay only beyond nearly all the data's.
    pub fn quantile(&self) -> f64 {
        self.quantile.unwrap_or(match self.measure {
            UncertaintyMeasure::Disagreement | UncertaintyMeasure::Density => 0.99,
            UncertaintyMeasure::Behavior => 0.5,
        })
    }

    fn validate(&self) -> Result<()> {
        if self.members < 2 && self.measure == UncertaintyMeasure::Disagreement {
            return Err(invalid("--members", "an ensemble needs at least 2 members to disagree"));
        }
        if self.layers < 1 || self.hidden.is_some_and(|h| h < 1) {
            return Err(invalid("--layers/--hidden", "need at least 1 hidden layer of at least 1 unit"));
        }
        if self.updates == 0 {
            return Err(invalid("--updates", "must be at least 1"));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(invalid("--learning-rate", "must be a positive number"));
        }
        if !(0.0..1.0).contains(&self.shrinkage) {
            return Err(invalid("--shrinkage", "must be at least 0 and below 1"));
        }
        if !(self.quantile() > 0.0 && self.quantile() < 1.0) {
            return Err(invalid("--quantile", "must be strictly between 0 and 1"));
        }
        if self.calibration_batches == 0 {
            return Err(invalid("--calibration-batches", "must be at least 1"));
        }
        Ok(())
    }
}

/// Fits and writes the ensemble of the latest checkpoint of the run in `run_dir`, calling
/// `progress(update, loss)` every 100 updates. Options are checked before anything loads.
pub fn fit(run_dir: &Path, opts: &FitOptions, progress: &mut dyn FnMut(usize, f64)) -> Result<FitReport> {
    opts.validate()?;
    let cfg = read_run_config(run_dir)?;
    let device_spec = opts.device.as_deref().unwrap_or(&cfg.device).parse::<DeviceSpec>()?;
    let device = device_spec.resolve()?;
    gradplan_backend::set_threads(opts.threads.unwrap_or(cfg.threads));
    let checkpoint = checkpoint::latest_noted(run_dir)?.ok_or_else(|| {
        Error::RunDir(format!(
            "{} has no checkpoint to fit to; train it first (`gradplan resume --run-dir {}`)",
            run_dir.display(),
            run_dir.display()
        ))
    })?;
    let replay = Replay::load(checkpoint.join(REPLAY_FILE))?;
    let (batch, chunk) = (cfg.train.batch_size, cfg.train.chunk_length);
    if replay.valid_chunks(chunk) == 0 {
        return Err(Error::RunDir(format!(
            "the replay of {} holds no chunk of {chunk} steps to fit on",
            checkpoint.display()
        )));
    }
    let action_dim = replay.action_spec().dim() as i64;
    let mut model = WorldModel::new(&cfg.model, obs_shape(replay.obs_spec()), action_dim, device)?;
    model.load(&checkpoint.join(MODEL_FILE))?;
    let m = &cfg.model;
    let shape = EnsembleShape {
        members: opts.members,
        hidden: opts.hidden.unwrap_or(m.hidden_size),
        layers: opts.layers,
    };
    tch::manual_seed(derive_seed(opts.seed, Stream::Ensemble, 0) as i64);
    let dims = EnsembleDims::of(&model);
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(opts.seed, Stream::Ensemble, 1));
    let sample = |rng: &mut ChaCha8Rng| -> Result<Transitions> {
        let seq = batch_to_tensors(&replay.sample(batch, chunk, rng)?, m.bit_depth, device, false);
        Ok(transitions(&model, &seq))
    };
    // The networks start fresh and are trained below; the prior is one network of `shape`'s
    // hidden sizes. The density has no parameters: its moments over the same batches make it.
    let mut fitted = match opts.measure {
        UncertaintyMeasure::Disagreement => {
            Fitted::Ensemble(Ensemble::new(shape, dims, m.activation, device)?)
        }
        UncertaintyMeasure::Behavior => Fitted::Prior(BehaviorPrior::new(
            BehaviorPriorShape { hidden: shape.hidden, layers: shape.layers },
            dims,
            m.activation,
            device,
        )?),
        UncertaintyMeasure::Density => {
            let mut moments = Moments::new(dims.features, device);
            for _ in 0..opts.updates {
                moments.add(&sample(&mut rng)?.features);
            }
            Fitted::Density(StateDensity::fit(&moments, opts.shrinkage)?)
        }
    };
    let (mut first, mut last) = (None, None);
    if let Some(var_store) = fitted.var_store() {
        let mut adam = tch::nn::Adam::default().build(var_store, opts.learning_rate)?;
        let tenth = (opts.updates / 10).max(1);
        let (mut head, mut tail) = (0.0, 0.0);
        for update in 0..opts.updates {
            let loss = fitted.loss(&sample(&mut rng)?);
            let value = loss.double_value(&[]);
            if !value.is_finite() {
                return Err(Error::RunDir(format!(
                    "the {}'s loss became {value} at update {update}; nothing was written. Fit again with a \
                     lower --learning-rate",
                    fitted.name()
                )));
            }
            adam.backward_step(&loss);
            if update < tenth {
                head += value / tenth as f64;
            }
            if update >= opts.updates - tenth {
                tail += value / tenth as f64;
            }
            if (update + 1) % 100 == 0 {
                progress(update + 1, value);
            }
        }
        (first, last) = (Some(head), Some(tail));
    }
    // Fresh chunks, from a stream the fit never drew from.
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(opts.seed, Stream::Ensemble, 2));
    let mut measures = Vec::new();
    let mut calibration = 0.0;
    for _ in 0..opts.calibration_batches {
        let t = sample(&mut rng)?;
        tch::no_grad(|| {
            calibration += fitted.loss(&t).double_value(&[]) / opts.calibration_batches as f64;
            let d = fitted.measure(&t);
            let keep = t.mask.gt(0.5);
            measures
                .extend(Vec::<f64>::try_from(d.masked_select(&keep).to_kind(Kind::Double).to(Device::Cpu))?);
            Ok::<(), Error>(())
        })?;
    }
    measures.retain(|d| d.is_finite());
    if measures.is_empty() {
        return Err(Error::RunDir(format!("no replay transition to calibrate the {} on", fitted.name())));
    }
    measures.sort_by(f64::total_cmp);
    let at = |q: f64| measures[((measures.len() - 1) as f64 * q).round() as usize];
    let threshold = at(opts.quantile());
    let path = checkpoint.join(support_file(opts.measure));
    fitted.calibrate_and_save(threshold, &path)?;
    Ok(FitReport {
        checkpoint,
        path,
        measure: opts.measure,
        shape: fitted.shape(),
        first_loss: first,
        last_loss: last,
        calibration_loss: calibration,
        median: at(0.5) / threshold,
        p90: at(0.9) / threshold,
        max: at(1.0) / threshold,
        threshold,
        transitions: measures.len(),
    })
}

/// The measure being fitted.
enum Fitted {
    Ensemble(Ensemble),
    Prior(BehaviorPrior),
    Density(StateDensity),
}

impl Fitted {
    /// Members, hidden units and hidden layers (1 member for the prior).
    fn shape(&self) -> EnsembleShape {
        match self {
            Fitted::Ensemble(e) => e.shape(),
            Fitted::Prior(p) => {
                let s = p.shape();
                EnsembleShape { members: 1, hidden: s.hidden, layers: s.layers }
            }
            Fitted::Density(d) => EnsembleShape { members: 0, hidden: d.features(), layers: 0 },
        }
    }

    fn calibrate_and_save(&mut self, threshold: f64, path: &Path) -> Result<()> {
        match self {
            Fitted::Ensemble(e) => {
                e.calibrate(threshold)?;
                e.save(path)?
            }
            Fitted::Prior(p) => {
                p.calibrate(threshold)?;
                p.save(path)?
            }
            Fitted::Density(d) => {
                d.calibrate(threshold)?;
                d.save(path)?
            }
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        match self {
            Fitted::Ensemble(_) => "ensemble",
            Fitted::Prior(_) => "behaviour prior",
            Fitted::Density(_) => "state density",
        }
    }

    /// The network's parameters; the density has none.
    fn var_store(&self) -> Option<&tch::nn::VarStore> {
        match self {
            Fitted::Ensemble(e) => Some(e.var_store()),
            Fitted::Prior(p) => Some(p.var_store()),
            Fitted::Density(_) => None,
        }
    }

    /// The fit's loss on these transitions `[]` (the density's: its mean distance).
    fn loss(&self, t: &Transitions) -> Tensor {
        match self {
            Fitted::Ensemble(e) => e.loss(&t.features, &t.actions, &t.targets, &t.mask),
            Fitted::Prior(p) => p.loss(&t.features, &t.actions, &t.mask),
            Fitted::Density(d) => {
                (d.distance(&t.features) * &t.mask).sum(Kind::Float) / t.mask.sum(Kind::Float).clamp_min(1.0)
            }
        }
    }

    /// The uncalibrated measure of each transition `[N]`.
    fn measure(&self, t: &Transitions) -> Tensor {
        match self {
            Fitted::Ensemble(e) => e.disagreement(&t.features, &t.actions),
            Fitted::Prior(p) => p.distance(&t.features, &t.actions),
            Fitted::Density(d) => d.distance(&t.features),
        }
    }
}

/// The measure of data support fitted to the checkpoint in `checkpoint` for `model`; `None`
/// when it has none.
pub fn load(
    checkpoint: &Path,
    model: &WorldModel,
    measure: UncertaintyMeasure,
) -> Result<Option<Rc<dyn DataSupport>>> {
    let path = checkpoint.join(support_file(measure));
    if !path.is_file() {
        return Ok(None);
    }
    let (dims, act, device) = (EnsembleDims::of(model), model.cfg.activation, model.device());
    Ok(Some(match measure {
        UncertaintyMeasure::Disagreement => Rc::new(Ensemble::load(&path, dims, act, device)?),
        UncertaintyMeasure::Behavior => Rc::new(BehaviorPrior::load(&path, dims, act, device)?),
        UncertaintyMeasure::Density => Rc::new(StateDensity::load(&path, dims.features, device)?),
    }))
}

/// The error for a penalty asked of a checkpoint without its measure: how to fit it.
pub fn missing(checkpoint: &Path, measure: UncertaintyMeasure) -> Error {
    let run = checkpoint.parent().and_then(Path::parent).unwrap_or(checkpoint);
    let (what, flag) = match measure {
        UncertaintyMeasure::Disagreement => ("disagreement ensemble", ""),
        UncertaintyMeasure::Behavior => ("behaviour prior", " --measure behavior"),
        UncertaintyMeasure::Density => ("state density", " --measure density"),
    };
    Error::RunDir(format!(
        "planner.uncertainty_penalty needs the run's {what} (planner.uncertainty_measure = {measure}), and {} \
         has none; fit it with `gradplan ensemble --run-dir {}{flag}` (18 s on one core at the state scale), or \
         set planner.uncertainty_penalty=0",
        checkpoint.display(),
        run.display()
    ))
}
