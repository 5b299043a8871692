//! The acting half of PlaNet (Hafner et al. 2019, Algorithm 1, lines 8–14): filter the
//! belief with each new observation, plan from it (MPC: only the first action is executed),
//! optionally add exploration noise, step the environment. Shared by training (seed,
//! collect and test episodes) and `gradplan eval`.

use crate::dynamics::ModelDynamics;
use crate::{Error, Result};
use gradplan_backend::rng::RngState;
use gradplan_config::{DreamerConfig, PlannerConfig};
use gradplan_dreamer::Behavior;
use gradplan_env::{ActionSpec, Env, Frame, Obs, ThreadEnv};
use gradplan_model::{preprocess_frames, DataSupport, RssmState, WorldModel};
use gradplan_plan::{LatentDynamics, Planner};
use gradplan_replay::Replay;
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use std::rc::Rc;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// How actions are chosen in an episode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Policy {
    /// Uniform in the action bounds (seed episodes).
    Random,
    /// The planner, plus Gaussian noise of this std (0 for test episodes), clipped.
    Plan { noise: f64 },
}

/// What one episode produced.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EpisodeStats {
    pub total_return: f64,
    pub decisions: usize,
    /// Simulator steps (decisions × action repeat, the last one possibly shorter).
    pub env_steps: usize,
    /// Mean milliseconds per planning call; `None` for random episodes.
    pub plan_ms: Option<f64>,
    /// Mean over decisions of the chosen plan's predicted return R (eq. 3); `None` for
    /// random episodes.
    pub predicted_return: Option<f64>,
    /// Mean over decisions of the optimisation iterations the planner ran
    /// (`Plan::iterations`); `None` for random episodes.
    pub iterations: Option<f64>,
}

/// Receives every frame the agent saw, the first observation included.
pub struct FrameSink<'a> {
    /// Side of the frames rendered for state observations (pixel observations are passed
    /// on as they are).
    pub render_size: usize,
    pub push: &'a mut dyn FnMut(&Frame),
}

/// One decision as it was taken, for a per-step trace of an episode (`gradplan eval --trace`).
#[derive(Debug, Clone, Copy)]
pub struct Decision<'a> {
    /// Index of the decision in its episode, from 0.
    pub index: usize,
    /// The observation the decision was made on.
    pub obs: &'a Obs,
    /// The action sent to the environment (after exploration noise and clipping), `[A]`.
    pub action: &'a [f32],
    /// Reward summed over the action repeat.
    pub reward: f64,
    /// The chosen plan's predicted return R (eq. 3); `None` for the random policy.
    pub predicted_return: Option<f64>,
    /// Milliseconds the planning call took; `None` for the random policy.
    pub plan_ms: Option<f64>,
    /// u of the transition taken, the belief and the action sent, in units of the data's
    /// edge ([`gradplan_plan::LatentDynamics::uncertainty`]); `None` without the
    /// checkpoint's fitted measure or for the random policy.
    pub uncertainty: Option<f64>,
}

/// One episode to play.
pub struct EpisodeOptions<'a> {
    pub policy: Policy,
    /// Seeds the environment's reset, the random policy, the exploration noise and the
    /// planner's sampling (tch's global generator).
    pub seed: u64,
    /// Simulator steps per episode (`env.episode_steps`), to count the shorter last decision.
    pub episode_steps: usize,
    /// Store the transitions here.
    pub replay: Option<&'a mut Replay>,
    /// Hand the frames to this sink (videos).
    pub frames: Option<FrameSink<'a>>,
    /// Prefix of the progress bar (shown on terminals only).
    pub label: &'a str,
    /// Hand every decision to this sink (traces).
    pub trace: Option<&'a mut dyn FnMut(&Decision)>,
}

/// A world model, the planner that acts with it, and the environment's action box.
pub struct Agent {
    model: Rc<WorldModel>,
    dynamics: ModelDynamics,
    planner: Box<dyn Planner<ModelDynamics>>,
    /// The planner's settings, to build one more per parallel episode.
    plan_cfg: gradplan_plan::PlannerConfig,
    action_spec: ActionSpec,
    /// b, bits per colour channel the model sees (PlaNet: 5).
    bit_depth: u32,
    device: Device,
}

impl Agent {
    /// Builds the planner `planner` describes (its iterations already resolved) over
    /// `model` (and Dreamer's actor and value in `behavior`, which the policy planners need),
    /// acting in the box `action_spec`.
    pub fn new(
        model: Rc<WorldModel>,
        behavior: Option<Rc<Behavior>>,
        planner: &PlannerConfig,
        dreamer: &DreamerConfig,
        action_spec: ActionSpec,
    ) -> Result<Agent> {
        Agent::with_support(model, behavior, None, planner, dreamer, action_spec)
    }

    /// [`Agent::new`] with the measure of data support fitted to `model` (the disagreement
    /// ensemble, the behaviour prior or the state density), which a planner with `planner.uncertainty_penalty` >
    /// 0 needs (its objective refuses to plan without one,
    /// [`gradplan_plan::Error::NoUncertainty`]).
    pub fn with_support(
        model: Rc<WorldModel>,
        behavior: Option<Rc<Behavior>>,
        support: Option<Rc<dyn DataSupport>>,
        planner: &PlannerConfig,
        dreamer: &DreamerConfig,
        action_spec: ActionSpec,
    ) -> Result<Agent> {
        let mut dynamics = ModelDynamics::new(
            model.clone(),
            behavior,
            planner.sample_imagined,
            &action_spec.low,
            &action_spec.high,
        );
        dynamics.support = support;
        let plan_cfg = gradplan_plan::PlannerConfig::from_settings(planner, dreamer.discount);
        plan_cfg.validate()?;
        Ok(Agent {
            bit_depth: model.cfg.bit_depth,
            device: model.device(),
            planner: plan_cfg.init(),
            plan_cfg,
            model,
            dynamics,
            action_spec,
        })
    }

    pub fn model(&self) -> &Rc<WorldModel> {
        &self.model
    }

    /// The observation as the model's input, `[1, 3, H, W]` (preprocessed, no
    /// dequantisation noise) or `[1, D]`.
    fn obs_tensor(&self, obs: &Obs) -> Tensor {
        match obs {
            Obs::Pixels(f) => {
                let raw = Tensor::from_slice(&f.data)
                    .view([1, f.height as i64, f.width as i64, 3])
                    .to_device(self.device);
                preprocess_frames(&raw, self.bit_depth, false)
            }
            Obs::State(v) => Tensor::from_slice(v).view([1, -1]).to_device(self.device),
        }
    }

    /// Plays one episode. Random and planning streams are seeded from `opts.seed`, so an
    /// episode is the same whether or not the run was interrupted before it.
    pub fn run_episode(&mut self, env: &mut dyn Env, opts: EpisodeOptions<'_>) -> Result<EpisodeStats> {
        let EpisodeOptions { policy, seed, episode_steps, mut replay, mut frames, label, mut trace } = opts;
        tch::manual_seed(seed as i64);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let repeat = env.action_repeat();
        let bar = progress_bar(episode_steps.div_ceil(repeat), label);
        // dm_control seeds numpy's RandomState, which takes 32 bits.
        let mut obs = env.reset(Some(seed & 0xFFFF_FFFF))?;
        if let Some(replay) = replay.as_deref_mut() {
            replay.begin_episode(&obs)?;
        }
        record(&mut frames, &obs, env)?;
        self.planner.reset();
        let mut planning = Planning::new(&self.model, self.action_spec.dim(), self.device);
        let mut stats = EpisodeStats::default();
        loop {
            let (action, planned): (Vec<f32>, Option<Planned>) = match policy {
                Policy::Random => {
                    let random = self.action_spec.low.iter().zip(&self.action_spec.high);
                    (random.map(|(&lo, &hi)| rng.random_range(lo..=hi)).collect(), None)
                }
                Policy::Plan { noise } => {
                    let x = self.obs_tensor(&obs);
                    let planned = planning.plan(&self.model, &self.dynamics, self.planner.as_mut(), &x)?;
                    let action = noisy_clipped(&self.action_spec, planned.action.clone(), noise, &mut rng)?;
                    (action, Some(planned))
                }
            };
            planning.taken(&action, self.device);
            let step = env.step(&action)?;
            if let Some(replay) = replay.as_deref_mut() {
                replay.push(&action, &step)?;
            }
            stats.add_step(step.reward, repeat, episode_steps);
            if let Some(trace) = trace.as_deref_mut() {
                trace(&Decision {
                    index: stats.decisions - 1,
                    obs: &obs,
                    action: &action,
                    reward: step.reward,
                    predicted_return: planned.as_ref().map(|p| p.predicted_return),
                    plan_ms: planned.as_ref().map(|p| p.ms),
                    uncertainty: planned.as_ref().and_then(|_| planning.uncertainty(&self.dynamics)),
                });
            }
            bar.inc(1);
            record(&mut frames, &step.obs, env)?;
            let done = step.done();
            obs = step.obs;
            if done {
                break;
            }
        }
        bar.finish_and_clear();
        if matches!(policy, Policy::Plan { .. }) {
            planning.summarise(&mut stats);
        }
        Ok(stats)
    }
}

impl EpisodeStats {
    /// Counts one decision's step: its reward, and its simulator steps (the repeat, or what
    /// is left of `episode_steps` for the last one).
    fn add_step(&mut self, reward: f64, repeat: usize, episode_steps: usize) {
        self.total_return += reward;
        self.decisions += 1;
        self.env_steps += repeat.min(episode_steps - (self.decisions - 1) * repeat);
    }
}

/// One episode's planning state: the belief, the action that led to it, and the sums
/// behind [`EpisodeStats`]' planning fields. Shared by [`Agent::run_episode`] and the
/// parallel episodes.
struct Planning {
    belief: RssmState,
    last_action: Tensor,
    first: bool,
    plan_time: f64,
    predicted: f64,
    iterations: f64,
}

/// What one planning call chose, and what it cost.
struct Planned {
    /// The plan's first action, before noise and clipping, `[A]`.
    action: Vec<f32>,
    /// Its predicted return R (eq. 3).
    predicted_return: f64,
    /// Milliseconds the call took.
    ms: f64,
}

impl Planning {
    fn new(model: &WorldModel, action_dim: usize, device: Device) -> Planning {
        Planning {
            belief: model.rssm.initial(1, device),
            last_action: Tensor::zeros([1, action_dim as i64], (Kind::Float, device)),
            first: true,
            plan_time: 0.0,
            predicted: 0.0,
            iterations: 0.0,
        }
    }

    /// Filters the belief with the observation `x` (the model's input) and plans from it;
    /// returns the plan's first action (before noise and clipping), prediction and time.
    fn plan(
        &mut self,
        model: &WorldModel,
        dynamics: &ModelDynamics,
        planner: &mut dyn Planner<ModelDynamics>,
        x: &Tensor,
    ) -> Result<Planned> {
        self.belief = model.filter(&self.belief, &self.last_action, x, self.first);
        let start = Instant::now();
        let plan = planner.plan(dynamics, &self.belief)?;
        let secs = start.elapsed().as_secs_f64();
        self.plan_time += secs;
        self.predicted += plan.predicted_return;
        self.iterations += plan.iterations as f64;
        Ok(Planned { action: plan.action, predicted_return: plan.predicted_return, ms: secs * 1e3 })
    }

    /// The action sent to the environment, which the next filter step conditions on.
    fn taken(&mut self, action: &[f32], device: Device) {
        self.first = false;
        self.last_action = Tensor::from_slice(action).view([1, action.len() as i64]).to_device(device);
    }

    /// u of the transition just taken (the current belief and [`Planning::taken`]'s action).
    fn uncertainty(&self, dynamics: &ModelDynamics) -> Option<f64> {
        tch::no_grad(|| dynamics.uncertainty(&self.belief, &self.last_action)).map(|u| u.double_value(&[0]))
    }

    /// Sets the planning fields of `stats` to the means over its decisions.
    fn summarise(&self, stats: &mut EpisodeStats) {
        let n = stats.decisions.max(1) as f64;
        stats.plan_ms = Some(self.plan_time * 1e3 / n);
        stats.predicted_return = Some(self.predicted / n);
        stats.iterations = Some(self.iterations / n);
    }
}

/// `action` plus Gaussian exploration noise of std `noise` (none at 0), clipped to the box.
fn noisy_clipped(
    spec: &ActionSpec,
    mut action: Vec<f32>,
    noise: f64,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<f32>> {
    if noise > 0.0 {
        let normal = Normal::new(0.0f32, noise as f32).map_err(|e| Error::RunDir(e.to_string()))?;
        for x in action.iter_mut() {
            *x += normal.sample(rng);
        }
    }
    Ok(spec.clip(&action)?)
}

/// Episodes to play at once, one environment each (`gradplan eval --envs N`).
pub struct ParallelEpisodes<'a> {
    /// One seed per episode, in order; each seeds what [`EpisodeOptions::seed`] seeds.
    pub seeds: Vec<u64>,
    /// Std of the Gaussian exploration noise (0 for test episodes).
    pub noise: f64,
    /// Simulator steps per episode (`env.episode_steps`).
    pub episode_steps: usize,
    /// Hand every episode's frames to this sink, episode after episode in seed order.
    pub frames: Option<FrameSink<'a>>,
    /// Prefix of the progress bar (shown on terminals only).
    pub label: &'a str,
}

/// The request an environment of a parallel run has in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InFlight {
    Reset,
    Step,
}

/// One episode in progress on one environment of a parallel run: what
/// [`Agent::run_episode`] keeps in locals, and libtorch's random stream.
struct Lane {
    episode: usize,
    in_flight: InFlight,
    /// The episode's libtorch random stream, put back before its draws.
    torch_rng: RngState,
    /// The exploration noise's stream.
    rng: ChaCha8Rng,
    planner: Box<dyn Planner<ModelDynamics>>,
    planning: Planning,
    stats: EpisodeStats,
    frames: Vec<Frame>,
}

impl Agent {
    /// Plays one planning episode per seed on `envs.len()` environments at once, each on its
    /// own thread ([`ThreadEnv`]): while one environment simulates and renders, this thread
    /// plans for another. Every episode is exactly the episode [`Agent::run_episode`] plays
    /// with the same seed and `Policy::Plan { noise }` (each keeps its own libtorch random
    /// stream), so the number of environments changes the wall time and nothing else.
    /// `on_episode(index, stats)` is called in seed order.
    pub fn run_episodes_parallel(
        &mut self,
        envs: &mut [ThreadEnv],
        episodes: ParallelEpisodes<'_>,
        on_episode: &mut dyn FnMut(usize, &EpisodeStats),
    ) -> Result<Vec<EpisodeStats>> {
        let result = self.play_parallel(envs, episodes, on_episode);
        if result.is_err() {
            // Leave no reply in flight, so the environments can be used (or dropped) again.
            for env in envs.iter_mut() {
                env.settle();
            }
        }
        result
    }

    fn play_parallel(
        &mut self,
        envs: &mut [ThreadEnv],
        episodes: ParallelEpisodes<'_>,
        on_episode: &mut dyn FnMut(usize, &EpisodeStats),
    ) -> Result<Vec<EpisodeStats>> {
        let ParallelEpisodes { seeds, noise, episode_steps, mut frames, label } = episodes;
        if envs.is_empty() {
            return Err(Error::RunDir("parallel episodes need at least one environment".into()));
        }
        let repeat = envs[0].action_repeat();
        let bar = progress_bar(seeds.len() * episode_steps.div_ceil(repeat), label);
        let mut done: Vec<Option<(EpisodeStats, Vec<Frame>)>> = (0..seeds.len()).map(|_| None).collect();
        let mut reported = 0;
        let mut next = 0;
        let mut lanes: Vec<Option<Lane>> = Vec::with_capacity(envs.len());
        for env in envs.iter_mut() {
            lanes.push(self.start_lane(env, &seeds, &mut next)?);
        }
        while lanes.iter().any(Option::is_some) {
            for (k, slot) in lanes.iter_mut().enumerate() {
                let Some(lane) = slot.as_mut() else { continue };
                let env = &mut envs[k];
                let obs = match lane.in_flight {
                    InFlight::Reset => env.finish_reset()?,
                    InFlight::Step => {
                        let step = env.finish_step()?;
                        lane.stats.add_step(step.reward, repeat, episode_steps);
                        bar.inc(1);
                        if step.done() {
                            let mut lane = slot.take().expect("the lane is active");
                            if let Some(sink) = &frames {
                                lane.frames.push(observed_frame(&step.obs, env, sink.render_size)?);
                            }
                            lane.planning.summarise(&mut lane.stats);
                            done[lane.episode] = Some((lane.stats, lane.frames));
                            // Report the episodes that are now complete in seed order.
                            while let Some(Some((stats, shown))) = done.get_mut(reported) {
                                on_episode(reported, stats);
                                if let Some(sink) = frames.as_mut() {
                                    for f in shown.drain(..) {
                                        (sink.push)(&f);
                                    }
                                }
                                reported += 1;
                            }
                            *slot = self.start_lane(env, &seeds, &mut next)?;
                            continue;
                        }
                        step.obs
                    }
                };
                if let Some(sink) = &frames {
                    lane.frames.push(observed_frame(&obs, env, sink.render_size)?);
                }
                // This episode's draws, and only its, come from its own stream.
                lane.torch_rng.restore()?;
                let x = self.obs_tensor(&obs);
                let planned = lane.planning.plan(&self.model, &self.dynamics, lane.planner.as_mut(), &x)?;
                lane.torch_rng = RngState::capture(self.device)?;
                let action = noisy_clipped(&self.action_spec, planned.action, noise, &mut lane.rng)?;
                lane.planning.taken(&action, self.device);
                env.begin_step(&action)?;
                lane.in_flight = InFlight::Step;
            }
        }
        bar.finish_and_clear();
        Ok(done.into_iter().map(|d| d.expect("every episode was played").0).collect())
    }

    /// Starts the next episode (if any is left) on `env`: seeds its streams as
    /// [`Agent::run_episode`] does and begins the reset.
    fn start_lane(&self, env: &mut ThreadEnv, seeds: &[u64], next: &mut usize) -> Result<Option<Lane>> {
        let Some(&seed) = seeds.get(*next) else { return Ok(None) };
        let episode = *next;
        *next += 1;
        let torch_rng = RngState::seeded(seed as i64, self.device)?;
        // dm_control seeds numpy's RandomState, which takes 32 bits.
        env.begin_reset(Some(seed & 0xFFFF_FFFF))?;
        let mut planner = self.plan_cfg.init();
        planner.reset();
        Ok(Some(Lane {
            episode,
            in_flight: InFlight::Reset,
            torch_rng,
            rng: ChaCha8Rng::seed_from_u64(seed),
            planner,
            planning: Planning::new(&self.model, self.action_spec.dim(), self.device),
            stats: EpisodeStats::default(),
            frames: Vec::new(),
        }))
    }
}

/// The frame an observation shows: the observation itself, or for state observations a
/// `render_size` square render.
fn observed_frame(obs: &Obs, env: &mut dyn Env, render_size: usize) -> Result<Frame> {
    Ok(match obs {
        Obs::Pixels(frame) => frame.clone(),
        Obs::State(_) => env.render(render_size, render_size)?,
    })
}

/// Hands the observed frame to the sink; for state observations, renders one.
fn record(frames: &mut Option<FrameSink<'_>>, obs: &Obs, env: &mut dyn Env) -> Result<()> {
    if let Some(sink) = frames {
        (sink.push)(&observed_frame(obs, env, sink.render_size)?);
    }
    Ok(())
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub(crate) fn progress_bar(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(what.to_owned());
    bar
}
