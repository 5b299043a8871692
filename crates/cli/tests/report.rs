//! `gradplan report` on a tiny pixel run of the native pendulum (no Python), and the report
//! written at the end of `gradplan train`.

use std::path::Path;
use std::process::{Command, Output};

fn gradplan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gradplan")).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Trains 3 episodes of 50 decisions on pixels, with or without the final report.
fn train(dir: &Path, extra: &[&str]) -> Output {
    let args = [
        "train",
        "--task",
        "native_pendulum-swingup",
        "--obs",
        "pixels",
        "--preset",
        "debug",
        "--seed",
        "2",
        "--threads",
        "1",
        "--set",
        "env.episode_steps=100",
        "--set",
        "train.total_env_steps=300",
        "--run-dir",
        dir.to_str().unwrap(),
    ];
    let out = gradplan(&[&args[..], extra].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    out
}

#[test]
fn report_writes_curves_an_openloop_gif_and_an_index() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    train(&run, &["--no-report"]);
    assert!(!run.join("report").exists(), "--no-report wrote a report");

    let out = gradplan(&["report", "--run-dir", run.to_str().unwrap(), "--seed", "1", "--context", "4"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let report = run.join("report");
    for name in [
        "returns.png",
        "returns.svg",
        "losses.png",
        "losses.svg",
        "planning.png",
        "planning.svg",
        "openloop.png",
        "openloop.svg",
        "openloop.gif",
        "index.md",
    ] {
        let path = report.join(name);
        assert!(path.is_file(), "{name} missing; stdout: {stdout}");
        assert!(stdout.contains(&path.display().to_string()), "{name} not printed: {stdout}");
    }

    // [real | reconstruction | open loop]: three 64×64 panels, upscaled alike; one frame per
    // time step (the reset observation and 50 decisions).
    let mut opts = gif::DecodeOptions::new();
    opts.set_color_output(gif::ColorOutput::RGBA);
    let mut decoder = opts.read_info(std::fs::File::open(report.join("openloop.gif")).unwrap()).unwrap();
    let (width, height) = (usize::from(decoder.width()), usize::from(decoder.height()));
    assert_eq!(height % 64, 0, "height {height}");
    let scale = height / 64;
    assert!(scale >= 1);
    assert_eq!(width, 3 * 64 * scale);
    let mut frames = 0;
    while decoder.read_next_frame().unwrap().is_some() {
        frames += 1;
    }
    assert_eq!(frames, 51);

    let index = std::fs::read_to_string(report.join("index.md")).unwrap();
    for needle in ["native_pendulum-swingup", "cem", "debug", "pixels", "C = 4", "![returns](returns.png)"] {
        assert!(index.contains(needle), "index.md lacks `{needle}`:\n{index}");
    }

    // An evaluation's row shows up in the next report.
    let eval = gradplan(&["eval", "--run-dir", run.to_str().unwrap(), "--episodes", "1", "--threads", "1"]);
    assert!(eval.status.success(), "{}", text(&eval.stderr));
    let out = gradplan(&["report", "--run-dir", run.to_str().unwrap(), "--no-video"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let index = std::fs::read_to_string(report.join("index.md")).unwrap();
    assert!(index.contains("| timestamp |") && index.contains("return_mean"), "{index}");
    for entry in std::fs::read_dir(&report).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.contains(".tmp"), "temporary file {name} left behind");
    }

    let missing = gradplan(&["report", "--run-dir", tmp.path().join("nope").to_str().unwrap()]);
    assert!(!missing.status.success());
    assert!(text(&missing.stderr).contains("is not a run directory"), "{}", text(&missing.stderr));
}

#[test]
fn train_writes_the_report_when_the_run_stops() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let out = train(&run, &[]);
    assert!(text(&out.stdout).contains("report:"), "{}", text(&out.stdout));
    assert!(run.join("report/index.md").is_file());
    assert!(run.join("report/openloop.gif").is_file());
}
