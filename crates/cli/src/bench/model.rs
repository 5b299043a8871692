//! `gradplan bench model`: time per world-model update and per planning decision at a
//! preset's sizes, on synthetic data (the cost does not depend on the values).

use anyhow::Result;
use clap::Args;
use gradplan_backend::DeviceSpec;
use gradplan_config::{ObsKind, PlannerKind, RunConfig};
use gradplan_model::{preprocess_frames, ObsShape, SequenceBatch, WorldModel};
use gradplan_train::dynamics::ModelDynamics;
use gradplan_train::optim::Adam;
use std::rc::Rc;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

#[derive(Debug, Args)]
pub struct ModelBenchArgs {
    /// Preset whose model, batch and planner sizes are timed.
    #[arg(long, default_value = "paper")]
    preset: String,
    /// Override any setting, e.g. `--set env.obs=state` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Action dimension of the synthetic task (6: walker, cheetah).
    #[arg(long, default_value_t = 6)]
    action_dim: i64,
    /// State dimension for state observations.
    #[arg(long, default_value_t = 24)]
    state_dim: i64,
    /// Timed model updates (after one untimed warm-up).
    #[arg(long, default_value_t = 3)]
    updates: usize,
    /// Timed planning decisions per planner (after one warm-up).
    #[arg(long, default_value_t = 3)]
    decisions: usize,
    /// Planners to time.
    #[arg(long, value_delimiter = ',', default_value = "cem,grad-mpc")]
    planners: Vec<PlannerKind>,
    /// libtorch threads (0: one per core).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: DeviceSpec,
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

fn time_ms(n: usize, device: Device, mut f: impl FnMut() -> Result<()>) -> Result<(f64, f64)> {
    f()?; // warm-up
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        sync(device);
        let start = Instant::now();
        f()?;
        sync(device);
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let mean = times.iter().sum::<f64>() / n.max(1) as f64;
    Ok((mean, times.iter().copied().fold(f64::INFINITY, f64::min)))
}

pub fn run(args: &ModelBenchArgs) -> Result<()> {
    let cfg = RunConfig::resolve(&args.preset, None, &args.overrides)?;
    gradplan_backend::set_threads(args.threads);
    let device = args.device.resolve()?;
    let obs = match cfg.env.obs {
        ObsKind::Pixels => ObsShape::Pixels { size: cfg.env.image_size as i64 },
        ObsKind::State => ObsShape::State { dim: args.state_dim },
    };
    tch::manual_seed(0);
    let model = Rc::new(WorldModel::new(&cfg.model, obs, args.action_dim, device)?);
    let (t, b) = (cfg.train.chunk_length as i64, cfg.train.batch_size as i64);
    let opts = (Kind::Float, device);
    let observations = match obs {
        ObsShape::Pixels { size } => {
            let raw = Tensor::randint(256, [t, b, size, size, 3], (Kind::Uint8, device));
            preprocess_frames(&raw, cfg.model.bit_depth, true)
        }
        ObsShape::State { dim } => Tensor::randn([t, b, dim], opts),
    };
    let is_first = Tensor::zeros([t, b], opts);
    let _ = is_first.get(0).fill_(1.0);
    let batch = SequenceBatch {
        obs: observations,
        actions: Tensor::rand([t, b, args.action_dim], opts) * 2.0 - 1.0,
        rewards: Tensor::rand([t, b], opts),
        is_first,
    };
    let mut adam =
        Adam::new(model.named_parameters(), cfg.optim.learning_rate, cfg.optim.adam_epsilon, 1000.0);
    println!(
        "preset {} ({} obs, belief {} state {} hidden {} embedding {}), |A| = {}, {} threads, {}",
        cfg.preset,
        cfg.env.obs,
        cfg.model.belief_size,
        cfg.model.state_size,
        cfg.model.hidden_size,
        cfg.model.embedding_size,
        args.action_dim,
        args.threads,
        args.device
    );
    let (mean, min) = time_ms(args.updates, device, || {
        let losses = model.loss(&batch)?;
        adam.backward_step(&losses.total, cfg.optim.learning_rate);
        Ok(())
    })?;
    println!("{:<34} {:>12} {:>12}", "what", "mean ms", "min ms");
    println!("{:<34} {:>12.1} {:>12.1}", format!("model update, batch {b} x chunk {t}"), mean, min);

    let low = vec![-1.0f32; args.action_dim as usize];
    let high = vec![1.0f32; args.action_dim as usize];
    let dynamics = ModelDynamics::new(model.clone(), None, cfg.planner.sample_imagined, &low, &high);
    let state = model.rssm.initial(1, device);
    for &kind in &args.planners {
        let mut p = cfg.planner.clone();
        p.kind = kind;
        p.iterations = None;
        let plan_cfg = gradplan_train::planner_config(&p, &cfg.dreamer);
        plan_cfg.validate()?;
        let mut planner = plan_cfg.init::<ModelDynamics>();
        let (mean, min) = time_ms(args.decisions, device, || {
            planner.plan(&dynamics, &state)?;
            Ok(())
        })?;
        let what = format!("{kind} decision, H={} I={} J={}", p.horizon, p.iterations(), p.candidates);
        println!("{what:<34} {mean:>12.1} {min:>12.1}");
    }
    Ok(())
}
