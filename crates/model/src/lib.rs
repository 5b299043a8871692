//! The PlaNet world model in tch (the seed's §3.2; Hafner et al. 2019).
//!
//! * [`rssm`]: the recurrent state-space model — deterministic GRU path, Gaussian prior and
//!   posterior over the stochastic state.
//! * [`ensemble`]: K one-step predictors whose disagreement marks transitions far from the
//!   training data (a planning penalty), and [`DataSupport`], the measure the planners see.
//! * [`behavior_prior`]: a Gaussian over the replay's actions per state, whose distance marks
//!   actions the data's collector never took (another [`DataSupport`]).
//! * [`density`]: a Gaussian over the model states the replay filters to, whose distance
//!   marks imagined states the data never reached (the third [`DataSupport`]).
//! * [`world_model`]: encoder, decoder and reward model around the RSSM, the ELBO loss with
//!   free nats, preprocessing, and safetensors checkpoints with PyTorch-style names.

pub mod behavior_prior;
pub mod density;
pub mod ensemble;
pub mod nn;
pub mod rssm;
pub mod world_model;

pub use behavior_prior::{ActionGaussian, BehaviorPrior, BehaviorPriorShape};
pub use density::{Moments, StateDensity};
pub use ensemble::{DataSupport, Ensemble, EnsembleDims, EnsembleShape};
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

/// Asserts that autograd's gradient of `value` (a scalar of an `[n, k]` input: an action, or
/// the features for the state density) at `input` matches central differences. The
/// networks are f32, so the check is at ε = 1e-2 with a relative tolerance of 1e-2 (their
/// activations are smooth).
#[cfg(test)]
pub(crate) fn assert_gradient(value: &dyn Fn(&tch::Tensor) -> tch::Tensor, input: &tch::Tensor) {
    use tch::{Kind, Tensor};
    let a = input.detach().set_requires_grad(true);
    let total = value(&a).to_kind(Kind::Float);
    let grad =
        Vec::<f32>::try_from(Tensor::run_backward(&[total], &[&a], false, false)[0].flatten(0, -1)).unwrap();
    let base = Vec::<f32>::try_from(a.detach().flatten(0, -1)).unwrap();
    let at = |v: &[f32]| {
        tch::no_grad(|| value(&Tensor::from_slice(v).view(input.size().as_slice()))).double_value(&[])
    };
    let eps = 1e-2f32;
    for (i, g) in grad.iter().enumerate() {
        let (mut up, mut down) = (base.clone(), base.clone());
        up[i] += eps;
        down[i] -= eps;
        let fd = (at(&up) - at(&down)) / (2.0 * eps as f64);
        let scale = fd.abs().max(1e-3);
        assert!(((*g as f64) - fd).abs() / scale < 1e-2, "element {i}: autograd {g}, central {fd}");
    }
}
