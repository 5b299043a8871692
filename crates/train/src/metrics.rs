//! `metrics.csv`: one row per collected episode, appended as the run goes; the same figures
//! go to the run's TensorBoard event file ([`Row::scalars`]).

use crate::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The columns, in order.
pub const COLUMNS: [&str; 19] = [
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
    "plan_predicted_return",
    "plan_iterations",
    "loss_overshooting_kl",
    "loss_overshooting_reward",
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
    /// Mean over the episode's decisions of the chosen plan's predicted return R (eq. 3).
    pub plan_predicted_return: Option<f64>,
    /// Mean over the episode's decisions of the planner's optimisation iterations.
    pub plan_iterations: Option<f64>,
    /// Mean latent overshooting KL (as added to the loss) over the phase; only when
    /// `model.overshooting_kl_beta` is non-zero.
    pub loss_overshooting_kl: Option<f64>,
    /// Mean overshooting reward loss over the phase; only when
    /// `model.overshooting_reward_scale` is non-zero.
    pub loss_overshooting_reward: Option<f64>,
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
            opt(self.plan_predicted_return),
            opt(self.plan_iterations),
            opt(self.loss_overshooting_kl),
            opt(self.loss_overshooting_reward),
        ]
        .join(",")
    }

    /// The row as TensorBoard scalars `(tag, value)`, grouped by prefix (`train/`, `test/`,
    /// `loss/`, `plan/`, `time/`), leaving out the cells this row has none for. The step is
    /// the row's `env_steps`.
    pub fn scalars(&self) -> Vec<(&'static str, f64)> {
        let always = [
            ("train/return", self.train_return),
            ("train/episode", self.episode as f64),
            ("train/updates", self.updates as f64),
        ];
        let optional = [
            ("test/return_mean", self.test_return_mean),
            ("test/return_std", self.test_return_std),
            ("loss/total", self.loss_total),
            ("loss/observation", self.loss_observation),
            ("loss/reward", self.loss_reward),
            ("loss/kl", self.loss_kl),
            ("loss/overshooting_kl", self.loss_overshooting_kl),
            ("loss/overshooting_reward", self.loss_overshooting_reward),
            ("loss/grad_norm", self.grad_norm),
            ("loss/actor", self.actor_loss),
            ("loss/value", self.value_loss),
            ("plan/ms_per_decision", self.plan_ms),
            ("plan/predicted_return", self.plan_predicted_return),
            ("plan/iterations", self.plan_iterations),
        ];
        let mut out = Vec::from(always);
        out.extend(optional.into_iter().filter_map(|(tag, v)| v.map(|v| (tag, v))));
        out.push(("time/wall_s", self.wall_s));
        out
    }
}

/// The `env_steps` and `updates` of episode `episode`'s row in the `metrics.csv` at `path`,
/// or `None` when the file or the row is missing (what resume checks a checkpoint's counters
/// against).
pub fn counters_at(path: &Path, episode: usize) -> Result<Option<(usize, usize)>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(Error::Io { path: path.to_owned(), source }),
    };
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let col = |name: &str| header.iter().position(|c| *c == name);
    let (Some(ep), Some(steps), Some(updates)) = (col("episode"), col("env_steps"), col("updates")) else {
        return Ok(None);
    };
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        let cell = |i: usize| cells.get(i).and_then(|c| c.parse::<usize>().ok());
        if cell(ep) == Some(episode) {
            return Ok(cell(steps).zip(cell(updates)));
        }
    }
    Ok(None)
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
            // A run written by an older gradplan has fewer columns (new ones are only ever
            // appended): its rows are padded with empty cells so every row has the header's width.
            let old_width = text.lines().next().map_or(COLUMNS.len(), |h| h.split(',').count());
            let padding = ",".repeat(COLUMNS.len().saturating_sub(old_width));
            for line in text.lines().skip(1) {
                let episode: Option<usize> = line.split(',').next().and_then(|c| c.parse().ok());
                if episode.is_some_and(|e| e <= keep_episodes) {
                    lines.push(format!("{line}{padding}"));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_but_the_step_is_a_tensorboard_scalar() {
        let full = Row {
            episode: 3,
            env_steps: 600,
            updates: 10,
            train_return: 1.5,
            test_return_mean: Some(2.0),
            test_return_std: Some(0.5),
            loss_total: Some(1.0),
            loss_observation: Some(0.7),
            loss_reward: Some(0.1),
            loss_kl: Some(0.2),
            grad_norm: Some(9.0),
            plan_ms: Some(4.0),
            wall_s: 12.0,
            actor_loss: Some(-1.0),
            value_loss: Some(0.3),
            plan_predicted_return: Some(5.0),
            plan_iterations: Some(10.0),
            loss_overshooting_kl: Some(0.01),
            loss_overshooting_reward: Some(0.02),
        };
        let scalars = full.scalars();
        // env_steps is the step, not a scalar.
        assert_eq!(scalars.len(), COLUMNS.len() - 1, "{scalars:?}");
        let mut tags: Vec<&str> = scalars.iter().map(|s| s.0).collect();
        tags.sort();
        tags.dedup();
        assert_eq!(tags.len(), scalars.len(), "duplicate tags");
        assert!(tags
            .iter()
            .all(|t| ["train/", "test/", "loss/", "plan/", "time/"].iter().any(|p| t.starts_with(p))));
        assert!(
            scalars.contains(&("loss/overshooting_reward", 0.02))
                && scalars.contains(&("plan/iterations", 10.0))
        );

        // A seed episode's row: no losses, no test, no planner.
        let seed = Row { episode: 1, env_steps: 200, train_return: -3.0, wall_s: 0.5, ..Default::default() };
        assert_eq!(
            seed.scalars(),
            [("train/return", -3.0), ("train/episode", 1.0), ("train/updates", 0.0), ("time/wall_s", 0.5)]
        );
    }

    #[test]
    fn rows_of_an_older_narrower_file_are_padded_on_resume() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        let old_header = COLUMNS[..15].join(",");
        let old_row = "1,1000,0,12.5,,,,,,,,,3.250,,";
        std::fs::write(&path, format!("{old_header}\n{old_row}\n")).unwrap();
        let m = MetricsCsv::open(&path, 1).unwrap();
        assert_eq!(m.resumed_wall_s, 3.25);
        let text = std::fs::read_to_string(&path).unwrap();
        let widths: Vec<usize> = text.lines().map(|l| l.split(',').count()).collect();
        assert_eq!(widths, vec![COLUMNS.len(), COLUMNS.len()], "{text}");
    }
}
