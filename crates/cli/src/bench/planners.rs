//! `gradplan bench planners`: return reached against compute spent, for CEM, MPPI, Grad-MPC
//! and GradCEM as the action dimension m grows (issue #4, part 1). The study itself is
//! `gradplan_plan::study`; this file prints its table and writes the CSV and the plots.
//!
//! Plots are drawn with plotters' pure-Rust bitmap and SVG backends, with text laid out by
//! ab_glyph from the DejaVu Sans font the `dejavu` crate embeds, so nothing depends on the
//! system's fonts or fontconfig.

use anyhow::{anyhow, Context, Result};
use clap::Args;
use gradplan_plan::study::{self, ProblemKind, Study, StudyConfig, Summary};
use gradplan_plan::PlannerKind;
use gradplan_report::{register_font, write_atomic};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Args)]
pub struct PlannersArgs {
    /// Problems: `lq` (linear-quadratic ring, known optimum) and `pendulums` (coupled
    /// swing-up, nonconvex).
    #[arg(long, value_delimiter = ',', default_value = "lq,pendulums")]
    problems: Vec<ProblemKind>,
    /// Action dimensions m.
    #[arg(long, value_delimiter = ',', default_value = "1,2,6,16,64")]
    action_dims: Vec<i64>,
    /// Planners (cem, random-shooting, grad-mpc, mppi, grad-cem).
    #[arg(long, value_delimiter = ',', default_value = "cem,mppi,grad-mpc,grad-cem")]
    planners: Vec<PlannerKind>,
    /// Compute budgets per plan call, in forward-equivalent candidate-rollouts (a backward
    /// step counts as two forward ones; × H gives candidate-steps). Each level costs about 4×
    /// the one before: adding 256000 makes the run about 4× longer.
    #[arg(long, value_delimiter = ',', default_value = "1000,4000,16000,64000")]
    budgets: Vec<u64>,
    /// Seeds 0..n of tch's generator, the same for every planner.
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// I, Grad-MPC's iterations at every budget (J takes up the rest of the budget).
    #[arg(long, default_value_t = 40)]
    grad_mpc_iterations: usize,
    /// libtorch threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Where planners.csv, planners.md and the plots go.
    #[arg(long, default_value = "runs/bench-planners")]
    out: PathBuf,
    /// Skip the PNG and SVG plots.
    #[arg(long)]
    no_plots: bool,
}

impl PlannersArgs {
    fn config(&self) -> StudyConfig {
        StudyConfig {
            problems: self.problems.clone(),
            action_dims: self.action_dims.clone(),
            planners: self.planners.clone(),
            budgets: self.budgets.clone(),
            seeds: self.seeds,
            grad_mpc_iterations: self.grad_mpc_iterations,
            ..StudyConfig::default()
        }
    }
}

pub fn run(args: &PlannersArgs) -> Result<()> {
    if args.seeds == 0 || args.budgets.is_empty() || args.action_dims.iter().any(|&m| m < 1) {
        return Err(anyhow!("need at least one seed, one budget, and action dimensions >= 1"));
    }
    gradplan_backend::set_threads(args.threads);
    let config = args.config();
    let started = Instant::now();
    let study = study::run(&config, &mut |r| {
        eprintln!(
            "{} m={} {} budget={} seed={}: R = {:.4}, {} steps, {:.0} ms",
            r.problem,
            r.action_dim,
            r.planner,
            r.budget,
            r.seed,
            r.ret,
            r.cost(),
            r.wall_ms
        );
    })
    .context("running the planner study")?;
    let report = report(&config, &study, args.threads, started.elapsed().as_secs_f64());
    print!("{report}");

    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    write_atomic(&args.out.join("planners.csv"), study.to_csv().as_bytes())?;
    write_atomic(&args.out.join("planners.md"), report.as_bytes())?;
    let mut written = vec![args.out.join("planners.csv"), args.out.join("planners.md")];
    if !args.no_plots {
        for &problem in &config.problems {
            written.extend(plot(&study.summaries(), problem, &args.out)?);
        }
    }
    for path in written {
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// The markdown report: settings, then one table per problem.
fn report(config: &StudyConfig, study: &Study, threads: usize, seconds: f64) -> String {
    let mut out = String::from("Planner study: return reached vs compute, by action dimension m\n\n");
    for &p in &config.problems {
        let s = config.settings(p);
        out.push_str(&format!(
            "- {p}: H = {}, Grad-MPC/GradCEM α = {}, MPPI λ = {}·√m\n",
            s.horizon, s.learning_rate, s.temperature
        ));
    }
    out.push_str(&format!(
        "- budgets {:?} candidate-rollouts per plan call (forward-equivalent: backward = 2 forward), \
         seeds 0..{}, Grad-MPC I = {}, {threads} libtorch threads, {seconds:.0} s in all\n\n",
        config.budgets, config.seeds, config.grad_mpc_iterations
    ));
    out.push_str(&study.markdown());
    out
}

/// One colour per planner, stable across plots.
fn colour(planner: PlannerKind) -> RGBColor {
    match planner {
        PlannerKind::Cem => RGBColor(31, 119, 180),
        PlannerKind::Mppi => RGBColor(44, 160, 44),
        PlannerKind::GradMpc => RGBColor(214, 39, 40),
        PlannerKind::GradCem => RGBColor(148, 103, 189),
        PlannerKind::RandomShooting => RGBColor(127, 127, 127),
        PlannerKind::Policy | PlannerKind::PolicyGradMpc => RGBColor(255, 127, 14),
    }
}

/// Width and height of a plot: one 300×260 panel per action dimension, two rows.
fn plot_size(dims: usize) -> (u32, u32) {
    (300 * dims.max(1) as u32 + 20, 2 * 260 + 50)
}

/// Draws `problem`'s plots into `out` as PNG and SVG; returns their paths.
fn plot(summaries: &[Summary], problem: ProblemKind, out: &Path) -> Result<Vec<PathBuf>> {
    register_font();
    let cells: Vec<&Summary> = summaries.iter().filter(|s| s.problem == problem).collect();
    if cells.is_empty() {
        return Ok(vec![]);
    }
    let mut dims: Vec<i64> = cells.iter().map(|s| s.action_dim).collect();
    dims.sort_unstable();
    dims.dedup();
    let size = plot_size(dims.len());
    let png = out.join(format!("planners-{problem}.png"));
    gradplan_report::replace_with(&png, |tmp| {
        let root = BitMapBackend::new(tmp, size).into_drawing_area();
        draw(&root, &cells, problem, &dims).map_err(|e| std::io::Error::other(format!("{e:#}")))?;
        root.present().map_err(|e| std::io::Error::other(format!("drawing: {e}")))
    })?;
    let svg = out.join(format!("planners-{problem}.svg"));
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        draw(&root, &cells, problem, &dims)?;
        root.present().map_err(|e| anyhow!("drawing {}: {e}", svg.display()))?;
    }
    write_atomic(&svg, text.as_bytes())?;
    Ok(vec![png, svg])
}

/// The two axes of a panel row: what compute is measured in.
#[derive(Clone, Copy)]
enum Compute {
    Steps,
    WallMs,
}

impl Compute {
    fn of(self, s: &Summary) -> f64 {
        match self {
            Compute::Steps => s.cost,
            Compute::WallMs => s.wall_ms.max(1e-3),
        }
    }
    fn label(self) -> &'static str {
        match self {
            Compute::Steps => "model candidate-steps per plan (backward = 2)",
            Compute::WallMs => "wall ms per plan call (shared machine)",
        }
    }
}

/// One panel per m (columns), compute as candidate-steps (top row) and wall time (bottom row),
/// one line per planner, the score of doing nothing dashed. LQ gaps span decades and reach 0
/// at the optimum, so they are drawn as log10, floored at 1e-6.
fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    cells: &[&Summary],
    problem: ProblemKind,
    dims: &[i64],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let fail = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("plotting {problem}: {e}");
    root.fill(&WHITE).map_err(fail)?;
    let title = format!("{problem}: {} vs compute, by action dimension m", problem.score_name());
    let body = root.titled(&title, ("sans-serif", 18)).map_err(fail)?;
    let (legend, body) = body.split_vertically(22);
    let panels = body.split_evenly((2, dims.len()));
    let mut planners: Vec<PlannerKind> = cells.iter().map(|s| s.planner).collect();
    planners.sort_by_key(|p| p.name());
    planners.dedup();
    // The legend is a strip under the title, so it never hides a line.
    let mut entries: Vec<(String, ShapeStyle)> =
        planners.iter().map(|&p| (p.name().to_string(), colour(p).stroke_width(2))).collect();
    entries.push(("zero actions (dashed)".into(), ShapeStyle::from(&BLACK.mix(0.5))));
    let mut x = 60;
    for (name, style) in entries {
        legend.draw(&PathElement::new(vec![(x, 11), (x + 22, 11)], style)).map_err(fail)?;
        legend.draw(&Text::new(name.clone(), (x + 27, 4), ("sans-serif", 12))).map_err(fail)?;
        x += 40 + 7 * name.len() as i32;
    }
    let y = |score: f64| match problem {
        ProblemKind::Lq => score.max(1e-6).log10(),
        ProblemKind::Pendulums => score,
    };
    let zero = |m: i64| cells.iter().find(|s| s.action_dim == m).map_or(f64::NAN, |s| y(s.zero_score));
    let y_range = match problem {
        ProblemKind::Lq => {
            let top = cells.iter().map(|s| y(s.score_mean).max(zero(s.action_dim))).fold(0.0, f64::max);
            -6.0..top + 0.3
        }
        ProblemKind::Pendulums => -0.02..1.05,
    };
    let y_label = move |v: &f64| match problem {
        ProblemKind::Lq => format!("1e{v:.0}"),
        ProblemKind::Pendulums => format!("{v:.1}"),
    };
    for (row, compute) in [Compute::Steps, Compute::WallMs].into_iter().enumerate() {
        let (lo, hi) = cells
            .iter()
            .map(|s| compute.of(s))
            .fold((f64::INFINITY, 0.0f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
        let x_range = (lo / 1.5)..(hi * 1.5);
        for (col, &m) in dims.iter().enumerate() {
            let mut chart = ChartBuilder::on(&panels[row * dims.len() + col])
                .margin(6)
                .caption(format!("m = {m}"), ("sans-serif", 14))
                .x_label_area_size(34)
                .y_label_area_size(46)
                .build_cartesian_2d(x_range.clone().log_scale(), y_range.clone())
                .map_err(fail)?;
            chart
                .configure_mesh()
                .x_desc(if col == 0 { compute.label() } else { "" })
                .y_label_formatter(&y_label)
                .x_label_formatter(&|v: &f64| human(*v))
                .light_line_style(TRANSPARENT)
                .bold_line_style(BLACK.mix(0.12))
                .label_style(("sans-serif", 11))
                .axis_desc_style(("sans-serif", 11))
                .x_labels(4)
                .y_labels(6)
                .draw()
                .map_err(fail)?;
            let grey = BLACK.mix(0.5);
            let z = zero(m);
            if z.is_finite() {
                let ends = vec![(x_range.start, z), (x_range.end, z)];
                chart
                    .draw_series(DashedLineSeries::new(ends, 6, 4, ShapeStyle::from(&grey)))
                    .map_err(fail)?;
            }
            for &p in &planners {
                let mut points: Vec<(f64, f64)> = cells
                    .iter()
                    .filter(|s| s.action_dim == m && s.planner == p)
                    .map(|s| (compute.of(s), y(s.score_mean)))
                    .collect();
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                let c = colour(p);
                chart.draw_series(LineSeries::new(points.clone(), c.stroke_width(2))).map_err(fail)?;
                chart
                    .draw_series(points.into_iter().map(|xy| Circle::new(xy, 3, c.filled())))
                    .map_err(fail)?;
            }
        }
    }
    Ok(())
}

/// Axis labels: 1000 → "1k", 2.5e6 → "2.5M", 0.5 → "0.5".
fn human(x: f64) -> String {
    let (value, unit) = match x.abs() {
        v if v >= 1e6 => (x / 1e6, "M"),
        v if v >= 1e3 => (x / 1e3, "k"),
        _ => (x, ""),
    };
    let digits = if value.abs() >= 10.0 || value.fract().abs() < 1e-9 { 0 } else { 1 };
    format!("{value:.digits$}{unit}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use gradplan_plan::study::CSV_COLUMNS;

    fn tiny() -> PlannersArgs {
        PlannersArgs {
            problems: ProblemKind::ALL.to_vec(),
            action_dims: vec![1, 2],
            planners: vec![PlannerKind::Cem, PlannerKind::GradMpc],
            budgets: vec![60, 200],
            seeds: 1,
            grad_mpc_iterations: 5,
            threads: 1,
            out: PathBuf::new(),
            no_plots: false,
        }
    }

    #[test]
    fn a_tiny_study_writes_csv_table_and_plots() {
        let dir = tempfile::tempdir().unwrap();
        let args = PlannersArgs { out: dir.path().join("out"), ..tiny() };
        run(&args).unwrap();
        let csv = std::fs::read_to_string(args.out.join("planners.csv")).unwrap();
        let mut lines = csv.lines();
        assert_eq!(lines.next().unwrap().split(',').collect::<Vec<_>>(), CSV_COLUMNS);
        assert_eq!(lines.count(), 2 * 2 * 2 * 2);
        let table = std::fs::read_to_string(args.out.join("planners.md")).unwrap();
        assert!(table.contains("| 2 | grad-mpc |"), "{table}");
        for problem in ["lq", "pendulums"] {
            let png = std::fs::read(args.out.join(format!("planners-{problem}.png"))).unwrap();
            assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
            let svg = std::fs::read_to_string(args.out.join(format!("planners-{problem}.svg"))).unwrap();
            assert!(
                svg.starts_with("<svg") && svg.contains("grad-mpc") && svg.contains("m = 2"),
                "{problem}"
            );
        }
        // Nothing half-written is left behind.
        let names: Vec<String> = std::fs::read_dir(&args.out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp")), "{names:?}");
    }

    #[test]
    fn axis_labels_are_short() {
        assert_eq!(human(1000.0), "1k");
        assert_eq!(human(2.5e6), "2.5M");
        assert_eq!(human(12_000.0), "12k");
        assert_eq!(human(0.5), "0.5");
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert!(run(&PlannersArgs { seeds: 0, ..tiny() }).is_err());
        assert!(run(&PlannersArgs { action_dims: vec![0], ..tiny() }).is_err());
    }
}
