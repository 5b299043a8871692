//! `gradplan tasks` and `gradplan rollout`.

use crate::video::GifWriter;
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use gradplan_config::{EnvBackend, EnvConfig, ObsKind, PixelMode};
use gradplan_env::{decisions_per_episode, make_env, Env, Obs, ObsSpec, PAPER_TASKS};
use rand::{Rng, SeedableRng};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct TasksArgs {
    /// List every dm_control.suite task, not just the paper's seven and the native ones.
    #[arg(long)]
    all: bool,
}

/// The environment backend of a command that does not name one: dm_control where this
/// build has it, else the native MuJoCo backend.
pub const DEFAULT_BACKEND: &str = if cfg!(feature = "dmc") { "dmc" } else { "native" };

/// Which environment to build; shared by the commands that run episodes.
#[derive(Debug, Args)]
pub struct EnvArgs {
    /// Task as `domain-task`, e.g. `cartpole-swingup` (see `gradplan tasks`).
    #[arg(long)]
    pub task: String,
    /// Observation kind.
    #[arg(long, default_value = "pixels")]
    pub obs: ObsKind,
    /// `resize`: render 240×320, resize bilinearly to 64×64 (the paper's PyTorch code);
    /// `direct`: render at 64×64 (the original PlaNet/Dreamer).
    #[arg(long, default_value = "resize")]
    pub pixel_mode: PixelMode,
    /// Action repeat R (default: the paper's per-task value).
    #[arg(long)]
    pub action_repeat: Option<usize>,
    /// Side of the square observation in pixels.
    #[arg(long, default_value_t = 64)]
    pub image_size: usize,
    /// `dmc`: dm_control through the embedded Python; `native`: the same task on MuJoCo
    /// from Rust, no Python, same episodes and frames (`env.backend`). Default: dmc, or
    /// native in a build without Python.
    #[arg(long, default_value = DEFAULT_BACKEND)]
    pub backend: EnvBackend,
}

impl EnvArgs {
    pub fn config(&self) -> EnvConfig {
        EnvConfig {
            task: self.task.clone(),
            obs: self.obs,
            pixel_mode: self.pixel_mode,
            image_size: self.image_size,
            action_repeat: self.action_repeat,
            backend: self.backend,
            ..EnvConfig::default()
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Policy {
    /// Uniform in the action bounds, seeded by `--seed`.
    Random,
    /// All-zero actions.
    Zero,
}

#[derive(Debug, Args)]
pub struct RolloutArgs {
    #[command(flatten)]
    env: EnvArgs,
    /// Policy that picks the actions.
    #[arg(long, value_enum, default_value = "random")]
    policy: Policy,
    /// Number of episodes.
    #[arg(long, default_value_t = 1)]
    episodes: usize,
    /// Seeds dm_control's task RNG (`task_kwargs={'random': S}`) and the random policy.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write a GIF of the frames the agent saw (upscaled 4×) to this path.
    #[arg(long)]
    video: Option<PathBuf>,
}

/// Every task in dm_control's own registry.
#[cfg(feature = "dmc")]
fn suite_tasks() -> Result<Vec<String>> {
    Ok(gradplan_env::dmc::suite_tasks()?)
}

#[cfg(not(feature = "dmc"))]
fn suite_tasks() -> Result<Vec<String>> {
    anyhow::bail!(
        "--all lists dm_control's own task registry, which needs the dm_control backend; this \
         gradplan was built without it (cargo's `dmc` feature)"
    )
}

pub fn tasks(args: &TasksArgs) -> Result<()> {
    let mut names: Vec<String> = PAPER_TASKS.iter().map(|s| s.to_string()).collect();
    names.extend(gradplan_env::native::TASKS.iter().map(|s| s.to_string()));
    if args.all {
        for t in suite_tasks()? {
            if !names.contains(&t) {
                names.push(t);
            }
        }
    }
    println!(
        "{:<32} {:>10} {:>6} {:>10} {:>12} {:>8}",
        "task", "action dim", "repeat", "decisions", "pixels", "state"
    );
    for name in names {
        let backend = DEFAULT_BACKEND.parse()?;
        let cfg = EnvConfig { task: name.clone(), obs: ObsKind::State, backend, ..EnvConfig::default() };
        let env = make_env(&cfg).with_context(|| format!("loading {name}"))?;
        let state_dim = match env.obs_spec() {
            ObsSpec::State { dim } => dim,
            ObsSpec::Pixels { .. } => 0,
        };
        let s = cfg.image_size;
        println!(
            "{:<32} {:>10} {:>6} {:>10} {:>12} {:>8}",
            name,
            env.action_spec().dim(),
            env.action_repeat(),
            decisions_per_episode(cfg.episode_steps, env.action_repeat()),
            format!("[{s},{s},3]"),
            format!("[{state_dim}]"),
        );
    }
    Ok(())
}

pub fn rollout(args: &RolloutArgs) -> Result<()> {
    let cfg = args.env.config();
    let mut env = make_env(&cfg).with_context(|| format!("loading {}", cfg.task))?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    let mut gif = args.video.as_ref().map(|_| GifWriter::new(4, 5));
    let spec = env.action_spec().clone();
    let mut returns = Vec::with_capacity(args.episodes);
    for episode in 0..args.episodes {
        // The first reset seeds the task like `suite.load(..., task_kwargs={'random': S})`;
        // later ones continue its random stream, as repeated `env.reset()` calls do.
        let seed = (episode == 0).then_some(args.seed);
        let obs = env.reset(seed)?;
        record(&mut gif, &obs, env.as_mut(), cfg.image_size)?;
        let (mut ret, mut decisions) = (0.0f64, 0usize);
        loop {
            let action: Vec<f32> = match args.policy {
                Policy::Zero => vec![0.0; spec.dim()],
                Policy::Random => {
                    spec.low.iter().zip(&spec.high).map(|(&lo, &hi)| rng.random_range(lo..=hi)).collect()
                }
            };
            let step = env.step(&action)?;
            ret += step.reward;
            decisions += 1;
            record(&mut gif, &step.obs, env.as_mut(), cfg.image_size)?;
            if step.done() {
                break;
            }
        }
        println!("episode {:>3}: return {ret:>9.3} over {decisions} decisions", episode + 1);
        returns.push(ret);
    }
    let n = returns.len() as f64;
    let mean = returns.iter().sum::<f64>() / n;
    let std = (returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n).sqrt();
    println!("{}: mean return {mean:.3} ± {std:.3} over {} episodes", cfg.task, returns.len());
    if let (Some(gif), Some(path)) = (gif, &args.video) {
        gif.save(path)?;
        println!("wrote {} frames to {}", gif.len(), path.display());
    }
    Ok(())
}

/// Adds the observed frame to the video; for state observations, renders one.
fn record(gif: &mut Option<GifWriter>, obs: &Obs, env: &mut dyn Env, size: usize) -> Result<()> {
    if let Some(gif) = gif {
        match obs {
            Obs::Pixels(frame) => gif.push(frame),
            Obs::State(_) => gif.push(&env.render(size, size)?),
        }
    }
    Ok(())
}
