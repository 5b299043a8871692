//! Open-loop predictions of a trained world model, the check of PlaNet §5 / Figure 4
//! (Hafner et al. 2019): how far into the future the prior alone stays faithful.
//!
//! One noise-free episode is played with the run's planner (the same episode as the first
//! of `gradplan eval --seed S`). Then, on the recorded observations, actions and rewards:
//!
//! * **reconstruction**: the whole episode is filtered with the posterior
//!   `q(s_t | h_t, o_t)` and every posterior state is decoded;
//! * **open loop**: the first C observations are filtered the same way (they *are* those
//!   posterior states), then from `(h_{C−1}, s_{C−1})` the prior is rolled with the recorded
//!   actions, taking its mean at every step (no sampling), and every imagined state is decoded.
//!
//! Both also give predicted rewards `r̂(h_t, s_t)`. The posterior draws a sample at every
//! step as while acting, from tch's generator seeded by the episode's seed.

use crate::agent::{Agent, EpisodeOptions, EpisodeStats, Policy};
use crate::eval::load_run;
use crate::trainer::{derive_seed, read_run_config, Stream};
use crate::{Error, Result};
use gradplan_backend::DeviceSpec;
use gradplan_config::RunConfig;
use gradplan_env::preprocess::chw_to_frame;
use gradplan_env::Frame;
use gradplan_model::{RssmState, WorldModel};
use gradplan_replay::{Batch, BatchObs, Replay};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use tch::{Device, Kind, Tensor};

/// Default C: observations filtered before the open-loop rollout (PlaNet's Figure 4 uses 5).
pub const DEFAULT_CONTEXT: usize = 5;

/// Which episode to play and how much context to give the model.
#[derive(Debug, Clone)]
pub struct OpenLoopOptions {
    /// Seeds the episode as `gradplan eval --seed` seeds its first one, and the posterior samples.
    pub seed: u64,
    /// C ≥ 1, observations filtered before the prior runs alone (clamped to the episode).
    pub context: usize,
    /// `cpu`, `cuda` or `cuda:N`; `None` keeps the run's.
    pub device: Option<String>,
    /// libtorch threads (0: one per core); `None` keeps the run's.
    pub threads: Option<usize>,
}

impl Default for OpenLoopOptions {
    fn default() -> Self {
        OpenLoopOptions { seed: 0, context: DEFAULT_CONTEXT, device: None, threads: None }
    }
}

/// Observations of the episode and the model's two versions of them, one entry per time
/// step `t = 0..=decisions` (the reset observation, then one per decision).
#[derive(Debug, Clone, PartialEq)]
pub enum Trace {
    /// Pixel runs: 64×64 RGB frames. The decoded ones come from the model's centred 5-bit
    /// output, mapped back to bytes.
    Pixels {
        /// What the agent saw.
        real: Vec<Frame>,
        /// Decoded posterior states.
        reconstructed: Vec<Frame>,
        /// Decoded posterior states for `t < C`, decoded prior-mean rollout from there on.
        imagined: Vec<Frame>,
    },
    /// State runs: observation vectors, `[D]` each.
    State { real: Vec<Vec<f32>>, reconstructed: Vec<Vec<f32>>, imagined: Vec<Vec<f32>> },
}

impl Trace {
    /// Time steps in the trace (decisions + 1).
    pub fn len(&self) -> usize {
        match self {
            Trace::Pixels { real, .. } => real.len(),
            Trace::State { real, .. } => real.len(),
        }
    }

    /// Whether the trace has no steps (never, for a played episode).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An episode with the model's reconstruction and open-loop prediction of it.
///
/// Rewards have one entry per decision: entry `i` is the reward received on arriving at
/// observation `t = i + 1`, and the predictions are `r̂` of the state at that `t`.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenLoop {
    pub task: String,
    /// The checkpoint whose model was used.
    pub checkpoint: PathBuf,
    pub seed: u64,
    /// C as used (clamped to `1..=decisions + 1`).
    pub context: usize,
    /// The played episode (return, decisions, planning time).
    pub episode: EpisodeStats,
    pub trace: Trace,
    pub real_rewards: Vec<f64>,
    /// `r̂` of the posterior states.
    pub posterior_rewards: Vec<f64>,
    /// `r̂` of the posterior states before C, of the imagined ones from C on.
    pub open_loop_rewards: Vec<f64>,
}

/// The model's reconstruction and open-loop prediction of a recorded episode.
#[derive(Debug)]
pub struct Predictions {
    /// C as used.
    pub context: usize,
    /// Decoded posterior states, `[T, …obs]` (model space: centred pixels or state vectors).
    pub reconstructed: Tensor,
    /// Decoded posterior states before C, decoded prior-mean rollout from C on, `[T, …obs]`.
    pub imagined: Tensor,
    /// `r̂` of the posterior states, `[T]`.
    pub posterior_rewards: Tensor,
    /// `r̂` of the open-loop states, `[T]`.
    pub open_loop_rewards: Tensor,
}

/// Reconstructs `episode` (one chunk `[T, 1, …]` that starts with the reset observation) with
/// the posterior and predicts it open loop from C = `context` filtered observations. Uses
/// tch's global generator for the posterior samples.
///
/// # Shapes
/// `episode`: time-major with B = 1; every output is `[T, …]`.
pub fn predict(model: &WorldModel, episode: &Batch, context: usize) -> Result<Predictions> {
    if episode.batch != 1 || episode.time == 0 || !episode.is_first[0] {
        return Err(Error::RunDir(
            "an open-loop prediction needs one whole episode (B = 1, starting at its reset)".into(),
        ));
    }
    if context == 0 {
        return Err(Error::Config(gradplan_config::Error::Invalid {
            key: "context".into(),
            reason: "must be at least 1: the rollout starts from a filtered state".into(),
        }));
    }
    let steps = episode.time;
    let context = context.min(steps);
    let seq = crate::tensors::batch_to_tensors(episode, model.cfg.bit_depth, model.device(), false);
    Ok(tch::no_grad(|| {
        let observed = model.observe(&seq);
        let features = observed.features().squeeze_dim(1); // [T, F]
        let reconstructed = model.decode(&features);
        let posterior_rewards = model.reward(&features);
        let actions = seq.actions.squeeze_dim(1); // [T, A]
        let c = context as i64;
        let mut state = RssmState { belief: observed.beliefs.get(c - 1), stoch: observed.states.get(c - 1) };
        let mut imagined_features = vec![features.narrow(0, 0, c)];
        for t in c..steps as i64 {
            // actions[t] led to observation t.
            state = model.rssm.imagine_step(&state, &actions.narrow(0, t, 1), false);
            imagined_features.push(state.features());
        }
        let imagined_features = Tensor::cat(&imagined_features, 0); // [T, F]
        Predictions {
            context,
            imagined: model.decode(&imagined_features),
            open_loop_rewards: model.reward(&imagined_features),
            reconstructed,
            posterior_rewards,
        }
    }))
}

/// Loads the run in `run_dir` (its configuration and latest checkpoint, as `gradplan eval`
/// does), plays one noise-free episode with the run's planner, and predicts it.
pub fn open_loop(run_dir: &Path, opts: &OpenLoopOptions) -> Result<OpenLoop> {
    let cfg = read_run_config(run_dir)?;
    let loaded = load(run_dir, &cfg, opts)?;
    let Loaded { mut agent, model, checkpoint, mut env } = loaded;
    let mut replay = Replay::new(env.obs_spec(), env.action_spec().clone(), cfg.env.episode_steps + 1)?;
    let seed = derive_seed(opts.seed, Stream::Eval, 0);
    let episode = agent.run_episode(
        env.as_mut(),
        EpisodeOptions {
            policy: Policy::Plan { noise: 0.0 },
            seed,
            episode_steps: cfg.env.episode_steps,
            replay: Some(&mut replay),
            frames: None,
            label: "openloop",
            trace: None,
        },
    )?;
    // The replay holds exactly this episode, so its one chunk of every step is the episode.
    let batch = replay.sample(1, replay.len(), &mut ChaCha8Rng::seed_from_u64(0))?;
    tch::manual_seed(seed as i64);
    let p = predict(&model, &batch, opts.context)?;
    let trace = match &batch.obs {
        BatchObs::Pixels { height, width, data } => {
            let frame_len = height * width * 3;
            let real = data
                .chunks(frame_len)
                .map(|d| Frame::new(*height, *width, d.to_vec()))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Trace::Pixels {
                real,
                reconstructed: frames(&p.reconstructed, *height, *width)?,
                imagined: frames(&p.imagined, *height, *width)?,
            }
        }
        BatchObs::State { dim, data } => Trace::State {
            real: data.chunks(*dim).map(<[f32]>::to_vec).collect(),
            reconstructed: rows(&p.reconstructed)?,
            imagined: rows(&p.imagined)?,
        },
    };
    // Entry 0 is the reset observation, which no reward led to.
    let tail =
        |t: &Tensor| -> Result<Vec<f64>> { Ok(to_vec(t)?.into_iter().skip(1).map(f64::from).collect()) };
    Ok(OpenLoop {
        task: cfg.env.task.clone(),
        checkpoint,
        seed: opts.seed,
        context: p.context,
        episode,
        trace,
        real_rewards: batch.rewards.iter().skip(1).map(|&r| f64::from(r)).collect(),
        posterior_rewards: tail(&p.posterior_rewards)?,
        open_loop_rewards: tail(&p.open_loop_rewards)?,
    })
}

/// A run's model and agent, as `Evaluator::new` loads them, with the run's own planner.
struct Loaded {
    agent: Agent,
    model: Rc<WorldModel>,
    checkpoint: PathBuf,
    env: Box<dyn gradplan_env::Env>,
}

fn load(run_dir: &Path, cfg: &RunConfig, opts: &OpenLoopOptions) -> Result<Loaded> {
    let planner = cfg.planner.overridden(None, &[])?;
    let device = opts.device.as_deref().unwrap_or(&cfg.device).parse::<DeviceSpec>()?;
    let run = load_run(run_dir, cfg, device, opts.threads)?;
    let agent = Agent::new(run.model.clone(), run.behavior, &planner, &cfg.dreamer, run.action_spec)?;
    Ok(Loaded { agent, model: run.model, checkpoint: run.checkpoint, env: run.env })
}

fn to_vec(t: &Tensor) -> Result<Vec<f32>> {
    t.to_device(Device::Cpu).to_kind(Kind::Float).flatten(0, -1).try_into().map_err(Error::Torch)
}

/// `[T, 3, H, W]` decoded pixels (centred, 5-bit) → frames.
fn frames(x: &Tensor, height: usize, width: usize) -> Result<Vec<Frame>> {
    let values = to_vec(x)?;
    values
        .chunks(3 * height * width)
        .map(|chw| Frame::new(height, width, chw_to_frame(chw, height, width)).map_err(Error::from))
        .collect()
}

/// `[T, D]` → one vector per step.
fn rows(x: &Tensor) -> Result<Vec<Vec<f32>>> {
    let dim = x.size()[1] as usize;
    Ok(to_vec(x)?.chunks(dim).map(<[f32]>::to_vec).collect())
}
