//! The actor q_φ(a|s) and value v_ψ(s), MLPs on the features `[h, s]` with ELU between
//! layers and Dreamer's reference sizes (400 units; 4 hidden layers for the actor, 3 for the
//! value). Parameter names are PyTorch's (`actor.fc1.weight`, …, `value.fc4.bias`).

use gradplan_config::{Activation, DreamerConfig};
use gradplan_model::nn::Mlp;
use tch::nn;
use tch::Tensor;

/// A tanh-transformed diagonal Gaussian: `a = tanh(u)`, `u ~ N(mean, std²)`.
#[derive(Debug)]
pub struct TanhGaussian {
    /// Pre-tanh mean, `[N, A]`.
    pub mean: Tensor,
    /// Pre-tanh std, `[N, A]`.
    pub std: Tensor,
}

impl TanhGaussian {
    /// `tanh(mean)`, the deterministic action. (Dreamer's TF code estimates the mode of the
    /// transformed distribution from 100 samples; tanh of the Gaussian's mode is the
    /// deterministic, sample-free choice and agrees with it for small std.)
    pub fn mode(&self) -> Tensor {
        self.mean.tanh()
    }

    /// A reparameterised sample `tanh(mean + std ε)`, ε ~ N(0, I): differentiable in φ.
    pub fn sample(&self) -> Tensor {
        (&self.mean + &self.std * self.mean.randn_like()).tanh()
    }
}

/// Dreamer's action model. Actions are in (−1, 1), the DMC box.
#[derive(Debug)]
pub struct Actor {
    net: Mlp,
    action_dim: i64,
    /// softplus⁻¹(σ₀): the std starts near σ₀ whatever the net's output scale.
    raw_init_std: f64,
    min_std: f64,
    mean_scale: f64,
}

impl Actor {
    /// `fc1 … fc{L+1}` under `vs` (L = `actor_layers`), output `2A` (mean and std).
    pub fn new(vs: nn::Path, cfg: &DreamerConfig, features: i64, action_dim: i64) -> Actor {
        let hidden = cfg.hidden as i64;
        let mut sizes = vec![features];
        sizes.extend(std::iter::repeat_n(hidden, cfg.actor_layers));
        sizes.push(2 * action_dim);
        Actor {
            net: Mlp::new(vs, &sizes, Activation::Elu),
            action_dim,
            raw_init_std: cfg.init_std.exp_m1().ln(),
            min_std: cfg.min_std,
            mean_scale: cfg.mean_scale,
        }
    }

    /// `mean = s·tanh(μ / s)` (bounded so tanh does not saturate early),
    /// `std = softplus(x + softplus⁻¹(σ₀)) + σ_min` (Dreamer's `ActionDecoder`).
    ///
    /// # Shapes
    /// `features: [N, F]` → `[N, A]` each
    pub fn dist(&self, features: &Tensor) -> TanhGaussian {
        let out = self.net.forward(features);
        let parts = out.split(self.action_dim, -1);
        let mean = (&parts[0] / self.mean_scale).tanh() * self.mean_scale;
        let std = (&parts[1] + self.raw_init_std).softplus() + self.min_std;
        TanhGaussian { mean, std }
    }
}

/// Dreamer's value model.
#[derive(Debug)]
pub struct Value {
    net: Mlp,
}

impl Value {
    /// `fc1 … fc{L+1}` under `vs` (L = `value_layers`), output 1.
    pub fn new(vs: nn::Path, cfg: &DreamerConfig, features: i64) -> Value {
        let mut sizes = vec![features];
        sizes.extend(std::iter::repeat_n(cfg.hidden as i64, cfg.value_layers));
        sizes.push(1);
        Value { net: Mlp::new(vs, &sizes, Activation::Elu) }
    }

    /// # Shapes
    /// `[…, F]` → `[…]`
    pub fn forward(&self, features: &Tensor) -> Tensor {
        self.net.forward(features).squeeze_dim(-1)
    }
}
