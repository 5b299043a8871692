//! Settings for every gradplan component.
//!
//! Each component has a plain serde struct here; a run's configuration nests them. Settings
//! are resolved once (preset < file < command line), validated once, and then never mutated:
//! the resolved configuration is written into the run directory and read back by `eval` and
//! `resume`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Errors raised while parsing or validating settings.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid setting `{key}`: {reason}")]
    Invalid { key: String, reason: String },
    #[error("could not parse configuration: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("could not serialise configuration: {0}")]
    Serialise(#[from] toml::ser::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

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
}
