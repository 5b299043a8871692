//! `gradplan bench …`: benchmarks that print a table (never timed tests).

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use gradplan_backend::bench::{grad_mpc_iteration, GradMpcBench};
use gradplan_backend::DeviceSpec;
use gradplan_config::{EnvBackend, EnvConfig, ObsKind, PixelMode};
use gradplan_env::{make_env, Env, ThreadEnv, PAPER_TASKS};
use std::process::Command;
use std::time::Instant;

mod dmc;
mod model;
mod planners;
mod trained;

const ENV_REFERENCE: &str = include_str!("../../../scripts/bench_env_reference.py");
const BACKEND_REFERENCE: &str = include_str!("../../../scripts/bench_backend_reference.py");

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// One Grad-MPC iteration (H=12 RSSM transition + reward, backward to the actions) in
    /// tch, beside the identical PyTorch code in the project's Python environment.
    Backend(BackendArgs),
    /// Cost of one simulator step and one 64×64 render through the Rust API vs the same
    /// loop in Python, per task.
    Env(EnvBenchArgs),
    /// Return reached vs compute (model candidate-steps, wall time) for CEM, MPPI, Grad-MPC
    /// and GradCEM as the action dimension grows, on a linear-quadratic problem with a known
    /// optimum and on coupled pendulum swing-ups; writes a CSV, a markdown table and plots.
    Planners(planners::PlannersArgs),
    /// Time per world-model update and per planning decision at a preset's sizes.
    Model(model::ModelBenchArgs),
    /// Model return of the chosen plan vs ms per decision for every planner and a sweep of J
    /// and I, on a trained run's world model.
    Trained(trained::TrainedBenchArgs),
    /// The paper's tables: train every task × planner × seed under the paper's protocol
    /// (or a shrunk `--scale`), evaluate every final model with every planner, and write
    /// results.csv, results.md beside the published numbers, and per-task plots. Skips what
    /// is complete, resumes what was interrupted; `--jobs N` runs N at once, `--slurm`
    /// writes a job array instead.
    Dmc(dmc::DmcArgs),
}

#[derive(Debug, Args)]
pub struct BackendArgs {
    /// Candidate counts J to time.
    #[arg(long, value_delimiter = ',', default_value = "1000,100")]
    candidates: Vec<i64>,
    /// Planning horizon H.
    #[arg(long, default_value_t = 12)]
    horizon: i64,
    /// Action dimension.
    #[arg(long, default_value_t = 1)]
    action_dim: i64,
    /// libtorch threads (the PyTorch reference uses the same number).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Timed iterations per configuration.
    #[arg(long, default_value_t = 20)]
    iters: usize,
    /// `cpu` or `cuda[:N]`.
    #[arg(long, default_value = "cpu")]
    device: DeviceSpec,
    /// Skip the PyTorch reference.
    #[arg(long)]
    no_reference: bool,
}

#[derive(Debug, Args)]
pub struct EnvBenchArgs {
    /// Tasks to time (default: the paper's seven).
    #[arg(long, value_delimiter = ',')]
    tasks: Vec<String>,
    /// Simulator steps timed per task.
    #[arg(long, default_value_t = 1000)]
    steps: usize,
    /// Renders timed per task.
    #[arg(long, default_value_t = 50)]
    renders: usize,
    /// Numbers of native environments stepped at once on their own threads, for the
    /// parallel table (empty: skip it).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    parallel: Vec<usize>,
}

pub fn run(cmd: &BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Backend(args) => backend(args),
        BenchCommand::Env(args) => env(args),
        BenchCommand::Planners(args) => planners::run(args),
        BenchCommand::Model(args) => model::run(args),
        BenchCommand::Trained(args) => trained::run(args),
        BenchCommand::Dmc(args) => dmc::run(args),
    }
}

fn venv_python() -> Result<std::path::PathBuf> {
    Ok(gradplan_env::find_venv()?.join("bin").join("python"))
}

/// Runs an embedded reference script in the project's Python and parses its JSON line.
///
/// The Python is `$GRADPLAN_VENV/bin/python` when that is set, else the nearest `.venv/`
/// ([`gradplan_env::find_venv`]); the scripts need only `torch` (and `dm_control` for
/// the environment one), so on a GPU machine any venv with PyTorch will do.
fn python_reference(script: &str, args: &[String]) -> Result<serde_json::Value> {
    let python = venv_python()?;
    let out = Command::new(&python)
        .arg("-c")
        .arg(script)
        .args(args)
        .env("MUJOCO_GL", std::env::var("MUJOCO_GL").unwrap_or_else(|_| "egl".into()))
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!("the Python reference failed: {}", err.lines().last().unwrap_or("no output"));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    serde_json::from_str(last.trim()).context("parsing the Python reference's output")
}

/// [`python_reference`], reporting a failure on stderr instead of ending the benchmark, so
/// our own numbers are still printed when the reference cannot run.
fn python_reference_or_warn(script: &str, args: &[String]) -> Option<serde_json::Value> {
    match python_reference(script, args) {
        Ok(v) => Some(v),
        Err(e) => {
            eprintln!("warning: no PyTorch reference: {e:#}");
            None
        }
    }
}

/// The device as PyTorch names it: `cpu` or `cuda:N`.
fn torch_device(device: tch::Device) -> String {
    match device {
        tch::Device::Cuda(i) => format!("cuda:{i}"),
        _ => "cpu".into(),
    }
}

/// One line naming the PyTorch build and device a reference ran on.
fn reference_line(reference: &serde_json::Value) -> String {
    let field = |k: &str| reference[k].as_str().unwrap_or("?").to_string();
    format!("PyTorch reference: torch {} on {} ({})", field("torch"), field("device"), field("device_name"))
}

fn backend(args: &BackendArgs) -> Result<()> {
    gradplan_backend::set_threads(args.threads);
    let device = args.device.resolve()?;
    println!(
        "Grad-MPC iteration, H={} |A|={} belief=200 state=30 hidden=200, {} threads, {}",
        args.horizon, args.action_dim, args.threads, args.device
    );
    println!(
        "{:>6} {:>14} {:>14} {:>16} {:>16} {:>14}",
        "J", "tch mean ms", "tch min ms", "PyTorch mean ms", "PyTorch min ms", "tch GFLOP/s"
    );
    let mut seen = None;
    for &j in &args.candidates {
        let cfg = GradMpcBench {
            candidates: j,
            horizon: args.horizon,
            action_dim: args.action_dim,
            iters: args.iters,
            ..Default::default()
        };
        let ours = grad_mpc_iteration(&cfg, device);
        let reference = if args.no_reference {
            None
        } else {
            let a =
                [j, args.horizon, args.action_dim, args.threads as i64, args.iters as i64, cfg.warmup as i64];
            let mut a: Vec<String> = a.iter().map(|x| x.to_string()).collect();
            a.push(torch_device(device));
            python_reference_or_warn(BACKEND_REFERENCE, &a)
        };
        let fmt = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.2}"));
        println!(
            "{:>6} {:>14.2} {:>14.2} {:>16} {:>16} {:>14.1}",
            j,
            ours.mean_ms,
            ours.min_ms,
            fmt(reference.as_ref().and_then(|r| r["mean_ms"].as_f64())),
            fmt(reference.as_ref().and_then(|r| r["min_ms"].as_f64())),
            cfg.flops_per_iteration() / (ours.mean_ms * 1e-3) / 1e9,
        );
        seen = seen.or(reference);
    }
    if let Some(r) = &seen {
        println!("{}", reference_line(r));
    }
    Ok(())
}

/// Mean wall time of one `step` over `steps` steps from a seeded reset, resetting at each
/// episode's end.
fn mean_step_us(env: &mut dyn Env, action: &[f32], steps: usize) -> Result<f64> {
    env.reset(Some(0))?;
    let start = Instant::now();
    for _ in 0..steps {
        if env.step(action)?.done() {
            env.reset(None)?;
        }
    }
    Ok(start.elapsed().as_secs_f64() / steps as f64 * 1e6)
}

/// What `bench env` measures of one backend on one task.
struct EnvTiming {
    step_us: f64,
    render_ms: f64,
    /// One pixel-observation step, rendered at 64×64 directly / at 240×320 and resized.
    direct_obs_ms: f64,
    resize_obs_ms: f64,
}

/// Times `backend` on `task`; `None` where the backend does not have the task (a task the
/// native backend has not ported).
fn time_backend(task: &str, backend: EnvBackend, args: &EnvBenchArgs) -> Result<Option<EnvTiming>> {
    let cfg = EnvConfig {
        task: task.to_owned(),
        obs: ObsKind::State,
        pixel_mode: PixelMode::Direct,
        action_repeat: Some(1),
        backend,
        ..EnvConfig::default()
    };
    let mut env = match make_env(&cfg) {
        Ok(env) => env,
        Err(gradplan_env::Error::UnknownTask { .. }) if backend == EnvBackend::Native => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("loading {task} on the {backend} backend")),
    };
    let action = vec![0.1f32; env.action_spec().dim()];
    let step_us = mean_step_us(&mut *env, &action, args.steps)?;
    env.render(64, 64)?;
    let start = Instant::now();
    for _ in 0..args.renders {
        env.render(64, 64)?;
    }
    let render_ms = start.elapsed().as_secs_f64() / args.renders as f64 * 1e3;
    drop(env);
    let pixel_step_ms = |pixel_mode| -> Result<f64> {
        let cfg = EnvConfig { obs: ObsKind::Pixels, pixel_mode, ..cfg.clone() };
        let mut env = make_env(&cfg).with_context(|| format!("loading {task} with pixels"))?;
        Ok(mean_step_us(&mut *env, &action, args.renders)? / 1e3)
    };
    Ok(Some(EnvTiming {
        step_us,
        render_ms,
        direct_obs_ms: pixel_step_ms(PixelMode::Direct)?,
        resize_obs_ms: pixel_step_ms(PixelMode::Resize)?,
    }))
}

/// Steps per second of `n` environments of `cfg`, each on its own thread, stepped together
/// (every step started, then every step finished) `steps` times each after a seeded reset
/// and one untimed step; an environment whose episode ends is reset on the spot.
fn parallel_steps_per_s(cfg: &EnvConfig, n: usize, steps: usize) -> gradplan_env::Result<f64> {
    let mut envs = ThreadEnv::spawn_many(cfg, n)?;
    let action = vec![0.1f32; envs[0].action_spec().dim()];
    for (k, env) in envs.iter_mut().enumerate() {
        env.begin_reset(Some(k as u64))?;
    }
    for env in envs.iter_mut() {
        env.finish_reset()?;
        env.step(&action)?;
    }
    let start = Instant::now();
    for _ in 0..steps {
        for env in envs.iter_mut() {
            env.begin_step(&action)?;
        }
        for env in envs.iter_mut() {
            if env.finish_step()?.done() {
                env.reset(None)?;
            }
        }
    }
    Ok((n * steps) as f64 / start.elapsed().as_secs_f64())
}

/// The parallel table of `bench env`: native environments on threads, per observation kind.
fn env_parallel(tasks: &[String], args: &EnvBenchArgs) -> Result<()> {
    println!();
    println!(
        "native environments stepping at once, one thread each (action repeat 1): steps per second over \
         all of them, and the speed-up over one"
    );
    let counts: Vec<String> = args.parallel.iter().map(|n| format!("{n} env/s")).collect();
    println!(
        "{:<26} {:<14} {}",
        "task",
        "observation",
        counts.iter().map(|c| format!("{c:>18}")).collect::<String>()
    );
    for task in tasks {
        let kinds = [
            ("state", ObsKind::State, PixelMode::Direct, args.steps),
            ("pixels direct", ObsKind::Pixels, PixelMode::Direct, args.renders),
            ("pixels resize", ObsKind::Pixels, PixelMode::Resize, args.renders),
        ];
        for (label, obs, pixel_mode, steps) in kinds {
            let cfg = EnvConfig {
                task: task.clone(),
                obs,
                pixel_mode,
                action_repeat: Some(1),
                backend: EnvBackend::Native,
                ..EnvConfig::default()
            };
            let mut cells = String::new();
            let mut single = None;
            for &n in &args.parallel {
                let rate = match parallel_steps_per_s(&cfg, n, steps) {
                    Ok(rate) => rate,
                    Err(gradplan_env::Error::UnknownTask { .. }) => {
                        cells = " — (not ported to the native backend)".into();
                        break;
                    }
                    Err(e) => return Err(e).with_context(|| format!("{n} native {task} environments")),
                };
                let base = *single.get_or_insert(rate);
                cells += &format!("{:>18}", format!("{rate:.0} ({:.2}×)", rate / base));
            }
            println!("{task:<26} {label:<14} {cells}");
        }
    }
    Ok(())
}

fn env(args: &EnvBenchArgs) -> Result<()> {
    if args.parallel.contains(&0) {
        bail!("--parallel 0: every count must be at least 1");
    }
    let tasks: Vec<String> = if args.tasks.is_empty() {
        PAPER_TASKS.iter().map(|s| s.to_string()).collect()
    } else {
        args.tasks.clone()
    };
    println!(
        "one simulator step (action repeat 1), one 64×64 render, and one pixel observation step \
         (step + 64×64 frame) rendered directly or at 240×320 + resize;"
    );
    println!(
        "rows: dm_control from Rust (`dmc`), the native MuJoCo backend (`native`, no Python), and a \
         Python user of dm_control (`python`)"
    );
    println!(
        "{:<26} {:<8} {:>10} {:>10} {:>14} {:>14}",
        "task", "backend", "step µs", "render ms", "direct obs ms", "resize obs ms"
    );
    let cell = |v: Option<f64>, digits: usize| v.map_or("—".to_owned(), |v| format!("{v:.digits$}"));
    for task in &tasks {
        // A build without Python times the native backend alone.
        let backends: &[EnvBackend] = if cfg!(feature = "dmc") {
            &[EnvBackend::Dmc, EnvBackend::Native]
        } else {
            &[EnvBackend::Native]
        };
        for &backend in backends {
            let t = time_backend(task, backend, args)?;
            println!(
                "{:<26} {:<8} {:>10} {:>10} {:>14} {:>14}",
                task,
                backend.to_string(),
                cell(t.as_ref().map(|t| t.step_us), 1),
                cell(t.as_ref().map(|t| t.render_ms), 2),
                cell(t.as_ref().map(|t| t.direct_obs_ms), 2),
                cell(t.as_ref().map(|t| t.resize_obs_ms), 2),
            );
        }
        if !cfg!(feature = "dmc") {
            continue;
        }
        let reference = python_reference(
            ENV_REFERENCE,
            &[task.clone(), args.steps.to_string(), args.renders.to_string(), "64".into()],
        )?;
        println!(
            "{:<26} {:<8} {:>10} {:>10} {:>14} {:>14}",
            task,
            "python",
            cell(reference["step_us"].as_f64(), 1),
            cell(reference["render_ms"].as_f64(), 2),
            "—",
            "—",
        );
    }
    if !args.parallel.is_empty() {
        env_parallel(&tasks, args)?;
    }
    Ok(())
}
