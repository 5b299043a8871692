//! `gradplan bench model`: time per world-model update and per planning decision at a
//! preset's sizes, on synthetic data (the cost does not depend on the values), beside the
//! same work in PyTorch on the same device (`scripts/bench_model_reference.py`, run with the
//! project's Python or `$GRADPLAN_VENV`'s).

use anyhow::Result;
use clap::Args;
use gradplan_backend::DeviceSpec;
use gradplan_config::{ActionOptimizer, Activation, ObsKind, PlannerKind, RunConfig};
use gradplan_model::{preprocess_frames, ObsShape, SequenceBatch, WorldModel};
use gradplan_train::dynamics::ModelDynamics;
use gradplan_train::optim::Adam;
use std::rc::Rc;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

const MODEL_REFERENCE: &str = include_str!("../../../../scripts/bench_model_reference.py");

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
    /// Skip the PyTorch reference.
    #[arg(long)]
    no_reference: bool,
    /// After the table, this many alternating rounds of PyTorch f32's update and ours (each
    /// `--updates` timed updates), paired so a drifting host slows both sides of a round
    /// alike; prints each round's ratio and their median (0: none).
    #[arg(long, default_value_t = 0)]
    rounds: usize,
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

/// The planner settings a decision of `kind` runs with: the preset's, with I from the kind.
fn planner_settings(cfg: &RunConfig, kind: PlannerKind) -> gradplan_config::PlannerConfig {
    let mut p = cfg.planner.clone();
    p.kind = kind;
    p.iterations = None;
    // The PyTorch reference implements Algorithm 1, so the comparison is of that flavour.
    p.flavour = gradplan_config::GradMpcFlavour::Paper;
    p
}

/// Latent overshooting is not in the PyTorch reference, so its update is not comparable.
fn overshooting(cfg: &RunConfig) -> bool {
    cfg.model.overshooting_kl_beta != 0.0 || cfg.model.overshooting_reward_scale != 0.0
}

/// The `key=value` arguments of `scripts/bench_model_reference.py` for this benchmark.
fn reference_args(args: &ModelBenchArgs, cfg: &RunConfig, device: Device) -> Vec<String> {
    let m = &cfg.model;
    let activation = match m.activation {
        Activation::Relu => "relu",
        Activation::Elu => "elu",
        Activation::Tanh => "tanh",
    };
    let mut parts = Vec::new();
    if !overshooting(cfg) {
        parts.push("update");
        // PyTorch's own mixed precision and channels-last convolutions, so each conv lever
        // of ours (`model.conv_precision`, `model.conv_channels_last`) has a fair opponent.
        parts.push("update-bf16");
        if cfg.env.obs == ObsKind::Pixels {
            parts.push("update-cl");
        }
    }
    let mut kv: Vec<(&str, String)> = vec![
        ("device", super::torch_device(device)),
        ("threads", args.threads.to_string()),
        ("updates", args.updates.to_string()),
        ("decisions", args.decisions.to_string()),
        ("obs", cfg.env.obs.to_string()),
        ("state_dim", args.state_dim.to_string()),
        ("action_dim", args.action_dim.to_string()),
        ("belief", m.belief_size.to_string()),
        ("state", m.state_size.to_string()),
        ("hidden", m.hidden_size.to_string()),
        ("embedding", m.embedding_size.to_string()),
        ("cnn_depth", m.cnn_depth.to_string()),
        ("activation", activation.into()),
        ("min_std", m.min_std.to_string()),
        ("free_nats", m.free_nats.to_string()),
        ("bit_depth", m.bit_depth.to_string()),
        ("global_kl_beta", m.global_kl_beta.to_string()),
        ("batch", cfg.train.batch_size.to_string()),
        ("chunk", cfg.train.chunk_length.to_string()),
        ("lr", cfg.optim.learning_rate.to_string()),
        ("adam_eps", cfg.optim.adam_epsilon.to_string()),
        ("clip", cfg.optim.grad_clip_norm.to_string()),
        ("horizon", cfg.planner.horizon.to_string()),
        ("sample", u8::from(cfg.planner.sample_imagined).to_string()),
        ("discount", cfg.planner.discount.to_string()),
    ];
    if args.planners.contains(&PlannerKind::Cem) {
        let p = planner_settings(cfg, PlannerKind::Cem);
        parts.push("cem");
        kv.push(("cem_iterations", p.iterations().to_string()));
        kv.push(("cem_candidates", p.candidates.to_string()));
        kv.push(("cem_top_k", p.top_k.to_string()));
    }
    if args.planners.contains(&PlannerKind::GradMpc) {
        let p = planner_settings(cfg, PlannerKind::GradMpc);
        parts.push("grad-mpc");
        kv.push(("gd_iterations", p.iterations().to_string()));
        kv.push(("gd_candidates", p.candidates.to_string()));
        kv.push(("gd_lr", p.action_lr().to_string()));
        let optimizer = match p.grad_mpc_optimizer() {
            ActionOptimizer::Sgd => "sgd",
            ActionOptimizer::Adam => "adam",
            ActionOptimizer::Normalized => "normalized",
        };
        kv.push(("gd_optimizer", optimizer.into()));
        kv.push(("gd_clip_per_step", p.grad_clip_per_step.unwrap_or(0.0).to_string()));
    }
    kv.push(("parts", parts.join(",")));
    kv.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// One table row: ours, then the reference's entry `key` when there is one.
fn row(what: &str, ours: (f64, f64), reference: Option<&serde_json::Value>, key: &str) {
    let theirs = reference.and_then(|r| Some((r[key]["mean_ms"].as_f64()?, r[key]["min_ms"].as_f64()?)));
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.1}"));
    println!(
        "{what:<34} {:>10.1} {:>10.1} {:>12} {:>12} {:>9}",
        ours.0,
        ours.1,
        fmt(theirs.map(|t| t.0)),
        fmt(theirs.map(|t| t.1)),
        theirs.map_or("-".to_string(), |t| format!("{:.2}", ours.0 / t.0)),
    );
}

pub fn run(args: &ModelBenchArgs) -> Result<()> {
    let cfg = RunConfig::resolve(&args.preset, None, &args.overrides)?;
    gradplan_backend::set_threads(args.threads);
    let device = args.device.resolve()?;
    let obs = match cfg.env.obs {
        ObsKind::Pixels => ObsShape::Pixels { size: cfg.env.image_size as i64 },
        ObsKind::State => ObsShape::State { dim: args.state_dim },
    };
    // The reference runs first, in its own process, so the two never share the device.
    let reference = if args.no_reference {
        None
    } else {
        eprintln!("running the PyTorch reference (scripts/bench_model_reference.py)…");
        super::python_reference_or_warn(MODEL_REFERENCE, &reference_args(args, &cfg, device))
    };
    tch::manual_seed(0);
    let model = Rc::new(WorldModel::new(&cfg.model, obs, args.action_dim, device)?);
    let (t, b) = (cfg.train.chunk_length as i64, cfg.train.batch_size as i64);
    let opts = (Kind::Float, device);
    // Pixels: the 5-bit preprocessing of a sampled u8 batch, timed on its own (it runs once
    // per update, outside the autograd graph).
    let mut preprocess = None;
    let observations = match obs {
        ObsShape::Pixels { size } => {
            let raw = Tensor::randint(256, [t, b, size, size, 3], (Kind::Uint8, device));
            preprocess = Some(time_ms(args.updates.max(3), device, || {
                let _ = preprocess_frames(&raw, cfg.model.bit_depth, true);
                Ok(())
            })?);
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
    let mut adam = Adam::new(
        model.named_parameters(),
        cfg.optim.learning_rate,
        cfg.optim.adam_epsilon,
        cfg.optim.grad_clip_norm,
    );
    println!(
        "preset {} ({} obs, belief {} state {} hidden {} embedding {} cnn depth {}, convs {}{}), |A| = {}, {} threads, {}",
        cfg.preset,
        cfg.env.obs,
        cfg.model.belief_size,
        cfg.model.state_size,
        cfg.model.hidden_size,
        cfg.model.embedding_size,
        cfg.model.cnn_depth,
        cfg.model.conv_precision,
        if cfg.model.conv_channels_last { " channels-last" } else { "" },
        args.action_dim,
        args.threads,
        args.device
    );
    let mut update_once = || {
        let losses = model.loss(&batch)?;
        adam.backward_step(&losses.total, cfg.optim.learning_rate);
        Ok(())
    };
    let update = time_ms(args.updates, device, &mut update_once)?;
    println!(
        "{:<34} {:>10} {:>10} {:>12} {:>12} {:>9}",
        "what", "mean ms", "min ms", "PyTorch mean", "PyTorch min", "ours/PT"
    );
    row(&format!("model update, batch {b} x chunk {t}"), update, reference.as_ref(), "update");
    if let Some(p) = preprocess {
        row("  5-bit preprocessing of the batch", p, None, "");
    }
    for (part, label) in
        [("update-bf16", "  PyTorch with bf16 autocast"), ("update-cl", "  PyTorch with channels-last")]
    {
        if let Some(r) = reference.as_ref().filter(|r| r[part].is_object()) {
            let ms = |k: &str| r[part][k].as_f64().unwrap_or(f64::NAN);
            println!(
                "{:<34} {:>10} {:>10} {:>12.1} {:>12.1} {:>9.2}",
                label,
                "-",
                "-",
                ms("mean_ms"),
                ms("min_ms"),
                update.0 / ms("mean_ms")
            );
        }
    }

    if args.rounds > 0 && !args.no_reference && !overshooting(&cfg) {
        interleaved_rounds(args, &cfg, device, || Ok(time_ms(args.updates, device, &mut update_once)?.0))?;
    }

    let low = vec![-1.0f32; args.action_dim as usize];
    let high = vec![1.0f32; args.action_dim as usize];
    let dynamics = ModelDynamics::new(model.clone(), None, cfg.planner.sample_imagined, &low, &high);
    let state = model.rssm.initial(1, device);
    for &kind in &args.planners {
        let p = planner_settings(&cfg, kind);
        let plan_cfg = gradplan_plan::PlannerConfig::from_settings(&p, cfg.dreamer.discount);
        plan_cfg.validate()?;
        let mut planner = plan_cfg.init::<ModelDynamics>();
        let timing = time_ms(args.decisions, device, || {
            planner.plan(&dynamics, &state)?;
            Ok(())
        })?;
        let what = format!("{kind} decision, H={} I={} J={}", p.horizon, p.iterations(), p.candidates);
        row(&what, timing, reference.as_ref(), &kind.to_string());
    }
    if let Some(r) = &reference {
        println!("{}", super::reference_line(r));
        if overshooting(&cfg) {
            println!("(no PyTorch update: latent overshooting is not in the reference)");
        }
    }
    Ok(())
}

/// `--rounds`: PyTorch f32's update and ours in turn, `args.rounds` times; prints every
/// round's mean ms and ratio, then the median ratio and its range.
fn interleaved_rounds(
    args: &ModelBenchArgs,
    cfg: &RunConfig,
    device: Device,
    mut ours: impl FnMut() -> Result<f64>,
) -> Result<()> {
    let reference: Vec<String> = reference_args(args, cfg, device)
        .into_iter()
        .filter(|a| !a.starts_with("parts=") && !a.starts_with("decisions="))
        .chain(["parts=update".to_string(), "decisions=0".to_string()])
        .collect();
    println!("\ninterleaved rounds ({} timed updates each side): PyTorch f32, then ours", args.updates);
    println!("{:>6} {:>12} {:>12} {:>9}", "round", "PyTorch ms", "ours ms", "ours/PT");
    let mut ratios = Vec::with_capacity(args.rounds);
    for round in 1..=args.rounds {
        let theirs = super::python_reference(MODEL_REFERENCE, &reference)?["update"]["mean_ms"]
            .as_f64()
            .ok_or_else(|| anyhow::anyhow!("the PyTorch reference returned no update time"))?;
        let ours = ours()?;
        ratios.push(ours / theirs);
        println!("{round:>6} {theirs:>12.1} {ours:>12.1} {:>9.2}", ours / theirs);
    }
    ratios.sort_by(f64::total_cmp);
    let n = ratios.len();
    let median = if n % 2 == 1 { ratios[n / 2] } else { (ratios[n / 2 - 1] + ratios[n / 2]) / 2.0 };
    println!("median ours/PT over {n} rounds: {median:.2} (range {:.2}–{:.2})", ratios[0], ratios[n - 1]);
    Ok(())
}
