//! Settings for every gradplan component.
//!
//! Each component has a plain serde struct here; a run's configuration nests them. Settings
//! are resolved once (preset < file < command line), validated once, and then never mutated:
//! the resolved configuration is written into the run directory and read back by `eval` and
//! `resume`.

mod run;

pub use run::{
    apply_override, preset_iterations, ActionOptimizer, DreamerConfig, GradMpcDefaults, GradMpcFlavour,
    PlannerConfig, PlannerKind, RunConfig, TrainConfig, UncertaintyMeasure, ADAM_ACTION_LR, PRESETS,
    SGD_ACTION_LR,
};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Errors raised while parsing or validating settings.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid setting `{key}`: {reason}")]
    Invalid { key: String, reason: String },
    #[error("could not parse configuration: {0}")]
    Parse(String),
    #[error("could not serialise configuration: {0}")]
    Serialise(#[from] toml::ser::Error),
}

impl From<toml::de::Error> for Error {
    /// Keeps toml's message on one line: its default rendering repeats the input with a
    /// caret underneath, which breaks the one-line error rule of the CLI.
    fn from(e: toml::de::Error) -> Self {
        Error::Parse(e.message().lines().collect::<Vec<_>>().join(" "))
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Sizes of a layer (`model.*_size`, `dreamer.hidden`) are at most this. Generous (PlaNet
/// uses 200, the largest DreamerV3 model 8192), and it turns a typo such as
/// `model.belief_size=100000000000` into an error naming the key instead of a libtorch
/// allocation failure, which tch reports as a panic.
pub const MAX_LAYER_SIZE: i64 = 16_384;

/// Deserialises settings from a TOML value, naming the key of a type error
/// (`invalid setting `model.belief_size`: invalid type: string "abc", expected i64`).
pub(crate) fn from_value<T: serde::de::DeserializeOwned>(value: toml::Value) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let key = e.path().to_string();
        let reason = e.inner().message().lines().collect::<Vec<_>>().join(" ");
        if key.is_empty() || key == "." {
            Error::Parse(reason)
        } else {
            Error::Invalid { key, reason }
        }
    })
}

/// What the agent observes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ObsKind {
    /// RGB frames, `[H, W, 3]` u8 (64×64 by default).
    #[default]
    Pixels,
    /// The task's observation dict flattened in its own key order, as f32.
    State,
}

impl fmt::Display for ObsKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObsKind::Pixels => "pixels",
            ObsKind::State => "state",
        })
    }
}

impl std::str::FromStr for ObsKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "pixels" => Ok(ObsKind::Pixels),
            "state" => Ok(ObsKind::State),
            other => Err(Error::Invalid {
                key: "env.obs".into(),
                reason: format!("`{other}` is not an observation kind; use `pixels` or `state`"),
            }),
        }
    }
}

/// Which implementation runs a dm_control task (`env.backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EnvBackend {
    /// dm_control 1.0.50 itself, through an embedded CPython: every task, pixels and state.
    #[default]
    Dmc,
    /// The task reimplemented in Rust on libmujoco 3.17.0, without Python: state
    /// or pixel observations, and only the tasks ported so far (`gradplan-env`'s `suite`).
    Native,
}

impl fmt::Display for EnvBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EnvBackend::Dmc => "dmc",
            EnvBackend::Native => "native",
        })
    }
}

impl std::str::FromStr for EnvBackend {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "dmc" => Ok(EnvBackend::Dmc),
            "native" => Ok(EnvBackend::Native),
            other => Err(Error::Invalid {
                key: "env.backend".into(),
                reason: format!("`{other}` is not an environment backend; use `dmc` or `native`"),
            }),
        }
    }
}

/// How a 64×64 frame is produced from the simulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PixelMode {
    /// Render directly at the target size (the original TensorFlow PlaNet and Dreamer).
    Direct,
    /// Render at dm_control's default 240×320, then resize bilinearly with OpenCV's
    /// `INTER_LINEAR` to the target size: what the PyTorch PlaNet and Dreamer code that
    /// produced the paper's numbers did. The `paper` presets use this.
    #[default]
    Resize,
}

impl fmt::Display for PixelMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PixelMode::Direct => "direct",
            PixelMode::Resize => "resize",
        })
    }
}

impl std::str::FromStr for PixelMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "direct" => Ok(PixelMode::Direct),
            "resize" => Ok(PixelMode::Resize),
            other => Err(Error::Invalid {
                key: "env.pixel_mode".into(),
                reason: format!("`{other}` is not a pixel mode; use `direct` or `resize`"),
            }),
        }
    }
}

/// Settings of one environment instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnvConfig {
    /// Task as `domain-task`, e.g. `cartpole-swingup`; native tasks start with `native_`.
    pub task: String,
    /// Observation kind.
    pub obs: ObsKind,
    /// How frames are rendered (pixels only).
    pub pixel_mode: PixelMode,
    /// Side of the square observation frame in pixels (64 in the paper).
    pub image_size: usize,
    /// Action repeat R: each decision is applied for R simulator steps and the rewards are
    /// summed. `None` takes the paper's per-task default (Table 4).
    pub action_repeat: Option<usize>,
    /// Simulator steps per episode (1000 for every DMC task), so an episode has
    /// ⌈1000 / R⌉ decisions.
    pub episode_steps: usize,
    /// Camera id; `None` takes camera 0 (camera 2 for quadruped).
    pub camera: Option<i64>,
    /// What runs a dm_control task: `dmc` (default; dm_control through Python) or `native`
    /// (the same task in Rust on MuJoCo, no Python: bit-identical in state, observation and
    /// frame, and in reward except where numpy's AVX-512 `exp` rounds a Gaussian-shaped
    /// reward's last bit differently). Ignored by the `native_` toy tasks.
    pub backend: EnvBackend,
}

impl Default for EnvConfig {
    fn default() -> Self {
        EnvConfig {
            task: "cartpole-swingup".into(),
            obs: ObsKind::Pixels,
            pixel_mode: PixelMode::Resize,
            image_size: 64,
            action_repeat: None,
            episode_steps: 1000,
            camera: None,
            backend: EnvBackend::Dmc,
        }
    }
}

impl EnvConfig {
    /// Checks ranges; the task name itself is checked by the environment factory, which
    /// knows which tasks exist.
    pub fn validate(&self) -> Result<()> {
        if self.task.trim().is_empty() {
            return Err(invalid("env.task", "must name a task such as `cartpole-swingup`"));
        }
        if !(8..=1024).contains(&self.image_size) {
            return Err(invalid("env.image_size", "must be between 8 and 1024"));
        }
        if self.action_repeat == Some(0) {
            return Err(invalid("env.action_repeat", "must be at least 1"));
        }
        if self.episode_steps == 0 {
            return Err(invalid("env.episode_steps", "must be at least 1"));
        }
        Ok(())
    }
}

/// Number format of the conv encoder's and decoder's arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ConvPrecision {
    /// f32 throughout, as PlaNet.
    #[default]
    F32,
    /// Mixed precision: the convolutions' inputs and weights are cast to bfloat16 (f32
    /// master weights and f32 gradients, the RSSM, the loss and Adam in f32). Fast on CPUs
    /// with AVX-512 BF16 or AMX and on GPUs; emulated, and slow, elsewhere.
    Bf16,
}

impl std::fmt::Display for ConvPrecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConvPrecision::F32 => "f32",
            ConvPrecision::Bf16 => "bf16",
        })
    }
}

/// How the dynamics' inputs are perturbed while the model trains (#10: a model whose input
/// gradients a planner can follow). Planning queries the transition at actions and states
/// away from the data; a model trained to predict the data from perturbed inputs is
/// smoother there ("Closing the Train-Test Gap in World Models for Gradient-Based
/// Planning", arXiv 2512.09929).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Perturbation {
    /// The data as it is (PlaNet).
    #[default]
    None,
    /// Gaussian noise of std ε added to `s_{t-1}` and `a_t` in the transition's input.
    Noise,
    /// The worst case in an ε-box to first order (one signed-gradient step, FGSM): a first
    /// pass takes the ELBO's gradient with respect to every step's `s_{t-1}` and `a_t`, the
    /// update then trains on the ELBO at `s + ε_s sign(∇_s)`, `a + ε_a sign(∇_a)`. About
    /// twice an update's cost.
    Adversarial,
}

/// Activation used between the world model's layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    #[default]
    Relu,
    Elu,
    Tanh,
}

/// The PlaNet world model: RSSM, encoder/decoder, reward model, and its ELBO loss.
/// Defaults are the seed paper's Table A.7 (PlaNet's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Deterministic (GRU) state size |h| (belief-size), 200.
    pub belief_size: i64,
    /// Stochastic state size |s| (state-size), 30.
    pub state_size: i64,
    /// Hidden width of the MLPs (hidden-size), 200.
    pub hidden_size: i64,
    /// Observation embedding size e (embedding-size), 1024.
    pub embedding_size: i64,
    /// Channel depth d of the conv encoder and decoder, 32 (PlaNet's): encoder channels
    /// d, 2d, 4d, 8d (a 2×2×8d = 32d map), decoder 4d, 2d, d. Only used with pixels.
    pub cnn_depth: i64,
    /// Arithmetic of the conv encoder and decoder, f32 (see [`ConvPrecision`]).
    pub conv_precision: ConvPrecision,
    /// Lay the conv stack's activations and weights out channels-last (NHWC memory order,
    /// same logical shapes), which oneDNN's CPU kernels and cuDNN prefer; false (NCHW).
    pub conv_channels_last: bool,
    /// Activation between layers, relu.
    pub activation: Activation,
    /// Lower bound added to every predicted std, `softplus(x) + min_std`, 0.1.
    pub min_std: f64,
    /// w, the observation term's weight in the ELBO: `w · Σ (ô − o)²`, 1 (PlaNet's). A
    /// Gaussian decoder with std σ has w = 1/(2σ²) up to a constant, so a larger w asks for
    /// a more precise reconstruction: for state observations, whose reward-relevant
    /// dimensions can be small (reacher's finger-to-target vector is in metres), the
    /// unweighted error of a few centimetres is far below the KL's free nats.
    pub obs_loss_scale: f64,
    /// Free nats: the KL term is `max(KL, free_nats)` per time step, 3.
    pub free_nats: f64,
    /// Bit depth b of the image preprocessing, 5.
    pub bit_depth: u32,
    /// Global prior KL weight β_global against N(0, I), 0 (off).
    pub global_kl_beta: f64,
    /// Latent overshooting distance D, 50 (only used when a β below is non-zero).
    pub overshooting_distance: usize,
    /// Latent overshooting KL weight β_os, 0 (off).
    pub overshooting_kl_beta: f64,
    /// Latent overshooting reward loss scale, 0 (off).
    pub overshooting_reward_scale: f64,
    /// Perturbation of the transition's inputs in training, none (see [`Perturbation`]).
    pub perturbation: Perturbation,
    /// ε_s, the perturbation's size on the stochastic state `s_{t-1}` (std for `noise`,
    /// box radius for `adversarial`), 0.1: the prior's minimum std.
    pub perturbation_state: f64,
    /// ε_a, the perturbation's size on the action `a_t` (actions lie in [−1, 1]), 0.1.
    pub perturbation_action: f64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            belief_size: 200,
            state_size: 30,
            hidden_size: 200,
            embedding_size: 1024,
            cnn_depth: 32,
            conv_precision: ConvPrecision::F32,
            conv_channels_last: false,
            activation: Activation::Relu,
            min_std: 0.1,
            obs_loss_scale: 1.0,
            free_nats: 3.0,
            bit_depth: 5,
            global_kl_beta: 0.0,
            overshooting_distance: 50,
            overshooting_kl_beta: 0.0,
            overshooting_reward_scale: 0.0,
            perturbation: Perturbation::None,
            perturbation_state: 0.1,
            perturbation_action: 0.1,
        }
    }
}

impl ModelConfig {
    pub fn validate(&self) -> Result<()> {
        for (key, v) in [
            ("model.belief_size", self.belief_size),
            ("model.state_size", self.state_size),
            ("model.hidden_size", self.hidden_size),
            ("model.embedding_size", self.embedding_size),
            ("model.cnn_depth", self.cnn_depth),
        ] {
            if !(1..=MAX_LAYER_SIZE).contains(&v) {
                return Err(invalid(key, &format!("must be between 1 and {MAX_LAYER_SIZE}")));
            }
        }
        if !(1..=8).contains(&self.bit_depth) {
            return Err(invalid("model.bit_depth", "must be between 1 and 8"));
        }
        if !positive(self.min_std) {
            return Err(invalid("model.min_std", "must be positive"));
        }
        if !positive(self.obs_loss_scale) {
            return Err(invalid("model.obs_loss_scale", "must be positive"));
        }
        if !(self.free_nats.is_finite() && self.free_nats >= 0.0) {
            return Err(invalid("model.free_nats", "must be non-negative"));
        }
        for (key, v) in [
            ("model.perturbation_state", self.perturbation_state),
            ("model.perturbation_action", self.perturbation_action),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(invalid(key, "must be a non-negative number"));
            }
        }
        if self.perturbation != Perturbation::None
            && self.perturbation_state == 0.0
            && self.perturbation_action == 0.0
        {
            return Err(invalid(
                "model.perturbation",
                "perturbs nothing with perturbation_state and perturbation_action both 0; set one above 0 or perturbation = \"none\"",
            ));
        }
        Ok(())
    }
}

/// Adam on the world model, with gradient clipping (PlaNet's training settings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// Learning rate, 1e-3.
    pub learning_rate: f64,
    /// Adam ε, 1e-4.
    pub adam_epsilon: f64,
    /// Gradient clipping by global norm, 1000.
    pub grad_clip_norm: f64,
    /// Linear learning-rate warm-up over this many updates, 0 (off).
    pub warmup_updates: usize,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig { learning_rate: 1e-3, adam_epsilon: 1e-4, grad_clip_norm: 1000.0, warmup_updates: 0 }
    }
}

impl OptimConfig {
    pub fn validate(&self) -> Result<()> {
        if !positive(self.learning_rate) {
            return Err(invalid("optim.learning_rate", "must be positive"));
        }
        if !positive(self.adam_epsilon) {
            return Err(invalid("optim.adam_epsilon", "must be positive"));
        }
        if !positive(self.grad_clip_norm) {
            return Err(invalid("optim.grad_clip_norm", "must be positive"));
        }
        Ok(())
    }
}

/// True for finite numbers above zero (false for NaN).
fn positive(x: f64) -> bool {
    x.is_finite() && x > 0.0
}

fn invalid(key: &str, reason: &str) -> Error {
    Error::Invalid { key: key.into(), reason: reason.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_config_round_trips_through_toml() {
        let cfg = EnvConfig { action_repeat: Some(4), obs: ObsKind::State, ..Default::default() };
        let text = toml::to_string(&cfg).unwrap();
        let back: EnvConfig = toml::from_str(&text).unwrap();
        assert_eq!(cfg, back);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = toml::from_str::<EnvConfig>("tsk = 'x'").unwrap_err();
        assert!(err.to_string().contains("tsk"), "{err}");
    }

    #[test]
    fn validation_catches_bad_ranges() {
        let bad = EnvConfig { action_repeat: Some(0), ..Default::default() };
        assert!(bad.validate().is_err());
        let bad = EnvConfig { image_size: 2, ..Default::default() };
        assert!(bad.validate().is_err());
        assert!(EnvConfig::default().validate().is_ok());
    }

    #[test]
    fn modes_parse_and_reject_typos() {
        assert_eq!("state".parse::<ObsKind>().unwrap(), ObsKind::State);
        assert_eq!("direct".parse::<PixelMode>().unwrap(), PixelMode::Direct);
        let err = "pixel".parse::<ObsKind>().unwrap_err().to_string();
        assert!(err.contains("pixels"), "{err}");
    }

    #[test]
    fn backend_defaults_to_dmc_and_native_renders_pixels() {
        assert_eq!(EnvConfig::default().backend, EnvBackend::Dmc);
        // Configurations written before the key existed still load.
        let old: EnvConfig = toml::from_str("task = 'cartpole-swingup'\nobs = 'state'").unwrap();
        assert_eq!(old.backend, EnvBackend::Dmc);
        let native: EnvConfig = toml::from_str("obs = 'state'\nbackend = 'native'").unwrap();
        assert_eq!(native.backend, EnvBackend::Native);
        assert!(native.validate().is_ok());
        let text = toml::to_string(&native).unwrap();
        assert_eq!(toml::from_str::<EnvConfig>(&text).unwrap(), native);
        let resized = EnvConfig { backend: EnvBackend::Native, ..Default::default() };
        assert!(resized.validate().is_ok());
        let direct = EnvConfig { pixel_mode: PixelMode::Direct, ..resized };
        assert!(direct.validate().is_ok());
        assert_eq!("native".parse::<EnvBackend>().unwrap(), EnvBackend::Native);
        let err = "mujoco".parse::<EnvBackend>().unwrap_err().to_string();
        assert!(err.contains("env.backend") && err.contains("`dmc` or `native`"), "{err}");
    }
}
