//! Environments for gradplan.
//!
//! * [`Env`]: the interface — `reset(seed) -> Obs`, `step(action) -> Step { obs, reward,
//!   terminated, truncated }`, with action repeat built in (rewards summed over the repeat).
//! * [`dmc::DmcEnv`]: the real DeepMind Control Suite (dm_control 1.0.50, MuJoCo 3.17.0),
//!   driven through an embedded CPython; rewards and frames are bit-identical to a Python user
//!   of `dm_control.suite` with the same seed and actions.
//! * [`suite::NativeSuiteEnv`]: dm_control tasks reimplemented in Rust on libmujoco 3.17.0
//!   (`env.backend = "native"`, behind the default `mujoco` feature): no Python, and the same
//!   initial states, state observations and frames (direct and resized) as dm_control, bit
//!   for bit, and the same rewards up to the last bit where numpy's AVX-512 `exp` rounds
//!   differently (docs/decisions.md, #12).
//! * [`native`]: small environments written in Rust with pixel rendering and a known good
//!   policy, so everything above the environment can be tested fast and without Python.
//! * [`thread::ThreadEnv`]: an environment on its own thread, so several step at once (eval's
//!   parallel test episodes).
//! * [`preprocess`]: PlaNet's 5-bit image preprocessing.
//! * [`resize`]: OpenCV's bilinear uint8 resize, byte for byte, for the native backend's
//!   `pixel_mode = "resize"`.

#[cfg(feature = "dmc")]
pub mod dmc;
pub mod native;
pub mod preprocess;
pub mod resize;
mod spec;
#[cfg(feature = "mujoco")]
pub mod suite;
mod tasks;
pub mod thread;
#[cfg(any(feature = "dmc", feature = "mujoco"))]
mod venv;

pub use spec::{decisions_per_episode, ActionSpec, Env, Frame, Obs, ObsSpec, Step};
pub use tasks::{TaskName, NATIVE_PREFIX, PAPER_TASKS};
pub use thread::{parallel_backend_error, ThreadEnv};
#[cfg(any(feature = "dmc", feature = "mujoco"))]
pub use venv::{find_venv, VENV_VAR};

use gradplan_config::{EnvBackend, EnvConfig};

/// Everything that can go wrong in an environment.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown task `{name}`: {hint}")]
    UnknownTask { name: String, hint: String },
    #[error("action has {got} dimensions but the task expects {expected}")]
    ActionDim { expected: usize, got: usize },
    #[error("action component {index} is {value}; actions must be finite numbers")]
    NonFiniteAction { index: usize, value: f32 },
    #[error("step called after the episode ended; call reset first")]
    EpisodeOver,
    #[error("step called before reset")]
    NotReset,
    #[error(
        "no Python environment found{searched}. Run `scripts/setup.sh` in the gradplan checkout \
         (it creates .venv/), or point GRADPLAN_VENV at a virtualenv with dm_control installed"
    )]
    NoPythonEnv { searched: String },
    #[error(
        "dm_control is not installed in the Python environment {venv} ({detail}). Install it with \
         `{venv}/bin/pip install dm_control==1.0.50 mujoco==3.17.0`, or run `scripts/setup.sh`"
    )]
    MissingDmControl { venv: String, detail: String },
    #[error(
        "MuJoCo could not render headless with EGL ({detail}). Install the EGL and Mesa libraries \
         with `apt-get install -y libegl1 libegl-mesa0 libgl1-mesa-dri libgles2`, or run \
         `scripts/setup.sh`"
    )]
    Egl { detail: String },
    #[error("invalid environment settings: {0}")]
    Config(#[from] gradplan_config::Error),
    #[error("environment backend failed: {0}")]
    Backend(String),
    #[error("cannot load the native dm_control task: {0}")]
    NativeAssets(String),
    #[cfg(feature = "mujoco")]
    #[error("MuJoCo: {0}")]
    Mujoco(#[from] gradplan_mujoco::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Checks a camera id against a task's `cameras` (ids 0 to cameras − 1, or −1 for the free
/// camera), as `env.camera`: both dm_control backends check it when the environment is
/// built, so a bad camera fails before a run directory is written.
#[cfg(any(feature = "dmc", feature = "mujoco"))]
pub(crate) fn check_camera(task: &str, cameras: i64, camera: i64) -> Result<()> {
    if (-1..cameras).contains(&camera) {
        return Ok(());
    }
    Err(Error::Config(gradplan_config::Error::Invalid {
        key: "env.camera".into(),
        reason: format!(
            "{task} has {cameras} cameras (ids 0 to {}, or -1 for the free camera); got {camera}",
            cameras - 1
        ),
    }))
}

/// Builds the environment a configuration names: the `native_` toy tasks in Rust, a
/// dm_control task through dm_control (`env.backend = "dmc"`) or natively on MuJoCo
/// (`env.backend = "native"`).
pub fn make_env(cfg: &EnvConfig) -> Result<Box<dyn Env>> {
    cfg.validate()?;
    let name = TaskName::parse(&cfg.task)?;
    if name.is_native() {
        return Ok(Box::new(native::make(&name, cfg)?));
    }
    if cfg.backend == EnvBackend::Native {
        #[cfg(feature = "mujoco")]
        {
            return Ok(Box::new(suite::NativeSuiteEnv::new(cfg)?));
        }
        #[cfg(not(feature = "mujoco"))]
        {
            return Err(Error::UnknownTask {
                name: cfg.task.clone(),
                hint: "this build has no native MuJoCo backend (built without the `mujoco` \
                       feature); use `env.backend = \"dmc\"`"
                    .into(),
            });
        }
    }
    #[cfg(feature = "dmc")]
    {
        Ok(Box::new(dmc::DmcEnv::new(cfg)?))
    }
    #[cfg(not(feature = "dmc"))]
    {
        Err(Error::UnknownTask {
            name: cfg.task.clone(),
            hint: "this build has no dm_control backend (built without the `dmc` feature); run the \
                   task on the native MuJoCo backend with `env.backend = \"native\"` (`--backend \
                   native`)"
                .into(),
        })
    }
}
