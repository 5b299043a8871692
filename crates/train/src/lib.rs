//! The experiment loop (PlaNet's protocol, the seed's §5): seed episodes with random
//! actions, then per episode `collect_interval` model updates on sampled chunks and one
//! episode collected with the planner plus Gaussian exploration noise; noise-free test
//! episodes every `test_interval` episodes; checkpoints that resume exactly. [`Agent`]
//! plays the episodes; [`Evaluator`] replays a run's model with any planner (`gradplan eval`).

pub mod agent;
pub mod checkpoint;
pub mod dynamics;
pub mod ensemble;
pub mod eval;
pub mod images;
pub mod metrics;
pub mod openloop;
pub mod study;
pub mod tensors;
pub mod trainer;

pub use agent::{Agent, Decision, EpisodeOptions, EpisodeStats, FrameSink, ParallelEpisodes, Policy};
pub use ensemble::{
    fit as fit_ensemble, FitOptions, FitReport, BEHAVIOR_PRIOR_FILE, ENSEMBLE_FILE, STATE_DENSITY_FILE,
};
pub use eval::{evaluate, DecisionSink, EvalOptions, EvalReport, Evaluator};
/// Our checkpointable Adam, now in the backend so `dreamer` can use it too.
pub use gradplan_backend::optim;
pub use openloop::{open_loop, OpenLoop, OpenLoopOptions, Trace};
pub use trainer::{read_run_config, ResumeOptions, RunOptions, Trainer};

use std::path::PathBuf;

/// Everything that can go wrong in a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] gradplan_config::Error),
    #[error(transparent)]
    Env(#[from] gradplan_env::Error),
    #[error(transparent)]
    Replay(#[from] gradplan_replay::Error),
    #[error(transparent)]
    Model(#[from] gradplan_model::Error),
    #[error(transparent)]
    Dreamer(#[from] gradplan_dreamer::Error),
    #[error(
        "the {planner} planner needs Dreamer's actor and value, and {what} has none (it was trained with \
         planner.kind = {trained}, a PlaNet run); use a model-only planner (cem, grad-mpc, mppi, grad-cem, \
         random-shooting), or train with planner.kind = policy or policy-grad-mpc"
    )]
    NoActor { planner: String, what: String, trained: String },
    #[error(transparent)]
    Plan(#[from] gradplan_plan::Error),
    #[error(transparent)]
    Backend(#[from] gradplan_backend::Error),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// Writing the run's TensorBoard events failed (like a failed `metrics.csv` append).
    #[error(transparent)]
    Events(#[from] gradplan_tensorboard::Error),
    #[error("checkpoint problem: {0}")]
    Checkpoint(String),
    /// A libtorch call failed (a tensor conversion, an allocation).
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// Another process trains the run directory (its lock is held).
    #[error("{0}")]
    Busy(String),
    #[error("could not write an image: {0}")]
    Image(String),
    #[error("{0}")]
    RunDir(String),
    /// Resuming would repeat the same updates (a resume is exact), so the hint is a new run.
    #[error(
        "the {what} became {value} at update {update} (episode {episode}); the run stopped and its last good \
         checkpoint is kept{kept}. Resuming would repeat the same updates: start a new run with a lower \
         optim.learning_rate or a higher model.min_std, e.g. `gradplan train --config {run_dir}/config.toml \
         --set optim.learning_rate=… --run-dir <new dir>`"
    )]
    NonFinite { what: String, value: f64, update: usize, episode: usize, kept: String, run_dir: String },
}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    #[test]
    fn tensor_failures_are_torch_errors() {
        let bad = tch::Tensor::from_slice(&[1.0f32, 2.0]).f_reshape([3]).unwrap_err();
        let err = super::Error::from(bad);
        assert!(matches!(err, super::Error::Torch(_)));
        assert!(err.to_string().starts_with("libtorch: "), "{err}");
    }
}
