//! What a job leaves behind (one JSON per evaluation, one when the job is complete), and
//! the tables and plots made from a directory of them.

use crate::paper;
use crate::protocol::{BenchPlanner, Collector, Job, Protocol, Scale, Table};
use crate::{write_atomic, Error, Result};
use gradplan_report::{Band, Figure, LineStyle, Point, Series};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Folder inside a run directory where the harness keeps its own files.
pub const HARNESS_DIR: &str = "harness";

/// The evaluation of one final model with one planner (`harness/eval-<planner>.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    pub job: String,
    pub task: String,
    /// Who collected the model's data (`cem`, `cem-then-grad-mpc`).
    pub trained_with: Collector,
    pub planner: BenchPlanner,
    /// Optimisation iterations I the planner ran with.
    #[serde(default)]
    pub iterations: usize,
    pub seed: u64,
    pub eval_seed: u64,
    /// The return of every test episode, in order.
    pub returns: Vec<f64>,
    pub return_mean: f64,
    /// Population std of `returns`.
    pub return_std: f64,
    pub ms_per_decision: f64,
    pub predicted_return_mean: f64,
    /// Env steps the evaluated model was trained for.
    pub checkpoint_env_steps: usize,
    pub device: String,
    pub wall_s: f64,
}

/// A job that finished training and every evaluation (`harness/done.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobDone {
    pub job: String,
    pub env_steps: usize,
    /// Training wall time over all invocations (the run's metrics.csv clock).
    pub train_wall_s: f64,
    /// Wall time of this job's evaluations.
    pub eval_wall_s: f64,
    pub device: String,
    /// Unix seconds when it completed.
    pub finished_at: u64,
}

pub fn eval_path(run_dir: &Path, planner: BenchPlanner) -> PathBuf {
    run_dir.join(HARNESS_DIR).join(format!("eval-{}.json", planner.name()))
}

pub fn done_path(run_dir: &Path) -> PathBuf {
    run_dir.join(HARNESS_DIR).join("done.json")
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
            Error::Corrupt(format!(
                "{} is not a harness record ({e}); delete it to redo that step",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io { path: path.to_owned(), source }),
    }
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Corrupt(e.to_string()))?;
    write_atomic(path, text.as_bytes())
}

pub fn read_eval(run_dir: &Path, planner: BenchPlanner) -> Result<Option<EvalRecord>> {
    read_json(&eval_path(run_dir, planner))
}

pub fn read_done(run_dir: &Path) -> Result<Option<JobDone>> {
    read_json(&done_path(run_dir))
}

/// Whether `job` has nothing left to do in `run_dir`: it was marked done *and* every one of
/// its evaluation planners has a record (a later invocation may ask for more planners than
/// the one that marked it done).
pub fn is_complete(run_dir: &Path, job: &Job) -> Result<bool> {
    if read_done(run_dir)?.is_none() {
        return Ok(false);
    }
    for &p in &job.eval_planners {
        if read_eval(run_dir, p)?.is_none() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Mean and population std of a pool of returns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub mean: f64,
    pub std: f64,
    /// Episodes pooled.
    pub n: usize,
    /// Seeds they came from.
    pub seeds: usize,
}

impl Summary {
    pub fn of(records: &[&EvalRecord]) -> Option<Summary> {
        let all: Vec<f64> = records.iter().flat_map(|r| r.returns.iter().copied()).collect();
        if all.is_empty() {
            return None;
        }
        let n = all.len() as f64;
        let mean = all.iter().sum::<f64>() / n;
        let std = (all.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n).sqrt();
        Some(Summary { mean, std, n: all.len(), seeds: records.len() })
    }
}

/// One planner against a reference planner on the same world models and the same test
/// episodes (the harness evaluates every planner of a model at one evaluation seed, so episode
/// k of model s starts from the same state for all of them).
///
/// Δ_{s,k} = R_{s,k}(planner) − R_{s,k}(reference). The model, not the episode, is the unit
/// of the interval: episodes of one model share its errors, so the 95% interval is Student's
/// t over the per-model mean differences d_s = mean_k Δ_{s,k} (none with one model).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Paired {
    /// Models with both evaluations on the same episodes.
    pub models: usize,
    /// Episodes paired, over those models.
    pub episodes: usize,
    /// Mean of Δ over every paired episode (each model weighs by its episodes).
    pub mean_diff: f64,
    /// Half-width of the 95% interval of the mean per-model difference; `None` below 2 models.
    pub ci95: Option<f64>,
    /// Models whose mean difference d_s is above / below zero.
    pub models_ahead: usize,
    pub models_behind: usize,
    /// Episodes with Δ above, equal to (|Δ| < 1e-9, e.g. both 0) and below zero.
    pub episodes_ahead: usize,
    pub episodes_level: usize,
    pub episodes_behind: usize,
}

impl Paired {
    /// Pairs `planner`'s records with `reference`'s of the same seed, evaluation seed and
    /// episode count; records without such a partner are left out. `None` when nothing pairs.
    pub fn of(reference: &[&EvalRecord], planner: &[&EvalRecord]) -> Option<Paired> {
        let mut per_model = Vec::new();
        let mut diffs = Vec::new();
        for p in planner {
            let Some(r) = reference.iter().find(|r| {
                r.seed == p.seed && r.eval_seed == p.eval_seed && r.returns.len() == p.returns.len()
            }) else {
                continue;
            };
            if p.returns.is_empty() {
                continue;
            }
            let d: Vec<f64> = p.returns.iter().zip(&r.returns).map(|(a, b)| a - b).collect();
            per_model.push(d.iter().sum::<f64>() / d.len() as f64);
            diffs.extend(d);
        }
        if per_model.is_empty() {
            return None;
        }
        let m = per_model.len();
        let ci95 = (m >= 2).then(|| {
            let mean = per_model.iter().sum::<f64>() / m as f64;
            let var = per_model.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (m - 1) as f64;
            student_t975(m - 1) * (var / m as f64).sqrt()
        });
        const LEVEL: f64 = 1e-9;
        Some(Paired {
            models: m,
            episodes: diffs.len(),
            mean_diff: diffs.iter().sum::<f64>() / diffs.len() as f64,
            ci95,
            models_ahead: per_model.iter().filter(|&&d| d > LEVEL).count(),
            models_behind: per_model.iter().filter(|&&d| d < -LEVEL).count(),
            episodes_ahead: diffs.iter().filter(|&&d| d > LEVEL).count(),
            episodes_level: diffs.iter().filter(|&&d| d.abs() <= LEVEL).count(),
            episodes_behind: diffs.iter().filter(|&&d| d < -LEVEL).count(),
        })
    }
}

/// The 97.5% quantile of Student's t with `df` degrees of freedom (two-sided 95%): the
/// tabulated values up to 30, the Cornish–Fisher expansion around the normal beyond.
pub fn student_t975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042,
    ];
    assert!(df >= 1, "Student's t needs at least one degree of freedom");
    if df <= TABLE.len() {
        return TABLE[df - 1];
    }
    let z: f64 = 1.959_964;
    let n = df as f64;
    z + (z.powi(3) + z) / (4.0 * n) + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * n * n)
}

/// Every record of the protocol's jobs found under `out`.
#[derive(Debug, Default)]
pub struct Collected {
    pub evals: Vec<EvalRecord>,
    pub done: BTreeMap<String, JobDone>,
}

impl Collected {
    pub fn read(out: &Path, jobs: &[Job]) -> Result<Collected> {
        let mut c = Collected::default();
        for job in jobs {
            let dir = out.join(&job.run_dir);
            for &p in &job.eval_planners {
                if let Some(r) = read_eval(&dir, p)? {
                    c.evals.push(r);
                }
            }
            if let Some(d) = read_done(&dir)? {
                c.done.insert(job.id.clone(), d);
            }
        }
        Ok(c)
    }

    /// Records of `task`, trained with `trained`, evaluated with `planner`, one per seed.
    pub fn cell(&self, task: &str, trained: Collector, planner: BenchPlanner) -> Vec<&EvalRecord> {
        self.evals
            .iter()
            .filter(|r| r.task == task && r.trained_with == trained && r.planner == planner)
            .collect()
    }
}

/// The `results.csv` header; one row per (task, trained with, planner, seed).
pub const RESULTS_COLUMNS: [&str; 13] = [
    "table",
    "scale",
    "task",
    "trained_with",
    "planner",
    "seed",
    "eval_seed",
    "episodes",
    "return_mean",
    "return_std",
    "ms_per_decision",
    "checkpoint_env_steps",
    "returns",
];

pub fn results_csv(protocol: &Protocol, c: &Collected) -> String {
    let mut s = RESULTS_COLUMNS.join(",") + "\n";
    for r in &c.evals {
        let returns: Vec<String> = r.returns.iter().map(|x| format!("{x:.3}")).collect();
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{:.3},{:.3},{:.3},{},{}",
            protocol.table.number(),
            protocol.scale,
            r.task,
            r.trained_with,
            r.planner,
            r.seed,
            r.eval_seed,
            r.returns.len(),
            r.return_mean,
            r.return_std,
            r.ms_per_decision,
            r.checkpoint_env_steps,
            returns.join(" ")
        );
    }
    s
}

/// Seconds as `42 s`, `12.5 min` or `3.2 h`.
pub fn duration(secs: f64) -> String {
    if secs < 120.0 {
        format!("{secs:.0} s")
    } else if secs < 7200.0 {
        format!("{:.1} min", secs / 60.0)
    } else {
        format!("{:.1} h", secs / 3600.0)
    }
}

fn cell(s: Option<Summary>) -> String {
    match s {
        Some(s) => format!("{:.1} ± {:.1}", s.mean, s.std),
        None => "—".into(),
    }
}

fn published(p: Option<paper::Published>) -> String {
    p.map_or("—".into(), |p| format!("{:.1} ± {:.1}", p.mean, p.std))
}

/// How a model's training is named: the planner it collected with, or Dreamer for the
/// actor-trained runs.
/// Where the results came from, for the header of `results.md`.
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    /// The command line that produces (or completes) this directory.
    pub command: String,
    /// CPU model and core count, and the GPU when one was used.
    pub machine: String,
    /// ISO date of this aggregation.
    pub date: String,
}

/// `results.md`: ours beside the published numbers, then every planner on the same models.
pub fn results_md(protocol: &Protocol, jobs: &[Job], c: &Collected, prov: &Provenance) -> String {
    let budget = protocol.budget();
    let mut s = String::new();
    let title = match protocol.table {
        Table::One => "Table 1 — DMC 100k from pixels",
        Table::Two => "Table 2 — sparse tasks, Dreamer, pure policy vs Policy+Grad-MPC",
    };
    let _ = writeln!(s, "# {title} (scale: {})\n", protocol.scale);
    if protocol.scale != Scale::Paper {
        let _ = writeln!(
            s,
            "**Scale `{}`: every budget is shrunk (preset `{}`{}, {} env steps per run). These numbers test the \
             pipeline; they are not comparable with the paper's.**\n",
            protocol.scale,
            budget.preset,
            if matches!(protocol.scale, Scale::Cpu | Scale::State) { ", state observations instead of pixels" } else { "" },
            budget.total_env_steps
        );
    }
    if !protocol.train_settings.is_empty() {
        let _ = writeln!(
            s,
            "**Every model here was trained with `{}` over the protocol's settings.**\n",
            protocol.train_settings.join("`, `")
        );
    }
    let complete = jobs.iter().filter(|j| c.done.contains_key(&j.id)).count();
    let train_wall: f64 = c.done.values().map(|d| d.train_wall_s).sum();
    let eval_wall: f64 = c.done.values().map(|d| d.eval_wall_s).sum();
    let _ = writeln!(s, "- Produced by: `{}`", prov.command);
    let _ = writeln!(s, "- Date: {}; machine: {}; device: {}", prov.date, prov.machine, protocol.device);
    let _ = writeln!(
        s,
        "- Protocol: preset `{}`{}, {} env steps per run (action repeat per task, the paper's Table 4), {} test \
         episodes per seed and planner, seeds {:?}",
        budget.preset,
        if budget.overrides.is_empty() { String::new() } else { format!(" with {}", budget.overrides.join(", ")) },
        budget.total_env_steps,
        budget.eval_episodes,
        protocol.seeds
    );
    let _ = writeln!(
        s,
        "- Jobs complete: {complete} of {}; wall time summed over runs: training {}, evaluation {}",
        jobs.len(),
        duration(train_wall),
        duration(eval_wall)
    );
    let _ = writeln!(
        s,
        "- Ours: mean ± std over every test episode of every seed (n = episodes × seeds, pooled); † the \
         paper's published numbers. A blank (—) is a run not done, never a guess.\n"
    );
    match protocol.table {
        Table::One => {
            // The paper's column is Algorithm 1 collecting the data and planning; a protocol
            // that trains only with the robust flavour shows that one, named in the header.
            let grad = [BenchPlanner::GRAD_MPC_PAPER, BenchPlanner::GRAD_MPC]
                .into_iter()
                .find(|&p| protocol.train_planners.contains(&p.into()))
                .unwrap_or(BenchPlanner::GRAD_MPC_PAPER);
            let flavour = if grad == BenchPlanner::GRAD_MPC { " (ours: robust)" } else { " (ours)" };
            let _ = writeln!(
                s,
                "| Task | SAC† | CURL† | PlaNet† | Dreamer† | Grad-MPC† | PlaNet (ours: CEM) | Grad-MPC{flavour} | n |"
            );
            let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
            for task in &protocol.tasks {
                let ours_cem = Summary::of(&c.cell(task, BenchPlanner::CEM.into(), BenchPlanner::CEM));
                let ours_grad = Summary::of(&c.cell(task, grad.into(), grad));
                let pubs: Vec<String> =
                    paper::TABLE1_METHODS.iter().map(|m| published(paper::table1(task, m))).collect();
                let n = [ours_cem, ours_grad].iter().flatten().map(|s| s.n).max().unwrap_or(0);
                let _ = writeln!(
                    s,
                    "| {task} | {} | {} | {} |",
                    pubs.join(" | "),
                    [cell(ours_cem), cell(ours_grad)].join(" | "),
                    n
                );
            }
            let _ = writeln!(
                s,
                "\n## Every planner on the same world models\n\nEach final model evaluated with every planner, the \
                 same evaluation seeds for all (the comparison the paper does not make). Rows: the planner the \
                 model was trained with.\n"
            );
            planner_matrix(&mut s, protocol, c);
        }
        Table::Two => {
            let _ = writeln!(s, "| Task | Pure policy† | Policy+Grad-MPC† | Pure policy (ours) | Policy+Grad-MPC (ours) | n |");
            let _ = writeln!(s, "|---|---|---|---|---|---|");
            for task in &protocol.tasks {
                let ours: Vec<Option<Summary>> = [BenchPlanner::POLICY, BenchPlanner::POLICY_GRAD_MPC]
                    .iter()
                    .map(|p| Summary::of(&c.cell(task, BenchPlanner::POLICY.into(), *p)))
                    .collect();
                let pubs: Vec<String> =
                    paper::TABLE2_METHODS.iter().map(|m| published(paper::table2(task, m))).collect();
                let n = ours.iter().flatten().map(|s| s.n).max().unwrap_or(0);
                let _ = writeln!(
                    s,
                    "| {task} | {} | {} | {n} |",
                    pubs.join(" | "),
                    ours.iter().map(|o| cell(*o)).collect::<Vec<_>>().join(" | ")
                );
            }
            let _ = writeln!(s, "\n## Every evaluation planner\n");
            planner_matrix(&mut s, protocol, c);
        }
    }
    let _ = writeln!(
        s,
        "\nPer-seed rows with every episode's return: `results.csv`. Learning curves (test return vs env steps, \
         mean and a ±std band over seeds): `plots/<task>.png` and `.svg`. Each run's own report: \
         `<table>/<task>/<planner>/seed<k>/report/`."
    );
    s
}

fn planner_matrix(s: &mut String, protocol: &Protocol, c: &Collected) {
    let heads: Vec<String> = protocol
        .eval_planners
        .iter()
        .map(|&p| {
            // The pure policy does not iterate, whatever a preset's I says.
            let own = protocol.scale.eval_iterations(p);
            let i = c.evals.iter().find(|r| r.planner == p).map_or(own, |r| r.iterations);
            match (own, i) {
                (0, _) | (_, 0) => p.title().to_owned(),
                (_, i) => format!("{} (I {i})", p.title()),
            }
        })
        .collect();
    let _ = writeln!(s, "| Task | trained with | {} |", heads.join(" | "));
    let _ = writeln!(s, "|---|---|{}", "---|".repeat(heads.len()));
    for task in &protocol.tasks {
        for &trained in &protocol.train_planners {
            let cells: Vec<String> = protocol
                .eval_planners
                .iter()
                .map(|&p| {
                    let recs = c.cell(task, trained, p);
                    match Summary::of(&recs) {
                        Some(sum) => {
                            let ms = recs.iter().map(|r| r.ms_per_decision).sum::<f64>() / recs.len() as f64;
                            format!("{} ({:.0} ms)", cell(Some(sum)), ms)
                        }
                        None => "—".into(),
                    }
                })
                .collect();
            let _ = writeln!(s, "| {task} | {} | {} |", trained.title(), cells.join(" | "));
        }
    }
    let _ = writeln!(s, "\n(ms): mean planning time per decision on the evaluation device.");
    paired_section(s, protocol, c);
}

/// Every evaluation planner against one reference (CEM when it was evaluated, else the first
/// evaluation planner), episode by episode on the same models; nothing when no pair exists.
fn paired_section(s: &mut String, protocol: &Protocol, c: &Collected) {
    let Some(&reference) =
        protocol.eval_planners.iter().find(|&&p| p == BenchPlanner::CEM).or(protocol.eval_planners.first())
    else {
        return;
    };
    let mut rows = Vec::new();
    let mut tally: Vec<Pooled> = (protocol.eval_planners.iter().filter(|&&p| p != reference))
        .map(|&planner| Pooled { planner, ahead: 0, behind: 0, rows: 0 })
        .collect();
    for task in &protocol.tasks {
        for &trained in &protocol.train_planners {
            let base = c.cell(task, trained, reference);
            for t in tally.iter_mut() {
                let p = t.planner;
                if let Some(d) = Paired::of(&base, &c.cell(task, trained, p)) {
                    t.ahead += d.models_ahead;
                    t.behind += d.models_behind;
                    t.rows += 1;
                    let ci = d.ci95.map_or("—".into(), |h| {
                        format!("[{:+.1}, {:+.1}]", d.mean_diff - h, d.mean_diff + h)
                    });
                    rows.push(format!(
                        "| {task} | {} | {} | {:+.1} | {ci} | {} / {} of {} | {} / {} / {} |",
                        trained.title(),
                        p.title(),
                        d.mean_diff,
                        d.models_ahead,
                        d.models_behind,
                        d.models,
                        d.episodes_ahead,
                        d.episodes_level,
                        d.episodes_behind
                    ));
                }
            }
        }
    }
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "\n## Paired against {ref_title}, episode by episode\n\nΔ = a planner's return minus {ref_title}'s on the same \
         model and the same test episode (same evaluation seed, same start). Mean Δ over the paired episodes; \
         95% interval: Student's t over the per-model mean differences (the model is the unit; none with one \
         model); models ahead / behind; episodes ahead / level / behind.\n",
        ref_title = reference.title()
    );
    let _ = writeln!(s, "| Task | trained with | planner | mean Δ | 95% interval | models ahead / behind | episodes ahead / level / behind |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for row in rows {
        let _ = writeln!(s, "{row}");
    }
    // Over every row, counted by model: scale-free, so tasks with other return scales pool.
    let pooled: Vec<Pooled> = tally.into_iter().filter(|t| t.rows > 1).collect();
    if !pooled.is_empty() {
        let _ = writeln!(s);
        for Pooled { planner: p, ahead, behind, .. } in pooled {
            let _ = writeln!(
                s,
                "- {} over every row: ahead of {} on {ahead} model{}, behind on {behind}; two-sided sign test p = \
                 {:.2} (level models left out).",
                p.title(),
                reference.title(),
                if ahead == 1 { "" } else { "s" },
                sign_test_p(ahead, behind)
            );
        }
    }
}

/// One planner's models ahead of and behind the reference, over every paired row.
struct Pooled {
    planner: BenchPlanner,
    ahead: usize,
    behind: usize,
    /// Rows (task × trained with) pooled.
    rows: usize,
}

/// Two-sided sign test: the probability, with ahead and behind equally likely, of a split
/// at least as uneven as `ahead` against `behind` (ties already left out).
pub fn sign_test_p(ahead: usize, behind: usize) -> f64 {
    let n = ahead + behind;
    let k = ahead.max(behind);
    // Σ_{i=k}^{n} C(n, i) / 2^n, with C computed in floating point (n is a few dozen models).
    let mut c = 1.0f64; // C(n, 0)
    let mut tail = 0.0;
    for i in 0..=n {
        if i >= k {
            tail += c;
        }
        c = c * (n - i) as f64 / (i + 1) as f64;
    }
    (2.0 * tail / 2f64.powi(n as i32)).min(1.0)
}

/// Test-return curve of one run: `(env_steps, test_return_mean)` from its metrics.csv.
pub fn test_curve(run_dir: &Path) -> Result<Vec<(f64, f64)>> {
    let path = run_dir.join("metrics.csv");
    if !path.exists() {
        return Ok(Vec::new());
    }
    let table = gradplan_report::Table::read(&path).map_err(|e| Error::Report(e.to_string()))?;
    let (Some(x), Some(y)) = (table.column("env_steps"), table.column("test_return_mean")) else {
        return Ok(Vec::new());
    };
    Ok(x.into_iter().zip(y).filter_map(|(x, y)| Some((x?, y?))).collect())
}

/// A run's training wall time over every invocation (metrics.csv's last `wall_s`; 0 if none).
pub fn last_wall_s(run_dir: &Path) -> f64 {
    gradplan_report::Table::read(&run_dir.join("metrics.csv"))
        .ok()
        .and_then(|t| t.column("wall_s"))
        .and_then(|c| c.into_iter().flatten().last())
        .unwrap_or(0.0)
}

/// Mean and ±std band over seeds at each env-step count where at least one seed tested.
pub fn mean_band(curves: &[Vec<(f64, f64)>]) -> (Vec<Point>, Vec<Band>) {
    let mut at: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for curve in curves {
        for &(x, y) in curve {
            at.entry(x.round() as i64).or_default().push(y);
        }
    }
    let mut points = Vec::new();
    let mut band = Vec::new();
    for (x, ys) in at {
        let n = ys.len() as f64;
        let mean = ys.iter().sum::<f64>() / n;
        let std = (ys.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / n).sqrt();
        points.push(Point { x: x as f64, y: mean });
        if ys.len() > 1 {
            band.push(Band { x: x as f64, low: mean - std, high: mean + std });
        }
    }
    (points, band)
}

/// `plots/<task>.{png,svg}`: test return vs env steps per training planner, mean and a ±std
/// band over seeds; at the paper's scale, the paper's numbers at 100k as dashed lines.
pub fn plot_tasks(out: &Path, protocol: &Protocol, jobs: &[Job]) -> Result<Vec<PathBuf>> {
    let dir = out.join("plots");
    std::fs::create_dir_all(&dir).map_err(|source| Error::Io { path: dir.clone(), source })?;
    let mut written = Vec::new();
    for task in &protocol.tasks {
        let mut series = Vec::new();
        for &planner in &protocol.train_planners {
            let curves: Vec<Vec<(f64, f64)>> = jobs
                .iter()
                .filter(|j| &j.task == task && j.trained_with == planner)
                .map(|j| test_curve(&out.join(&j.run_dir)))
                .collect::<Result<_>>()?;
            let seeds = curves.iter().filter(|c| !c.is_empty()).count();
            let (points, band) = mean_band(&curves);
            series.push(Series {
                label: format!("{} ({seeds} seeds)", planner.title()),
                points,
                band,
                style: LineStyle::Solid,
            });
        }
        if protocol.scale == Scale::Paper && protocol.table == Table::One {
            let end = protocol.budget().total_env_steps as f64;
            for (method, label) in
                [("PlaNet", "PlaNet (paper, 100k)"), ("Grad-MPC", "Grad-MPC (paper, 100k)")]
            {
                if let Some(p) = paper::table1(task, method) {
                    series.push(Series {
                        label: label.into(),
                        points: vec![Point { x: 0.0, y: p.mean }, Point { x: end, y: p.mean }],
                        band: Vec::new(),
                        style: LineStyle::Dashed,
                    });
                }
            }
        }
        let fig = Figure {
            title: format!("{task} — test return (scale {})", protocol.scale),
            x_label: "env steps".into(),
            y_label: "test return".into(),
            series,
        };
        let stem = dir.join(task);
        written.extend(gradplan_report::save_figure(&fig, &stem).map_err(|e| Error::Report(e.to_string()))?);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(
        task: &str,
        trained: impl Into<Collector>,
        planner: BenchPlanner,
        seed: u64,
        returns: Vec<f64>,
    ) -> EvalRecord {
        let trained = trained.into();
        EvalRecord {
            job: format!("t1-{task}-{trained}-s{seed}"),
            task: task.into(),
            trained_with: trained,
            planner,
            iterations: Scale::Debug.eval_iterations(planner),
            seed,
            eval_seed: 1_000_000 + seed,
            return_mean: returns.iter().sum::<f64>() / returns.len() as f64,
            return_std: 0.0,
            returns,
            ms_per_decision: 2.0,
            predicted_return_mean: 1.0,
            checkpoint_env_steps: 800,
            device: "cpu".into(),
            wall_s: 1.0,
        }
    }

    #[test]
    fn pooled_summary_is_over_every_episode_of_every_seed() {
        let a = record("cartpole-swingup", BenchPlanner::CEM, BenchPlanner::CEM, 0, vec![1.0, 3.0]);
        let b = record("cartpole-swingup", BenchPlanner::CEM, BenchPlanner::CEM, 1, vec![5.0, 7.0]);
        let s = Summary::of(&[&a, &b]).unwrap();
        assert_eq!((s.n, s.seeds), (4, 2));
        assert!((s.mean - 4.0).abs() < 1e-12);
        assert!((s.std - 5.0f64.sqrt()).abs() < 1e-12);
        assert!(Summary::of(&[]).is_none());
    }

    #[test]
    fn markdown_puts_ours_beside_the_paper_and_leaves_blanks() {
        let protocol = Protocol::new(
            Table::One,
            Scale::Debug,
            vec!["cartpole-swingup".into(), "reacher-easy".into()],
            vec![0],
            vec![],
            vec![],
        )
        .unwrap();
        let jobs = protocol.jobs();
        let c = Collected {
            evals: vec![record(
                "cartpole-swingup",
                BenchPlanner::GRAD_MPC_PAPER,
                BenchPlanner::GRAD_MPC_PAPER,
                0,
                vec![10.0, 20.0],
            )],
            done: BTreeMap::new(),
        };
        let md = results_md(&protocol, &jobs, &c, &Provenance::default());
        assert!(md.contains("scale: debug"));
        assert!(md.contains("not comparable"));
        let row = md.lines().find(|l| l.starts_with("| cartpole-swingup | 419.0 ± 40.0")).unwrap();
        assert!(row.contains("470.0 ± 55.0 | — | 15.0 ± 5.0 | 2 |"), "{row}");
        let reacher = md.lines().find(|l| l.starts_with("| reacher-easy | 145.0")).unwrap();
        assert!(reacher.contains("| — | — | 0 |"), "{reacher}");
        // Rows: trained with; columns: every model-only planner, both Grad-MPC flavours.
        assert!(md.contains("| cartpole-swingup | Grad-MPC paper | — | — | 15.0 ± 5.0 (2 ms) |"), "{md}");
        assert!(md.contains("| CEM (I 10) | Grad-MPC robust (I 2) | Grad-MPC paper (I 10) |"), "{md}");
        assert!(md.contains("| PlaNet (ours: CEM) | Grad-MPC (ours) | n |"), "{md}");
        // Trained with the robust flavour only: the headline shows it, and says so.
        let robust = Protocol::new(
            Table::One,
            Scale::State,
            vec!["cartpole-swingup".into()],
            vec![0],
            vec![BenchPlanner::CEM.into(), BenchPlanner::GRAD_MPC.into()],
            vec![BenchPlanner::GRAD_MPC],
        )
        .unwrap();
        let rc = Collected {
            evals: vec![record(
                "cartpole-swingup",
                BenchPlanner::GRAD_MPC,
                BenchPlanner::GRAD_MPC,
                0,
                vec![30.0],
            )],
            done: BTreeMap::new(),
        };
        let md = results_md(&robust, &robust.jobs(), &rc, &Provenance::default());
        assert!(md.contains("| Grad-MPC (ours: robust) | n |"), "{md}");
        assert!(md.contains("| — | 30.0 ± 0.0 | 1 |"), "{md}");
        let csv = results_csv(&protocol, &c);
        assert_eq!(csv.lines().count(), 2);
        assert!(csv.lines().nth(1).unwrap().ends_with(",800,10.000 20.000"));
    }

    #[test]
    fn a_job_asked_for_another_planner_is_not_complete() {
        let dir = tempfile::tempdir().unwrap();
        let protocol = Protocol::new(
            Table::One,
            Scale::Debug,
            vec!["cartpole-swingup".into()],
            vec![0],
            vec![],
            vec![BenchPlanner::CEM],
        )
        .unwrap();
        let job = &protocol.jobs()[0];
        assert!(!is_complete(dir.path(), job).unwrap());
        let done = JobDone {
            job: job.id.clone(),
            env_steps: 800,
            train_wall_s: 1.0,
            eval_wall_s: 1.0,
            device: "cpu".into(),
            finished_at: 0,
        };
        write_json(&done_path(dir.path()), &done).unwrap();
        assert!(!is_complete(dir.path(), job).unwrap(), "done.json alone is not enough");
        let rec = record("cartpole-swingup", job.trained_with, BenchPlanner::CEM, 0, vec![1.0]);
        write_json(&eval_path(dir.path(), BenchPlanner::CEM), &rec).unwrap();
        assert!(is_complete(dir.path(), job).unwrap());
        let mut more = job.clone();
        more.eval_planners.push(BenchPlanner::of(gradplan_config::PlannerKind::Mppi));
        assert!(!is_complete(dir.path(), &more).unwrap());
        std::fs::write(done_path(dir.path()), "{ not json").unwrap();
        assert!(is_complete(dir.path(), job).unwrap_err().to_string().contains("delete it"));
    }

    #[test]
    fn paired_differences_are_per_episode_with_the_model_as_the_unit() {
        let t = "cartpole-swingup";
        let cem = BenchPlanner::CEM;
        let grad = BenchPlanner::GRAD_MPC;
        let refs = [
            record(t, cem, cem, 0, vec![1.0, 2.0]),
            record(t, cem, cem, 1, vec![0.0, 5.0]),
            record(t, cem, cem, 2, vec![4.0]),
        ];
        // Seed 0: Δ +2, +2; seed 1: Δ 0, −1; seed 2: another evaluation seed, left out; seed 3: no reference.
        let mut odd = record(t, cem, grad, 2, vec![9.0]);
        odd.eval_seed += 1;
        let ours = [
            record(t, cem, grad, 0, vec![3.0, 4.0]),
            record(t, cem, grad, 1, vec![0.0, 4.0]),
            odd,
            record(t, cem, grad, 3, vec![7.0]),
        ];
        let d = Paired::of(&refs.iter().collect::<Vec<_>>(), &ours.iter().collect::<Vec<_>>()).unwrap();
        assert_eq!((d.models, d.episodes), (2, 4));
        assert!((d.mean_diff - 0.75).abs() < 1e-12);
        assert_eq!((d.models_ahead, d.models_behind), (1, 1));
        assert_eq!((d.episodes_ahead, d.episodes_level, d.episodes_behind), (2, 1, 1));
        // d_s = [2.0, -0.5]: sample std 1.7678, standard error 1.25, t(1) 12.706.
        let h = d.ci95.unwrap();
        assert!((h - 12.706 * 1.25).abs() < 1e-9, "{h}");
        let one = Paired::of(&[&refs[0]], &[&ours[0]]).unwrap();
        assert_eq!(one.ci95, None);
        assert!(Paired::of(&[&refs[2]], &[&ours[3]]).is_none());

        // results.md: one row per (task, trained with, planner other than CEM) that pairs.
        let protocol = Protocol::new(
            Table::One,
            Scale::State,
            vec![t.into()],
            vec![0, 1],
            vec![cem.into()],
            vec![cem, grad],
        )
        .unwrap();
        let c =
            Collected { evals: refs[..2].iter().chain(&ours[..2]).cloned().collect(), done: BTreeMap::new() };
        let md = results_md(&protocol, &protocol.jobs(), &c, &Provenance::default());
        assert!(md.contains("## Paired against CEM, episode by episode"), "{md}");
        assert!(
            md.contains("| cartpole-swingup | CEM | Grad-MPC robust | +0.8 | [-15.1, +16.6] | 1 / 1 of 2 | 2 / 1 / 1 |"),
            "{md}"
        );
        assert!(!md.contains("over every row"), "one row pools nothing: {md}");
        let alone = Collected { evals: refs[..2].to_vec(), done: BTreeMap::new() };
        assert!(!results_md(&protocol, &protocol.jobs(), &alone, &Provenance::default()).contains("Paired"));

        // Two rows (models trained by either planner) pool their models: 1 + 2 ahead, 1 behind.
        let both = Protocol::new(
            Table::One,
            Scale::State,
            vec![t.into()],
            vec![0, 1],
            vec![cem.into(), grad.into()],
            vec![cem, grad],
        )
        .unwrap();
        let mut evals: Vec<EvalRecord> = refs[..2].iter().chain(&ours[..2]).cloned().collect();
        evals.push(record(t, grad, cem, 0, vec![1.0]));
        evals.push(record(t, grad, cem, 1, vec![1.0]));
        evals.push(record(t, grad, grad, 0, vec![2.0]));
        evals.push(record(t, grad, grad, 1, vec![3.0]));
        let md = results_md(
            &both,
            &both.jobs(),
            &Collected { evals, done: BTreeMap::new() },
            &Provenance::default(),
        );
        let p = 2.0 * 5.0 / 16.0; // 3 of 4: 2 · (C(4,3) + C(4,4)) / 2^4
        let line = format!(
            "- Grad-MPC robust over every row: ahead of CEM on 3 models, behind on 1; two-sided sign test p = {p:.2}"
        );
        assert!(md.contains(&line), "{md}");
    }

    #[test]
    fn sign_test_matches_the_binomial_tail() {
        assert_eq!(sign_test_p(0, 0), 1.0);
        assert!((sign_test_p(9, 0) - 2.0 / 512.0).abs() < 1e-15);
        assert!((sign_test_p(0, 9) - 2.0 / 512.0).abs() < 1e-15);
        // 11 of 18: 2 · Σ_{i=11}^{18} C(18, i) / 2^18 = 2 · 63 004 / 262 144.
        assert!((sign_test_p(11, 7) - 2.0 * 63_004.0 / 262_144.0).abs() < 1e-12);
        assert_eq!(sign_test_p(5, 5), 1.0);
    }

    #[test]
    fn student_t_is_tabulated_then_approaches_the_normal() {
        assert_eq!(student_t975(2), 4.303);
        assert_eq!(student_t975(30), 2.042);
        // Published values: t(40) 2.021, t(60) 2.000, t(120) 1.980.
        for (df, t) in [(40, 2.021), (60, 2.000), (120, 1.980)] {
            assert!((student_t975(df) - t).abs() < 2e-3, "df {df}: {}", student_t975(df));
        }
        assert!((student_t975(100_000) - 1.96).abs() < 1e-3);
    }

    #[test]
    fn band_is_mean_plus_minus_std_over_seeds() {
        let (points, band) = mean_band(&[vec![(100.0, 1.0), (200.0, 2.0)], vec![(100.0, 3.0)]]);
        assert_eq!(points, vec![Point { x: 100.0, y: 2.0 }, Point { x: 200.0, y: 2.0 }]);
        assert_eq!(band, vec![Band { x: 100.0, low: 1.0, high: 3.0 }]);
    }
}
