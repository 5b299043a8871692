//! The dm_control backend against plain dm_control in Python, in the same test run.
//!
//! Needs the project's `.venv/` (scripts/setup.sh); these tests fail rather than skip
//! without it, because the real environment is what the project promises.
#![cfg(feature = "dmc")]

use gradplan_config::{EnvConfig, ObsKind, PixelMode};
use gradplan_env::{dmc, make_env, Error, Obs, PAPER_TASKS};
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::process::{Command, Stdio};

fn cfg(task: &str, obs: ObsKind, pixel_mode: PixelMode) -> EnvConfig {
    EnvConfig { task: task.into(), obs, pixel_mode, ..EnvConfig::default() }
}

fn obs_key(obs: &Obs) -> String {
    match obs {
        Obs::Pixels(f) => Sha256::digest(&f.data).iter().map(|b| format!("{b:02x}")).collect(),
        Obs::State(v) => v.iter().flat_map(|x| x.to_le_bytes()).map(|b| format!("{b:02x}")).collect(),
    }
}

struct Case {
    cfg: EnvConfig,
    seed: u64,
    actions: Vec<Vec<f32>>,
}

struct Trace {
    obs: Vec<String>,
    reward_bits: Vec<u64>,
}

fn run_rust(case: &Case) -> Trace {
    let mut env = make_env(&case.cfg).unwrap();
    let mut trace = Trace { obs: vec![obs_key(&env.reset(Some(case.seed)).unwrap())], reward_bits: vec![] };
    for a in &case.actions {
        let step = env.step(a).unwrap();
        trace.reward_bits.push(step.reward.to_bits());
        trace.obs.push(obs_key(&step.obs));
    }
    trace
}

fn run_python(cases: &[Case]) -> Vec<Trace> {
    let venv = dmc::find_venv().expect("the project's .venv (run scripts/setup.sh)");
    let spec: Vec<serde_json::Value> = cases
        .iter()
        .map(|c| {
            let repeat = c.cfg.action_repeat.unwrap_or_else(|| {
                gradplan_env::TaskName::parse(&c.cfg.task).unwrap().default_action_repeat()
            });
            serde_json::json!({
                "task": c.cfg.task, "seed": c.seed, "repeat": repeat,
                "obs": c.cfg.obs.to_string(), "pixel_mode": c.cfg.pixel_mode.to_string(),
                "actions": c.actions.iter().map(|a| a.iter().map(|&x| x as f64).collect::<Vec<_>>()).collect::<Vec<_>>(),
            })
        })
        .collect();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/dmc_reference.py");
    let mut child = Command::new(venv.join("bin/python"))
        .arg(script)
        .env("MUJOCO_GL", "egl")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(serde_json::to_string(&spec).unwrap().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python reference failed");
    let parsed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    parsed
        .into_iter()
        .map(|t| Trace {
            obs: t["obs"].as_array().unwrap().iter().map(|o| o.as_str().unwrap().to_owned()).collect(),
            reward_bits: t["rewards"].as_array().unwrap().iter().map(|r| r.as_u64().unwrap()).collect(),
        })
        .collect()
}

fn random_actions(dim: usize, n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| (0..dim).map(|_| rng.random_range(-1.0f32..=1.0)).collect()).collect()
}

#[test]
fn paper_tasks_match_python_bit_for_bit() {
    let mut cases = Vec::new();
    for (i, task) in PAPER_TASKS.iter().enumerate() {
        let c = cfg(task, ObsKind::Pixels, PixelMode::Resize);
        let dim = make_env(&EnvConfig { obs: ObsKind::State, ..c.clone() }).unwrap().action_spec().dim();
        cases.push(Case { cfg: c, seed: 10 + i as u64, actions: random_actions(dim, 6, i as u64) });
    }
    // The other pixel mode and the state mode, on one task each.
    cases.push(Case {
        cfg: cfg("cartpole-swingup", ObsKind::Pixels, PixelMode::Direct),
        seed: 3,
        actions: random_actions(1, 6, 99),
    });
    cases.push(Case {
        cfg: cfg("walker-walk", ObsKind::State, PixelMode::Resize),
        seed: 4,
        actions: random_actions(6, 20, 7),
    });
    let python = run_python(&cases);
    for (case, py) in cases.iter().zip(&python) {
        let ours = run_rust(case);
        let what = format!("{} ({}, {})", case.cfg.task, case.cfg.obs, case.cfg.pixel_mode);
        assert_eq!(ours.reward_bits, py.reward_bits, "rewards differ for {what}");
        assert_eq!(ours.obs, py.obs, "observations differ for {what}");
        assert!(ours.obs.windows(2).any(|w| w[0] != w[1]), "observations never changed for {what}");
    }
}

#[test]
fn seeds_fix_the_episode_and_reset_reseeds_like_a_fresh_load() {
    let c = cfg("cartpole-swingup", ObsKind::State, PixelMode::Resize);
    let actions = random_actions(1, 10, 5);
    let case = Case { cfg: c.clone(), seed: 42, actions: actions.clone() };
    let a = run_rust(&case);
    assert_eq!(a.obs, run_rust(&case).obs, "same seed, different episode");
    let other = run_rust(&Case { seed: 43, ..case });
    assert_ne!(a.obs[0], other.obs[0], "different seeds gave the same initial state");

    // An env that already played an episode, reset with seed 42, equals a fresh one.
    let mut env = make_env(&c).unwrap();
    env.reset(Some(7)).unwrap();
    for act in &actions {
        env.step(act).unwrap();
    }
    let again = obs_key(&env.reset(Some(42)).unwrap());
    assert_eq!(again, a.obs[0]);
    // reset(None) continues the random stream: a new initial state.
    env.step(&actions[0]).unwrap();
    assert_ne!(obs_key(&env.reset(None).unwrap()), a.obs[0]);
}

#[test]
fn action_repeat_sums_rewards_and_episodes_end_by_truncation() {
    for (task, repeat, decisions) in [("cartpole-swingup", 8, 125), ("ball_in_cup-catch", 6, 167)] {
        let c = EnvConfig { action_repeat: Some(repeat), ..cfg(task, ObsKind::State, PixelMode::Resize) };
        let single = EnvConfig { action_repeat: Some(1), ..c.clone() };
        let (mut env, mut one) = (make_env(&c).unwrap(), make_env(&single).unwrap());
        env.reset(Some(1)).unwrap();
        one.reset(Some(1)).unwrap();
        let dim = env.action_spec().dim();
        let action = vec![0.3f32; dim];
        let mut n = 0;
        let mut sim_steps = 0;
        loop {
            let step = env.step(&action).unwrap();
            n += 1;
            let mut sum = 0.0f64;
            for _ in 0..repeat {
                if sim_steps == 1000 {
                    break;
                }
                sum += one.step(&action).unwrap().reward;
                sim_steps += 1;
            }
            assert_eq!(step.reward.to_bits(), sum.to_bits(), "{task}: decision {n}");
            assert!(!step.terminated, "{task}: DMC tasks never terminate");
            if step.truncated {
                break;
            }
        }
        assert_eq!(n, decisions, "{task}: decisions per episode");
        assert_eq!(sim_steps, 1000);
        assert!(matches!(env.step(&action), Err(Error::EpisodeOver)));
    }
}

#[test]
fn bad_input_gets_clear_errors() {
    let err = make_env(&cfg("cartpole-swingupp", ObsKind::State, PixelMode::Resize)).err().unwrap();
    assert!(matches!(err, Error::UnknownTask { .. }));
    assert!(err.to_string().contains("cartpole-swingup"), "no suggestion in: {err}");
    assert!(make_env(&cfg("nonsense", ObsKind::State, PixelMode::Resize)).is_err());

    let mut env = make_env(&cfg("reacher-easy", ObsKind::State, PixelMode::Resize)).unwrap();
    assert!(matches!(env.step(&[0.0, 0.0]), Err(Error::NotReset)));
    env.reset(Some(0)).unwrap();
    assert!(matches!(env.step(&[0.0]), Err(Error::ActionDim { expected: 2, got: 1 })));
    assert!(matches!(env.step(&[0.0, f32::NAN]), Err(Error::NonFiniteAction { index: 1, .. })));
    // Out-of-bounds actions are clipped, not rejected.
    assert!(env.step(&[5.0, -5.0]).is_ok());
}

#[test]
fn a_camera_the_task_lacks_is_a_config_error_at_construction() {
    for obs in [ObsKind::Pixels, ObsKind::State] {
        let bad = EnvConfig { camera: Some(99), ..cfg("cartpole-swingup", obs, PixelMode::Resize) };
        let err = make_env(&bad).err().unwrap().to_string();
        assert!(err.contains("env.camera") && err.contains("cameras"), "{err}");
    }
    // -1 is MuJoCo's free camera, and the task's last camera is fine.
    for camera in [-1, 1] {
        let ok =
            EnvConfig { camera: Some(camera), ..cfg("cartpole-swingup", ObsKind::Pixels, PixelMode::Direct) };
        make_env(&ok).unwrap().reset(Some(0)).unwrap();
    }
}

#[test]
fn embedded_interpreter_is_the_venvs_not_the_systems() {
    let info = dmc::python().unwrap();
    let venv_python = info.venv.join("bin/python");
    let out = Command::new(&venv_python).args(["-c", "import sys; print(sys.version)"]).output().unwrap();
    let expected = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(
        info.version,
        expected,
        "the binary loaded a different libpython than {}",
        venv_python.display()
    );
}
