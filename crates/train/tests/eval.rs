//! `gradplan eval` on a tiny native-pendulum run (no Python; state observations, so the
//! video frames are rendered): planners compared on one model, same seed → same returns,
//! one eval.csv row per evaluation, clear errors.
//!
//! Only one test here draws from tch's global generator, so the returns stay reproducible
//! under `cargo test`'s threads as well as under nextest's processes.

mod common;

use common::{debug_config, eval_opts as opts};
use gradplan_config::RunConfig;
use gradplan_env::{Frame, Obs};
use gradplan_train::eval::{EVAL_COLUMNS, EVAL_FILE};
use gradplan_train::{evaluate, Decision, EvalOptions, Evaluator, RunOptions, Trainer};
use std::path::Path;

/// eval.csv as rows of cells (none of ours needs quoting).
fn rows(dir: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(dir.join(EVAL_FILE))
        .unwrap()
        .lines()
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

#[test]
fn planners_are_compared_on_one_model_reproducibly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    Trainer::create(debug_config(&[]), &dir).unwrap().run(&RunOptions::default()).unwrap();
    let returns =
        |r: &gradplan_train::EvalReport| r.episodes.iter().map(|e| e.total_return).collect::<Vec<_>>();

    let cem = evaluate(&dir, opts("cem", &[], 3)).unwrap();
    let again = evaluate(&dir, opts("cem", &[], 3)).unwrap();
    assert_eq!(returns(&cem), returns(&again), "same seed, different returns");
    assert_eq!(cem.predicted_return_mean, again.predicted_return_mean);
    assert_eq!((cem.counters.episodes, cem.counters.env_steps), (4, 400));
    assert_eq!(cem.settings, "", "the run's own planner");
    assert!(cem.episodes.iter().all(|e| e.decisions == 50 && e.env_steps == 100), "{:?}", cem.episodes);
    let other_seed = evaluate(&dir, opts("cem", &[], 4)).unwrap();
    assert_ne!(returns(&cem), returns(&other_seed));

    // Another planner on the same model, with the frames it saw.
    let mut evaluator = Evaluator::new(&dir, opts("grad-mpc", &["planner.iterations=3"], 3)).unwrap();
    assert_eq!(evaluator.planner().iterations, Some(3));
    let mut frames = 0usize;
    let mut count = |f: &Frame| {
        assert_eq!((f.height, f.width), (64, 64));
        frames += 1;
    };
    let mut seen = Vec::new();
    let grad = evaluator.run(&mut |i, e| seen.push((i, e.total_return)), Some(&mut count)).unwrap();
    assert_eq!(frames, 2 * (1 + 50), "a reset frame and one per decision");
    assert_eq!(seen, vec![(0, grad.episodes[0].total_return), (1, grad.episodes[1].total_return)]);
    assert_eq!(grad.settings, "iterations=3");
    assert!(grad.ms_per_decision > 0.0 && grad.predicted_return_mean.is_finite());
    let same = evaluate(&dir, opts("grad-mpc", &["planner.iterations=3"], 3)).unwrap();
    assert_eq!(returns(&grad), returns(&same));

    // A per-decision trace of the same episodes: nothing changes, and it adds up.
    let mut traced = Evaluator::new(&dir, opts("grad-mpc", &["planner.iterations=3"], 3)).unwrap();
    struct Seen {
        episode: usize,
        index: usize,
        reward: f64,
        action: Vec<f32>,
        predicted: Option<f64>,
        obs_len: usize,
    }
    let mut decisions: Vec<Seen> = Vec::new();
    let mut keep = |episode: usize, d: &Decision| {
        let obs_len = match d.obs {
            Obs::State(v) => v.len(),
            Obs::Pixels(_) => 0,
        };
        decisions.push(Seen {
            episode,
            index: d.index,
            reward: d.reward,
            action: d.action.to_vec(),
            predicted: d.predicted_return,
            obs_len,
        });
        assert!(d.plan_ms.is_some_and(|ms| ms > 0.0));
    };
    let with_trace = traced.run_traced(&mut |_, _| {}, None, Some(&mut keep)).unwrap();
    assert_eq!(returns(&with_trace), returns(&grad), "tracing changed the episodes");
    assert_eq!(decisions.len(), 2 * 50);
    for (k, e) in with_trace.episodes.iter().enumerate() {
        let mine: Vec<&Seen> = decisions.iter().filter(|d| d.episode == k).collect();
        assert_eq!(mine.iter().map(|d| d.index).collect::<Vec<_>>(), (0..50).collect::<Vec<_>>());
        let sum: f64 = mine.iter().map(|d| d.reward).sum();
        assert!((sum - e.total_return).abs() < 1e-9, "{sum} vs {}", e.total_return);
        let predicted: f64 = mine.iter().map(|d| d.predicted.unwrap()).sum::<f64>() / 50.0;
        assert!((predicted - e.predicted_return.unwrap()).abs() < 1e-9);
    }
    assert!(decisions.iter().all(|d| d.action.len() == 1 && d.action[0].abs() <= 1.0 && d.obs_len == 3));
    let mut parallel = Evaluator::new(&dir, EvalOptions { envs: 2, ..opts("cem", &[], 3) }).unwrap();
    let refused = parallel.run_traced(&mut |_, _| {}, None, Some(&mut |_, _| {})).unwrap_err().to_string();
    assert!(refused.contains("one after another"), "{refused}");

    let table = rows(&dir);
    assert_eq!(table[0], EVAL_COLUMNS, "header");
    assert_eq!(table.len(), 1 + 6, "one row per evaluation");
    let col = |name: &str| EVAL_COLUMNS.iter().position(|c| *c == name).unwrap();
    let planners: Vec<&str> = table[1..].iter().map(|r| r[col("planner")].as_str()).collect();
    assert_eq!(planners, ["cem", "cem", "cem", "grad-mpc", "grad-mpc", "grad-mpc"]);
    for (row, report) in table[1..].iter().zip([&cem, &again, &other_seed, &grad, &same, &with_trace]) {
        assert_eq!(row.len(), EVAL_COLUMNS.len());
        assert_eq!(row[col("checkpoint_episode")], "4");
        assert_eq!(row[col("checkpoint_env_steps")], "400");
        assert_eq!(row[col("settings")], report.settings);
        assert_eq!(row[col("seed")], report.seed.to_string());
        assert_eq!(row[col("episodes")], "2");
        assert_eq!(row[col("return_mean")], format!("{:.6}", report.return_mean));
        assert_eq!(row[col("device")], "cpu");
        assert!(row[col("timestamp")].ends_with('Z'));
        for c in ["return_std", "ms_per_decision", "predicted_return_mean"] {
            assert!(row[col(c)].parse::<f64>().is_ok_and(f64::is_finite), "{c}: {row:?}");
        }
    }

    // Several environments at once (each on its own thread) play the very same episodes:
    // every episode keeps its own random stream, and callbacks and frames come in episode
    // order. Three environments for five episodes also restarts environments mid-way.
    for (planner, settings) in [("cem", &[][..]), ("grad-mpc", &["planner.iterations=3"][..])] {
        let alone_opts = EvalOptions { episodes: 5, ..opts(planner, settings, 9) };
        let mut alone_frames: Vec<Frame> = Vec::new();
        let mut keep = |f: &Frame| alone_frames.push(f.clone());
        let alone =
            Evaluator::new(&dir, alone_opts.clone()).unwrap().run(&mut |_, _| {}, Some(&mut keep)).unwrap();
        for envs in [2, 3] {
            let mut frames: Vec<Frame> = Vec::new();
            let mut keep = |f: &Frame| frames.push(f.clone());
            let mut order = Vec::new();
            let parallel = Evaluator::new(&dir, EvalOptions { envs, ..alone_opts.clone() })
                .unwrap()
                .run(&mut |i, e| order.push((i, e.total_return)), Some(&mut keep))
                .unwrap();
            assert_eq!(returns(&parallel), returns(&alone), "{planner} on {envs} environments");
            for (p, a) in parallel.episodes.iter().zip(&alone.episodes) {
                assert_eq!((p.decisions, p.env_steps), (a.decisions, a.env_steps));
                assert_eq!((p.predicted_return, p.iterations), (a.predicted_return, a.iterations));
            }
            let expected: Vec<_> =
                alone.episodes.iter().enumerate().map(|(i, e)| (i, e.total_return)).collect();
            assert_eq!(order, expected);
            assert_eq!(frames.len(), 5 * 51);
            assert!(frames == alone_frames, "{planner} on {envs} environments saw other frames");
        }
    }
}

#[test]
fn bad_runs_planners_and_settings_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let err = |dir: &Path, o: EvalOptions| evaluate(dir, o).expect_err("should fail").to_string();

    let e = err(&tmp.path().join("nothing"), opts("cem", &[], 0));
    assert!(e.contains("config.toml"), "{e}");

    // A run that has not written a checkpoint yet (its configuration only; nothing is
    // trained, so this test draws no random numbers).
    let dir = tmp.path().join("fresh");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.toml"), debug_config(&[]).to_toml().unwrap()).unwrap();
    let e = err(&dir, opts("cem", &[], 0));
    assert!(e.contains("no checkpoint yet") && e.contains("gradplan resume"), "{e}");
    // The kind is typed: a misspelt one is refused where it is parsed (the CLI's --planner).
    let e = "cme".parse::<gradplan_config::PlannerKind>().unwrap_err().to_string();
    assert!(e.contains("cem, grad-mpc, mppi, grad-cem, random-shooting"), "{e}");
    let e = err(&dir, opts("mppi", &["planner.temprature=2"], 0));
    assert!(e.contains("planner.temprature"), "{e}");
    let e = err(&dir, opts("mppi", &["model.belief_size=8"], 0));
    assert!(e.contains("only planner settings can change"), "{e}");
    let e = err(&dir, EvalOptions { episodes: 0, ..opts("cem", &[], 0) });
    assert!(e.contains("episodes"), "{e}");
    let e = err(&dir, EvalOptions { envs: 0, ..opts("cem", &[], 0) });
    assert!(e.contains("envs"), "{e}");
    // Several dm_control environments would only take turns under Python's lock.
    let dmc = tmp.path().join("dmc");
    std::fs::create_dir_all(&dmc).unwrap();
    let cfg = RunConfig::resolve("debug", None, &["env.task=cartpole-swingup".to_owned()]).unwrap();
    std::fs::write(dmc.join("config.toml"), cfg.to_toml().unwrap()).unwrap();
    let e = err(&dmc, EvalOptions { envs: 2, ..opts("cem", &[], 0) });
    assert!(e.contains("native MuJoCo backend") && e.contains("--backend native"), "{e}");
    assert!(!dir.join(EVAL_FILE).exists());
}
