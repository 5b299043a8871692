//! dm_control.suite tasks reimplemented in Rust on libmujoco 3.17.0 (`env.backend =
//! "native"`): no Python at run time, and for the same seed and actions the same initial
//! state, rewards and state observations as dm_control 1.0.50, bit for bit.
//!
//! Parity comes from doing exactly what dm_control does, in the same order: the task's XML
//! and its `common/` includes are read from the dm_control package itself and compiled by the
//! same MuJoCo; the initial state is drawn from a clone of `np.random.RandomState`
//! ([`random`]); `Environment.reset` and `Environment.step` are repeated call for call
//! (reset, forward without actuation, the task's initialisation, forward again; controls,
//! `mj_step` + `mj_step1`, reward, observation); rewards use `rewards.tolerance` with
//! numpy's order of operations ([`rewards`]). Tested against dm_control in the same process
//! in `tests/native_vs_dmc.rs`.
//!
//! Rewards are bit-identical too where numpy's float64 `exp` is the C library's; numpy's
//! AVX-512 kernel differs in the last bit for a few percent of the Gaussian-shaped rewards
//! (docs/decisions.md, #12). Frames come from [`gradplan_mujoco::Renderer`], the same MuJoCo
//! calls as dm_control's `physics.render`.

mod ball_in_cup;
mod cartpole;
mod cheetah;
mod finger;
pub mod random;
mod randomizers;
mod reacher;
pub mod rewards;
mod walker;

use crate::spec::{ActionSpec, Env, Frame, Obs, ObsSpec, Step};
use crate::tasks::TaskName;
use crate::{Error, Result};
use gradplan_config::{EnvConfig, ObsKind, PixelMode};
use gradplan_mujoco::{Asset, CameraId, Model, Physics, Renderer};
use random::RandomState;
use std::path::{Path, PathBuf};

/// Environment variable naming a copy of dm_control's `suite/` directory (the task XML
/// files and `common/`), for machines without the project's `.venv/`.
pub const ASSETS_VAR: &str = "GRADPLAN_DMC_ASSETS";

/// The tasks this backend implements, as `domain-task`.
pub const NATIVE_SUITE_TASKS: [&str; 12] = [
    "cartpole-swingup",
    "cartpole-swingup_sparse",
    "cartpole-balance",
    "cartpole-balance_sparse",
    "reacher-easy",
    "reacher-hard",
    "finger-spin",
    "ball_in_cup-catch",
    "cheetah-run",
    "walker-stand",
    "walker-walk",
    "walker-run",
];

/// The files dm_control's `suite/common/__init__.py` hands MuJoCo with every model, under
/// the names the task XMLs include them by.
const COMMON_ASSETS: [&str; 3] = ["./common/materials.xml", "./common/skybox.xml", "./common/visual.xml"];

/// One dm_control task: what `base.Task` subclasses define, on a [`Physics`].
trait SuiteTask: Send {
    /// `initialize_episode`: sets the initial state, drawing from the task's RandomState.
    fn initialize_episode(&self, physics: &mut Physics, random: &mut RandomState) -> Result<()>;
    /// `get_observation`, flattened in the dict's key order (as our dm_control backend
    /// flattens it), in f64.
    fn observation(&self, physics: &Physics) -> Vec<f64>;
    /// `get_reward`.
    fn reward(&self, physics: &Physics) -> f64;
    /// `get_termination`: `Some(discount)` ends the episode.
    fn termination(&self, _physics: &Physics) -> Option<f64> {
        None
    }
}

/// A loaded task: its physics, its task object and the episode length dm_control gives it.
struct Loaded {
    physics: Physics,
    task: Box<dyn SuiteTask>,
    /// `time_limit` in seconds (the domain's `_DEFAULT_TIME_LIMIT`).
    time_limit: f64,
    /// `control_timestep` in seconds, `None` for one physics step per environment step.
    control_timestep: Option<f64>,
}

impl Loaded {
    fn new(
        physics: Physics,
        task: impl SuiteTask + 'static,
        time_limit: f64,
        control_timestep: Option<f64>,
    ) -> Self {
        Loaded { physics, task: Box::new(task), time_limit, control_timestep }
    }
}

/// dm_control's `compute_n_steps`: physics steps per control step, which must divide it.
fn sub_steps(control_timestep: f64, timestep: f64) -> Result<usize> {
    let ratio = control_timestep / timestep;
    if control_timestep < timestep || (ratio - ratio.round()).abs() > 1e-8 {
        return Err(Error::Backend(format!(
            "control time step {control_timestep} is not a multiple of the physics time step {timestep}"
        )));
    }
    Ok(ratio.round() as usize)
}

/// dm_control's `Physics.step(nstep)` with `legacy_step` (the default): after the steps,
/// `mj_step1` brings the position- and velocity-dependent fields up to date for the
/// observation. With Euler, the first step's first half was done by the previous
/// `mj_step1` (or `forward`), so it starts with `mj_step2`. A step that raises a MuJoCo
/// warning is an error, as dm_control's `check_invalid_state` makes it.
fn legacy_step(physics: &mut Physics, nstep: usize) -> Result<()> {
    let before = physics.warnings();
    if physics.model().is_rk4() {
        for _ in 0..nstep {
            physics.step();
        }
    } else {
        physics.step2();
        for _ in 1..nstep {
            physics.step();
        }
    }
    physics.step1();
    no_new_warnings(physics, &before)
}

/// dm_control's `check_invalid_state`: a MuJoCo warning raised since `before` is an error.
fn no_new_warnings(physics: &Physics, before: &gradplan_mujoco::WarningCounts) -> Result<()> {
    let new = physics.warnings().new_since(before);
    if new.is_empty() {
        Ok(())
    } else {
        Err(Error::Mujoco(gradplan_mujoco::Error::InvalidState(new.join(", "))))
    }
}

/// dm_control's `suite/` directory: `$GRADPLAN_DMC_ASSETS`, else the installed dm_control
/// package in the project's virtualenv.
pub fn suite_dir() -> Result<PathBuf> {
    let how = format!(
        "set {ASSETS_VAR} to a copy of dm_control 1.0.50's `dm_control/suite/` directory (on a \
         machine without Python, unpack it from the dm_control-1.0.50 wheel, e.g. one fetched \
         elsewhere with `pip download dm_control==1.0.50 --no-deps`), or run scripts/setup.sh"
    );
    if let Some(dir) = std::env::var_os(ASSETS_VAR) {
        let dir = PathBuf::from(dir);
        return if dir.join("common").is_dir() {
            Ok(dir)
        } else {
            Err(Error::NativeAssets(format!("{ASSETS_VAR}={} has no common/ folder; {how}", dir.display())))
        };
    }
    let venv = crate::venv::find_venv()
        .map_err(|e| Error::NativeAssets(format!("dm_control's task files were not found ({e}); {how}")))?;
    let lib = venv.join("lib");
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(&lib)
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    candidates.sort();
    candidates
        .into_iter()
        .map(|p| p.join("site-packages").join("dm_control").join("suite"))
        .find(|d| d.join("common").is_dir())
        .ok_or_else(|| Error::NativeAssets(format!("{} has no dm_control package; {how}", venv.display())))
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::NativeAssets(format!("could not read {}: {e}", path.display())))
}

/// SHA-256 of every file the ported tasks load, as dm_control 1.0.50 ships them: the native
/// tasks repeat that version's episodes bit for bit, so other bytes are refused rather than
/// simulated (a `GRADPLAN_DMC_ASSETS` folder from another version, an edited copy).
const ASSET_SHA256: [(&str, &str); 9] = [
    ("cartpole.xml", "b1d184ffa2f74260a6ad3113cbf6f539a048055fcf735b7ca2dbe426dd66fc22"),
    ("reacher.xml", "849e1e3dd8e79b8f5796bd6e32b0d7a51b916355584402d8f803d74ad35ad193"),
    ("finger.xml", "7d106eafc8c7ec95dd4cfb00c9216d1522862aa7bdf2ee86f64f923c551dacef"),
    ("ball_in_cup.xml", "34c70aafdc3459db807acb61f401e7157cfc35369bbcb712eda0e820ccb3a4f5"),
    ("cheetah.xml", "47e3152e1213d6895ef36b36bbd399f1c7e0edf7d39f05675cd72bc5fbc14faa"),
    ("walker.xml", "e8b6dd3bb40826dffed0faed978d9c5dd0aead7efaa28c27c4bb2df663af874c"),
    ("./common/materials.xml", "83ee4f7d3f0c9b3003ad121c2c35169a32a922c437321278f27db60d577ccfac"),
    ("./common/skybox.xml", "71db77c7c88dd4e1b54eb394deecfba673bbf539d110de68aa229dee00abf107"),
    ("./common/visual.xml", "1e338ca511de35b902c4ca944d857c23fe4e7a5aea46a475cdc317dd454245b0"),
];

/// Reads `<suite>/<file>` and checks it is dm_control 1.0.50's ([`ASSET_SHA256`]).
fn read_asset(dir: &Path, file: &str) -> Result<Vec<u8>> {
    use sha2::{Digest, Sha256};
    let path = dir.join(file);
    let bytes = read(&path)?;
    let want = ASSET_SHA256.iter().find(|(name, _)| *name == file).map(|(_, hash)| *hash);
    let got: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    if want != Some(got.as_str()) {
        return Err(Error::NativeAssets(format!(
            "{} is not dm_control 1.0.50's {file} (its SHA-256 differs), and the native tasks reproduce \
             that version's episodes bit for bit. Point {ASSETS_VAR} at dm_control 1.0.50's `dm_control/suite/` \
             folder (unpacked from its wheel), or unset it to use the project's .venv",
            path.display()
        )));
    }
    Ok(bytes)
}

/// Compiles `<suite>/<file>` with the common assets, as `Physics.from_xml_string(
/// common.read_model(file), common.ASSETS)` does, and runs the constructor's `after_reset`.
fn load_physics(file: &str) -> Result<Physics> {
    let dir = suite_dir()?;
    let xml = String::from_utf8(read_asset(&dir, file)?)
        .map_err(|_| Error::NativeAssets(format!("{} is not UTF-8", dir.join(file).display())))?;
    let assets = COMMON_ASSETS
        .iter()
        .map(|name| Ok(Asset { name: (*name).to_owned(), contents: read_asset(&dir, name)? }))
        .collect::<Result<Vec<_>>>()?;
    let mut physics = Physics::new(Model::from_xml(&xml, &assets)?)?;
    physics.forward_without_actuation();
    Ok(physics)
}

fn load(name: &TaskName) -> Result<Loaded> {
    match (name.domain.as_str(), name.task.as_str()) {
        ("cartpole", task @ ("swingup" | "swingup_sparse" | "balance" | "balance_sparse")) => {
            let physics = load_physics("cartpole.xml")?;
            let variant = cartpole::Variant {
                swing_up: task.starts_with("swingup"),
                sparse: task.ends_with("_sparse"),
            };
            let task = cartpole::Balance::new(physics.model(), variant)?;
            Ok(Loaded::new(physics, task, cartpole::TIME_LIMIT, None))
        }
        ("reacher", task @ ("easy" | "hard")) => {
            let physics = load_physics("reacher.xml")?;
            let size = if task == "easy" { reacher::BIG_TARGET } else { reacher::SMALL_TARGET };
            let task = reacher::Reacher::new(physics.model(), size)?;
            Ok(Loaded::new(physics, task, reacher::TIME_LIMIT, None))
        }
        ("finger", "spin") => {
            let physics = load_physics("finger.xml")?;
            let task = finger::Spin::new(physics.model())?;
            Ok(Loaded::new(physics, task, finger::TIME_LIMIT, Some(finger::CONTROL_TIMESTEP)))
        }
        ("ball_in_cup", "catch") => {
            let physics = load_physics("ball_in_cup.xml")?;
            let task = ball_in_cup::BallInCup::new(physics.model())?;
            Ok(Loaded::new(physics, task, ball_in_cup::TIME_LIMIT, Some(ball_in_cup::CONTROL_TIMESTEP)))
        }
        ("cheetah", "run") => {
            let physics = load_physics("cheetah.xml")?;
            let task = cheetah::Cheetah::new(physics.model())?;
            Ok(Loaded::new(physics, task, cheetah::TIME_LIMIT, None))
        }
        ("walker", task @ ("stand" | "walk" | "run")) => {
            let physics = load_physics("walker.xml")?;
            let speed = match task {
                "stand" => 0.0,
                "walk" => walker::WALK_SPEED,
                _ => walker::RUN_SPEED,
            };
            let task = walker::PlanarWalker::new(physics.model(), speed)?;
            Ok(Loaded::new(physics, task, walker::TIME_LIMIT, Some(walker::CONTROL_TIMESTEP)))
        }
        _ => Err(Error::UnknownTask {
            name: name.to_string(),
            hint: format!(
                "the native backend implements {} so far; use `env.backend = \"dmc\"` for the others",
                NATIVE_SUITE_TASKS.join(", ")
            ),
        }),
    }
}

/// EGL failures get the environment's one message on what to install.
fn egl_error(err: gradplan_mujoco::Error) -> Error {
    match err {
        gradplan_mujoco::Error::Egl { detail } => Error::Egl { detail },
        other => Error::Mujoco(other),
    }
}

/// A native dm_control task with action repeat and time limit, as one [`Env`], behaving as
/// [`crate::dmc::DmcEnv`] does on the same task.
pub struct NativeSuiteEnv {
    name: String,
    physics: Physics,
    task: Box<dyn SuiteTask>,
    random: RandomState,
    action_spec: ActionSpec,
    obs_dim: usize,
    repeat: usize,
    episode_steps: usize,
    /// Physics steps per environment step (dm_control's `n_sub_steps`).
    sub_steps: usize,
    /// dm_control's `_step_limit`: `time_limit / (timestep × n_sub_steps)`.
    step_limit: f64,
    /// dm_control's `_step_count` in the current episode.
    dm_steps: usize,
    /// Simulator steps taken in the current episode; `None` before the first reset.
    steps: Option<usize>,
    ended: bool,
    /// How pixel observations are made; `None` for state observations.
    pixels: Option<PixelObs>,
    /// The camera of observations and [`Env::render`] (dm_control's `camera_id`).
    camera: CameraId,
    /// Made at the first frame, as dm_control makes its rendering contexts lazily, so that
    /// state-only runs never need EGL.
    renderer: Option<Renderer>,
}

/// Pixel observations as the dm_control backend makes them.
#[derive(Debug, Clone, Copy)]
struct PixelObs {
    /// Side of the square observation.
    size: usize,
    /// Rendered at 240×320 and shrunk with OpenCV's bilinear arithmetic, or rendered at
    /// `size` directly.
    mode: PixelMode,
}

/// The dm_control backend's render size for `pixel_mode = "resize"` (dm_control's default).
const RESIZE_FROM: (usize, usize) = (240, 320);

/// The model's offscreen buffer bounds what MuJoCo can render; dm_control raises the same
/// complaint from its `Camera`.
fn check_frame_size(physics: &Physics, task: &str, height: usize, width: usize) -> Result<()> {
    let (max_width, max_height) = physics.model().offscreen_size();
    if height > max_height || width > max_width {
        return Err(Error::Config(gradplan_config::Error::Invalid {
            key: "env.image_size".into(),
            reason: format!(
                "{task} renders at most {max_height}x{max_width} (its offscreen buffer); asked for {height}x{width}"
            ),
        }));
    }
    Ok(())
}

impl NativeSuiteEnv {
    /// Loads the task named in `cfg` (seeded with 0 until the first `reset(Some(seed))`, as
    /// the dm_control backend is).
    pub fn new(cfg: &EnvConfig) -> Result<Self> {
        cfg.validate()?;
        let name = TaskName::parse(&cfg.task)?;
        let Loaded { physics, task, time_limit, control_timestep } = load(&name)?;
        let timestep = physics.model().timestep();
        let sub_steps = control_timestep.map_or(Ok(1), |c| sub_steps(c, timestep))?;
        let step_limit = time_limit / (timestep * sub_steps as f64);
        if cfg.episode_steps as f64 > step_limit {
            return Err(Error::Config(gradplan_config::Error::Invalid {
                key: "env.episode_steps".into(),
                reason: format!(
                    "{} ends its episodes after {step_limit} simulator steps; ask for at most that",
                    cfg.task
                ),
            }));
        }
        // dm_control's action spec: ±inf where an actuator's control is not limited.
        let ranges = physics.model().ctrl_ranges();
        let action_spec = ActionSpec {
            low: ranges.iter().map(|r| r.map_or(f32::NEG_INFINITY, |r| r.low as f32)).collect(),
            high: ranges.iter().map(|r| r.map_or(f32::INFINITY, |r| r.high as f32)).collect(),
        };
        let obs_dim = task.observation(&physics).len();
        let camera_index = cfg.camera.unwrap_or_else(|| name.default_camera());
        let cameras = physics.model().ncam() as i64;
        crate::check_camera(&cfg.task, cameras, camera_index)?;
        let camera = CameraId::from_index(camera_index)?;
        let pixels = match cfg.obs {
            ObsKind::State => None,
            ObsKind::Pixels => {
                let (height, width) = match cfg.pixel_mode {
                    PixelMode::Direct => (cfg.image_size, cfg.image_size),
                    PixelMode::Resize => RESIZE_FROM,
                };
                if cfg.pixel_mode == PixelMode::Resize && cfg.image_size > RESIZE_FROM.0 {
                    return Err(Error::Config(gradplan_config::Error::Invalid {
                        key: "env.image_size".into(),
                        reason: format!(
                            "the native backend reproduces OpenCV's resize for shrinking the {}x{} \
                             render only, so `pixel_mode = \"resize\"` takes at most {}; use \
                             `pixel_mode = \"direct\"` or `env.backend = \"dmc\"`",
                            RESIZE_FROM.0, RESIZE_FROM.1, RESIZE_FROM.0
                        ),
                    }));
                }
                check_frame_size(&physics, &cfg.task, height, width)?;
                Some(PixelObs { size: cfg.image_size, mode: cfg.pixel_mode })
            }
        };
        Ok(NativeSuiteEnv {
            name: cfg.task.clone(),
            physics,
            task,
            random: RandomState::new(0),
            action_spec,
            obs_dim,
            repeat: cfg.action_repeat.unwrap_or_else(|| name.default_action_repeat()),
            episode_steps: cfg.episode_steps,
            sub_steps,
            step_limit,
            dm_steps: 0,
            steps: None,
            ended: false,
            pixels,
            camera,
            renderer: None,
        })
    }

    /// The current state seen from the env's camera, as dm_control's `physics.render`.
    fn frame(&mut self, height: usize, width: usize) -> Result<Frame> {
        let renderer = match &mut self.renderer {
            Some(renderer) => renderer,
            None => self.renderer.insert(Renderer::new(&self.physics).map_err(egl_error)?),
        };
        let image = renderer.render(&mut self.physics, height, width, self.camera).map_err(egl_error)?;
        Frame::new(image.height, image.width, image.rgb)
    }

    fn observation(&mut self) -> Result<Obs> {
        match self.pixels {
            Some(PixelObs { size, mode: PixelMode::Direct }) => Ok(Obs::Pixels(self.frame(size, size)?)),
            Some(PixelObs { size, mode: PixelMode::Resize }) => {
                let (height, width) = RESIZE_FROM;
                let big = self.frame(height, width)?;
                Ok(Obs::Pixels(Frame::new(
                    size,
                    size,
                    crate::resize::resize_linear(&big.data, height, width, size, size),
                )?))
            }
            // The dm_control backend flattens in float64 and then casts to float32.
            None => {
                Ok(Obs::State(self.task.observation(&self.physics).into_iter().map(|x| x as f32).collect()))
            }
        }
    }
}

impl Env for NativeSuiteEnv {
    fn name(&self) -> &str {
        &self.name
    }

    fn action_spec(&self) -> &ActionSpec {
        &self.action_spec
    }

    fn obs_spec(&self) -> ObsSpec {
        match self.pixels {
            Some(PixelObs { size, .. }) => ObsSpec::Pixels { height: size, width: size },
            None => ObsSpec::State { dim: self.obs_dim },
        }
    }

    fn action_repeat(&self) -> usize {
        self.repeat
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<Obs> {
        if let Some(seed) = seed {
            let seed = u32::try_from(seed).map_err(|_| {
                Error::Backend(format!(
                    "seed {seed} is too large: dm_control seeds numpy's RandomState, which takes 0..2^32"
                ))
            })?;
            self.random = RandomState::new(seed);
        }
        // Until the new episode is set up, there is none: a failed initialisation must not
        // leave the previous episode steppable.
        self.steps = None;
        // Environment.reset: Physics.reset_context() around the task's initialisation. Its
        // first forward's warnings are swallowed (`except PhysicsError: pass`); the closing
        // `after_reset` forward runs in `check_invalid_state`, so a new warning fails the reset.
        self.physics.reset_data();
        self.physics.forward_without_actuation();
        self.task.initialize_episode(&mut self.physics, &mut self.random)?;
        let before = self.physics.warnings();
        self.physics.forward_without_actuation();
        no_new_warnings(&self.physics, &before)?;
        self.dm_steps = 0;
        self.steps = Some(0);
        self.ended = false;
        self.observation()
    }

    fn step(&mut self, action: &[f32]) -> Result<Step> {
        let done_steps = self.steps.ok_or(Error::NotReset)?;
        if self.ended {
            return Err(Error::EpisodeOver);
        }
        let action: Vec<f64> = self.action_spec.clip(action)?.into_iter().map(f64::from).collect();
        let budget = self.repeat.min(self.episode_steps - done_steps);
        let mut reward = 0.0;
        let mut sim_steps = 0;
        let mut last = false;
        let mut discount = 1.0;
        while sim_steps < budget {
            self.physics.ctrl_mut().copy_from_slice(&action);
            if let Err(e) = legacy_step(&mut self.physics, self.sub_steps) {
                // dm_control's episode ends with the error too; reset starts a new one.
                self.ended = true;
                return Err(e);
            }
            reward += self.task.reward(&self.physics);
            self.dm_steps += 1;
            sim_steps += 1;
            let end = if self.dm_steps as f64 >= self.step_limit {
                Some(1.0)
            } else {
                self.task.termination(&self.physics)
            };
            if let Some(d) = end {
                last = true;
                discount = d;
                break;
            }
        }
        let steps = done_steps + sim_steps;
        self.steps = Some(steps);
        let terminated = last && discount == 0.0;
        let truncated = !terminated && (last || steps >= self.episode_steps);
        self.ended = terminated || truncated;
        Ok(Step { obs: self.observation()?, reward, terminated, truncated })
    }

    fn render(&mut self, height: usize, width: usize) -> Result<Frame> {
        check_frame_size(&self.physics, &self.name, height, width)?;
        self.frame(height, width)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gradplan_config::{EnvBackend, ObsKind};

    /// The only test in this binary that touches `GRADPLAN_DMC_ASSETS`, so changing it here
    /// races with nothing.
    #[test]
    fn assets_come_from_the_venv_or_the_variable() {
        let real = suite_dir().expect("dm_control in the project's .venv (run scripts/setup.sh)");
        assert!(real.join("cartpole.xml").is_file());

        let empty = std::env::temp_dir().join(format!("gradplan-no-assets-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap();
        std::env::set_var(ASSETS_VAR, &empty);
        let err = suite_dir().unwrap_err().to_string();
        assert!(err.contains(ASSETS_VAR) && err.contains("pip download dm_control==1.0.50"), "{err}");

        std::env::set_var(ASSETS_VAR, &real);
        let cfg = EnvConfig {
            task: "cartpole-swingup".into(),
            obs: ObsKind::State,
            backend: EnvBackend::Native,
            ..EnvConfig::default()
        };
        let env = NativeSuiteEnv::new(&cfg);
        // A copy whose cartpole.xml differs from dm_control 1.0.50's by one comment.
        let edited = std::env::temp_dir().join(format!("gradplan-edited-assets-{}", std::process::id()));
        std::fs::create_dir_all(edited.join("common")).unwrap();
        for name in COMMON_ASSETS {
            std::fs::copy(real.join(name), edited.join(name)).unwrap();
        }
        let mut xml = std::fs::read(real.join("cartpole.xml")).unwrap();
        xml.extend_from_slice(b"<!-- edited -->\n");
        std::fs::write(edited.join("cartpole.xml"), xml).unwrap();
        std::env::set_var(ASSETS_VAR, &edited);
        let refused = NativeSuiteEnv::new(&cfg).err().map(|e| e.to_string());
        std::env::remove_var(ASSETS_VAR);
        std::fs::remove_dir_all(&empty).unwrap();
        std::fs::remove_dir_all(&edited).unwrap();
        let env = env.unwrap();
        assert_eq!((env.action_spec().dim(), env.obs_spec()), (1, ObsSpec::State { dim: 5 }));
        let refused = refused.expect("an edited cartpole.xml is refused");
        assert!(
            refused.contains("SHA-256") && refused.contains("1.0.50") && refused.contains(ASSETS_VAR),
            "{refused}"
        );
    }

    #[test]
    fn sub_steps_follow_compute_n_steps() {
        assert_eq!(sub_steps(0.02, 0.01).unwrap(), 2);
        assert_eq!(sub_steps(0.025, 0.0025).unwrap(), 10);
        assert!(sub_steps(0.025, 0.01).is_err());
        assert!(sub_steps(0.001, 0.01).is_err());
    }
}
