//! The `gradplan` binary as a user runs it: real dm_control episodes, GIFs, and one clear
//! error line with a non-zero exit for bad input.

use std::path::Path;
use std::process::{Command, Output};

fn gradplan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gradplan")).args(args).env("MUJOCO_GL", "egl").output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A failure is one `error:` line on stderr, no Python traceback, and exit code != 0.
fn assert_clear_failure(out: &Output, needle: &str) {
    let err = text(&out.stderr);
    assert!(!out.status.success(), "expected failure, got success; stderr: {err}");
    assert!(err.contains(needle), "stderr lacks `{needle}`: {err}");
    assert!(!err.contains("Traceback"), "Python traceback leaked: {err}");
    assert!(!err.contains("panicked"), "panic instead of an error: {err}");
}

#[test]
fn tasks_lists_the_paper_tasks_with_their_specs() {
    let out = gradplan(&["tasks"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let row = |task: &str| -> Vec<String> {
        let line = stdout.lines().find(|l| l.split_whitespace().next() == Some(task)).unwrap();
        line.split_whitespace().map(str::to_owned).collect()
    };
    // task, action dim, repeat, decisions, pixels, state
    assert_eq!(row("cartpole-swingup")[1..4], ["1", "8", "125"]);
    assert_eq!(row("walker-walk")[1..4], ["6", "2", "500"]);
    assert_eq!(row("cheetah-run")[1..5], ["6", "4", "250", "[64,64,3]"]);
    assert_eq!(row("ball_in_cup-catch")[1..4], ["2", "6", "167"]);
    assert_eq!(row("native_pendulum-swingup")[1], "1");
}

#[test]
fn rollout_prints_returns_and_writes_a_gif() {
    let dir = tempfile::tempdir().unwrap();
    let gif = dir.path().join("nested/ep.gif");
    let gif_arg = gif.to_str().unwrap();
    let args =
        ["rollout", "--task", "cartpole-swingup", "--policy", "random", "--episodes", "2", "--seed", "5"];
    let out = gradplan(&[&args[..], &["--video", gif_arg]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let returns: Vec<f64> = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("episode"))
        .map(|l| l.split_whitespace().nth(3).unwrap().parse().unwrap())
        .collect();
    assert_eq!(returns.len(), 2, "{stdout}");
    assert!(returns.iter().all(|r| (0.0..=125.0 * 8.0).contains(r)), "{returns:?}");
    // 2 episodes × (1 reset + 125 decisions) frames, 256×256.
    let mut opts = gif::DecodeOptions::new();
    opts.set_color_output(gif::ColorOutput::RGBA);
    let mut dec = opts.read_info(std::fs::File::open(&gif).unwrap()).unwrap();
    assert_eq!((dec.width(), dec.height()), (256, 256));
    let mut frames = 0;
    while dec.read_next_frame().unwrap().is_some() {
        frames += 1;
    }
    assert_eq!(frames, 252);
    // Same seed → same returns (returns do not depend on the observation kind, and state
    // observations skip the rendering).
    let episode_lines =
        |s: &str| -> Vec<String> { s.lines().filter(|l| l.contains("episode")).map(str::to_owned).collect() };
    assert_eq!(
        episode_lines(&stdout),
        episode_lines(&text(&gradplan(&[&args[..], &["--obs", "state"]].concat()).stdout))
    );
    // The native MuJoCo backend plays the same episodes and shows the same frames (its
    // rewards can differ from numpy's AVX-512 `exp` in the last bit, docs/decisions.md #12,
    // hence the tolerance on the returns).
    let native_gif = dir.path().join("native.gif");
    let out =
        gradplan(&[&args[..], &["--backend", "native", "--video", native_gif.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let native: Vec<f64> = text(&out.stdout)
        .lines()
        .filter(|l| l.trim_start().starts_with("episode"))
        .map(|l| l.split_whitespace().nth(3).unwrap().parse().unwrap())
        .collect();
    assert_eq!(native.len(), 2);
    for (n, d) in native.iter().zip(&returns) {
        assert!((n - d).abs() < 1e-6, "native {native:?} vs dm_control {returns:?}");
    }
    assert_eq!(std::fs::read(&native_gif).unwrap(), std::fs::read(&gif).unwrap(), "native frames differ");
}

#[test]
fn native_rollout_needs_no_python() {
    let out = Command::new(env!("CARGO_BIN_EXE_gradplan"))
        .args(["rollout", "--task", "native_pendulum-swingup", "--obs", "state", "--policy", "zero"])
        .env("GRADPLAN_VENV", "/nonexistent")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("over 500 decisions"));
}

#[test]
fn bad_input_fails_with_one_clear_error() {
    let out = gradplan(&["rollout", "--task", "cartpole-swingupp"]);
    assert_clear_failure(&out, "did you mean cartpole-swingup");
    let out = gradplan(&["rollout", "--task", "cartpole"]);
    assert_clear_failure(&out, "domain-task");
    let out = gradplan(&["rollout", "--task", "cartpole-swingup", "--obs", "pixel"]);
    assert_clear_failure(&out, "pixels");
    let out = gradplan(&["rollout", "--task", "cartpole-swingup", "--bogus-flag"]);
    assert_clear_failure(&out, "--bogus-flag");
    let out = gradplan(&["rollout", "--task", "cartpole-swingup", "--action-repeat", "0"]);
    assert_clear_failure(&out, "action_repeat");
}

#[test]
fn a_missing_python_environment_says_how_to_fix_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_gradplan"))
        .args(["rollout", "--task", "cartpole-swingup"])
        .env("GRADPLAN_VENV", "/nonexistent/venv")
        .output()
        .unwrap();
    assert_clear_failure(&out, "scripts/setup.sh");
}

#[test]
fn a_venv_without_dm_control_says_what_to_install() {
    let dir = tempfile::tempdir().unwrap();
    let venv = dir.path().join("bare");
    let base = gradplan_python();
    let made = Command::new(&base).args(["-m", "venv", "--without-pip"]).arg(&venv).status().unwrap();
    assert!(made.success());
    let out = Command::new(env!("CARGO_BIN_EXE_gradplan"))
        .args(["rollout", "--task", "cartpole-swingup"])
        .env("GRADPLAN_VENV", &venv)
        .output()
        .unwrap();
    assert_clear_failure(&out, "pip install dm_control==1.0.50 mujoco==3.17.0");
}

/// The base interpreter the project's .venv was made from (same version as the binary's).
fn gradplan_python() -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cfg = std::fs::read_to_string(root.join(".venv/pyvenv.cfg")).expect("run scripts/setup.sh");
    let home = cfg.lines().find_map(|l| l.strip_prefix("home = ")).unwrap().trim();
    Path::new(home).join("python3")
}

#[test]
fn debug_training_runs_end_to_end_on_dm_control_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let run_arg = run.to_str().unwrap();
    let args =
        ["train", "--preset", "debug", "--task", "cartpole-swingup", "--seed", "2", "--run-dir", run_arg];
    let out = gradplan(&[&args[..], &["--stop-after-episodes", "3"]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = gradplan(&["resume", "--run-dir", run_arg]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("resuming"), "{}", text(&out.stdout));
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 1 + 4, "{metrics}");
    let last: Vec<&str> = metrics.lines().last().unwrap().split(',').collect();
    assert_eq!(last[1], "800", "env steps: {metrics}");
    assert!(last[4].parse::<f64>().is_ok(), "the last episode has a test return: {metrics}");
    let cfg = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(cfg.contains("preset = \"debug\"") && cfg.contains("cartpole-swingup"), "{cfg}");
    assert!(run.join("checkpoints/LATEST").is_file());
    let png = std::fs::read(run.join("recon/ep-000004.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    // Training again into the same directory is refused.
    let out = gradplan(&args);
    assert_clear_failure(&out, "gradplan resume");
    // Bad settings are refused before anything is written.
    let bad = dir.path().join("bad");
    let out = gradplan(&[
        "train",
        "--preset",
        "debug",
        "--set",
        "model.belief_sise=3",
        "--run-dir",
        bad.to_str().unwrap(),
    ]);
    assert_clear_failure(&out, "belief_sise");
    assert!(!bad.exists());
    // A run's config.toml starts a new run under the preset it names, never another.
    let copy = dir.path().join("copy");
    let from = run.join("config.toml");
    let with_file = ["train", "--config", from.to_str().unwrap(), "--run-dir", copy.to_str().unwrap()];
    let out = gradplan(&[&with_file[..], &["--preset", "paper"]].concat());
    assert_clear_failure(&out, "drop --preset");
    assert!(!copy.exists());
    let out = gradplan(&[&with_file[..], &["--stop-after-episodes", "1"]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(copy.join("config.toml")).unwrap(), cfg);

    // The trained model with another planner: episode lines, mean ± std, a row in
    // eval.csv, and a GIF of what the agent saw. One libtorch thread: next to the embedded
    // renderer on a loaded 2-core machine, two made planning ~40× slower.
    let gif = dir.path().join("eval.gif");
    let trace = dir.path().join("trace.csv");
    let eval = ["eval", "--run-dir", run_arg, "--planner", "grad-mpc", "--set", "planner.iterations=3"];
    let (gif_arg, trace_arg) = (gif.to_str().unwrap(), trace.to_str().unwrap());
    let out = gradplan(
        &[
            &eval[..],
            &["--episodes", "2", "--seed", "1", "--threads", "1", "--video", gif_arg, "--trace", trace_arg],
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("evaluating grad-mpc (iterations=3) on cartpole-swingup"), "{stdout}");
    let episodes: Vec<&str> = stdout.lines().filter(|l| l.starts_with("episode")).collect();
    assert_eq!(episodes.len(), 2, "{stdout}");
    assert!(episodes.iter().all(|l| l.contains("over 25 decisions")), "{stdout}");
    assert!(stdout.contains("grad-mpc: mean return") && stdout.contains(" ± "), "{stdout}");
    assert!(stdout.contains("ms per decision") && stdout.contains("predicted return"), "{stdout}");
    let table = std::fs::read_to_string(run.join("eval.csv")).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(lines[0].starts_with("timestamp,checkpoint_episode,checkpoint_env_steps,planner,settings"));
    assert!(lines[1].contains(",4,800,grad-mpc,iterations=3,1,2,"), "{table}");
    let mut opts = gif::DecodeOptions::new();
    opts.set_color_output(gif::ColorOutput::RGBA);
    let mut dec = opts.read_info(std::fs::File::open(&gif).unwrap()).unwrap();
    let mut frames = 0;
    while dec.read_next_frame().unwrap().is_some() {
        frames += 1;
    }
    assert_eq!(frames, 2 * (1 + 25));
    // The trace: one row per decision with the action (a pixel observation is not written).
    assert!(stdout.contains(&format!("wrote 50 decisions to {trace_arg}")), "{stdout}");
    let rows = std::fs::read_to_string(&trace).unwrap();
    assert_eq!(
        rows.lines().next().unwrap(),
        "episode,decision,reward,predicted_return,plan_ms,uncertainty,action_0"
    );
    assert_eq!(rows.lines().count(), 1 + 50);
    assert!(
        rows.lines().nth(1).unwrap().starts_with("1,0,") && rows.lines().last().unwrap().starts_with("2,24,")
    );
    let missing = dir.path().join("no/such/dir/trace.csv");
    assert_clear_failure(
        &gradplan(&[&eval[..], &["--trace", missing.to_str().unwrap()]].concat()),
        "does not exist",
    );
    assert_clear_failure(
        &gradplan(&[&eval[..], &["--trace", trace_arg, "--envs", "2"]].concat()),
        "--envs 1",
    );
    // The same evaluation with two native environments stepping at once: the same episodes,
    // returns and frames (each episode keeps its own random stream). Two dm_control
    // environments are refused: they would take turns under Python's lock.
    let gif2 = dir.path().join("eval-parallel.gif");
    let out = gradplan(
        &[
            &eval[..],
            &["--episodes", "2", "--seed", "1", "--threads", "1", "--video", gif2.to_str().unwrap()],
            &["--backend", "native", "--envs", "2"],
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let parallel = text(&out.stdout);
    let returns = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| l.starts_with("episode"))
            .map(|l| l.split(" over ").next().unwrap().to_owned())
            .collect()
    };
    assert_eq!(returns(&parallel), returns(&stdout), "{parallel}");
    assert_eq!(std::fs::read(&gif2).unwrap(), std::fs::read(&gif).unwrap(), "other frames");
    let table = std::fs::read_to_string(run.join("eval.csv")).unwrap();
    assert!(
        table.lines().nth(2).unwrap().contains(",grad-mpc,iterations=3;env.backend=native,1,2,"),
        "{table}"
    );
    let out = gradplan(&[&eval[..], &["--episodes", "2", "--envs", "2"]].concat());
    assert_clear_failure(&out, "--backend native");
    let out = gradplan(&["eval", "--run-dir", run_arg, "--planner", "gradmpc"]);
    assert_clear_failure(&out, "cem, grad-mpc, mppi, grad-cem, random-shooting");
    let out = gradplan(&["eval", "--run-dir", bad.to_str().unwrap()]);
    assert_clear_failure(&out, "config.toml");
    // The disagreement ensemble: a penalty needs it and says how to fit it; `gradplan
    // ensemble` fits it into the checkpoint; eval then plans with it and traces u.
    let penalised =
        [&eval[..], &["--episodes", "1", "--threads", "1", "--set", "planner.uncertainty_penalty=1"]]
            .concat();
    assert_clear_failure(&gradplan(&penalised), "gradplan ensemble --run-dir");
    assert_clear_failure(&gradplan(&["ensemble", "--run-dir", run_arg, "--members", "1"]), "--members");
    let out = gradplan(&["ensemble", "--run-dir", run_arg, "--updates", "30", "--threads", "1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let fitted = text(&out.stdout);
    assert!(
        fitted.contains("ensemble of 5 members") && fitted.contains("the replay's disagreement"),
        "{fitted}"
    );
    assert!(run.join("checkpoints/ep-000004/ensemble.safetensors").is_file(), "{fitted}");
    let out = gradplan(&[&penalised[..], &["--trace", trace_arg]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("grad-mpc: mean return"), "{}", text(&out.stdout));
    let rows = std::fs::read_to_string(&trace).unwrap();
    let u: f64 = rows.lines().nth(1).unwrap().split(',').nth(5).unwrap().parse().unwrap();
    assert!(u.is_finite() && u >= 0.0, "{rows}");
    // The behaviour prior: its own fit and file, chosen by planner.uncertainty_measure.
    let behavior = [&penalised[..], &["--set", "planner.uncertainty_measure=behavior"]].concat();
    assert_clear_failure(&gradplan(&behavior), "--measure behavior");
    assert_clear_failure(&gradplan(&["ensemble", "--run-dir", run_arg, "--measure", "prior"]), "behavior");
    let out = gradplan(&[
        "ensemble",
        "--run-dir",
        run_arg,
        "--measure",
        "behavior",
        "--updates",
        "30",
        "--threads",
        "1",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let fitted = text(&out.stdout);
    assert!(fitted.contains("behaviour prior") && fitted.contains("distance from the prior"), "{fitted}");
    assert!(run.join("checkpoints/ep-000004/behavior_prior.safetensors").is_file(), "{fitted}");
    let out = gradplan(&behavior);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The state density likewise; a bad shrinkage is refused by name.
    let density = [&penalised[..], &["--set", "planner.uncertainty_measure=density"]].concat();
    assert_clear_failure(&gradplan(&density), "--measure density");
    let fit_density =
        ["ensemble", "--run-dir", run_arg, "--measure", "density", "--updates", "30", "--threads", "1"];
    assert_clear_failure(&gradplan(&[&fit_density[..], &["--shrinkage", "1"]].concat()), "--shrinkage");
    let out = gradplan(&fit_density);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let fitted = text(&out.stdout);
    assert!(
        fitted.contains("state density over 20 features") && fitted.contains("mean distance"),
        "{fitted}"
    );
    assert!(run.join("checkpoints/ep-000004/state_density.safetensors").is_file(), "{fitted}");
    let out = gradplan(&density);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Without LATEST, eval takes the newest complete checkpoint and says which.
    std::fs::remove_file(run.join("checkpoints/LATEST")).unwrap();
    let out =
        gradplan(&["eval", "--run-dir", run_arg, "--planner", "cem", "--episodes", "1", "--threads", "1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The run's own I is named even when nothing was changed (the debug preset's 2).
    assert!(text(&out.stdout).contains("evaluating cem (iterations=2) on"), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("LATEST is missing; using") && stderr.contains("ep-000004"), "{stderr}");
}

#[test]
fn an_egl_failure_says_what_to_install() {
    let out = Command::new(env!("CARGO_BIN_EXE_gradplan"))
        .args(["rollout", "--task", "cartpole-swingup"])
        .env("MUJOCO_GL", "egl")
        .env("MUJOCO_EGL_DEVICE_ID", "99")
        .output()
        .unwrap();
    assert_clear_failure(&out, "apt-get install -y libegl1");
}

/// `gradplan <command> …` as the README writes it: code lines (with `\` continuations) and
/// inline code spans. Returns (command words, flags).
fn readme_commands() -> Vec<(Vec<String>, Vec<String>)> {
    let readme = include_str!("../../../README.md");
    let mut commands: Vec<String> = Vec::new();
    let mut pending: Option<String> = None;
    for line in readme.lines() {
        let code = line.split(" # ").next().unwrap_or("").trim();
        if let Some(p) = pending.as_mut() {
            p.push(' ');
            p.push_str(code.trim_end_matches('\\'));
        } else if code.starts_with("gradplan ") {
            pending = Some(code.trim_end_matches('\\').to_owned());
        }
        if pending.is_some() && !code.ends_with('\\') {
            commands.extend(pending.take());
        }
        // Inline spans: `gradplan …`.
        for (i, span) in line.split('`').enumerate() {
            if i % 2 == 1 && span.starts_with("gradplan ") {
                commands.push(span.to_owned());
            }
        }
    }
    commands
        .iter()
        .map(|c| {
            let words: Vec<&str> = c.split_whitespace().collect();
            let n = if words.get(1) == Some(&"bench") { 3 } else { 2 };
            let cmd = words.iter().skip(1).take(n - 1).map(|w| w.to_string()).collect();
            let flags = words
                .iter()
                .filter(|w| w.starts_with("--"))
                .map(|w| w.split('=').next().unwrap_or(w).to_string())
                .collect();
            (cmd, flags)
        })
        .collect()
}

#[test]
fn every_flag_the_readme_gives_a_command_exists() {
    let commands = readme_commands();
    assert!(commands.len() > 20, "{commands:?}");
    for (cmd, flags) in commands {
        let args: Vec<&str> = cmd.iter().map(String::as_str).chain(["--help"]).collect();
        let out = gradplan(&args);
        assert!(out.status.success(), "gradplan {}: {}", args.join(" "), text(&out.stderr));
        let help = text(&out.stdout);
        let words: Vec<&str> = help.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).collect();
        for flag in flags {
            assert!(
                words.contains(&flag.as_str()),
                "the README gives `gradplan {} {flag}`, which does not exist",
                cmd.join(" ")
            );
        }
    }
}

#[test]
fn train_help_lists_every_planner() {
    let help = text(&gradplan(&["train", "--help"]).stdout);
    for kind in ["cem", "grad-mpc", "mppi", "grad-cem", "random-shooting", "policy", "policy-grad-mpc"] {
        assert!(help.contains(kind), "{kind} missing from:\n{help}");
    }
}

/// A finished `debug` run (CEM, native pendulum, 4 episodes) in `<dir>/run`.
fn debug_run(dir: &std::path::Path) -> std::path::PathBuf {
    let run = dir.join("run");
    let train =
        ["train", "--preset", "debug", "--task", "native_pendulum-swingup", "--threads", "1", "--no-report"];
    let out = gradplan(&[&train[..], &["--run-dir", run.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    run
}

#[test]
fn resume_takes_a_device_threads_and_a_new_budget() {
    let dir = tempfile::tempdir().unwrap();
    let run = debug_run(dir.path());
    let run_arg = run.to_str().unwrap();
    let rows = || std::fs::read_to_string(run.join("metrics.csv")).unwrap().lines().count() - 1;
    assert_eq!(rows(), 4);
    // A finished run continues to a larger budget, on a device and thread count given now.
    let resume = ["resume", "--run-dir", run_arg, "--device", "cpu", "--threads", "1", "--no-report"];
    let out = gradplan(&[&resume[..], &["--total-env-steps", "1000"]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(rows(), 5);
    let cfg = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(cfg.contains("total_env_steps = 1000"), "{cfg}");
    // A resume that finds the budget spent writes nothing.
    let latest = std::fs::read_to_string(run.join("checkpoints/LATEST")).unwrap();
    let out = gradplan(&resume);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!((rows(), std::fs::read_to_string(run.join("checkpoints/LATEST")).unwrap()), (5, latest));
}

#[test]
fn resume_can_switch_the_planner_that_collects() {
    let dir = tempfile::tempdir().unwrap();
    let run = debug_run(dir.path());
    let run_arg = run.to_str().unwrap();
    let config = || std::fs::read_to_string(run.join("config.toml")).unwrap();
    let before = config();
    assert!(before.contains("kind = \"cem\""), "{before}");
    let rows = || std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let resume =
        ["resume", "--run-dir", run_arg, "--threads", "1", "--no-report", "--total-env-steps", "1000"];
    // A planner that needs an actor cannot take over a run without one, and only planner
    // settings can change: each is one error, and nothing is written.
    for (extra, expected) in [
        (&["--planner", "policy"][..], "needs a Dreamer agent"),
        (&["--set", "model.belief_size=8"][..], "only planner settings can change"),
        (&["--planner", "grad-mpc", "--set", "planner.elite_mean=-1"][..], "planner.elite_mean"),
    ] {
        let out = gradplan(&[&resume[..], extra].concat());
        assert!(!out.status.success());
        assert!(text(&out.stderr).contains(expected), "{extra:?}: {}", text(&out.stderr));
        assert_eq!(config(), before);
    }
    let metrics = rows();
    // Grad-MPC collects the next episode at its flavour's I, and the run's config says so.
    let out = gradplan(&[&resume[..], &["--planner", "grad-mpc"]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("collecting with grad-mpc (I 2)"), "{}", text(&out.stdout));
    let after = config();
    assert!(after.contains("kind = \"grad-mpc\"") && after.contains("iterations = 2"), "{after}");
    assert!(after.contains("total_env_steps = 1000"), "{after}");
    let new = rows();
    assert!(new.starts_with(&metrics), "the episodes before the switch are kept");
    let header: Vec<&str> = new.lines().next().unwrap().split(',').collect();
    let last: Vec<&str> = new.lines().last().unwrap().split(',').collect();
    let column = header.iter().position(|h| *h == "plan_iterations").unwrap();
    assert_eq!(last[column].parse::<f64>().unwrap(), 2.0, "{new}");
    assert_eq!(new.lines().count(), metrics.lines().count() + 1);
}

#[test]
fn a_pixel_run_on_the_native_backend_is_the_dm_control_run() {
    // Same seed, same episodes, same frames, hence the same losses and returns, column for
    // column, except for the timings.
    let dir = tempfile::tempdir().unwrap();
    let metrics = |backend: &str| -> Vec<Vec<String>> {
        let run = dir.path().join(backend);
        let out = gradplan(&[
            "train",
            "--preset",
            "debug",
            "--task",
            "cartpole-swingup",
            "--seed",
            "1",
            "--threads",
            "1",
            "--no-report",
            "--backend",
            backend,
            "--run-dir",
            run.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
        let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
        csv.lines()
            .map(|l| {
                l.split(',')
                    .zip(&header)
                    .filter(|(_, h)| !matches!(**h, "plan_ms" | "wall_s"))
                    .map(|(v, _)| v.to_owned())
                    .collect()
            })
            .collect()
    };
    let native = metrics("native");
    assert_eq!(native.len(), 1 + 4, "{native:?}");
    assert_eq!(native, metrics("dmc"));
}
