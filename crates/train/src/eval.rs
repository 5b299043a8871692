//! `gradplan eval`: a trained run's world model, any planner, noise-free episodes.
//!
//! The run's resolved `config.toml` fixes the environment and the model; the planner is the
//! run's planner section with the chosen kind and `planner.*` overrides on top (the seed's
//! comparison of planners on one world model, Table 1). Each evaluation appends one row to
//! the run's `eval.csv`.

use crate::agent::{Agent, Decision, EpisodeOptions, EpisodeStats, FrameSink, ParallelEpisodes, Policy};
use crate::checkpoint::{self, Counters, ACTOR_FILE, MODEL_FILE, VALUE_FILE};
use crate::trainer::{derive_seed, obs_shape, read_run_config, Stream};
use crate::{Error, Result};
use gradplan_backend::DeviceSpec;
use gradplan_config::{EnvBackend, PlannerConfig, PlannerKind, RunConfig};
use gradplan_dreamer::Behavior;
use gradplan_env::{make_env, Env, Frame, ThreadEnv};
use gradplan_model::WorldModel;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::SystemTime;

/// Name of the evaluation table inside a run directory.
pub const EVAL_FILE: &str = "eval.csv";

/// The columns of `eval.csv`, in order.
pub const EVAL_COLUMNS: [&str; 12] = [
    "timestamp",
    "checkpoint_episode",
    "checkpoint_env_steps",
    "planner",
    "settings",
    "seed",
    "episodes",
    "return_mean",
    "return_std",
    "ms_per_decision",
    "predicted_return_mean",
    "device",
];

/// What to evaluate and how.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// The planner kind; `None` keeps the run's.
    pub planner: Option<PlannerKind>,
    /// `planner.key=value` settings applied over the run's planner section.
    pub overrides: Vec<String>,
    /// Episodes to play, at least 1.
    pub episodes: usize,
    /// Seeds every episode (environment, planner sampling): same seed, same episodes.
    pub seed: u64,
    /// `cpu`, `cuda` or `cuda:N`; `None` keeps the run's.
    pub device: Option<String>,
    /// libtorch threads (0: one per core); `None` keeps the run's.
    pub threads: Option<usize>,
    /// Environments stepping at once, each on its own thread, while one thread plans for
    /// each in turn (at least 1). The episodes are the same whatever the number; more than
    /// one needs the native backend or a toy task.
    pub envs: usize,
    /// Run the task on this backend instead of the run's (`native` and `dmc` play the same
    /// episodes).
    pub backend: Option<EnvBackend>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            planner: None,
            overrides: Vec::new(),
            episodes: 10,
            seed: 0,
            device: None,
            threads: None,
            envs: 1,
            backend: None,
        }
    }
}

/// The outcome of one evaluation (the row appended to `eval.csv`, and the episodes).
#[derive(Debug, Clone)]
pub struct EvalReport {
    pub task: String,
    /// The checkpoint whose model was evaluated, and its counters.
    pub checkpoint: PathBuf,
    pub counters: Counters,
    /// The planner as resolved for this evaluation.
    pub planner: PlannerConfig,
    /// Planner settings that differ from the run's, `k=v;k=v` (kind excluded).
    pub settings: String,
    pub seed: u64,
    pub episodes: Vec<EpisodeStats>,
    pub return_mean: f64,
    /// Population std of the returns.
    pub return_std: f64,
    /// Mean planning time per decision, over all decisions.
    pub ms_per_decision: f64,
    /// Mean predicted return R (eq. 3) of the chosen plans, over all decisions.
    pub predicted_return_mean: f64,
    /// The table the row was appended to.
    pub csv: PathBuf,
}

/// Receives every decision of an evaluation with its episode's index (`gradplan eval --trace`).
pub type DecisionSink<'a> = dyn FnMut(usize, &Decision) + 'a;

/// A run's model loaded with the planner to evaluate, and its environment.
pub struct Evaluator {
    run_dir: PathBuf,
    cfg: RunConfig,
    planner: PlannerConfig,
    settings: String,
    checkpoint: PathBuf,
    counters: Counters,
    device: String,
    env: Box<dyn Env>,
    /// `opts.envs` environments on their own threads when more than one.
    parallel: Vec<ThreadEnv>,
    agent: Agent,
    opts: EvalOptions,
}

impl Evaluator {
    /// Loads the run in `run_dir` (its configuration and latest checkpoint) and builds the
    /// planner. Settings are checked before anything is loaded.
    pub fn new(run_dir: &Path, opts: EvalOptions) -> Result<Evaluator> {
        let mut cfg = read_run_config(run_dir)?;
        if opts.episodes == 0 {
            return Err(invalid("episodes", "must be at least 1"));
        }
        if opts.envs == 0 {
            return Err(invalid("envs", "must be at least 1"));
        }
        let planner = cfg.planner.overridden(opts.planner, &opts.overrides)?;
        let mut settings = cfg.planner.differences(&planner)?;
        if let Some(backend) = opts.backend.filter(|b| *b != cfg.env.backend) {
            cfg.env.backend = backend;
            let note = format!("env.backend={backend}");
            settings = if settings.is_empty() { note } else { format!("{settings};{note}") };
        }
        if let Some(e) = gradplan_env::parallel_backend_error(&cfg.env, opts.envs) {
            return Err(e.into());
        }
        let no_actor = || Error::NoActor {
            planner: planner.kind.to_string(),
            what: format!("the run in {}", run_dir.display()),
            trained: cfg.planner.kind.to_string(),
        };
        if planner.kind.uses_policy() && !cfg.planner.kind.uses_policy() {
            return Err(no_actor());
        }
        let device_spec = opts.device.as_deref().unwrap_or(&cfg.device).parse::<DeviceSpec>()?;
        let run = load_run(run_dir, &cfg, device_spec, opts.threads)?;
        if cfg.planner.kind.uses_policy() && run.behavior.is_none() {
            return Err(no_actor());
        }
        // The checkpoint's fitted measure comes with its weights when it has one (the trace
        // reports u); a penalty without one is refused with how to fit it.
        let measure = planner.uncertainty_measure;
        let support = crate::ensemble::load(&run.checkpoint, &run.model, measure)?;
        if planner.uncertainty_penalty > 0.0 && support.is_none() {
            return Err(crate::ensemble::missing(&run.checkpoint, measure));
        }
        let agent =
            Agent::with_support(run.model, run.behavior, support, &planner, &cfg.dreamer, run.action_spec)?;
        let (checkpoint, counters, env) = (run.checkpoint, run.counters, run.env);
        let parallel = if opts.envs > 1 {
            ThreadEnv::spawn_many(&cfg.env, opts.envs.min(opts.episodes))?
        } else {
            Vec::new()
        };
        Ok(Evaluator {
            run_dir: run_dir.to_owned(),
            cfg,
            planner,
            settings,
            checkpoint,
            counters,
            device: device_spec.to_string(),
            env,
            parallel,
            agent,
            opts,
        })
    }

    /// The run's configuration (its planner section is the training planner's).
    pub fn run_config(&self) -> &RunConfig {
        &self.cfg
    }

    /// The planner being evaluated.
    pub fn planner(&self) -> &PlannerConfig {
        &self.planner
    }

    /// Planner settings that differ from the run's, `k=v;k=v`.
    pub fn settings(&self) -> &str {
        &self.settings
    }

    pub fn checkpoint(&self) -> &Path {
        &self.checkpoint
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Plays the episodes, calling `on_episode(index, stats)` after each and handing every
    /// frame the agent saw to `frames`, then appends the row to `eval.csv`.
    pub fn run(
        &mut self,
        on_episode: &mut dyn FnMut(usize, &EpisodeStats),
        frames: Option<&mut dyn FnMut(&Frame)>,
    ) -> Result<EvalReport> {
        self.run_traced(on_episode, frames, None)
    }

    /// [`Evaluator::run`], also handing every decision to `trace` with its episode's index.
    /// A trace needs the episodes one after another (`envs` 1).
    pub fn run_traced(
        &mut self,
        on_episode: &mut dyn FnMut(usize, &EpisodeStats),
        mut frames: Option<&mut dyn FnMut(&Frame)>,
        mut trace: Option<&mut DecisionSink>,
    ) -> Result<EvalReport> {
        if trace.is_some() && !self.parallel.is_empty() {
            return Err(invalid("envs", "a per-decision trace needs the episodes one after another: use 1"));
        }
        let episodes = if self.parallel.is_empty() {
            let mut episodes = Vec::with_capacity(self.opts.episodes);
            for i in 0..self.opts.episodes {
                let mut this_episode = trace.as_deref_mut().map(|t| move |d: &Decision| t(i, d));
                let opts = EpisodeOptions {
                    policy: Policy::Plan { noise: 0.0 },
                    seed: derive_seed(self.opts.seed, Stream::Eval, i as u64),
                    episode_steps: self.cfg.env.episode_steps,
                    replay: None,
                    frames: frames
                        .as_deref_mut()
                        .map(|push| FrameSink { render_size: self.cfg.env.image_size, push }),
                    label: "eval",
                    trace: this_episode.as_mut().map(|t| t as &mut dyn FnMut(&Decision)),
                };
                let stats = self.agent.run_episode(self.env.as_mut(), opts)?;
                on_episode(i, &stats);
                episodes.push(stats);
            }
            episodes
        } else {
            let episodes = ParallelEpisodes {
                seeds: (0..self.opts.episodes)
                    .map(|i| derive_seed(self.opts.seed, Stream::Eval, i as u64))
                    .collect(),
                noise: 0.0,
                episode_steps: self.cfg.env.episode_steps,
                frames: frames.map(|push| FrameSink { render_size: self.cfg.env.image_size, push }),
                label: "eval",
            };
            self.agent.run_episodes_parallel(&mut self.parallel, episodes, on_episode)?
        };
        let n = episodes.len() as f64;
        let return_mean = episodes.iter().map(|e| e.total_return).sum::<f64>() / n;
        let return_std =
            (episodes.iter().map(|e| (e.total_return - return_mean).powi(2)).sum::<f64>() / n).sqrt();
        let decisions = episodes.iter().map(|e| e.decisions).sum::<usize>().max(1) as f64;
        let per_decision = |f: fn(&EpisodeStats) -> Option<f64>| {
            episodes.iter().map(|e| f(e).unwrap_or(0.0) * e.decisions as f64).sum::<f64>() / decisions
        };
        let report = EvalReport {
            task: self.cfg.env.task.clone(),
            checkpoint: self.checkpoint.clone(),
            counters: self.counters,
            planner: self.planner.clone(),
            settings: self.settings.clone(),
            seed: self.opts.seed,
            ms_per_decision: per_decision(|e| e.plan_ms),
            predicted_return_mean: per_decision(|e| e.predicted_return),
            episodes,
            return_mean,
            return_std,
            csv: self.run_dir.join(EVAL_FILE),
        };
        append_row(&report.csv, &row(&report, &self.device, SystemTime::now()))?;
        Ok(report)
    }
}

/// A run's latest checkpoint loaded: its world model (and a Dreamer run's actor and value)
/// on the device, and a fresh environment of the run's task.
pub(crate) struct LoadedRun {
    pub checkpoint: PathBuf,
    pub counters: Counters,
    pub env: Box<dyn Env>,
    pub action_spec: gradplan_env::ActionSpec,
    pub model: Rc<WorldModel>,
    /// `Some` in Dreamer runs whose checkpoint holds the actor and value.
    pub behavior: Option<Rc<Behavior>>,
}

/// Loads the latest checkpoint of the run in `run_dir` (whose configuration is `cfg`) on
/// `device`, with `threads` libtorch threads (`None`: the run's). Shared by the evaluator
/// and the open-loop prediction of `gradplan report`.
pub(crate) fn load_run(
    run_dir: &Path,
    cfg: &RunConfig,
    device: DeviceSpec,
    threads: Option<usize>,
) -> Result<LoadedRun> {
    let device = device.resolve()?;
    gradplan_backend::set_threads(threads.unwrap_or(cfg.threads));
    let checkpoint = checkpoint::latest_noted(run_dir)?.ok_or_else(|| {
        Error::RunDir(format!(
            "{} has no checkpoint yet (a run writes one every train.checkpoint_interval = {} episodes); \
             continue it with `gradplan resume --run-dir {}`",
            run_dir.display(),
            cfg.train.checkpoint_interval,
            run_dir.display()
        ))
    })?;
    let counters = checkpoint::read_counters(&checkpoint)?;
    let env = make_env(&cfg.env)?;
    let action_spec = env.action_spec().clone();
    let mut model = WorldModel::new(&cfg.model, obs_shape(env.obs_spec()), action_spec.dim() as i64, device)?;
    model.load(&checkpoint.join(MODEL_FILE))?;
    // A Dreamer run's actor and value come along for every planner (only the policy
    // planners use them).
    let behavior = if cfg.planner.kind.uses_policy() && checkpoint.join(ACTOR_FILE).is_file() {
        let mut b = Behavior::for_model(&cfg.dreamer, &model)?;
        b.load(&checkpoint.join(ACTOR_FILE), &checkpoint.join(VALUE_FILE))?;
        Some(Rc::new(b))
    } else {
        None
    };
    Ok(LoadedRun { checkpoint, counters, env, action_spec, model: Rc::new(model), behavior })
}

/// Evaluates without callbacks: [`Evaluator::new`], then [`Evaluator::run`].
pub fn evaluate(run_dir: &Path, opts: EvalOptions) -> Result<EvalReport> {
    Evaluator::new(run_dir, opts)?.run(&mut |_, _| {}, None)
}

fn invalid(key: &str, reason: &str) -> Error {
    Error::Config(gradplan_config::Error::Invalid { key: key.into(), reason: reason.into() })
}

/// The report's cells, in [`EVAL_COLUMNS`] order.
fn row(r: &EvalReport, device: &str, now: SystemTime) -> Vec<String> {
    vec![
        utc_timestamp(now),
        r.counters.episodes.to_string(),
        r.counters.env_steps.to_string(),
        r.planner.kind.to_string(),
        r.settings.clone(),
        r.seed.to_string(),
        r.episodes.len().to_string(),
        format!("{:.6}", r.return_mean),
        format!("{:.6}", r.return_std),
        format!("{:.3}", r.ms_per_decision),
        format!("{:.6}", r.predicted_return_mean),
        device.to_owned(),
    ]
}

/// Quotes a CSV cell when it needs it (RFC 4180).
fn csv_cell(cell: &str) -> String {
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_owned()
    }
}

/// Appends one row to `path`, creating it with the header when missing. The whole table is
/// written to a temporary file and renamed over the old one, so a crash leaves either the
/// old table or the new one; the read and the rename happen under `<path>.lock`, so two
/// evaluations of one run never write over each other's row.
fn append_row(path: &Path, cells: &[String]) -> Result<()> {
    let mut lock_name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    lock_name.push(".lock");
    let lock_path = path.with_file_name(lock_name);
    let _lock = gradplan_fsio::Lock::acquire(&lock_path)
        .map_err(|source| Error::Io { path: lock_path.clone(), source })?;
    let header = EVAL_COLUMNS.join(",");
    let mut text = match std::fs::read_to_string(path) {
        Ok(old) if !old.trim().is_empty() => {
            if old.lines().next() != Some(header.as_str()) {
                return Err(Error::RunDir(format!(
                    "{} has other columns than `{header}`; move it aside and evaluate again",
                    path.display()
                )));
            }
            old
        }
        Ok(_) => String::new(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => return Err(Error::Io { path: path.to_owned(), source }),
    };
    if text.is_empty() {
        text = header + "\n";
    } else if !text.ends_with('\n') {
        text.push('\n');
    }
    text += &cells.iter().map(|c| csv_cell(c)).collect::<Vec<_>>().join(",");
    text.push('\n');
    checkpoint::write_atomic(path, text.as_bytes())
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC) for a point in time.
fn utc_timestamp(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Proleptic Gregorian date of a day count since 1970-01-01, counting in 400-year eras
/// (146 097 days each) of years that start on 1 March, so the leap day is the last day.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era, [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the March-based year, [0, 365]
    let mp = (5 * doy + 2) / 153; // month from March, [0, 11]
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_utc_dates() {
        let at = |s: u64| utc_timestamp(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(951_868_799), "2000-02-29T23:59:59Z");
        assert_eq!(at(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(at(4_107_542_400), "2100-03-01T00:00:00Z");
    }

    #[test]
    fn concurrent_appends_keep_every_row() {
        // Two `gradplan eval` on one run used to read the table, add a row and rename, each
        // over the other's: one row was lost.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(EVAL_FILE);
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let path = path.clone();
                std::thread::spawn(move || {
                    for i in 0..25 {
                        let cells: Vec<String> =
                            (0..EVAL_COLUMNS.len()).map(|c| format!("{w}-{i}-{c}")).collect();
                        append_row(&path, &cells).unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1 + 100, "{text}");
        assert_eq!(text.lines().filter(|l| *l == EVAL_COLUMNS.join(",")).count(), 1);
    }

    #[test]
    fn rows_are_appended_atomically_under_one_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(EVAL_FILE);
        let cells: Vec<String> = (0..EVAL_COLUMNS.len()).map(|i| i.to_string()).collect();
        append_row(&path, &cells).unwrap();
        let mut quoted = cells.clone();
        quoted[4] = "a,\"b\"".into();
        append_row(&path, &quoted).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0], EVAL_COLUMNS.join(","));
        assert_eq!(lines[1], cells.join(","));
        assert!(lines[2].contains(",\"a,\"\"b\"\"\","), "{text}");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "temporary file left behind: {names:?}"); // the table and its lock
        std::fs::write(&path, "something,else\n").unwrap();
        let err = append_row(&path, &cells).unwrap_err().to_string();
        assert!(err.contains("other columns"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "something,else\n");
    }
}
