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
use gradplan_config::{ObsKind, RunConfig};
use gradplan_dreamer::{Behavior, Optimizers};
use gradplan_env::{make_env, Env, ObsSpec};
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

/// Per-invocation options that are not part of the run's configuration.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Stop after this many collected episodes in this invocation (the run can be resumed);
    /// used to test resume and to split long runs.
    pub stop_after_episodes: Option<usize>,
    /// Print one line per episode.
    pub verbose: bool,
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
}

impl Trainer {
    /// Starts a new run in `run_dir`, which must not already hold one.
    pub fn create(cfg: RunConfig, run_dir: &Path) -> Result<Trainer> {
        cfg.validate()?;
        if run_dir.join(CONFIG_FILE).exists() {
            return Err(Error::RunDir(format!(
                "{} already holds a run; continue it with `gradplan resume --run-dir {}` or choose another --run-dir",
                run_dir.display(),
                run_dir.display()
            )));
        }
        // Everything is built before anything is written, so bad settings leave no files.
        let trainer = Trainer::build(cfg, run_dir, None)?;
        checkpoint::write_atomic(&run_dir.join(CONFIG_FILE), trainer.cfg.to_toml()?.as_bytes())?;
        Ok(trainer)
    }

    /// Continues the run in `run_dir` from its latest checkpoint (or from the start when it
    /// stopped before its first one).
    pub fn resume(run_dir: &Path) -> Result<Trainer> {
        let cfg = read_run_config(run_dir)?;
        let ckpt = checkpoint::latest(run_dir)?;
        let mut trainer = Trainer::build(cfg, run_dir, ckpt.as_deref())?;
        // The episodes after the checkpoint are redone; TensorBoard drops what the stopped
        // process had logged for them (steps past the checkpoint's env_steps).
        trainer.events.restart_at(trainer.counters.env_steps as i64 + 1)?;
        Ok(trainer)
    }

    fn build(cfg: RunConfig, run_dir: &Path, ckpt: Option<&Path>) -> Result<Trainer> {
        let device = cfg.device.parse::<DeviceSpec>()?.resolve()?;
        gradplan_backend::set_threads(cfg.threads);
        let env = make_env(&cfg.env)?;
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
        let model = Rc::new(model);
        let behavior = behavior.map(|(b, opts)| (Rc::new(b), opts));
        let shared = behavior.as_ref().map(|(b, _)| b.clone());
        let agent = Agent::new(model.clone(), shared, &cfg.planner, &cfg.dreamer, action_spec)?;
        std::fs::create_dir_all(run_dir).map_err(|source| Error::Io { path: run_dir.to_owned(), source })?;
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
                "episode {:>4} | env steps {:>7} | return {:>8.2}",
                row.episode, row.env_steps, row.train_return
            );
            if let Some((m, s)) = test {
                line += &format!(" | test {m:>8.2} ± {s:.2}");
            }
            if let Some(l) = losses {
                line += &format!(" | loss obs {:.3} rew {:.4} kl {:.3}", l.observation, l.reward, l.kl);
            }
            println!("{line}");
        }
        if self.counters.episodes.is_multiple_of(self.cfg.train.checkpoint_interval) {
            self.save_checkpoint()?;
        }
        Ok(())
    }

    fn save_checkpoint(&mut self) -> Result<()> {
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
        if self.cfg.env.obs == ObsKind::Pixels && self.replay.valid_chunks(self.cfg.train.chunk_length) > 0 {
            self.save_reconstructions()?;
        }
        Ok(())
    }

    /// `recon/ep-NNNNNN.png`: 8 consecutive observations (top) and their posterior
    /// reconstructions (bottom), from a fixed-seed sample of the replay.
    fn save_reconstructions(&self) -> Result<()> {
        let steps = self.cfg.train.chunk_length.min(8);
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(self.cfg.seed, Stream::Images, 0));
        let batch = self.replay.sample(1, steps, &mut rng)?;
        let seq = self.to_tensors(&batch, false);
        let recon = self.model.reconstruct(&seq); // [T, 1, 3, H, W]
        let BatchObs::Pixels { height, width, data } = &batch.obs else { return Ok(()) };
        let frame_len = height * width * 3;
        let mut frames: Vec<Vec<u8>> = data.chunks(frame_len).map(|f| f.to_vec()).collect();
        for t in 0..steps as i64 {
            let x: Vec<f32> = recon
                .get(t)
                .get(0)
                .to_device(Device::Cpu)
                .flatten(0, -1)
                .try_into()
                .map_err(|e: tch::TchError| Error::Image(e.to_string()))?;
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
        let kept = checkpoint::latest(&self.run_dir)
            .ok()
            .flatten()
            .map(|d| format!(" at {}", d.display()))
            .unwrap_or_else(|| " (none was written yet)".into());
        Error::NonFinite {
            what: what.into(),
            value,
            update: self.counters.updates,
            episode: self.counters.episodes + 1,
            kept,
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
        };
        self.agent.run_episode(self.env.as_mut(), opts)
    }
}
