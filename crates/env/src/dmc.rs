//! The real DeepMind Control Suite, through an embedded CPython (pyo3).
//!
//! Pinned to dm_control 1.0.50 and MuJoCo 3.17.0 (MuJoCo 4.0 breaks dm_control 1.0.50).
//! The Python side (`python/gradplan_dmc.py`, compiled into the binary) does only what a
//! Python user of `dm_control.suite` would: `suite.load(domain, task,
//! task_kwargs={'random': seed})`, `env.step(action)` in float64, `physics.render`, and for
//! [`PixelMode::Resize`] `cv2.resize(..., INTER_LINEAR)` — so rewards and frames are
//! bit-identical to that user's (tested in `tests/dmc_vs_python.rs`).
//!
//! The interpreter is CPython 3.11 from the project's `.venv/` (made by
//! `scripts/setup.sh`), found next to the executable's checkout or through `GRADPLAN_VENV`.
//! Headless rendering uses EGL (`MUJOCO_GL=egl`, unless the caller set another backend).

use crate::spec::{ActionSpec, Env, Frame, Obs, ObsSpec, Step};
use crate::tasks::TaskName;
use crate::{Error, Result};
use gradplan_config::{EnvConfig, ObsKind, PixelMode};
use pyo3::exceptions::PyImportError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyModule};
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const BRIDGE_SOURCE: &str = include_str!("../python/gradplan_dmc.py");

pub use crate::venv::{find_venv, VENV_VAR};

/// The Python environment the embedded interpreter was pointed at.
#[derive(Debug, Clone)]
pub struct PythonEnv {
    /// Root of the virtualenv.
    pub venv: PathBuf,
    /// Its `site-packages`, added to `sys.path`.
    pub site_packages: PathBuf,
    /// `sys.version` of the embedded interpreter.
    pub version: String,
}

static PYTHON: OnceLock<std::result::Result<PythonEnv, Error>> = OnceLock::new();

fn site_packages(venv: &Path, major: u8, minor: u8) -> Result<PathBuf> {
    let dir = venv.join("lib").join(format!("python{major}.{minor}")).join("site-packages");
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(Error::NoPythonEnv {
            searched: format!(
                " ({} has no Python {major}.{minor} site-packages; gradplan was built against \
                 Python {major}.{minor}, so the virtualenv must be made with that version)",
                venv.display()
            ),
        })
    }
}

/// Starts the embedded interpreter once and puts the virtualenv's packages on its path.
pub fn python() -> Result<PythonEnv> {
    match PYTHON.get_or_init(init_python) {
        Ok(env) => Ok(env.clone()),
        // The interpreter can only be set up once per process, so later callers get a copy
        // of the first failure.
        Err(Error::NoPythonEnv { searched }) => Err(Error::NoPythonEnv { searched: searched.clone() }),
        Err(other) => Err(Error::Backend(other.to_string())),
    }
}

fn init_python() -> Result<PythonEnv> {
    let venv = find_venv()?;
    Python::attach(|py| {
        let sys = py.import("sys").map_err(|e| py_error(py, e))?;
        let info = sys.getattr("version_info").map_err(|e| py_error(py, e))?;
        let major: u8 = info.getattr("major").and_then(|v| v.extract()).map_err(|e| py_error(py, e))?;
        let minor: u8 = info.getattr("minor").and_then(|v| v.extract()).map_err(|e| py_error(py, e))?;
        let site_packages = site_packages(&venv, major, minor)?;
        let site = py.import("site").map_err(|e| py_error(py, e))?;
        site.call_method1("addsitedir", (site_packages.to_string_lossy().to_string(),))
            .map_err(|e| py_error(py, e))?;
        let version: String =
            sys.getattr("version").and_then(|v| v.extract()).map_err(|e| py_error(py, e))?;
        Ok(PythonEnv { venv, site_packages, version })
    })
}

/// Renders a Python exception as one line: type and message, never the traceback.
fn py_error(py: Python<'_>, err: PyErr) -> Error {
    Error::Backend(one_line(py, &err))
}

fn one_line(py: Python<'_>, err: &PyErr) -> String {
    let kind = err.get_type(py).name().map(|n| n.to_string()).unwrap_or_else(|_| "Error".into());
    let msg = err.value(py).str().map(|s| s.to_string()).unwrap_or_default();
    let msg = msg.lines().next().unwrap_or("").trim().to_owned();
    format!("{kind}: {msg}")
}

/// Maps an exception raised while importing or using dm_control/MuJoCo to the error that
/// tells the user what to install.
fn dm_error(py: Python<'_>, err: PyErr, venv: &Path) -> Error {
    let line = one_line(py, &err);
    let backend = std::env::var("MUJOCO_GL").unwrap_or_else(|_| "egl".into());
    if backend != "egl" && (line.contains("GL") || line.contains("gl")) {
        return Error::Backend(format!(
            "rendering with MUJOCO_GL={backend} failed ({line}); unset MUJOCO_GL to render with EGL"
        ));
    }
    if line.contains("EGL") || line.contains("egl") {
        Error::Egl { detail: line }
    } else if err.is_instance_of::<PyImportError>(py) {
        Error::MissingDmControl { venv: venv.display().to_string(), detail: line }
    } else {
        Error::Backend(line)
    }
}

fn bridge<'py>(py: Python<'py>, env: &PythonEnv) -> Result<Bound<'py, PyModule>> {
    let code = CString::new(BRIDGE_SOURCE).map_err(|e| Error::Backend(e.to_string()))?;
    let module = PyModule::from_code(py, &code, c"gradplan_dmc.py", c"gradplan_dmc")
        .map_err(|e| dm_error(py, e, &env.venv))?;
    // Import dm_control up front so a missing install is reported as such, not as a
    // failure of the first task.
    py.import("dm_control.suite").map_err(|e| dm_error(py, e, &env.venv))?;
    Ok(module)
}

/// Every task of `dm_control.suite`, as `domain-task`.
pub fn suite_tasks() -> Result<Vec<String>> {
    let env = python()?;
    Python::attach(|py| {
        let module = bridge(py, &env)?;
        module.call_method0("all_tasks").and_then(|t| t.extract()).map_err(|e| py_error(py, e))
    })
}

/// A dm_control task with action repeat, as one [`Env`].
pub struct DmcEnv {
    name: String,
    task: Py<PyAny>,
    action_spec: ActionSpec,
    obs_spec: ObsSpec,
    repeat: usize,
    episode_steps: usize,
    /// Simulator steps taken in the current episode; `None` before the first reset.
    steps: Option<usize>,
    ended: bool,
}

impl DmcEnv {
    /// Loads the task named in `cfg` (seeded with 0 until the first `reset(Some(seed))`).
    pub fn new(cfg: &EnvConfig) -> Result<Self> {
        cfg.validate()?;
        let name = TaskName::parse(&cfg.task)?;
        let env = python()?;
        let repeat = cfg.action_repeat.unwrap_or_else(|| name.default_action_repeat());
        let camera = cfg.camera.unwrap_or_else(|| name.default_camera());
        Python::attach(|py| {
            let module = bridge(py, &env)?;
            let known: Vec<String> =
                module.call_method0("all_tasks").and_then(|t| t.extract()).map_err(|e| py_error(py, e))?;
            if !known.contains(&cfg.task) {
                let close: Vec<String> = module
                    .call_method1("close_matches", (cfg.task.as_str(),))
                    .and_then(|t| t.extract())
                    .unwrap_or_default();
                let hint = if close.is_empty() {
                    "not a dm_control.suite task; `gradplan tasks --all` lists them".to_owned()
                } else {
                    format!("did you mean {}? `gradplan tasks --all` lists every task", close.join(", "))
                };
                return Err(Error::UnknownTask { name: cfg.task.clone(), hint });
            }
            let pixels = cfg.obs == ObsKind::Pixels;
            let resize = cfg.pixel_mode == PixelMode::Resize;
            let task = module
                .getattr("Task")
                .and_then(|c| {
                    c.call1((
                        name.domain.as_str(),
                        name.task.as_str(),
                        0u64,
                        pixels,
                        resize,
                        cfg.image_size,
                        camera,
                    ))
                })
                .map_err(|e| dm_error(py, e, &env.venv))?;
            let low: Vec<f64> =
                task.getattr("action_low").and_then(|v| v.extract()).map_err(|e| py_error(py, e))?;
            let high: Vec<f64> =
                task.getattr("action_high").and_then(|v| v.extract()).map_err(|e| py_error(py, e))?;
            let state_dim: usize =
                task.getattr("state_dim").and_then(|v| v.extract()).map_err(|e| py_error(py, e))?;
            let step_limit: i64 =
                task.getattr("step_limit").and_then(|v| v.extract()).map_err(|e| py_error(py, e))?;
            if step_limit > 0 && cfg.episode_steps > step_limit as usize {
                return Err(Error::Config(gradplan_config::Error::Invalid {
                    key: "env.episode_steps".into(),
                    reason: format!(
                        "{} ends its episodes after {step_limit} simulator steps; ask for at most that",
                        cfg.task
                    ),
                }));
            }
            let cameras: i64 =
                task.getattr("cameras").and_then(|v| v.extract()).map_err(|e| py_error(py, e))?;
            crate::check_camera(&cfg.task, cameras, camera)?;
            let obs_spec = if pixels {
                ObsSpec::Pixels { height: cfg.image_size, width: cfg.image_size }
            } else {
                ObsSpec::State { dim: state_dim }
            };
            Ok(DmcEnv {
                name: cfg.task.clone(),
                task: task.unbind(),
                action_spec: ActionSpec {
                    low: low.iter().map(|&x| x as f32).collect(),
                    high: high.iter().map(|&x| x as f32).collect(),
                },
                obs_spec,
                repeat,
                episode_steps: cfg.episode_steps,
                steps: None,
                ended: false,
            })
        })
    }

    fn decode(&self, bytes: &[u8]) -> Result<Obs> {
        match self.obs_spec {
            ObsSpec::Pixels { height, width } => Ok(Obs::Pixels(Frame::new(height, width, bytes.to_vec())?)),
            ObsSpec::State { dim } => {
                if bytes.len() != dim * 4 {
                    return Err(Error::Backend(format!(
                        "state of {} bytes, expected {}",
                        bytes.len(),
                        dim * 4
                    )));
                }
                Ok(Obs::State(
                    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
                ))
            }
        }
    }
}

fn bytes_of(obj: &Bound<'_, PyAny>) -> Result<Vec<u8>> {
    obj.cast::<PyBytes>()
        .map(|b| b.as_bytes().to_vec())
        .map_err(|e| Error::Backend(format!("expected bytes from the dm_control bridge: {e}")))
}

impl Env for DmcEnv {
    fn name(&self) -> &str {
        &self.name
    }

    fn action_spec(&self) -> &ActionSpec {
        &self.action_spec
    }

    fn obs_spec(&self) -> ObsSpec {
        self.obs_spec
    }

    fn action_repeat(&self) -> usize {
        self.repeat
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<Obs> {
        if seed.is_some_and(|s| s > u64::from(u32::MAX)) {
            return Err(Error::Backend(format!(
                "seed {} is too large: dm_control seeds numpy's RandomState, which takes 0..2^32",
                seed.unwrap_or_default()
            )));
        }
        let bytes = Python::attach(|py| {
            let out = self.task.bind(py).call_method1("reset", (seed,)).map_err(|e| py_error(py, e))?;
            bytes_of(&out)
        })?;
        self.steps = Some(0);
        self.ended = false;
        self.decode(&bytes)
    }

    fn step(&mut self, action: &[f32]) -> Result<Step> {
        let done_steps = self.steps.ok_or(Error::NotReset)?;
        if self.ended {
            return Err(Error::EpisodeOver);
        }
        let action: Vec<f64> = self.action_spec.clip(action)?.into_iter().map(f64::from).collect();
        let remaining = self.episode_steps - done_steps;
        struct Raw {
            reward: f64,
            sim_steps: usize,
            terminal: bool,
            last: bool,
            obs: Vec<u8>,
        }
        let raw = Python::attach(|py| {
            let list = PyList::new(py, &action).map_err(|e| py_error(py, e))?;
            let out = self
                .task
                .bind(py)
                .call_method1("step", (list, self.repeat, remaining))
                .map_err(|e| py_error(py, e))?;
            let get = |i: usize| out.get_item(i).map_err(|e| py_error(py, e));
            Ok::<_, Error>(Raw {
                reward: get(0)?.extract().map_err(|e| py_error(py, e))?,
                sim_steps: get(1)?.extract().map_err(|e| py_error(py, e))?,
                terminal: get(2)?.extract().map_err(|e| py_error(py, e))?,
                last: get(3)?.extract().map_err(|e| py_error(py, e))?,
                obs: bytes_of(&get(4)?)?,
            })
        })?;
        let steps = done_steps + raw.sim_steps;
        self.steps = Some(steps);
        let terminated = raw.terminal;
        let truncated = !terminated && (raw.last || steps >= self.episode_steps);
        self.ended = terminated || truncated;
        Ok(Step { obs: self.decode(&raw.obs)?, reward: raw.reward, terminated, truncated })
    }

    fn render(&mut self, height: usize, width: usize) -> Result<Frame> {
        let bytes = Python::attach(|py| {
            let out =
                self.task.bind(py).call_method1("render", (height, width)).map_err(|e| py_error(py, e))?;
            bytes_of(&out)
        })?;
        Frame::new(height, width, bytes)
    }
}
