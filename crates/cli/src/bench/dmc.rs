//! `gradplan bench dmc`: the paper's Tables 1 and 2 as independent jobs, run locally
//! (`--jobs N` processes at once), or written as a SLURM array (`--slurm`), then aggregated
//! into `results.csv`, `results.md` and per-task plots.
//!
//! Each job is one process (`gradplan bench dmc … --job ID`): it trains its run (resuming
//! an interrupted one from its last checkpoint), evaluates the final model with every
//! evaluation planner (each result kept as soon as it exists), and marks itself done. A
//! complete job is never redone, so re-running the same command finishes what is left.

use anyhow::{bail, Context, Result};
use clap::Args;
use gradplan_backend::DeviceSpec;
use gradplan_config::{EnvBackend, EnvConfig, ObsKind, RunConfig};
use gradplan_harness::results::{self, Collected, EvalRecord, JobDone, Provenance};
use gradplan_harness::slurm::{self, SlurmOptions};
use gradplan_harness::{claim_dir, BenchPlanner, Collector, Job, JobLock, Protocol, Scale, Table};
use gradplan_train::checkpoint;
use gradplan_train::{EvalOptions, ResumeOptions, RunOptions, Trainer};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug, Clone, Args)]
pub struct DmcArgs {
    /// 1: DMC 100k from pixels (CEM- and Grad-MPC-trained PlaNet models, every planner on
    /// each); 2: sparse tasks, Dreamer pretrained 500k steps, pure policy vs Policy+Grad-MPC.
    #[arg(long)]
    table: u8,
    /// Where the runs, logs, results.csv, results.md and plots go.
    #[arg(long)]
    out: PathBuf,
    /// Tasks (default: the table's: five for Table 1, two for Table 2).
    #[arg(long, value_delimiter = ',')]
    tasks: Vec<String>,
    /// Seeds (default: 0,1,2 as in the paper).
    #[arg(long, value_delimiter = ',')]
    seeds: Vec<u64>,
    /// Planners the models are trained with (default: grad-mpc-paper,cem for Table 1;
    /// policy for Table 2). Names: cem, grad-mpc (the robust flavour), grad-mpc-paper
    /// (Algorithm 1), mppi, grad-cem, random-shooting, policy, policy-grad-mpc; `A-then-B`
    /// (e.g. cem-then-grad-mpc): A collects the first 70% of the budget, B the rest.
    #[arg(long, value_delimiter = ',')]
    planners: Vec<Collector>,
    /// Planners every final model is evaluated with (default for Table 1: cem, grad-mpc,
    /// grad-mpc-paper, mppi, grad-cem, random-shooting; for Table 2: policy,
    /// policy-grad-mpc).
    #[arg(long, value_delimiter = ',')]
    eval_planners: Vec<BenchPlanner>,
    /// debug, cpu, state or paper: `paper` is the paper's protocol; the others shrink every
    /// budget (cpu: state observations, 20k env steps; state: the same model, 50k env steps
    /// and 100 updates per episode), and the report says which produced it.
    #[arg(long, default_value = "paper")]
    scale: String,
    /// Jobs run at once on this machine, each its own process.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// cpu, cuda or cuda:N, for every run and evaluation.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// dmc or native: the environment backend of every run (`env.backend`; native runs the
    /// same episodes on MuJoCo from Rust, without Python). Default: dmc, or native in a build
    /// without Python.
    #[arg(long, default_value = crate::rollout::DEFAULT_BACKEND)]
    backend: EnvBackend,
    /// Environments each evaluation steps at once on their own threads while one thread
    /// plans for each in turn (`gradplan eval --envs`): the same returns, less wall time on
    /// pixel tasks. More than one needs `--backend native`.
    #[arg(long, default_value_t = 1)]
    eval_envs: usize,
    /// libtorch threads per run (default: the preset's; with --jobs N on CPU, cores / N).
    #[arg(long)]
    threads: Option<usize>,
    /// Skip each run's own report (curves and open-loop video).
    #[arg(long)]
    no_report: bool,
    /// Write a SLURM job array (slurm/array.sbatch, one task per job, and an aggregation
    /// job) instead of running anything here.
    #[arg(long)]
    slurm: bool,
    /// SLURM partition.
    #[arg(long)]
    slurm_partition: Option<String>,
    /// SLURM time limit per job.
    #[arg(long, default_value = "48:00:00")]
    slurm_time: String,
    /// CPUs per SLURM job.
    #[arg(long, default_value_t = 8)]
    slurm_cpus: usize,
    /// At most this many array tasks at once (0: no limit).
    #[arg(long, default_value_t = 0)]
    slurm_max_parallel: usize,
    /// A setting every training run gets over the scale's budget, e.g. `--set
    /// model.perturbation="adversarial"` (repeatable). Recorded in --out: one directory holds
    /// models trained with one set. Planner keys come from --planners and --eval-planners.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Run nothing: write results.csv, results.md and the plots from what is in --out.
    #[arg(long)]
    aggregate_only: bool,
    /// Run this one job in this process (what the harness and the SLURM array start).
    #[arg(long, hide = true)]
    job: Option<String>,
}

pub fn run(args: &DmcArgs) -> Result<()> {
    let table = Table::from_number(args.table)?;
    let scale: Scale = args.scale.parse()?;
    let device: DeviceSpec = args.device.parse()?;
    let mut protocol = Protocol::new(
        table,
        scale,
        args.tasks.clone(),
        args.seeds.clone(),
        args.planners.clone(),
        args.eval_planners.clone(),
    )?;
    protocol.device = device.to_string();
    protocol.backend = args.backend;
    protocol.eval_envs = args.eval_envs;
    protocol.set(&args.set)?;
    if args.eval_envs == 0 {
        bail!("--eval-envs 0: use at least 1");
    }
    let probe = EnvConfig { task: protocol.tasks[0].clone(), backend: args.backend, ..EnvConfig::default() };
    if let Some(e) = gradplan_env::parallel_backend_error(&probe, args.eval_envs) {
        bail!("--eval-envs {}: {e}", args.eval_envs);
    }
    protocol.threads = match args.threads {
        Some(t) => t,
        None if args.jobs > 1 && !args.slurm => {
            let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            (cores / args.jobs).max(1)
        }
        None => 0,
    };
    if args.jobs == 0 {
        bail!("--jobs 0: use at least 1");
    }
    let jobs = protocol.jobs();
    if let Some(id) = &args.job {
        let Some(job) = jobs.iter().find(|j| &j.id == id) else {
            let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
            bail!("no job {id} in this protocol; its jobs are {}", ids.join(", "));
        };
        return run_job(&args.out, job, &protocol, args.no_report);
    }
    if !args.aggregate_only && !args.slurm {
        // An unknown task or a missing GPU fails here, once, before anything is written.
        for task in &protocol.tasks {
            let cfg = EnvConfig {
                task: task.clone(),
                obs: ObsKind::State,
                backend: args.backend,
                ..EnvConfig::default()
            };
            gradplan_env::make_env(&cfg).with_context(|| format!("checking task {task}"))?;
        }
        if matches!(device, DeviceSpec::Cuda(_)) {
            device.resolve()?;
        }
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let out = args.out.canonicalize().with_context(|| format!("reading {}", args.out.display()))?;
    claim_dir(&out, table, scale, &protocol.train_settings)?;
    let job_argv = |job: &Job| {
        let mut argv = harness_argv(args, &out, &protocol);
        argv.extend(["--job".into(), job.id.clone()]);
        argv
    };
    if args.slurm {
        let pending: Vec<Job> = pending(&out, &jobs)?;
        let opts = SlurmOptions {
            partition: args.slurm_partition.clone(),
            time: args.slurm_time.clone(),
            gpus: usize::from(matches!(device, DeviceSpec::Cuda(_))),
            cpus_per_task: args.slurm_cpus,
            max_parallel: args.slurm_max_parallel,
        };
        let s = slurm::write_scripts(&out, &pending, job_argv, &harness_argv(args, &out, &protocol), &opts)?;
        println!(
            "wrote a SLURM array of {} jobs ({} of {} complete): {}\n  and the aggregation job: {}\nsubmit both \
             with:\n  {}",
            pending.len(),
            jobs.len() - pending.len(),
            jobs.len(),
            s.array.display(),
            s.aggregate.display(),
            s.submit
        );
        return Ok(());
    }
    let mut failed = Vec::new();
    if !args.aggregate_only {
        let todo = pending(&out, &jobs)?;
        println!(
            "Table {} at scale {}: {} jobs, {} complete, {} to run, {} at a time; logs in {}",
            table.number(),
            scale,
            jobs.len(),
            jobs.len() - todo.len(),
            todo.len(),
            args.jobs.min(todo.len().max(1)),
            out.join("logs").display()
        );
        failed = run_local(&out, &todo, args.jobs, &job_argv)?;
    }
    let written = aggregate(&out, &protocol, &jobs, args)?;
    for path in written {
        println!("wrote {}", path.display());
    }
    if !failed.is_empty() {
        bail!(
            "{} job(s) failed: {}; their logs are in {}; re-run the same command to retry them (complete jobs are \
             kept)",
            failed.len(),
            failed.join(", "),
            out.join("logs").display()
        );
    }
    Ok(())
}

/// The jobs of the protocol that are not done.
fn pending(out: &Path, jobs: &[Job]) -> Result<Vec<Job>> {
    let mut todo = Vec::new();
    for job in jobs {
        if !results::is_complete(&out.join(&job.run_dir), job)? {
            todo.push(job.clone());
        }
    }
    Ok(todo)
}

/// The command line that reproduces this protocol (without `--job`).
fn harness_argv(args: &DmcArgs, out: &Path, p: &Protocol) -> Vec<String> {
    let exe = std::env::current_exe().map(|e| e.display().to_string()).unwrap_or_else(|_| "gradplan".into());
    let join = |v: Vec<String>| v.join(",");
    let mut argv = vec![
        exe,
        "bench".into(),
        "dmc".into(),
        "--table".into(),
        p.table.number().to_string(),
        "--scale".into(),
        p.scale.to_string(),
        "--out".into(),
        out.display().to_string(),
        "--tasks".into(),
        join(p.tasks.clone()),
        "--seeds".into(),
        join(p.seeds.iter().map(|s| s.to_string()).collect()),
        "--planners".into(),
        join(p.train_planners.iter().map(|k| k.name().to_string()).collect()),
        "--eval-planners".into(),
        join(p.eval_planners.iter().map(|k| k.name().to_string()).collect()),
        "--device".into(),
        p.device.clone(),
        "--backend".into(),
        p.backend.to_string(),
    ];
    if p.threads > 0 {
        argv.extend(["--threads".into(), p.threads.to_string()]);
    }
    if p.eval_envs > 1 {
        argv.extend(["--eval-envs".into(), p.eval_envs.to_string()]);
    }
    for setting in &p.train_settings {
        argv.extend(["--set".into(), setting.clone()]);
    }
    if args.no_report {
        argv.push("--no-report".into());
    }
    argv
}

/// Runs `todo` as child processes, `parallel` at a time; returns the ids that failed.
fn run_local(
    out: &Path,
    todo: &[Job],
    parallel: usize,
    argv: &(dyn Fn(&Job) -> Vec<String> + Sync),
) -> Result<Vec<String>> {
    let logs = out.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let next = AtomicUsize::new(0);
    let failed = Mutex::new(Vec::new());
    let finished = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..parallel.min(todo.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(job) = todo.get(i) else { break };
                let started = Instant::now();
                let log = logs.join(format!("{}.log", job.id));
                println!("[{}/{}] {} started (log {})", i + 1, todo.len(), job.id, log.display());
                let status = run_child(&argv(job), &log);
                let n = finished.fetch_add(1, Ordering::SeqCst) + 1;
                let secs = started.elapsed().as_secs_f64();
                match status {
                    Ok(()) => println!("[{n}/{}] {} done in {secs:.0} s", todo.len(), job.id),
                    Err(e) => {
                        println!("[{n}/{}] {} FAILED after {secs:.0} s: {e:#}", todo.len(), job.id);
                        failed.lock().unwrap().push(job.id.clone());
                    }
                }
            });
        }
    });
    Ok(failed.into_inner().unwrap())
}

fn run_child(argv: &[String], log: &Path) -> Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let status = Command::new(&argv[0])
        .env(HARNESS_PID, std::process::id().to_string())
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .status()
        .with_context(|| format!("starting {}", argv[0]))?;
    if status.success() {
        return Ok(());
    }
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let last = text.lines().rev().find(|l| l.starts_with("error")).unwrap_or("see the log");
    bail!("{status}: {last}")
}

/// The environment variable through which the harness tells a job child its pid.
const HARNESS_PID: &str = "GRADPLAN_HARNESS_PID";

/// In a job child of the harness (`HARNESS_PID` set): asks the kernel for SIGTERM when the
/// harness thread that started this process ends, so that a killed harness does not leave
/// its jobs training on (Ctrl-C reaches them anyway: a terminal signals the whole process
/// group; `kill <harness pid>` does not). A job killed this way resumes from its last
/// checkpoint on the next run, and its lock dies with it.
///
/// Done here, after exec, rather than in a `pre_exec` hook: a hook makes std fork instead of
/// posix_spawn, and fork runs the embedded interpreter's atfork handlers (OpenBLAS's, which
/// dm_control's scipy loads), which deadlocked two jobs forked at once.
fn dies_with_the_harness() -> Result<()> {
    match std::env::var_os(HARNESS_PID) {
        Some(pid) => dies_with(&pid),
        None => Ok(()),
    }
}

/// [`dies_with_the_harness`] for the harness whose pid `pid` spells.
fn dies_with(pid: &std::ffi::OsStr) -> Result<()> {
    let harness: libc::pid_t = pid
        .to_str()
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("{HARNESS_PID} is not a process id: {pid:?}"))?;
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number and touches no memory.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) } != 0 {
        return Err(std::io::Error::last_os_error()).context("asking for SIGTERM when the harness ends");
    }
    // The harness may have ended before the prctl: then no signal would come.
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } != harness {
        bail!("the harness that started this job (pid {harness}) has already ended");
    }
    Ok(())
}

/// Env steps of the run's last checkpoint (0 without one).
fn trained_env_steps(run_dir: &Path) -> Result<usize> {
    Ok(match checkpoint::latest(run_dir)? {
        Some(dir) => checkpoint::read_counters(&dir)?.env_steps,
        None => 0,
    })
}

/// One job, in this process: train (or resume) to the budget, evaluate with every planner,
/// write the run's report, mark the job done.
fn run_job(out: &Path, job: &Job, protocol: &Protocol, no_report: bool) -> Result<()> {
    dies_with_the_harness()?;
    let run_dir = out.join(&job.run_dir);
    if results::is_complete(&run_dir, job)? {
        println!("{} is complete", job.id);
        return Ok(());
    }
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let _lock = JobLock::acquire(&run_dir)?;
    let cfg = RunConfig::resolve(&job.preset, None, &job.overrides)?;
    // A handover run's configuration after the handover: what the resume below writes.
    let handed = job.handover.as_ref().map(|h| h.config(&cfg, job.total_env_steps)).transpose()?;
    let trained = trained_env_steps(&run_dir)?;
    if trained < job.total_env_steps {
        // Device and threads may change between invocations; nothing else may.
        let this_invocation = ResumeOptions {
            device: Some(cfg.device.clone()),
            threads: Some(cfg.threads),
            ..Default::default()
        };
        let exists = run_dir.join(gradplan_train::trainer::CONFIG_FILE).exists();
        // Whether the run holds the configuration after its handover rather than the job's.
        let handed_over = if exists {
            let mut existing = gradplan_train::read_run_config(&run_dir)?;
            existing.device = cfg.device.clone();
            existing.threads = cfg.threads;
            let existing = existing.to_toml()?;
            let handed_over = match &handed {
                Some(after) => after.to_toml()? == existing,
                None => false,
            };
            if !handed_over && existing != cfg.to_toml()? {
                bail!(
                    "{} holds a run with other settings than job {}; move it away or use another --out",
                    run_dir.display(),
                    job.id
                );
            }
            handed_over
        } else {
            false
        };
        // A run killed between its handover's checkpoint and the resume has nothing left
        // to do under its first planner.
        let first_done = job.handover.as_ref().is_some_and(|h| trained >= h.at_env_steps);
        if handed_over || !first_done {
            let mut trainer = if exists {
                println!("{}: resuming at {trained} env steps", job.id);
                Trainer::resume_with(&run_dir, &this_invocation)?
            } else {
                let first = job.trained_with.first();
                println!("{}: training {} with {first} (seed {})", job.id, job.task, job.seed);
                Trainer::create(cfg.clone(), &run_dir)?
            };
            trainer.run(&RunOptions { stop_after_episodes: None, verbose: true })?;
        } // the trainer and its run lock are gone before the resume below
        if let (Some(h), false) = (&job.handover, handed_over) {
            println!(
                "{}: {} hands over to {} at {} env steps (the first episode end from {})",
                job.id,
                job.trained_with.first(),
                h.planner,
                trained_env_steps(&run_dir)?,
                h.at_env_steps
            );
            let opts = ResumeOptions {
                total_env_steps: Some(job.total_env_steps),
                planner: Some(h.planner.kind()),
                planner_overrides: h.settings.clone(),
                ..this_invocation
            };
            Trainer::resume_with(&run_dir, &opts)?
                .run(&RunOptions { stop_after_episodes: None, verbose: true })?;
        }
    }
    for &planner in &job.eval_planners {
        if results::read_eval(&run_dir, planner)?.is_some() {
            continue;
        }
        let started = Instant::now();
        let opts = EvalOptions {
            planner: Some(planner.kind()),
            overrides: protocol.eval_settings(planner),
            episodes: job.eval_episodes,
            seed: job.eval_seed,
            device: Some(protocol.device.clone()),
            threads: (protocol.threads > 0).then_some(protocol.threads),
            envs: protocol.eval_envs,
            backend: None,
        };
        let report = gradplan_train::evaluate(&run_dir, opts)?;
        let record = EvalRecord {
            job: job.id.clone(),
            task: job.task.clone(),
            trained_with: job.trained_with,
            planner,
            iterations: report.planner.iterations(),
            seed: job.seed,
            eval_seed: job.eval_seed,
            returns: report.episodes.iter().map(|e| e.total_return).collect(),
            return_mean: report.return_mean,
            return_std: report.return_std,
            ms_per_decision: report.ms_per_decision,
            predicted_return_mean: report.predicted_return_mean,
            checkpoint_env_steps: report.counters.env_steps,
            device: protocol.device.clone(),
            wall_s: started.elapsed().as_secs_f64(),
        };
        results::write_json(&results::eval_path(&run_dir, planner), &record)?;
        println!(
            "{}: {} {:.1} ± {:.1} over {} episodes ({:.1} ms per decision)",
            job.id,
            planner,
            record.return_mean,
            record.return_std,
            record.returns.len(),
            record.ms_per_decision
        );
    }
    if !no_report {
        // The run's own report (curves, open-loop video); a failure is a warning, as after
        // `gradplan train`: the results are safe and `gradplan report` can retry.
        let mut opts = crate::report::ReportOptions::default();
        opts.openloop.seed = job.eval_seed;
        opts.openloop.device = Some(protocol.device.clone());
        match crate::report::generate(&run_dir, &opts) {
            Ok(written) => println!(
                "{}: report in {} ({} files)",
                job.id,
                run_dir.join("report").display(),
                written.len()
            ),
            Err(e) => println!(
                "warning: {}: the run's report failed: {e:#}; retry with gradplan report --run-dir {}",
                job.id,
                run_dir.display()
            ),
        }
    }
    let mut eval_wall_s = 0.0;
    for &planner in &job.eval_planners {
        eval_wall_s += results::read_eval(&run_dir, planner)?.map_or(0.0, |r| r.wall_s);
    }
    let done = JobDone {
        job: job.id.clone(),
        env_steps: checkpoint::latest(&run_dir)?
            .map(|d| checkpoint::read_counters(&d))
            .transpose()?
            .map_or(0, |c| c.env_steps),
        train_wall_s: results::last_wall_s(&run_dir),
        eval_wall_s,
        device: protocol.device.clone(),
        finished_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    results::write_json(&results::done_path(&run_dir), &done)?;
    println!("{} complete", job.id);
    Ok(())
}

/// results.csv, results.md and plots/ from what `out` holds.
fn aggregate(out: &Path, protocol: &Protocol, jobs: &[Job], args: &DmcArgs) -> Result<Vec<PathBuf>> {
    let collected = Collected::read(out, jobs)?;
    let prov = Provenance {
        command: {
            // As a user types it: `gradplan`, not the executable's path.
            let mut argv = harness_argv(args, out, protocol);
            argv[0] = "gradplan".into();
            slurm::command_line(&argv)
        },
        machine: machine(&protocol.device),
        date: today(),
    };
    let csv = out.join("results.csv");
    gradplan_harness::write_atomic(&csv, results::results_csv(protocol, &collected).as_bytes())?;
    let md = out.join("results.md");
    gradplan_harness::write_atomic(&md, results::results_md(protocol, jobs, &collected, &prov).as_bytes())?;
    let mut written = vec![csv, md];
    written.extend(results::plot_tasks(out, protocol, jobs)?);
    Ok(written)
}

/// CPU model and cores, and the GPU's name when CUDA is used.
fn machine(device: &str) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| std::env::consts::ARCH.into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut s = format!("{model}, {cores} cores");
    if device.starts_with("cuda") {
        let gpu = Command::new("nvidia-smi")
            .args(["--query-gpu=name", "--format=csv,noheader"])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "an NVIDIA GPU".into());
        s += &format!(", {gpu}");
    }
    s
}

fn today() -> String {
    Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown date".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    /// What the helper job prints once it has asked for the signal.
    const READY: &str = "helper job: ready";

    /// Run by the test below in a child process: a stand-in job that would sleep 60 s.
    #[test]
    #[ignore = "a helper process of a_job_dies_when_the_thread_that_started_it_ends"]
    fn helper_job_that_would_outlive_the_harness() {
        if std::env::var_os(HARNESS_PID).is_some() {
            dies_with_the_harness().unwrap();
            println!("{READY}");
            std::thread::sleep(std::time::Duration::from_secs(60));
        }
    }

    #[test]
    fn a_job_dies_when_the_thread_that_started_it_ends() {
        // This test binary again, running the helper above as the job. The thread that
        // starts it (as the harness's worker threads do) ends once the job is set up.
        let mut child = std::thread::spawn(|| {
            let mut child = Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "bench::dmc::tests::helper_job_that_would_outlive_the_harness"])
                .args(["--ignored", "--nocapture", "--test-threads", "1"])
                .env(HARNESS_PID, std::process::id().to_string())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
            use std::io::BufRead;
            let ready = stdout.lines().map_while(|l| l.ok()).any(|l| l.contains(READY));
            assert!(ready, "the helper job never got ready");
            child
        })
        .join()
        .unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGTERM), "{status}");
    }

    #[test]
    fn a_job_whose_harness_is_gone_refuses_to_start() {
        // Our own pid is never our parent's.
        let own = std::process::id().to_string();
        let err = dies_with(own.as_ref()).unwrap_err().to_string();
        assert!(err.contains("already ended"), "{err}");
        let err = dies_with("harness".as_ref()).unwrap_err().to_string();
        assert!(err.contains("not a process id"), "{err}");
    }
}
