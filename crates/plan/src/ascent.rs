//! Gradient ascent on action sequences through the model, shared by Grad-MPC (Algorithm 1,
//! lines 4–7) and GradCEM.
//!
//! The objective is `Σ_j R_j`: candidates are rolled out independently, so its gradient with
//! respect to candidate j's actions is exactly `∇_{a^(j)} R_j`, and one backward pass serves
//! all J candidates.

use crate::{ActionOptimizer, Bounds, Counts, LatentDynamics, Objective};
use tch::Tensor;

/// Adam's constants on the actions (Kingma & Ba's defaults): β₁ (first-moment decay),
/// β₂ (second-moment decay) and ε (added to √v̂). Moments start at zero on every `plan` call,
/// so the step is α·m̂/(√v̂ + ε), about α per element whatever the reward scale.
const ADAM_BETA1: f64 = 0.9;
const ADAM_BETA2: f64 = 0.999;
const ADAM_EPS: f64 = 1e-8;

/// Adam's running moments for one batch of candidates.
struct Moments {
    /// m, `[H, J, A]`
    first: Tensor,
    /// v, `[H, J, A]`
    second: Tensor,
    /// Updates taken, for bias correction.
    steps: i32,
}

/// The settings of an ascent, as the planners' configs hold them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AscentConfig {
    /// α
    pub learning_rate: f64,
    pub optimizer: ActionOptimizer,
    pub grad_clip_per_step: Option<f64>,
    pub objective: Objective,
    /// S, imaginations each candidate's R is averaged over ([`Objective::expected_returns`]).
    pub samples: i64,
}

/// A running ascent over one batch of candidates.
pub(crate) struct Ascent {
    config: AscentConfig,
    moments: Option<Moments>,
}

impl Ascent {
    pub(crate) fn new(config: AscentConfig) -> Self {
        Ascent { config, moments: None }
    }

    /// One update of every candidate, projected back onto the action box.
    ///
    /// # Shapes
    /// `actions: [H, J, A]` → `[H, J, A]`
    pub(crate) fn step<D: LatentDynamics>(
        &mut self,
        dynamics: &D,
        state: &D::State,
        actions: &Tensor,
        bounds: &Bounds,
        counts: &mut Counts,
    ) -> Tensor {
        let a = actions.detach().set_requires_grad(true);
        let samples = self.config.samples;
        let objective = self.config.objective.expected_returns(dynamics, state, &a, samples).sum(a.kind());
        let mut grad = Tensor::run_backward(&[objective], &[&a], false, false).remove(0);
        counts.rollouts(actions, samples);
        counts.backward_steps += (actions.size()[0] * actions.size()[1] * samples.max(1)) as u64;
        tch::no_grad(|| {
            if let Some(max_norm) = self.config.grad_clip_per_step {
                grad = clip_per_step(&grad, max_norm);
            }
            let direction = self.direction(&grad);
            bounds.clamp(&(actions.detach() + direction * self.config.learning_rate))
        })
    }

    /// The ascent direction before scaling by α.
    fn direction(&mut self, grad: &Tensor) -> Tensor {
        match self.config.optimizer {
            ActionOptimizer::Sgd => grad.shallow_clone(),
            ActionOptimizer::Normalized => {
                // RMS over each candidate's [H, A] entries: [1, J, 1]. The epsilon only
                // guards 0/0; a zero gradient stays zero.
                let rms = grad.square().mean_dim([0i64, 2].as_slice(), true, None).sqrt();
                grad / (rms + 1e-12)
            }
            ActionOptimizer::Adam => {
                let (beta1, beta2, eps) = (ADAM_BETA1, ADAM_BETA2, ADAM_EPS);
                let m = self.moments.get_or_insert_with(|| Moments {
                    first: grad.zeros_like(),
                    second: grad.zeros_like(),
                    steps: 0,
                });
                m.first = &m.first * beta1 + grad * (1.0 - beta1);
                m.second = &m.second * beta2 + grad.square() * (1.0 - beta2);
                m.steps += 1;
                let first = &m.first / (1.0 - beta1.powi(m.steps));
                let second = &m.second / (1.0 - beta2.powi(m.steps));
                first / (second.sqrt() + eps)
            }
        }
    }
}

/// Rescales each time step's action gradient of each candidate to norm ≤ `max_norm`, so that
/// one steep step (e.g. near a contact in the learned model) cannot throw the whole sequence.
///
/// # Shapes
/// `[H, J, A]` → `[H, J, A]`
fn clip_per_step(grad: &Tensor, max_norm: f64) -> Tensor {
    let norm = grad.norm_scalaropt_dim(2, [-1], true); // [H, J, 1]
                                                       // The epsilon only guards 0/0; a zero gradient stays zero.
    let scale = (max_norm / (norm + 1e-12)).clamp_max(1.0);
    grad * scale.to_kind(grad.kind())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn per_step_clip_bounds_each_action_vector_and_keeps_small_ones() {
        let g = Tensor::from_slice(&[3.0f64, 4.0, 0.3, 0.4]).view([2, 1, 2]);
        let c = clip_per_step(&g, 1.0);
        let v = Vec::<f64>::try_from(c.flatten(0, -1)).unwrap();
        let want = [0.6, 0.8, 0.3, 0.4];
        for (x, w) in v.iter().zip(want) {
            assert!((x - w).abs() < 1e-12, "{v:?}");
        }
        let zero = clip_per_step(&Tensor::zeros([1, 1, 2], (Kind::Double, Device::Cpu)), 1.0);
        assert_eq!(zero.abs().sum(Kind::Double).double_value(&[]), 0.0);
    }

    #[test]
    fn normalized_step_has_rms_alpha_per_candidate_and_keeps_proportions() {
        let config = AscentConfig {
            learning_rate: 1.0,
            optimizer: ActionOptimizer::Normalized,
            grad_clip_per_step: None,
            objective: Objective::default(),
            samples: 1,
        };
        let mut ascent = Ascent::new(config);
        // [H 2, J 2, A 1]: candidate 0 has gradients 3e-3 and 4e-3, candidate 1 has 0 and -50.
        let g = Tensor::from_slice(&[3e-3f64, 0.0, 4e-3, -50.0]).view([2, 2, 1]);
        let d = Vec::<f64>::try_from(ascent.direction(&g).flatten(0, -1)).unwrap();
        let rms0 = (12.5e-6f64).sqrt();
        let want = [3e-3 / rms0, 0.0, 4e-3 / rms0, -50.0 / 1250f64.sqrt()];
        for (x, w) in d.iter().zip(want) {
            assert!((x - w).abs() < 1e-9, "{d:?}");
        }
        // Each candidate's step has RMS 1 (α), a zero gradient stays zero.
        assert!(((d[0] * d[0] + d[2] * d[2]) / 2.0 - 1.0).abs() < 1e-9);
        let zero = ascent.direction(&Tensor::zeros([2, 1, 1], (Kind::Double, Device::Cpu)));
        assert_eq!(zero.abs().sum(Kind::Double).double_value(&[]), 0.0);
    }

    #[test]
    fn adam_first_step_has_size_alpha_in_every_coordinate() {
        // Bias correction makes Adam's first step ±1·α whatever the gradient's scale.
        let config = AscentConfig {
            learning_rate: 1.0,
            optimizer: ActionOptimizer::Adam,
            grad_clip_per_step: None,
            objective: Objective::default(),
            samples: 1,
        };
        let mut ascent = Ascent::new(config);
        let g = Tensor::from_slice(&[1e-3f64, -50.0]);
        let d = Vec::<f64>::try_from(ascent.direction(&g)).unwrap();
        assert!((d[0] - 1.0).abs() < 1e-4 && (d[1] + 1.0).abs() < 1e-6, "{d:?}");
    }
}
