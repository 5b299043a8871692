//! Frames of the native MuJoCo backend against the dm_control backend, both in this test
//! process: pixel observations rendered directly at 64×64 or rendered at 240×320 and
//! resized (`pixel_mode = "resize"`, cv2 on the dm_control side), and `render(240, 320)`
//! video frames, after reset and after every decision of a fixed action sequence.
//!
//! Both backends draw with the same libmujoco on the same EGL device (Mesa's software
//! rasteriser here), each in its own OpenGL context. Needs the project's `.venv/`
//! (scripts/setup.sh) and EGL, like `tests/dmc.rs`.
#![cfg(all(feature = "dmc", feature = "mujoco"))]

mod common;

use common::{config, sweep};
use gradplan_config::{EnvBackend, EnvConfig, ObsKind, PixelMode};
use gradplan_env::resize::resize_linear;
use gradplan_env::{make_env, Env, Frame, Obs};
use std::sync::Once;
use std::time::{Duration, Instant};

static SETUP: Once = Once::new();

fn setup() {
    SETUP.call_once(|| std::env::set_var("MUJOCO_GL", "egl"));
}

fn pixels(task: &str, backend: EnvBackend) -> EnvConfig {
    pixels_by(task, backend, PixelMode::Direct)
}

fn pixels_by(task: &str, backend: EnvBackend, pixel_mode: PixelMode) -> EnvConfig {
    EnvConfig { obs: ObsKind::Pixels, pixel_mode, image_size: 64, ..config(task, backend, None) }
}

fn frame(obs: Obs) -> Frame {
    match obs {
        Obs::Pixels(f) => f,
        Obs::State(_) => panic!("asked for pixel observations"),
    }
}

/// How far apart two frames are.
#[derive(Debug, Default, Clone, Copy)]
struct Diff {
    max_abs: u8,
    differing_bytes: usize,
}

fn diff(a: &Frame, b: &Frame) -> Diff {
    assert_eq!((a.height, a.width), (b.height, b.width));
    let mut d = Diff::default();
    for (x, y) in a.data.iter().zip(&b.data) {
        let abs = x.abs_diff(*y);
        d.max_abs = d.max_abs.max(abs);
        d.differing_bytes += usize::from(abs != 0);
    }
    d
}

/// Runs one episode prefix of `decisions` decisions on both backends and asserts every
/// observation frame and every 240×320 video frame is identical.
fn assert_frames_identical(task: &str, mode: PixelMode, seed: u64, decisions: usize) {
    let mut dmc_env = make_env(&pixels_by(task, EnvBackend::Dmc, mode)).unwrap();
    let mut native = make_env(&pixels_by(task, EnvBackend::Native, mode)).unwrap();
    assert_eq!(dmc_env.obs_spec(), native.obs_spec(), "{task}");
    let dim = native.action_spec().dim();
    let compare = |what: String, n: &Frame, d: &Frame| {
        let off = diff(n, d);
        assert!(
            off.differing_bytes == 0,
            "{what}: {} of {} bytes differ, by at most {}",
            off.differing_bytes,
            n.data.len(),
            off.max_abs
        );
    };
    let task = format!("{task} ({mode})");
    let d0 = frame(dmc_env.reset(Some(seed)).unwrap());
    let n0 = frame(native.reset(Some(seed)).unwrap());
    compare(format!("{task} seed {seed}: initial frame"), &n0, &d0);
    let first = &n0.data[..3];
    assert!(n0.data.chunks_exact(3).any(|p| p != first), "{task}: a uniform frame");
    let mut moved = false;
    for t in 0..decisions {
        let a = sweep(t, seed, dim);
        let d = dmc_env.step(&a).unwrap();
        let n = frame(native.step(&a).unwrap().obs);
        compare(format!("{task} seed {seed} decision {t}"), &n, &frame(d.obs));
        moved |= n != n0;
        if t % 4 == 0 {
            let dv = dmc_env.render(240, 320).unwrap();
            let nv = native.render(240, 320).unwrap();
            compare(format!("{task} seed {seed} decision {t}: 240x320 video frame"), &nv, &dv);
        }
    }
    assert!(moved, "{task}: every frame equals the first, so the comparison saw no motion");
}

/// One test for every task: dm_control binds each of its EGL contexts to the thread that
/// first made it current and remembers that by thread id, which the test harness's
/// short-lived threads reuse, so its frames are only reliable when one thread renders.
#[test]
fn frames_are_identical() {
    setup();
    for (task, seed) in [
        ("cartpole-swingup", 0),
        ("cartpole-swingup", 7),
        ("walker-walk", 5),
        ("cheetah-run", 13),
        ("finger-spin", 6),
        ("reacher-easy", 4),
        ("ball_in_cup-catch", 9),
    ] {
        assert_frames_identical(task, PixelMode::Direct, seed, 12);
        assert_frames_identical(task, PixelMode::Resize, seed, 8);
    }
}

fn time_frames(env: &mut dyn Env, height: usize, width: usize, frames: usize) -> Duration {
    env.reset(Some(0)).unwrap();
    env.render(height, width).unwrap();
    let start = Instant::now();
    for _ in 0..frames {
        std::hint::black_box(env.render(height, width).unwrap());
    }
    start.elapsed() / frames as u32
}

/// Prints the cost of one frame on each backend, 64×64 and the 240×320 that `resize` starts
/// from, and of the native shrink to 64×64 (not asserted: machine-dependent).
/// `cargo test -p gradplan-env --test native_pixels_vs_dmc -- --ignored --nocapture`
#[test]
#[ignore]
fn render_cost_per_frame() {
    setup();
    for task in ["cartpole-swingup", "walker-walk", "cheetah-run"] {
        let mut dmc_env = make_env(&pixels(task, EnvBackend::Dmc)).unwrap();
        let mut native = make_env(&pixels(task, EnvBackend::Native)).unwrap();
        for (height, width, frames) in [(64, 64, 200), (240, 320, 50)] {
            let dmc_cost = time_frames(dmc_env.as_mut(), height, width, frames);
            let native_cost = time_frames(native.as_mut(), height, width, frames);
            println!("{task}: {height}x{width} frame, dm_control {dmc_cost:?}, native {native_cost:?}");
        }
        let big = native.render(240, 320).unwrap();
        let start = Instant::now();
        for _ in 0..200 {
            std::hint::black_box(resize_linear(&big.data, 240, 320, 64, 64));
        }
        println!("{task}: native 240x320 -> 64x64 resize {:?}", start.elapsed() / 200);
    }
}
