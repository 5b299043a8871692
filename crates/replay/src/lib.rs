//! Experience replay for PlaNet-style world-model training.
//!
//! This is the data set 𝒟 of PlaNet (Hafner et al. 2019, *Learning Latent Dynamics for
//! Planning from Pixels*, Algorithm 1): every collected episode is appended, and each model
//! update draws B = 50 sequence chunks of L = 50 consecutive steps uniformly at random
//! ([`DEFAULT_BATCH`], [`DEFAULT_CHUNK`]).
//!
//! # What one step holds
//!
//! Steps follow Dreamer's time alignment. Step t stores
//!
//! | field | meaning |
//! |---|---|
//! | `obs_t` | the observation, raw u8 `[H, W, 3]` frame or f32 `[D]` state |
//! | `action_t` | the action that led to `obs_t` (clipped into the action box); zeros on an episode's first step |
//! | `reward_t` | the reward received on arriving at `obs_t`; 0 on an episode's first step |
//! | `is_first_t` | `obs_t` starts an episode |
//! | `is_terminal_t` | `obs_t` is terminal (dm_control discount 0); bootstrapping must stop |
//!
//! An episode of N decisions therefore stores N + 1 steps: [`Replay::begin_episode`] with the
//! reset observation, then one [`Replay::push`] per decision with the action and the
//! environment's [`Step`](gradplan_env::Step). Termination and truncation stay separate: an
//! episode cut by the time limit ends (further pushes are refused until the next
//! `begin_episode`) but its last step is *not* terminal, so a return computation can still
//! bootstrap from it.
//!
//! # Storage and memory
//!
//! A ring of `capacity` steps (default [`DEFAULT_CAPACITY`] = 1,000,000), one flat array per
//! field; once full, each new step overwrites the oldest. The arrays grow as data arrives
//! (doubling, capped at the capacity), so a 1M-step buffer costs nothing until it is filled.
//! Frames are stored raw; PlaNet's 5-bit quantisation happens at preprocessing
//! (`gradplan_env::preprocess`). [`Replay::with_bit_depth`] can quantise on insert instead, which
//! makes the saved file compress better, but storage is one u8 per channel either way.
//!
//! One step costs `H·W·3` bytes of frame (or `4·D` of state), `4·A` of action, 4 of reward and
//! 2 of flags ([`Replay::step_bytes`]). For 64×64 frames and a 6-dimensional action that is
//! 12,288 + 24 + 4 + 2 = **12,318 bytes per step**, so a 100k-step pixel run holds
//! **1.23 GB (1.15 GiB)** and a full 1M-step buffer **12.3 GB (11.5 GiB)**; 1-dimensional
//! actions save 20 bytes a step. Because the arrays double, the address space reserved can
//! reach twice what is filled; on Linux the unfilled part is never touched and so not resident.
//!
//! # Sampling
//!
//! [`Replay::sample`] picks each chunk's start uniformly among the `len − L + 1` starts whose
//! L steps are all stored and contiguous in time: a chunk never runs past the newest step into
//! the oldest (the ring's overwrite seam) and never reads slots not yet written. Chunks *may*
//! span episode boundaries, as in PlaNet; `is_first` marks where the model must reset its
//! state. The oldest stored episode may have lost its first steps to overwriting; a chunk
//! starting there simply starts mid-episode, as every chunk may. Sampling depends only on the
//! random generator passed in.
//!
//! # Files
//!
//! [`Replay::save`] writes a safetensors file atomically (a temporary file in the same
//! directory, synced, then renamed). Rows are ring slots in storage order, not time order;
//! the oldest step is at slot `next` when the ring is full (`len == capacity`) and at slot 0
//! otherwise, so `numpy.roll(x, -next, axis=0)` puts a full ring in time order.
//!
//! | tensor | dtype | shape |
//! |---|---|---|
//! | `obs` | U8 / F32 | `[len, H, W, 3]` / `[len, D]` |
//! | `action` | F32 | `[len, A]` |
//! | `reward` | F32 | `[len]` |
//! | `is_first`, `is_terminal` | BOOL | `[len]` |
//! | `action_low`, `action_high` | F32 | `[A]` |
//!
//! The `__metadata__` map holds `format` (`gradplan-replay`), `version`, `capacity`, `len`,
//! `next`, `obs_kind` (`pixels`/`state`), `obs_shape` (JSON list), `action_dim`, `bit_depth`
//! (`none` or 1–8), `total_steps`, `total_episodes` and `episode` (`none`/`open`/`ended`),
//! and (from version 2) `crc32.<tensor>` for every tensor: the CRC-32 of its data as 8 hex
//! digits, checked on load, so a byte damaged after the save is an error rather than
//! experience trained on. Keys and tensors are written in a fixed order, so one replay always
//! saves to the same bytes.
//! In Python: `safetensors.numpy.load_file(path)` for the arrays and
//! `safetensors.safe_open(path, "np").metadata()` for the map.

mod buffer;
mod io;
mod sample;

pub use buffer::Replay;
pub use sample::{Batch, BatchObs};

use std::path::PathBuf;

/// Steps a replay holds by default before overwriting the oldest (PlaNet: the whole run).
pub const DEFAULT_CAPACITY: usize = 1_000_000;
/// Sequences per model update, B (PlaNet: 50).
pub const DEFAULT_BATCH: usize = 50;
/// Steps per sequence chunk, L (PlaNet: 50).
pub const DEFAULT_CHUNK: usize = 50;

/// Everything that can go wrong storing, sampling, saving or loading experience.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid replay request: {0}")]
    Invalid(String),
    #[error("observation does not fit the replay: expected {expected}, got {got}")]
    ObsMismatch { expected: String, got: String },
    #[error("{what} is not finite ({value}) at index {index}")]
    NonFinite { what: &'static str, index: usize, value: f64 },
    #[error("invalid action: {0}")]
    Action(#[from] gradplan_env::Error),
    #[error("push called before begin_episode")]
    NoEpisode,
    #[error("push called after the episode ended (terminated or truncated); call begin_episode first")]
    EpisodeOver,
    #[error("cannot sample a chunk of {chunk} steps: the replay holds only {stored}")]
    NotEnoughData { chunk: usize, stored: usize },
    #[error("could not write replay to {}: {detail}", path.display())]
    Save { path: PathBuf, detail: String },
    #[error("could not read replay from {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{} is not a valid replay file: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
}

pub type Result<T> = std::result::Result<T, Error>;
