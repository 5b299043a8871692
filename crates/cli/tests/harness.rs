//! `gradplan bench dmc` on the debug scale with real dm_control tasks: a tiny Table 1 (two
//! tasks, two seeds) is interrupted by a kill, finished by a second invocation, produces
//! both reports, and a third invocation does no work.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

const TASKS: &str = "cartpole-swingup,reacher-easy";
const JOBS: [&str; 4] = [
    "table1/cartpole-swingup/grad-mpc-paper/seed0",
    "table1/cartpole-swingup/grad-mpc-paper/seed1",
    "table1/reacher-easy/grad-mpc-paper/seed0",
    "table1/reacher-easy/grad-mpc-paper/seed1",
];

fn harness_args(out: &Path) -> Vec<String> {
    [
        "bench",
        "dmc",
        "--table",
        "1",
        "--scale",
        "debug",
        "--tasks",
        TASKS,
        "--seeds",
        "0,1",
        "--planners",
        "grad-mpc-paper",
        "--no-report",
        "--out",
        out.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn gradplan() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gradplan"));
    c.env("MUJOCO_GL", "egl");
    c
}

fn run(args: &[String]) -> Output {
    gradplan().args(args).output().unwrap()
}

fn done(out: &Path, job: &str) -> PathBuf {
    out.join(job).join("harness/done.json")
}

fn mtime(p: &Path) -> SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", path.display());
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    (w, h)
}

/// Waits until no process of group `pgid` is still running. `wait` reaps the harness, but
/// its job processes, killed with it, can still be exiting on a loaded machine, holding
/// their run's lock: a second invocation started then finds the job busy.
fn wait_for_group_exit(pgid: u32) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while group_running(pgid) {
        assert!(Instant::now() < deadline, "process group {pgid} still running 60 s after SIGKILL");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a thread of a process of group `pgid` is alive and not a zombie, from
/// `/proc/<pid>/task/<tid>/stat`. Threads, not processes: a killed multithreaded process
/// shows its leader as a zombie while its other threads are still exiting, and its files
/// (the run's lock among them) stay open until the last of them is gone.
fn group_running(pgid: u32) -> bool {
    let pgid = pgid.to_string();
    let entries = |dir: &Path| std::fs::read_dir(dir).into_iter().flatten().filter_map(|entry| entry.ok());
    entries(Path::new("/proc")).any(|process| {
        entries(&process.path().join("task")).any(|thread| {
            let Ok(stat) = std::fs::read_to_string(thread.path().join("stat")) else { return false };
            // `pid (comm) state ppid pgrp …`; comm may hold spaces and parentheses.
            let Some((_, rest)) = stat.rsplit_once(')') else { return false };
            let mut fields = rest.split_whitespace();
            let state = fields.next();
            let pgrp = fields.nth(1);
            pgrp == Some(pgid.as_str()) && state != Some("Z")
        })
    })
}

#[test]
fn debug_table1_survives_a_kill_completes_and_then_does_no_work() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bench");
    let args = harness_args(&out);

    // 1. Start the harness in its own process group and kill the whole group once the first
    //    job is done and the second has started writing its run.
    let mut child =
        gradplan().args(&args).process_group(0).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        if done(&out, JOBS[0]).exists() && out.join(JOBS[1]).join("config.toml").exists() {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the harness ended before it could be interrupted: {status}");
        }
        assert!(Instant::now() < deadline, "the first job did not finish in 15 minutes");
        std::thread::sleep(Duration::from_millis(100));
    }
    let pgid = child.id().to_string();
    let killed = Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).status().unwrap();
    assert!(killed.success());
    child.wait().unwrap();
    wait_for_group_exit(child.id());
    assert!(!done(&out, JOBS[3]).exists(), "the kill came too late to interrupt anything");
    let first_done = mtime(&done(&out, JOBS[0]));

    // 2. The same command finishes the rest (taking over the killed job's lock) and writes both reports.
    let second = run(&args);
    let stdout = String::from_utf8_lossy(&second.stdout).into_owned();
    assert!(second.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&second.stderr));
    assert!(stdout.contains("4 jobs, 1 complete, 3 to run"), "{stdout}");
    for job in JOBS {
        assert!(done(&out, job).exists(), "{job} is not complete:\n{stdout}");
    }
    assert_eq!(mtime(&done(&out, JOBS[0])), first_done, "a complete job was redone");
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    // One row per job and evaluation planner (six: both Grad-MPC flavours), each with 2 episodes.
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 4 * 6, "{csv}");
    for planner in ["cem", "grad-mpc", "grad-mpc-paper", "mppi", "grad-cem", "random-shooting"] {
        assert_eq!(rows.iter().filter(|r| r.split(',').nth(4) == Some(planner)).count(), 4, "{csv}");
    }
    assert!(rows.iter().all(|r| r.split(',').nth(7) == Some("2")), "{csv}");
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("(scale: debug)") && md.contains("not comparable"), "{md}");
    for task in ["cartpole-swingup", "reacher-easy"] {
        let row = md.lines().find(|l| l.starts_with(&format!("| {task} | "))).unwrap();
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        // Paper columns filled, ours: PlaNet (CEM-trained) blank, Grad-MPC a number, n = 4.
        assert!(cells[2].contains('±') && cells[6].contains('±'), "{row}");
        assert_eq!(cells[7], "—", "{row}");
        assert!(cells[8].contains('±'), "{row}");
        assert_eq!(cells[9], "4", "{row}");
        let (w, h) = png_size(&out.join(format!("plots/{task}.png")));
        assert!(w >= 400 && h >= 300, "{task} plot is {w}×{h}");
        assert!(std::fs::metadata(out.join(format!("plots/{task}.svg"))).unwrap().len() > 1000);
    }

    // 3. Nothing left: a third invocation runs no job and rewrites only the tables.
    let mtimes: Vec<SystemTime> = JOBS.iter().map(|j| mtime(&done(&out, j))).collect();
    let third = run(&args);
    let stdout = String::from_utf8_lossy(&third.stdout).into_owned();
    assert!(third.status.success(), "{stdout}");
    assert!(stdout.contains("4 jobs, 4 complete, 0 to run"), "{stdout}");
    assert!(!stdout.contains("started"), "{stdout}");
    let after: Vec<SystemTime> = JOBS.iter().map(|j| mtime(&done(&out, j))).collect();
    assert_eq!(mtimes, after);
    assert_eq!(std::fs::read_to_string(out.join("results.csv")).unwrap(), csv);

    // 4. A cluster instead: the SLURM array names the jobs still to run (none here), and
    //    another scale in the same directory is refused.
    let mut slurm = args.clone();
    slurm.push("--slurm".into());
    let out4 = run(&slurm);
    assert!(!out4.status.success());
    assert!(String::from_utf8_lossy(&out4.stderr).contains("every job is complete"));
    let mut other = args.clone();
    let i = other.iter().position(|a| a == "debug").unwrap();
    other[i] = "cpu".into();
    let refused = run(&other);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("scale debug"));
}

#[test]
fn slurm_array_lists_one_runnable_command_per_job() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cluster");
    let mut args = harness_args(&out);
    args.extend(["--slurm".into(), "--slurm-max-parallel".into(), "2".into()]);
    let res = run(&args);
    let stdout = String::from_utf8_lossy(&res.stdout).into_owned();
    assert!(res.status.success(), "{stdout}{}", String::from_utf8_lossy(&res.stderr));
    assert!(stdout.contains("sbatch --dependency=afterany:$jid"), "{stdout}");
    let jobs = std::fs::read_to_string(out.join("slurm/jobs.txt")).unwrap();
    assert_eq!(jobs.lines().count(), 4);
    assert!(jobs.lines().all(|l| l.contains(" bench dmc ") && l.contains(" --job t1-")), "{jobs}");
    let array = std::fs::read_to_string(out.join("slurm/array.sbatch")).unwrap();
    assert!(array.contains("#SBATCH --array=0-3%2"), "{array}");
    assert!(!array.contains("--gres"), "a CPU array asks for no GPU: {array}");
    // Nothing ran: no run directory was created.
    assert!(!out.join("table1").exists());
}

/// `cem-then-grad-mpc`: CEM collects to the handover, robust Grad-MPC the rest. The harness
/// is killed as the job hands over and again after the switch; a third invocation finishes
/// the same run.
#[test]
fn a_handover_collector_switches_planner_once_and_survives_a_kill_there() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("handover");
    let mut args = harness_args(&out);
    let set = |args: &mut Vec<String>, flag: &str, value: &str| {
        let i = args.iter().position(|a| a == flag).unwrap();
        args[i + 1] = value.into();
    };
    set(&mut args, "--tasks", "cartpole-swingup");
    set(&mut args, "--seeds", "0");
    set(&mut args, "--planners", "cem-then-grad-mpc");
    args.extend(["--eval-planners".into(), "cem,grad-mpc".into()]);
    let job = "t1-cartpole-swingup-cem-then-grad-mpc-s0";
    let run_dir = out.join("table1/cartpole-swingup/cem-then-grad-mpc/seed0");
    let log = out.join("logs").join(format!("{job}.log"));

    // Starts the harness in its own process group and kills the group once `ready` holds.
    let kill_when = |ready: &dyn Fn() -> bool, what: &str| {
        let mut child = gradplan()
            .args(&args)
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(900);
        while !ready() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "the harness ended before {what}: {status}\n{}",
                    std::fs::read_to_string(&log).unwrap()
                );
            }
            assert!(Instant::now() < deadline, "no {what} in 15 minutes");
            std::thread::sleep(Duration::from_millis(50));
        }
        let killed =
            Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status().unwrap();
        assert!(killed.success());
        child.wait().unwrap();
        wait_for_group_exit(child.id());
        assert!(!run_dir.join("harness/done.json").exists(), "killed too late: after {what}");
    };
    // 1. Killed as it hands over: CEM's checkpoint is at the handover (debug episodes are
    //    200 env steps, so CEM collects three, to 600); the resume may not have begun.
    let handover = "cem hands over to grad-mpc at 600 env steps (the first episode end from 560)";
    kill_when(&|| std::fs::read_to_string(&log).unwrap_or_default().contains(handover), "the handover");
    // 2. Killed once config.toml names the second planner, before its episode is done: the
    //    next invocation resumes the run as handed over.
    let config = run_dir.join("config.toml");
    let switched = || std::fs::read_to_string(&config).unwrap_or_default().contains("kind = \"grad-mpc\"");
    kill_when(&switched, "the switch");
    let before = std::fs::read_to_string(&log).unwrap().len();

    let second = run(&args);
    let stdout = String::from_utf8_lossy(&second.stdout).into_owned();
    assert!(second.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&second.stderr));
    assert!(stdout.contains("1 jobs, 0 complete, 1 to run"), "{stdout}");
    let last = std::fs::read_to_string(&log).unwrap()[before..].to_owned();
    assert!(
        last.contains(&format!("{job}: resuming at 600 env steps")) && !last.contains("hands over"),
        "{last}"
    );
    // The finished run: the budget and the second planner in config.toml, one row per
    // episode in metrics.csv across both planners.
    let config = std::fs::read_to_string(run_dir.join("config.toml")).unwrap();
    assert!(config.contains("total_env_steps = 800"), "{config}");
    assert!(config.contains("kind = \"grad-mpc\"") && config.contains("flavour = \"robust\""), "{config}");
    let metrics = std::fs::read_to_string(run_dir.join("metrics.csv")).unwrap();
    let episodes: Vec<usize> =
        metrics.lines().skip(1).map(|l| l.split(',').next().unwrap().parse().unwrap()).collect();
    assert_eq!(episodes, (1..=episodes.len()).collect::<Vec<_>>(), "{metrics}");
    let steps = |l: &str| l.split(',').nth(1).unwrap().parse::<usize>().unwrap();
    assert!(metrics.lines().skip(1).any(|l| steps(l) == 600), "{metrics}");
    assert_eq!(metrics.lines().last().map(steps), Some(800));
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{csv}");
    assert!(rows.iter().all(|r| r.split(',').nth(3) == Some("cem-then-grad-mpc")), "{csv}");
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("| cartpole-swingup | CEM, then Grad-MPC robust (last 30%) | "), "{md}");
    let third = run(&args);
    assert!(String::from_utf8_lossy(&third.stdout).contains("1 jobs, 1 complete, 0 to run"));
}

#[test]
fn bad_harness_input_is_one_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x");
    let o = out.to_str().unwrap();
    for (args, needle) in [
        (vec!["bench", "dmc", "--table", "3", "--out", o], "use 1 or 2"),
        (
            vec!["bench", "dmc", "--table", "1", "--scale", "huge", "--out", o],
            "use debug, cpu, state or paper",
        ),
        (vec!["bench", "dmc", "--table", "2", "--planners", "cem", "--out", o], "Table 2"),
        (
            vec!["bench", "dmc", "--table", "1", "--planners", "cem-then-cem", "--out", o],
            "hands over to itself",
        ),
        (
            vec!["bench", "dmc", "--table", "1", "--eval-planners", "grad-mpc-robust", "--out", o],
            "grad-mpc-paper",
        ),
        (
            vec![
                "bench",
                "dmc",
                "--table",
                "1",
                "--tasks",
                "cartpole-swingupp",
                "--scale",
                "debug",
                "--out",
                o,
            ],
            "cartpole-swingupp",
        ),
        (vec!["bench", "dmc", "--table", "1", "--device", "tpu", "--out", o], "not a device"),
    ] {
        let res = gradplan().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&res.stderr);
        assert!(!res.status.success(), "{args:?} succeeded");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(!out.join("table1").exists(), "bad input left run directories behind");
}
