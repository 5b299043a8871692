//! Dreamer's behaviour learning (Hafner et al. 2020) on the gradplan world model, as the
//! seed paper uses it for its "Pure Policy" and Policy+Grad-MPC experiments (§6, A.2, A.4).
//!
//! * [`Actor`] q_φ(a|s) and [`Value`] v_ψ(s): MLPs on the features `[h, s]` (`nets.rs`).
//! * [`lambda_return`]: the λ-return of eqs. 12–13 in its recursive form (`returns.rs`).
//! * [`Behavior::losses`] and [`update`]: imagination of H steps from every posterior
//!   state of a training batch, the actor loss −E[V_λ] (eq. 10; gradients flow back through
//!   the RSSM's imagined steps, the reward head and the value into the actions) and the
//!   value loss ½(v − sg(V_λ))² (eq. 11), each stepped by its own optimiser (`behavior.rs`).
//!
//! The world model is never updated here: its parameters are in neither optimiser, and
//! [`Adam::backward_step`] differentiates the loss with respect to its own parameters only
//! (`torch.autograd.grad` with inputs), so the actor loss, which does flow through the
//! model, neither changes the model nor leaves gradients in it (tested).
//!
//! [`Adam::backward_step`]: gradplan_backend::optim::Adam::backward_step

mod behavior;
mod nets;
mod returns;

pub use behavior::{update, Behavior, BehaviorLosses, Imagined, Optimizers, UpdateStats};
pub use nets::{Actor, TanhGaussian, Value};
pub use returns::{discount_weights, lambda_return};

use std::path::Path;
use tch::nn;

/// Everything that can go wrong in the dreamer crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] gradplan_config::Error),
    #[error(transparent)]
    Backend(#[from] gradplan_backend::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// A var store's parameters by PyTorch-style name, sorted.
pub(crate) fn named(vs: &nn::VarStore) -> Vec<(String, tch::Tensor)> {
    gradplan_backend::named_variables(vs)
}

/// Copies the tensors of a safetensors file into `vs`, which must hold exactly those names
/// and shapes.
pub(crate) fn load_into(vs: &nn::VarStore, path: &Path) -> Result<()> {
    Ok(gradplan_backend::load_into_var_store(vs, path)?)
}

/// Seeds libtorch's stream for a test and holds it ([`gradplan_backend::seeded_for_test`]).
#[cfg(test)]
pub(crate) fn seeded(seed: i64) -> std::sync::MutexGuard<'static, ()> {
    gradplan_backend::seeded_for_test(seed)
}
