//! The PlaNet world model in tch (the seed's §3.2; Hafner et al. 2019).
//!
//! * [`rssm`]: the recurrent state-space model — deterministic GRU path, Gaussian prior and
//!   posterior over the stochastic state.
//! * [`ensemble`]: K one-step predictors whose disagreement marks transitions far from the
//!   training data (a planning penalty).
//! * [`world_model`]: encoder, decoder and reward model around the RSSM, the ELBO loss with
//!   free nats, preprocessing, and safetensors checkpoints with PyTorch-style names.

pub mod ensemble;
pub mod nn;
pub mod rssm;
pub mod world_model;

pub use ensemble::{Ensemble, EnsembleDims, EnsembleShape};
pub use rssm::{FilterStep, Gaussian, InputOffsets, Observed, Prediction, Rssm, RssmState};
pub use world_model::{preprocess_frames, Losses, ObsShape, SequenceBatch, WorldModel};

/// Everything that can go wrong in the model crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid model settings: {0}")]
    Config(#[from] gradplan_config::Error),
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Backend(#[from] gradplan_backend::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Seeds libtorch's stream for a test and holds it ([`gradplan_backend::seeded_for_test`]).
#[cfg(test)]
pub(crate) fn seeded(seed: i64) -> std::sync::MutexGuard<'static, ()> {
    gradplan_backend::seeded_for_test(seed)
}
