//! The PlaNet world model in tch (the seed's §3.2; Hafner et al. 2019).
//!
//! * [`rssm`]: the recurrent state-space model — deterministic GRU path, Gaussian prior and
//!   posterior over the stochastic state.
//! * [`world_model`]: encoder, decoder and reward model around the RSSM, the ELBO loss with
//!   free nats, preprocessing, and safetensors checkpoints with PyTorch-style names.

pub mod nn;
pub mod rssm;
pub mod world_model;

pub use rssm::{FilterStep, Gaussian, Observed, Prediction, Rssm, RssmState};
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

/// Seeds libtorch's random stream and holds it for the calling test. The stream is global
/// and the test harness runs tests on parallel threads, so a test that compares two draws
/// with the same seed needs every other test that draws to wait.
///
/// Also runs libtorch on one thread: the tests' tensors are tiny, and on a loaded machine
/// OpenMP's spinning workers made one test 20× slower (61 s against 3 s).
#[cfg(test)]
pub(crate) fn seeded(seed: i64) -> std::sync::MutexGuard<'static, ()> {
    static STREAM: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let guard = STREAM.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::set_num_threads(1);
    tch::manual_seed(seed);
    guard
}
