//! The collect / fit / act loop, testing, checkpoints and exact resume.

use crate::agent::{progress_bar, Agent, EpisodeOptions, EpisodeStats, Policy};
use crate::checkpoint::{
    self, Counters, ACTOR_FILE, ACTOR_OPTIMIZER_FILE, MODEL_FILE, OPTIMIZER_FILE, REPLAY_FILE, VALUE_FILE,
    VALUE_OPTIMIZER_FILE,
};
use crate::metrics::{MetricsCsv, Row};
use crate::optim::Adam;
use crate::{Error, Result};
use gradplan_backend::DeviceSpec;
use gradplan_config::{ObsKind, PlannerKind, RunConfig};
use gradplan_dreamer::{Behavior, Optimizers};
use gradplan_env::{decisions_per_episode, make_env, Env, ObsSpec};
use gradplan_model::{ObsShape, SequenceBatch, WorldModel};
use gradplan_replay::{Batch, BatchObs, Replay};
use gradplan_tensorboard::EventWriter;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;
use tch::Device;

/// Name of the resolved configuration inside a run directory.
pub const CONFIG_FILE: &str = "config.toml";
/// The lock a training process holds on its run directory (see [`gradplan_fsio::Lock`]).
pub const LOCK_FILE: &str = "train.lock";

/// Per-invocation options that are not part of the run's configuration.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Stop after this many collected episodes in this invocation (the run can be resumed);
    /// used to test resume and to split long runs.
    pub stop_after_episodes: Option<usize>,
    /// Print one line per episode.
    pub verbose: bool,
}

/// What `gradplan resume` may change in a run's configuration.
#[derive(Debug, Clone, Default)]
pub struct ResumeOptions {
    /// Device for this invocation (`cpu`, `cuda`, `cuda:N`); not written to config.toml.
    pub device: Option<String>,
    /// libtorch threads for this invocation; not written to config.toml.
    pub threads: Option<usize>,
    /// A new budget, `train.total_env_steps`: written to config.toml, since every later
    /// resume, eval and report of the run must see it.
    pub total_env_steps: Option<usize>,
    /// Another planner collects the episodes from here on (`None` keeps the run's), resolved
    /// by [`RunConfig::continued`] (I follows the new kind and Grad-MPC's flavour unless
    /// `planner_overrides` sets it; the run's agent is fixed) and written to config.toml.
    pub planner: Option<PlannerKind>,
    /// `planner.KEY=VALUE` settings for the episodes from here on, written to config.toml.
    pub planner_overrides: Vec<String>,
}

/// Reads and validates the resolved configuration a run wrote into its directory.
pub fn read_run_config(run_dir: &Path) -> Result<RunConfig> {
    let path = run_dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|_| {
        Error::RunDir(format!(
            "{} holds no run ({} is missing); start one with `gradplan train`",
            run_dir.display(),
            path.display()
        ))
    })?;
    Ok(RunConfig::from_toml(&text)?)
}

/// What the model observes, from what the environment emits.
pub(crate) fn obs_shape(spec: ObsSpec) -> ObsShape {
    match spec {
        ObsSpec::Pixels { height, .. } => ObsShape::Pixels { size: height as i64 },
        ObsSpec::State { dim } => ObsShape::State { dim: dim as i64 },
    }
}

/// Streams of randomness, each derived from the run seed and a counter so that a resumed
/// run draws exactly what an uninterrupted one would.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stream {
    SeedEpisode = 1,
    Train = 2,
    Collect = 3,
    Test = 4,
    Init = 5,
    Images = 6,
    /// `gradplan eval` episodes, derived from the evaluation's own seed.
    Eval = 7,
    /// The loss evaluated before a checkpoint is written, to check the weights are usable.
    Check = 8,
    /// `gradplan ensemble`: its initialisation, training chunks and calibration chunks.
    Ensemble = 9,
}

pub(crate) fn derive_seed(seed: u64, stream: Stream, index: u64) -> u64 {
    // splitmix64 over the combined key.
    let mut z = seed ^ ((stream as u64) << 56) ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The world model's learning rate before warm-up: Dreamer's `dreamer.model_lr` in runs that
/// train an actor, PlaNet's `optim.learning_rate` otherwise.
fn base_learning_rate(cfg: &RunConfig) -> f64 {
    if cfg.planner.kind.uses_policy() {
        cfg.dreamer.model_lr
    } else {
        cfg.optim.learning_rate
    }
}

/// Mean loss terms over one training phase.
#[derive(Debug, Clone, Copy, Default)]
struct PhaseLosses {
    total: f64,
    observation: f64,
    reward: f64,
    kl: f64,
    grad_norm: f64,
    /// Latent overshooting's KL and reward terms; `None` when the term is off.
    overshooting_kl: Option<f64>,
    overshooting_reward: Option<f64>,
    /// Dreamer's actor and value losses; `None` in PlaNet runs.
    actor: Option<f64>,
    value: Option<f64>,
}

/// What the progress line reports: rates over this invocation (a resumed run's earlier
/// sessions ran on another machine, or another day).
#[derive(Debug, Clone, Copy)]
struct Progress {
    /// Counters when this invocation started.
    start: Counters,
    /// Seconds spent in model updates, and the updates they made.
    update_s: f64,
    timed_updates: usize,
}

impl Progress {
    fn new(start: Counters) -> Self {
        Progress { start, update_s: 0.0, timed_updates: 0 }
    }

    /// ` | 1.9 updates/s | 41 env steps/s | 00:12:05 elapsed, ETA 00:31:10`: updates per
    /// second of update time, env steps per wall second, and the remaining steps at that rate.
    fn line(&self, now: Counters, total_env_steps: usize, elapsed_s: f64) -> String {
        let mut line = String::new();
        if self.timed_updates > 0 && self.update_s > 0.0 {
            line += &format!(" | {:.2} updates/s", self.timed_updates as f64 / self.update_s);
        }
        let steps = now.env_steps.saturating_sub(self.start.env_steps);
        if steps > 0 && elapsed_s > 0.0 {
            let rate = steps as f64 / elapsed_s;
            let left = total_env_steps.saturating_sub(now.env_steps) as f64 / rate;
            line += &format!(" | {rate:.0} env steps/s | {} elapsed, ETA {}", hms(elapsed_s), hms(left));
        }
        line
    }
}

/// `hh:mm:ss`
fn hms(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// A run: its configuration, environment, model, optimiser, replay and counters.
pub struct Trainer {
    cfg: RunConfig,
    run_dir: PathBuf,
    device: Device,
    env: Box<dyn Env>,
    model: Rc<WorldModel>,
    agent: Agent,
    adam: Adam,
    /// Dreamer's actor and value (shared with the agent's dynamics) and their optimisers, in
    /// runs whose planner needs them.
    behavior: Option<(Rc<Behavior>, Optimizers)>,
    replay: Replay,
    counters: Counters,
    metrics: MetricsCsv,
    /// The same rows as `metrics`, for TensorBoard, in a new event file per invocation.
    events: EventWriter,
    started: Instant,
    /// Rates for the per-episode progress line (this invocation only).
    progress: Progress,
    /// Episodes of the checkpoint last written or resumed from: an episode is saved once.
    saved_at: Option<usize>,
    /// Held while the trainer lives; last, so that it is released after the files above
    /// are flushed and closed.
    _lock: gradplan_fsio::Lock,
}

/// Takes `run_dir`'s training lock (creating the directory), or fails with [`Error::Busy`].
fn lock_run_dir(run_dir: &Path) -> Result<gradplan_fsio::Lock> {
    std::fs::create_dir_all(run_dir).map_err(|source| Error::Io { path: run_dir.to_owned(), source })?;
    gradplan_fsio::Lock::try_acquire(&run_dir.join(LOCK_FILE)).map_err(|e| match e {
        gradplan_fsio::LockError::Busy { path, holder } => Error::Busy(format!(
            "{} is being trained by process {} (lock {}); wait for it to finish or stop it, then `gradplan resume \
             --run-dir {}`",
            run_dir.display(),
            holder.unwrap_or_else(|| "(unknown)".into()),
            path.display(),
            run_dir.display()
        )),
        gradplan_fsio::LockError::Io { path, source } => Error::Io { path, source },
    })
}

fn already_holds_a_run(run_dir: &Path) -> Error {
    Error::RunDir(format!(
        "{} already holds a run; continue it with `gradplan resume --run-dir {}` or choose another --run-dir",
        run_dir.display(),
        run_dir.display()
    ))
}

impl Trainer {
    /// Starts a new run in `run_dir`, which must not already hold one.
    pub fn create(cfg: RunConfig, run_dir: &Path) -> Result<Trainer> {
        cfg.validate()?;
        if run_dir.join(CONFIG_FILE).exists() {
            // A run being trained right now says so; a stopped one says how to continue it.
            lock_run_dir(run_dir)?;
            return Err(already_holds_a_run(run_dir));
        }
        // Everything is built before anything is written, so bad settings leave no files.
        let trainer = Trainer::build(cfg, run_dir, None, None)?;
        checkpoint::write_atomic(&run_dir.join(CONFIG_FILE), trainer.cfg.to_toml()?.as_bytes())?;
        Ok(trainer)
    }

    /// Continues the run in `run_dir` from its latest checkpoint (or from the start when it
    /// stopped before its first one).
    pub fn resume(run_dir: &Path) -> Result<Trainer> {
        Trainer::resume_with(run_dir, &ResumeOptions::default())
    }

    /// [`Trainer::resume`] with another device, thread count or budget.
    pub fn resume_with(run_dir: &Path, opts: &ResumeOptions) -> Result<Trainer> {
        let mut cfg = read_run_config(run_dir)?;
        // Locked before the checkpoint is read, so it cannot change under us.
        let lock = lock_run_dir(run_dir)?;
        let found = checkpoint::find_latest(run_dir)?;
        if let Some(note) = found.as_ref().and_then(|f| f.note.as_ref()) {
            eprintln!("note: {note}");
        }
        if let Some(device) = &opts.device {
            cfg.device = device.clone();
        }
        if let Some(threads) = opts.threads {
            cfg.threads = threads;
        }
        let budget_changed = opts.total_env_steps.is_some_and(|b| b != cfg.train.total_env_steps);
        let switched = opts.planner.is_some() || !opts.planner_overrides.is_empty();
        if opts.total_env_steps.is_some() || switched {
            cfg = cfg.continued(opts.total_env_steps, opts.planner, &opts.planner_overrides)?;
        }
        let ckpt = found.map(|f| f.dir);
        let mut trainer = Trainer::build(cfg, run_dir, ckpt.as_deref(), Some(lock))?;
        if budget_changed || switched {
            // The budget and the collecting planner are the run's, not this invocation's:
            // config.toml keeps device and threads as they were and takes the new values.
            let mut stored = read_run_config(run_dir)?;
            stored.train.total_env_steps = trainer.cfg.train.total_env_steps;
            stored.planner = trainer.cfg.planner.clone();
            checkpoint::write_atomic(&run_dir.join(CONFIG_FILE), stored.to_toml()?.as_bytes())?;
        }
        // The episodes after the checkpoint are redone; TensorBoard drops what the stopped
        // process had logged for them (steps past the checkpoint's env_steps).
        trainer.events.restart_at(trainer.counters.env_steps as i64 + 1)?;
        Ok(trainer)
    }

    /// Builds a run. Nothing is written until everything that can be checked is: then
    /// `run_dir` is created and locked (unless `lock` is given), and metrics.csv and the
    /// event file opened.
    fn build(
        cfg: RunConfig,
        run_dir: &Path,
        ckpt: Option<&Path>,
        lock: Option<gradplan_fsio::Lock>,
    ) -> Result<Trainer> {
        if cfg.planner.uncertainty_penalty > 0.0 {
            return Err(Error::Config(gradplan_config::Error::Invalid {
                key: "planner.uncertainty_penalty".into(),
                reason: "is an evaluation setting: training fits no measure of data support. Train with 0, \
                         then `gradplan ensemble --run-dir <run>` and `gradplan eval --run-dir <run> --set \
                         planner.uncertainty_penalty=<λ>`"
                    .into(),
            }));
        }
        let device = cfg.device.parse::<DeviceSpec>()?.resolve()?;
        gradplan_backend::set_threads(cfg.threads);
        let env = make_env(&cfg.env)?;
        check_seed_data(&cfg, env.action_repeat())?;
        let action_spec = env.action_spec().clone();
        tch::manual_seed(derive_seed(cfg.seed, Stream::Init, 0) as i64);
        let mut model =
            WorldModel::new(&cfg.model, obs_shape(env.obs_spec()), action_spec.dim() as i64, device)?;
        let params = model.named_parameters();
        let (eps, clip) = if cfg.planner.kind.uses_policy() {
            (cfg.dreamer.adam_epsilon, cfg.dreamer.grad_clip)
        } else {
            (cfg.optim.adam_epsilon, cfg.optim.grad_clip_norm)
        };
        let mut adam = Adam::new(params, base_learning_rate(&cfg), eps, clip);
        // Initialised after the model, from the same seeded stream.
        let mut behavior = match cfg.planner.kind.uses_policy() {
            true => {
                let b = Behavior::for_model(&cfg.dreamer, &model)?;
                let opts = Optimizers::new(&b);
                Some((b, opts))
            }
            false => None,
        };
        let (replay, counters) = match ckpt {
            Some(dir) => {
                model.load(&dir.join(MODEL_FILE))?;
                adam.load(&dir.join(OPTIMIZER_FILE))?;
                if let Some((b, opts)) = behavior.as_mut() {
                    b.load(&dir.join(ACTOR_FILE), &dir.join(VALUE_FILE))?;
                    opts.load(&dir.join(ACTOR_OPTIMIZER_FILE), &dir.join(VALUE_OPTIMIZER_FILE))?;
                }
                (Replay::load(dir.join(REPLAY_FILE))?, checkpoint::read_counters(dir)?)
            }
            None => (
                Replay::new(env.obs_spec(), action_spec.clone(), cfg.train.replay_capacity)?,
                Counters::default(),
            ),
        };
        if let Some(dir) = ckpt {
            check_counters(&cfg, dir, counters, &replay, &run_dir.join("metrics.csv"))?;
        }
        let model = Rc::new(model);
        let behavior = behavior.map(|(b, opts)| (Rc::new(b), opts));
        let shared = behavior.as_ref().map(|(b, _)| b.clone());
        let agent = Agent::new(model.clone(), shared, &cfg.planner, &cfg.dreamer, action_spec)?;
        let lock = match lock {
            Some(lock) => lock,
            None => {
                let lock = lock_run_dir(run_dir)?;
                // Checked again under the lock: another `train` may have started it meanwhile.
                if run_dir.join(CONFIG_FILE).exists() {
                    return Err(already_holds_a_run(run_dir));
                }
                lock
            }
        };
        let metrics = MetricsCsv::open(&run_dir.join("metrics.csv"), counters.episodes)?;
        let events = EventWriter::create(run_dir)?;
        Ok(Trainer {
            cfg,
            run_dir: run_dir.to_owned(),
            device,
            env,
            model,
            agent,
            adam,
            behavior,
            replay,
            counters,
            metrics,
            events,
            started: Instant::now(),
            progress: Progress::new(counters),
            saved_at: ckpt.map(|_| counters.episodes),
            _lock: lock,
        })
    }

    pub fn config(&self) -> &RunConfig {
        &self.cfg
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Runs until the env-step budget is spent (or `opts.stop_after_episodes`).
    pub fn run(&mut self, opts: &RunOptions) -> Result<()> {
        let t = self.cfg.train.clone();
        let mut this_session = 0usize;
        let stop = |n: usize| opts.stop_after_episodes.is_some_and(|max| n >= max);
        while self.counters.episodes < t.seed_episodes && !stop(this_session) {
            let seed = derive_seed(self.cfg.seed, Stream::SeedEpisode, self.counters.episodes as u64);
            let stats = self.episode(Policy::Random, seed, true, "seed")?;
            self.finish_episode(stats, None, None, opts)?;
            this_session += 1;
        }
        while self.counters.env_steps < t.total_env_steps && !stop(this_session) {
            let losses = self.train_phase()?;
            let seed = derive_seed(self.cfg.seed, Stream::Collect, self.counters.episodes as u64);
            let stats = self.episode(Policy::Plan { noise: t.exploration_noise }, seed, true, "collect")?;
            let collected = self.counters.episodes + 1 - t.seed_episodes;
            let test = if collected.is_multiple_of(t.test_interval)
                || self.counters.env_steps + stats.env_steps >= t.total_env_steps
            {
                Some(self.test_phase()?)
            } else {
                None
            };
            self.finish_episode(stats, Some(losses), test, opts)?;
            this_session += 1;
        }
        if self.counters.env_steps >= t.total_env_steps {
            self.save_checkpoint()?;
        }
        Ok(())
    }

    fn finish_episode(
        &mut self,
        stats: EpisodeStats,
        losses: Option<PhaseLosses>,
        test: Option<(f64, f64)>,
        opts: &RunOptions,
    ) -> Result<()> {
        self.counters.episodes += 1;
        self.counters.env_steps += stats.env_steps;
        let row = Row {
            episode: self.counters.episodes,
            env_steps: self.counters.env_steps,
            updates: self.counters.updates,
            train_return: stats.total_return,
            test_return_mean: test.map(|t| t.0),
            test_return_std: test.map(|t| t.1),
            loss_total: losses.map(|l| l.total),
            loss_observation: losses.map(|l| l.observation),
            loss_reward: losses.map(|l| l.reward),
            loss_kl: losses.map(|l| l.kl),
            grad_norm: losses.map(|l| l.grad_norm),
            plan_ms: stats.plan_ms,
            wall_s: self.metrics.resumed_wall_s + self.started.elapsed().as_secs_f64(),
            actor_loss: losses.and_then(|l| l.actor),
            value_loss: losses.and_then(|l| l.value),
            plan_predicted_return: stats.predicted_return,
            plan_iterations: stats.iterations,
            loss_overshooting_kl: losses.and_then(|l| l.overshooting_kl),
            loss_overshooting_reward: losses.and_then(|l| l.overshooting_reward),
        };
        self.metrics.append(&row)?;
        self.events.scalars(row.env_steps as i64, &row.scalars())?;
        if opts.verbose {
            let mut line = format!(
                "episode {:>4} | env steps {:>7}/{} | return {:>8.2}",
                row.episode, row.env_steps, self.cfg.train.total_env_steps, row.train_return
            );
            if let Some((m, s)) = test {
                line += &format!(" | test {m:>8.2} ± {s:.2}");
            }
            if let Some(l) = losses {
                line += &format!(" | loss obs {:.3} rew {:.4} kl {:.3}", l.observation, l.reward, l.kl);
            }
            let elapsed = self.started.elapsed().as_secs_f64();
            line += &self.progress.line(self.counters, self.cfg.train.total_env_steps, elapsed);
            println!("{line}");
        }
        if self.counters.episodes.is_multiple_of(self.cfg.train.checkpoint_interval) {
            self.save_checkpoint()?;
        }
        Ok(())
    }

    /// Writes the checkpoint of the episode just finished, once: after the weights are
    /// checked and the reconstruction image written, so that a kill at any point leaves the
    /// previous checkpoint pointed to and the redone episodes rewrite the same image.
    fn save_checkpoint(&mut self) -> Result<()> {
        if self.saved_at == Some(self.counters.episodes) {
            return Ok(());
        }
        self.check_weights()?;
        if self.cfg.env.obs == ObsKind::Pixels && self.replay.valid_chunks(self.cfg.train.chunk_length) > 0 {
            self.save_reconstructions()?;
        }
        let model = &self.model;
        let adam = &self.adam;
        let replay = &self.replay;
        let behavior = &self.behavior;
        checkpoint::save(&self.run_dir, self.counters, |dir| {
            model.save(&dir.join(MODEL_FILE))?;
            adam.save(&dir.join(OPTIMIZER_FILE))?;
            replay.save(dir.join(REPLAY_FILE))?;
            if let Some((b, opts)) = behavior {
                b.save(&dir.join(ACTOR_FILE), &dir.join(VALUE_FILE))?;
                opts.save(&dir.join(ACTOR_OPTIMIZER_FILE), &dir.join(VALUE_OPTIMIZER_FILE))?;
            }
            Ok(())
        })?;
        self.saved_at = Some(self.counters.episodes);
        Ok(())
    }

    /// Refuses to checkpoint weights that cannot continue: a parameter or Adam moment that
    /// is not finite, or (weights finite but absurd, as after one step at lr 1e30) a world
    /// model loss that is not finite on a fixed-seed batch. Costs one forward pass per
    /// checkpoint; the global torch seed it sets is reset by whatever draws next.
    fn check_weights(&self) -> Result<()> {
        let mut adams = vec![("world model", &self.adam)];
        if let Some((_, opts)) = &self.behavior {
            adams.extend([("actor", &opts.actor), ("value", &opts.value)]);
        }
        for (owner, adam) in adams {
            if let Some(name) = adam.first_non_finite()? {
                return Err(self.non_finite_at_checkpoint(&format!("{owner} tensor `{name}`"), f64::NAN));
            }
        }
        let (batch, chunk) = (self.cfg.train.batch_size, self.cfg.train.chunk_length);
        if self.replay.valid_chunks(chunk) == 0 {
            return Ok(());
        }
        let seed = derive_seed(self.cfg.seed, Stream::Check, self.counters.episodes as u64);
        tch::manual_seed(seed as i64);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let sample = self.replay.sample(batch, chunk, &mut rng)?;
        let seq = self.to_tensors(&sample, false);
        let total = tch::no_grad(|| self.model.loss(&seq))?.total.f_double_value(&[])?;
        if !total.is_finite() {
            return Err(self.non_finite_at_checkpoint("loss after the last update", total));
        }
        Ok(())
    }

    /// [`Trainer::non_finite`] for the episode just finished (checkpoints come after it).
    fn non_finite_at_checkpoint(&self, what: &str, value: f64) -> Error {
        self.non_finite_in(what, value, self.counters.episodes)
    }

    /// `recon/ep-NNNNNN.png`: 8 consecutive observations (top) and their posterior
    /// reconstructions (bottom), from a fixed-seed sample of the replay.
    fn save_reconstructions(&self) -> Result<()> {
        let steps = self.cfg.train.chunk_length.min(8);
        // The posterior samples, too, so a redone episode rewrites the same image.
        tch::manual_seed(derive_seed(self.cfg.seed, Stream::Images, self.counters.episodes as u64) as i64);
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(self.cfg.seed, Stream::Images, 0));
        let batch = self.replay.sample(1, steps, &mut rng)?;
        let seq = self.to_tensors(&batch, false);
        let recon = self.model.reconstruct(&seq); // [T, 1, 3, H, W]
        let BatchObs::Pixels { height, width, data } = &batch.obs else { return Ok(()) };
        let frame_len = height * width * 3;
        let mut frames: Vec<Vec<u8>> = data.chunks(frame_len).map(|f| f.to_vec()).collect();
        for t in 0..steps as i64 {
            let x: Vec<f32> =
                recon.get(t).get(0).to_device(Device::Cpu).flatten(0, -1).try_into().map_err(Error::Torch)?;
            frames.push(gradplan_env::preprocess::chw_to_frame(&x, *height, *width));
        }
        let dir = self.run_dir.join("recon");
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io { path: dir.clone(), source })?;
        crate::images::save_grid(
            &dir.join(format!("ep-{:06}.png", self.counters.episodes)),
            &frames,
            *height,
            *width,
            steps,
        )
    }

    /// Replay batch → model tensors on the device.
    fn to_tensors(&self, batch: &Batch, noise: bool) -> SequenceBatch {
        crate::tensors::batch_to_tensors(batch, self.cfg.model.bit_depth, self.device, noise)
    }

    /// `collect_interval` model updates on uniformly sampled chunks.
    fn train_phase(&mut self) -> Result<PhaseLosses> {
        let started = Instant::now();
        let updates_before = self.counters.updates;
        let losses = self.train_updates()?;
        self.progress.update_s += started.elapsed().as_secs_f64();
        self.progress.timed_updates += self.counters.updates - updates_before;
        Ok(losses)
    }

    fn train_updates(&mut self) -> Result<PhaseLosses> {
        let t = &self.cfg.train;
        let (updates, batch, chunk) = (t.collect_interval, t.batch_size, t.chunk_length);
        tch::manual_seed(derive_seed(self.cfg.seed, Stream::Train, self.counters.episodes as u64) as i64);
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(
            self.cfg.seed,
            Stream::Train,
            self.counters.episodes as u64,
        ));
        let bar = progress_bar(updates, "train");
        let (os_kl, os_reward) =
            (self.cfg.model.overshooting_kl_beta != 0.0, self.cfg.model.overshooting_reward_scale != 0.0);
        let mut sum = PhaseLosses::default();
        for _ in 0..updates {
            let sample = self.replay.sample(batch, chunk, &mut rng)?;
            let seq = self.to_tensors(&sample, true);
            let losses = self.model.loss(&seq)?;
            let total = losses.total.double_value(&[]);
            if !total.is_finite() {
                return Err(self.non_finite("loss", total));
            }
            let lr = self.learning_rate();
            let grad_norm = self.adam.backward_step(&losses.total, lr);
            if !grad_norm.is_finite() {
                return Err(self.non_finite("gradient norm", grad_norm));
            }
            if let Some((b, opts)) = self.behavior.as_mut() {
                let s = gradplan_dreamer::update(b, opts, &self.model, &losses.posterior);
                for (what, v) in [
                    ("actor loss", s.actor_loss),
                    ("value loss", s.value_loss),
                    ("actor gradient norm", s.actor_grad_norm),
                    ("value gradient norm", s.value_grad_norm),
                ] {
                    if !v.is_finite() {
                        return Err(self.non_finite(what, v));
                    }
                }
                *sum.actor.get_or_insert(0.0) += s.actor_loss;
                *sum.value.get_or_insert(0.0) += s.value_loss;
            }
            self.counters.updates += 1;
            sum.total += total;
            sum.observation += losses.observation.double_value(&[]);
            sum.reward += losses.reward.double_value(&[]);
            sum.kl += losses.kl.double_value(&[]);
            if os_kl {
                *sum.overshooting_kl.get_or_insert(0.0) += losses.overshooting_kl.double_value(&[]);
            }
            if os_reward {
                *sum.overshooting_reward.get_or_insert(0.0) += losses.overshooting_reward.double_value(&[]);
            }
            sum.grad_norm += grad_norm;
            bar.inc(1);
        }
        bar.finish_and_clear();
        let n = updates.max(1) as f64;
        Ok(PhaseLosses {
            total: sum.total / n,
            observation: sum.observation / n,
            reward: sum.reward / n,
            kl: sum.kl / n,
            grad_norm: sum.grad_norm / n,
            overshooting_kl: sum.overshooting_kl.map(|x| x / n),
            overshooting_reward: sum.overshooting_reward.map(|x| x / n),
            actor: sum.actor.map(|a| a / n),
            value: sum.value.map(|v| v / n),
        })
    }

    fn learning_rate(&self) -> f64 {
        let o = &self.cfg.optim;
        let base = base_learning_rate(&self.cfg);
        if o.warmup_updates == 0 {
            base
        } else {
            base * ((self.counters.updates + 1) as f64 / o.warmup_updates as f64).min(1.0)
        }
    }

    fn non_finite(&self, what: &str, value: f64) -> Error {
        self.non_finite_in(what, value, self.counters.episodes + 1)
    }

    fn non_finite_in(&self, what: &str, value: f64, episode: usize) -> Error {
        let kept = checkpoint::latest(&self.run_dir)
            .ok()
            .flatten()
            .map(|d| format!(" at {}", d.display()))
            .unwrap_or_else(|| " (none was written yet)".into());
        Error::NonFinite {
            what: what.into(),
            value,
            update: self.counters.updates,
            episode,
            kept,
            run_dir: self.run_dir.display().to_string(),
        }
    }

    /// `test_episodes` noise-free episodes; mean and std of their returns.
    fn test_phase(&mut self) -> Result<(f64, f64)> {
        let n = self.cfg.train.test_episodes;
        let mut returns = Vec::with_capacity(n);
        for i in 0..n {
            let seed = derive_seed(self.cfg.seed, Stream::Test, (self.counters.episodes * 1000 + i) as u64);
            returns.push(self.episode(Policy::Plan { noise: 0.0 }, seed, false, "test")?.total_return);
        }
        let mean = returns.iter().sum::<f64>() / n.max(1) as f64;
        let std = (returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n.max(1) as f64).sqrt();
        Ok((mean, std))
    }

    /// Plays one episode with the agent in the run's environment; `record` stores it in
    /// the replay.
    fn episode(&mut self, policy: Policy, seed: u64, record: bool, label: &str) -> Result<EpisodeStats> {
        let opts = EpisodeOptions {
            policy,
            seed,
            episode_steps: self.cfg.env.episode_steps,
            replay: record.then_some(&mut self.replay),
            frames: None,
            label,
            trace: None,
        };
        self.agent.run_episode(self.env.as_mut(), opts)
    }
}

/// Refuses a `train.chunk_length` longer than what the seed episodes put in the replay
/// (`decisions + 1` rows each, up to the capacity): the first update would find nothing to
/// sample, after the run directory was written.
fn check_seed_data(cfg: &RunConfig, action_repeat: usize) -> Result<()> {
    let t = &cfg.train;
    let rows_per_episode = decisions_per_episode(cfg.env.episode_steps, action_repeat.max(1)) + 1;
    let rows = t.seed_episodes.saturating_mul(rows_per_episode).min(t.replay_capacity);
    if t.chunk_length > rows {
        return Err(gradplan_config::Error::Invalid {
            key: "train.chunk_length".into(),
            reason: format!(
                "{} steps is longer than the {rows} steps the {} seed episodes store before the first update; \
                 lower it or raise train.seed_episodes",
                t.chunk_length, t.seed_episodes
            ),
        }
        .into());
    }
    Ok(())
}

/// Checks a checkpoint's counters against what else the run holds: the replay's episode
/// count, the updates the protocol takes for that many episodes, and the checkpoint
/// episode's row of metrics.csv. A hand-edited or mismatched state.toml is an error instead
/// of a run continuing with nonsense counters.
fn check_counters(cfg: &RunConfig, dir: &Path, c: Counters, replay: &Replay, metrics: &Path) -> Result<()> {
    let state = dir.join(checkpoint::STATE_FILE);
    let bad = |what: String| Error::Checkpoint(format!("{} does not fit the run: {what}", state.display()));
    let stored = replay.total_episodes_seen();
    if stored != c.episodes as u64 {
        return Err(bad(format!("episodes = {} but its replay holds {stored} episodes", c.episodes)));
    }
    let expected = c.episodes.saturating_sub(cfg.train.seed_episodes) * cfg.train.collect_interval;
    if c.updates != expected {
        return Err(bad(format!(
            "updates = {} but {} episodes take {expected} (train.collect_interval {} after {} seed episodes)",
            c.updates, c.episodes, cfg.train.collect_interval, cfg.train.seed_episodes
        )));
    }
    if c.episodes > 0 {
        match crate::metrics::counters_at(metrics, c.episodes)? {
            Some((env_steps, _)) if env_steps != c.env_steps => {
                return Err(bad(format!(
                    "env_steps = {} but {} records {env_steps} at episode {}",
                    c.env_steps,
                    metrics.display(),
                    c.episodes
                )))
            }
            Some(_) => {}
            None => {
                return Err(bad(format!(
                    "{} has no row for its episode {} (env_steps = {})",
                    metrics.display(),
                    c.episodes,
                    c.env_steps
                )))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod progress_tests {
    use super::*;

    #[test]
    fn progress_line_reports_rates_and_eta() {
        let start = Counters { episodes: 5, env_steps: 5000, updates: 0 };
        let mut p = Progress::new(start);
        p.update_s = 20.0;
        p.timed_updates = 50;
        // 2000 steps in 100 s: 20 steps/s, 3000 steps left: 150 s.
        let now = Counters { episodes: 7, env_steps: 7000, updates: 50 };
        assert_eq!(
            p.line(now, 10_000, 100.0),
            " | 2.50 updates/s | 20 env steps/s | 00:01:40 elapsed, ETA 00:02:30"
        );
        // Nothing to rate yet: nothing printed.
        assert_eq!(Progress::new(start).line(start, 10_000, 0.0), "");
        assert_eq!(hms(3725.4), "01:02:05");
    }
}
