//! `gradplan report`: a run's figures in `<run>/report/`: learning curves, losses and
//! planning cost from `metrics.csv`, the model's open-loop prediction of one noise-free
//! episode (PlaNet's Figure 4 check; a GIF for pixel runs), and `index.md` tying them to the
//! run's settings and its `eval.csv` rows. Every file is written atomically.

use crate::video::{side_by_side, GifWriter};
use anyhow::{bail, Context, Result};
use clap::Args;
use gradplan_config::RunConfig;
use gradplan_report::{
    final_test_return, learning_curves, markdown_table, save_figure, save_panels, write_atomic, Figure,
    LineStyle, Series, Table, METRICS_FILE,
};
use gradplan_train::eval::EVAL_FILE;
use gradplan_train::openloop::{open_loop, OpenLoop, OpenLoopOptions, Trace, DEFAULT_CONTEXT};
use gradplan_train::{checkpoint, read_run_config};
use std::path::{Path, PathBuf};

/// Upscaling of the open-loop GIF's 64×64 panels.
pub const GIF_SCALE: usize = 3;
/// State dimensions drawn in a state run's `openloop` figure.
const STATE_DIMS: usize = 3;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run: its config.toml, metrics.csv, eval.csv and latest checkpoint.
    #[arg(long)]
    run_dir: PathBuf,
    /// Seeds the open-loop episode as `gradplan eval --seed` seeds its first one.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// C, observations filtered before the model predicts open loop (PlaNet: 5).
    #[arg(long, default_value_t = DEFAULT_CONTEXT)]
    context: usize,
    /// Skip openloop.gif (the open-loop figure is still drawn).
    #[arg(long)]
    no_video: bool,
    /// cpu, cuda or cuda:N (default: the run's).
    #[arg(long)]
    device: Option<String>,
    /// libtorch threads, 0 for one per core (default: the run's).
    #[arg(long)]
    threads: Option<usize>,
}

/// What to put in a report besides the curves.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    pub openloop: OpenLoopOptions,
    pub video: bool,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions { openloop: OpenLoopOptions::default(), video: true }
    }
}

pub fn report(args: &ReportArgs) -> Result<()> {
    let opts = ReportOptions {
        openloop: OpenLoopOptions {
            seed: args.seed,
            context: args.context,
            device: args.device.clone(),
            threads: args.threads,
        },
        video: !args.no_video,
    };
    for path in generate(&args.run_dir, &opts)? {
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Writes `run_dir/report/` and returns the paths written. The curves come first, so a run
/// without a checkpoint still gets them (the open-loop part is skipped with a message).
pub fn generate(run_dir: &Path, opts: &ReportOptions) -> Result<Vec<PathBuf>> {
    if !run_dir.is_dir() {
        bail!("{} is not a run directory (no such directory)", run_dir.display());
    }
    let cfg =
        read_run_config(run_dir).with_context(|| format!("{} is not a run directory", run_dir.display()))?;
    let out = run_dir.join("report");
    let mut written = learning_curves(run_dir, &out)?;
    let metrics = Table::read(&run_dir.join(METRICS_FILE))?;

    let openloop = if checkpoint::latest(run_dir)?.is_none() {
        eprintln!(
            "{} has no checkpoint yet: the open-loop prediction is skipped (the curves are written)",
            run_dir.display()
        );
        Err("skipped: the run has no checkpoint yet".to_owned())
    } else {
        let ol = open_loop(run_dir, &opts.openloop).context("predicting an episode open loop")?;
        let figs = openloop_figures(&ol);
        written.extend(match figs.as_slice() {
            [one] => save_figure(one, &out.join("openloop"))?,
            _ => save_panels(&figs, 2, &out.join("openloop"))?,
        });
        if let (true, Trace::Pixels { real, reconstructed, imagined }) = (opts.video, &ol.trace) {
            let mut gif = GifWriter::new(GIF_SCALE, 8);
            for ((r, p), i) in real.iter().zip(reconstructed).zip(imagined) {
                gif.push(&side_by_side(&[r, p, i])?);
            }
            let path = out.join("openloop.gif");
            gif.save(&path)?;
            written.push(path);
        }
        Ok(ol)
    };

    let eval_csv = run_dir.join(EVAL_FILE);
    let eval = if eval_csv.is_file() { Some(Table::read(&eval_csv)?) } else { None };
    let index = out.join("index.md");
    let figures: Vec<&Path> = written.iter().map(PathBuf::as_path).collect();
    write_atomic(&index, index_md(&cfg, &metrics, eval.as_ref(), &openloop, &figures, &out).as_bytes())?;
    written.push(index);
    Ok(written)
}

/// Rewards over the episode (and, for state runs, the first state dimensions): real,
/// reconstructed from the posterior, and predicted open loop from C on.
fn openloop_figures(ol: &OpenLoop) -> Vec<Figure> {
    let c = ol.context as f64;
    // Entry i of the rewards belongs to time step i + 1.
    let line = |label: &str, style, v: &[f64]| {
        Series::new(label, style, v.iter().enumerate().map(|(i, &r)| ((i + 1) as f64, r)))
    };
    let reward_values = ol.real_rewards.iter().chain(&ol.posterior_rewards).chain(&ol.open_loop_rewards);
    let mut figs = vec![Figure {
        title: format!("rewards: real and predicted (open loop from t = {})", ol.context),
        x_label: "time step t (decisions)".into(),
        y_label: "reward".into(),
        series: vec![
            line("real", LineStyle::Solid, &ol.real_rewards),
            line("posterior (reconstruction)", LineStyle::Solid, &ol.posterior_rewards),
            line("open loop (prior mean)", LineStyle::Solid, &ol.open_loop_rewards),
            context_marker(c, reward_values),
        ],
    }];
    if let Trace::State { real, reconstructed, imagined } = &ol.trace {
        let dims = real.first().map_or(0, Vec::len).min(STATE_DIMS);
        for d in 0..dims {
            let dim = |v: &[Vec<f32>]| -> Vec<(f64, f64)> {
                v.iter().enumerate().map(|(t, x)| (t as f64, f64::from(x[d]))).collect()
            };
            let values =
                real.iter().chain(reconstructed).chain(imagined).map(|x| f64::from(x[d])).collect::<Vec<_>>();
            figs.push(Figure {
                title: format!("observation dimension {d}"),
                x_label: "time step t (decisions)".into(),
                y_label: format!("o[{d}]"),
                series: vec![
                    Series::new("real", LineStyle::Solid, dim(real)),
                    Series::new("posterior (reconstruction)", LineStyle::Solid, dim(reconstructed)),
                    Series::new("open loop (prior mean)", LineStyle::Solid, dim(imagined)),
                    context_marker(c, values.iter()),
                ],
            });
        }
    }
    figs
}

/// A dashed vertical line at t = C, spanning `values`: where the prior starts alone.
fn context_marker<'a>(c: f64, values: impl Iterator<Item = &'a f64>) -> Series {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let points = if lo.is_finite() { vec![(c, lo), (c, hi)] } else { Vec::new() };
    Series::new("open loop starts", LineStyle::Dashed, points)
}

fn index_md(
    cfg: &RunConfig,
    metrics: &Table,
    eval: Option<&Table>,
    openloop: &std::result::Result<OpenLoop, String>,
    written: &[&Path],
    out: &Path,
) -> String {
    let last = |column: &str| {
        metrics.column(column).and_then(|v| v.into_iter().rev().flatten().next()).map(|x| format!("{x:.0}"))
    };
    let mut md = format!("# Report: {} with {}\n\n", cfg.env.task, cfg.planner.kind);
    md += "| setting | value |\n|---|---|\n";
    md += &format!(
        "| task | {} |\n| planner | {} |\n| preset | {} |\n",
        cfg.env.task, cfg.planner.kind, cfg.preset
    );
    md += &format!("| observations | {} |\n| seed | {} |\n", cfg.env.obs, cfg.seed);
    md += &format!(
        "| env steps | {} of {} |\n| episodes | {} |\n\n",
        last("env_steps").unwrap_or_else(|| "0".into()),
        cfg.train.total_env_steps,
        metrics.len()
    );
    md += &match final_test_return(metrics) {
        Some(f) => format!(
            "**Final test return:** {:.1}{} at {:.0} env steps.\n\n",
            f.mean,
            f.std.map(|s| format!(" ± {s:.1}")).unwrap_or_default(),
            f.x
        ),
        None => "**Final test return:** no test episode yet.\n\n".into(),
    };
    md += "## Figures\n\n";
    for path in written {
        let name = path.strip_prefix(out).unwrap_or(path).display().to_string();
        if name.ends_with(".png") || name.ends_with(".gif") {
            let stem = name.rsplit_once('.').map_or(name.as_str(), |(s, _)| s);
            md += &format!("![{stem}]({name})\n\n");
        }
    }
    md += "## Open-loop prediction\n\n";
    md += &match openloop {
        Ok(ol) => format!(
            "One noise-free episode with the run's planner (seed {}, return {:.1} over {} decisions), \
             model of `{}`. The posterior filters the whole episode (reconstruction); from C = {} filtered \
             observations on, the prior's mean is rolled open loop with the recorded actions. \
             {}\n\n",
            ol.seed,
            ol.episode.total_return,
            ol.episode.decisions,
            ol.checkpoint.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            ol.context,
            match ol.trace {
                Trace::Pixels { .. } => "`openloop.gif`: real | reconstruction | open loop.",
                Trace::State { .. } => "State run: no video.",
            }
        ),
        Err(why) => format!("{why}\n\n"),
    };
    md += "## Evaluations (eval.csv)\n\n";
    md += &match eval {
        Some(t) if !t.is_empty() => markdown_table(t),
        _ => "None yet (`gradplan eval --run-dir …` adds rows).\n".into(),
    };
    md
}
