//! The environment interface every backend implements.

use crate::{Error, Result};

/// A continuous, box-bounded action space.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionSpec {
    /// Per-dimension lower bounds, length `dim`.
    pub low: Vec<f32>,
    /// Per-dimension upper bounds, length `dim`.
    pub high: Vec<f32>,
}

impl ActionSpec {
    /// A `[-1, 1]^dim` box, which is every DMC task's action space.
    pub fn symmetric(dim: usize) -> Self {
        ActionSpec { low: vec![-1.0; dim], high: vec![1.0; dim] }
    }

    /// Number of action dimensions.
    pub fn dim(&self) -> usize {
        self.low.len()
    }

    /// Checks an action's length and finiteness and clips it into the bounds.
    ///
    /// Out-of-bounds values are clipped rather than rejected: exploration noise and planners
    /// routinely step outside the box, and dm_control itself would apply the value unclipped.
    /// NaN or infinite values are an error, because they would poison the simulator state.
    pub fn clip(&self, action: &[f32]) -> Result<Vec<f32>> {
        if action.len() != self.dim() {
            return Err(Error::ActionDim { expected: self.dim(), got: action.len() });
        }
        action
            .iter()
            .zip(self.low.iter().zip(&self.high))
            .enumerate()
            .map(|(i, (&a, (&lo, &hi)))| {
                if a.is_finite() {
                    Ok(a.clamp(lo, hi))
                } else {
                    Err(Error::NonFiniteAction { index: i, value: a })
                }
            })
            .collect()
    }
}

/// Shape of what `reset` and `step` return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObsSpec {
    /// RGB frames of `height × width × 3` u8, row-major, channel last.
    Pixels { height: usize, width: usize },
    /// A flat f32 vector of length `dim`.
    State { dim: usize },
}

impl ObsSpec {
    /// The observation shape as a list, `[H, W, 3]` or `[D]`.
    pub fn shape(&self) -> Vec<usize> {
        match *self {
            ObsSpec::Pixels { height, width } => vec![height, width, 3],
            ObsSpec::State { dim } => vec![dim],
        }
    }
}

/// One RGB frame, `[H, W, 3]` u8, row-major, channel last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub height: usize,
    pub width: usize,
    /// `height * width * 3` bytes.
    pub data: Vec<u8>,
}

impl Frame {
    /// Wraps raw bytes, checking the length.
    pub fn new(height: usize, width: usize, data: Vec<u8>) -> Result<Self> {
        if data.len() != height * width * 3 {
            return Err(Error::Backend(format!(
                "frame of {height}x{width} needs {} bytes, got {}",
                height * width * 3,
                data.len()
            )));
        }
        Ok(Frame { height, width, data })
    }
}

/// An observation.
#[derive(Debug, Clone, PartialEq)]
pub enum Obs {
    Pixels(Frame),
    State(Vec<f32>),
}

impl Obs {
    /// The frame, if this is a pixel observation.
    pub fn frame(&self) -> Option<&Frame> {
        match self {
            Obs::Pixels(f) => Some(f),
            Obs::State(_) => None,
        }
    }
}

/// The result of one decision (one action held for the action repeat).
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub obs: Obs,
    /// Sum of the simulator rewards over the repeated steps, accumulated in f64 in order.
    pub reward: f64,
    /// The episode reached a terminal state (discount 0); bootstrapping must stop.
    pub terminated: bool,
    /// The episode was cut by the time limit; the state is not terminal.
    pub truncated: bool,
}

impl Step {
    /// Whether the episode is over for either reason.
    pub fn done(&self) -> bool {
        self.terminated || self.truncated
    }
}

/// An episodic, continuous-control environment.
///
/// Each call to [`Env::step`] is one *decision*: the action is clipped into the bounds and
/// held for the environment's action repeat.
pub trait Env {
    /// Task name, `domain-task`.
    fn name(&self) -> &str;
    fn action_spec(&self) -> &ActionSpec;
    fn obs_spec(&self) -> ObsSpec;
    /// Simulator steps each decision spans.
    fn action_repeat(&self) -> usize;
    /// Starts an episode. `Some(seed)` reseeds the task's random state first, exactly as
    /// loading the task afresh with that seed would; `None` continues the random stream, as
    /// a second `env.reset()` in Python does.
    fn reset(&mut self, seed: Option<u64>) -> Result<Obs>;
    /// Applies one decision. Errors on a wrong action length, NaN, or a step after the end.
    fn step(&mut self, action: &[f32]) -> Result<Step>;
    /// Renders the current state at an arbitrary size (for videos), `[H, W, 3]` u8.
    fn render(&mut self, height: usize, width: usize) -> Result<Frame>;
}

/// Number of decisions in an episode of `episode_steps` simulator steps with action repeat
/// `repeat`; the last decision is shorter when `repeat` does not divide the length.
pub fn decisions_per_episode(episode_steps: usize, repeat: usize) -> usize {
    episode_steps.div_ceil(repeat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_bounds_and_rejects_bad_actions() {
        let spec = ActionSpec::symmetric(2);
        assert_eq!(spec.clip(&[2.0, -3.0]).unwrap(), vec![1.0, -1.0]);
        assert_eq!(spec.clip(&[0.25, -0.5]).unwrap(), vec![0.25, -0.5]);
        assert!(matches!(spec.clip(&[0.0]), Err(Error::ActionDim { expected: 2, got: 1 })));
        assert!(matches!(spec.clip(&[0.0, f32::NAN]), Err(Error::NonFiniteAction { index: 1, .. })));
        assert!(spec.clip(&[f32::INFINITY, 0.0]).is_err());
    }

    #[test]
    fn decisions_round_up() {
        assert_eq!(decisions_per_episode(1000, 8), 125);
        assert_eq!(decisions_per_episode(1000, 6), 167);
        assert_eq!(decisions_per_episode(1000, 2), 500);
    }
}
