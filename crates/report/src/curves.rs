//! The learning curves of a run directory, from its `metrics.csv`.

use crate::{save_figure, save_panels, Band, Error, Figure, LineStyle, Point, Result, Series, Table};
use std::path::{Path, PathBuf};

/// Name of the per-episode metrics table inside a run directory.
pub const METRICS_FILE: &str = "metrics.csv";

/// Loss-like columns drawn in `losses.{png,svg}`, one panel each when the column has data,
/// with the panel's title. `grad_norm` is not a loss but is read the same way.
const LOSS_COLUMNS: [(&str, &str); 9] = [
    ("loss_total", "total loss (negative ELBO)"),
    ("loss_observation", "observation loss"),
    ("loss_reward", "reward loss"),
    ("loss_kl", "KL loss"),
    ("loss_overshooting_kl", "overshooting KL loss"),
    ("loss_overshooting_reward", "overshooting reward loss"),
    ("grad_norm", "gradient norm (before clipping)"),
    ("actor_loss", "Dreamer actor loss"),
    ("value_loss", "Dreamer value loss"),
];

/// Planning columns drawn in `planning.{png,svg}` when present: (column, title, y label).
const PLANNING_COLUMNS: [(&str, &str, &str); 3] = [
    ("plan_ms", "planning time", "ms per decision"),
    ("plan_predicted_return", "predicted return of the plan", "return over the horizon"),
    ("plan_iterations", "planner iterations", "iterations per decision"),
];

/// Reads `run_dir/metrics.csv` and writes into `out_dir` (created when missing):
/// `returns.{png,svg}` (train return, and test return mean with a ±std band, vs env steps),
/// `losses.{png,svg}` (one panel per loss column that has data, vs env steps) and
/// `planning.{png,svg}` (ms per decision, the plan's predicted return, iterations, each when
/// present). Any column may be absent; without `env_steps` the x axis is the episode. Returns
/// the paths written.
///
/// # Errors
/// [`Error::NotARunDir`] when `run_dir` is not a directory, [`Error::NoMetrics`] when it has
/// no `metrics.csv`, [`Error::Csv`] when that file is malformed, and I/O or drawing errors.
pub fn learning_curves(run_dir: &Path, out_dir: &Path) -> Result<Vec<PathBuf>> {
    if !run_dir.is_dir() {
        return Err(Error::NotARunDir(run_dir.to_owned()));
    }
    let csv = run_dir.join(METRICS_FILE);
    if !csv.is_file() {
        return Err(Error::NoMetrics(run_dir.to_owned()));
    }
    let table = Table::read(&csv)?;
    let (x, x_label) = x_axis(&table);
    let mut written = Vec::new();
    written.extend(save_figure(&returns_figure(&table, &x, x_label), &out_dir.join("returns"))?);

    let losses: Vec<Figure> = LOSS_COLUMNS
        .iter()
        .filter_map(|&(column, title)| {
            let s = line(&table, &x, column, column, LineStyle::Solid)?;
            Some(Figure {
                title: title.into(),
                x_label: x_label.into(),
                y_label: column.into(),
                series: vec![s],
            })
        })
        .collect();
    written.extend(save_panels(&losses, 3, &out_dir.join("losses"))?);

    let planning: Vec<Figure> = PLANNING_COLUMNS
        .iter()
        .filter_map(|&(column, title, y_label)| {
            let s = line(&table, &x, column, column, LineStyle::Solid)?;
            Some(Figure {
                title: title.into(),
                x_label: x_label.into(),
                y_label: y_label.into(),
                series: vec![s],
            })
        })
        .collect();
    written.extend(save_panels(&planning, 3, &out_dir.join("planning"))?);
    Ok(written)
}

/// The x values of every row (env steps, else the episode, else the row number) and their label.
fn x_axis(table: &Table) -> (Vec<Option<f64>>, &'static str) {
    if let Some(x) = table.column("env_steps") {
        (x, "environment steps")
    } else if let Some(x) = table.column("episode") {
        (x, "episode")
    } else {
        ((0..table.len()).map(|i| Some(i as f64)).collect(), "row")
    }
}

/// The rows where both x and `column` have a value, as a series; `None` when there are none.
fn line(table: &Table, x: &[Option<f64>], column: &str, label: &str, style: LineStyle) -> Option<Series> {
    let y = table.column(column)?;
    let points: Vec<Point> = x.iter().zip(&y).filter_map(|(&x, &y)| Some(Point { x: x?, y: y? })).collect();
    if points.is_empty() {
        return None;
    }
    Some(Series { label: label.into(), points, band: Vec::new(), style })
}

fn returns_figure(table: &Table, x: &[Option<f64>], x_label: &str) -> Figure {
    let mut series = Vec::new();
    series.extend(line(table, x, "train_return", "train return (with exploration noise)", LineStyle::Solid));
    if let Some(mut test) = line(table, x, "test_return_mean", "test return (mean ± std)", LineStyle::Solid)
    {
        if let (Some(mean), Some(std)) = (table.column("test_return_mean"), table.column("test_return_std")) {
            test.band = x
                .iter()
                .zip(mean.iter().zip(&std))
                .filter_map(|(&x, (&m, &s))| {
                    let (x, m, s) = (x?, m?, s?);
                    Some(Band { x, low: m - s, high: m + s })
                })
                .collect();
        }
        series.push(test);
    }
    Figure { title: "Returns".into(), x_label: x_label.into(), y_label: "episode return".into(), series }
}

/// The last test of a run: where it was taken and its return.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FinalReturn {
    /// Environment steps at the test (the episode when there is no `env_steps` column).
    pub x: f64,
    /// Mean test return.
    pub mean: f64,
    /// Standard deviation over the test episodes, when recorded.
    pub std: Option<f64>,
}

/// The last row of a metrics table with a test return; `None` when no test was run.
pub fn final_test_return(table: &Table) -> Option<FinalReturn> {
    let (x, _) = x_axis(table);
    let mean = table.column("test_return_mean")?;
    let std = table.column("test_return_std").unwrap_or_else(|| vec![None; table.len()]);
    (0..table.len()).rev().find_map(|i| Some(FinalReturn { x: x[i]?, mean: mean[i]?, std: std[i] }))
}

/// The table as a Markdown table (header, separator, one line per row; `|` escaped).
pub fn markdown_table(table: &Table) -> String {
    let cell = |c: &str| c.replace('|', "\\|").replace(['\n', '\r'], " ");
    let mut out =
        format!("| {} |\n", table.headers().iter().map(|h| cell(h)).collect::<Vec<_>>().join(" | "));
    out += &format!("|{}\n", "---|".repeat(table.headers().len()));
    for i in 0..table.len() {
        let row = table.row(i).unwrap_or_default();
        out += &format!("| {} |\n", row.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | "));
    }
    out
}
