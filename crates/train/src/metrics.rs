//! `metrics.csv`: one row per collected episode, appended as the run goes.

use crate::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The columns, in order.
pub const COLUMNS: [&str; 15] = [
    "episode",
    "env_steps",
    "updates",
    "train_return",
    "test_return_mean",
    "test_return_std",
    "loss_total",
    "loss_observation",
    "loss_reward",
    "loss_kl",
    "grad_norm",
    "plan_ms",
    "wall_s",
    "actor_loss",
    "value_loss",
];

/// One row; `None` is written as an empty cell (e.g. no test this episode).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    pub episode: usize,
    pub env_steps: usize,
    pub updates: usize,
    pub train_return: f64,
    pub test_return_mean: Option<f64>,
    pub test_return_std: Option<f64>,
    pub loss_total: Option<f64>,
    pub loss_observation: Option<f64>,
    pub loss_reward: Option<f64>,
    pub loss_kl: Option<f64>,
    pub grad_norm: Option<f64>,
    pub plan_ms: Option<f64>,
    pub wall_s: f64,
    /// Mean Dreamer actor loss −E[V_λ] over the phase's updates (Dreamer runs only).
    pub actor_loss: Option<f64>,
    /// Mean Dreamer value loss over the phase's updates (Dreamer runs only).
    pub value_loss: Option<f64>,
}

impl Row {
    fn to_line(&self) -> String {
        let opt = |v: Option<f64>| v.map(|x| format!("{x:.6}")).unwrap_or_default();
        [
            self.episode.to_string(),
            self.env_steps.to_string(),
            self.updates.to_string(),
            format!("{:.6}", self.train_return),
            opt(self.test_return_mean),
            opt(self.test_return_std),
            opt(self.loss_total),
            opt(self.loss_observation),
            opt(self.loss_reward),
            opt(self.loss_kl),
            opt(self.grad_norm),
            opt(self.plan_ms),
            format!("{:.3}", self.wall_s),
            opt(self.actor_loss),
            opt(self.value_loss),
        ]
        .join(",")
    }
}

/// Appends rows to a run's `metrics.csv`.
pub struct MetricsCsv {
    path: PathBuf,
    /// `wall_s` of the last row kept on open, so a resumed run's clock continues from it.
    pub resumed_wall_s: f64,
}

impl MetricsCsv {
    /// Opens (creating with a header) the file; on resume, drops rows past `keep_episodes`,
    /// which were written after the checkpoint being resumed from.
    pub fn open(path: &Path, keep_episodes: usize) -> Result<Self> {
        let header = COLUMNS.join(",");
        let mut lines = vec![header.clone()];
        if let Ok(text) = std::fs::read_to_string(path) {
            for line in text.lines().skip(1) {
                let episode: Option<usize> = line.split(',').next().and_then(|c| c.parse().ok());
                if episode.is_some_and(|e| e <= keep_episodes) {
                    lines.push(line.to_owned());
                }
            }
        }
        let wall = COLUMNS.iter().position(|c| *c == "wall_s").unwrap_or(COLUMNS.len() - 1);
        let resumed_wall_s = lines[1..]
            .last()
            .and_then(|l| l.split(',').nth(wall))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0.0);
        crate::checkpoint::write_atomic(path, (lines.join("\n") + "\n").as_bytes())?;
        Ok(MetricsCsv { path: path.to_owned(), resumed_wall_s })
    }

    pub fn append(&mut self, row: &Row) -> Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|e| Error::Io { path: self.path.clone(), source: e })?;
        writeln!(f, "{}", row.to_line()).map_err(|e| Error::Io { path: self.path.clone(), source: e })
    }
}
