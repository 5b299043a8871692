//! Adam with global-norm gradient clipping, whose state can be checkpointed.
//!
//! The same update as `torch.optim.Adam` (bias-corrected moments, ε added after the square
//! root) and `clip_grad_norm_`; written here because exact resume needs the moments saved
//! with the model, which tch's optimiser does not expose.

use crate::{load_safetensors, save_safetensors, Error, Result};
use std::path::Path;
use tch::{Kind, Tensor};

/// Adam's state for a fixed, named list of parameters.
pub struct Adam {
    params: Vec<(String, Tensor)>,
    exp_avg: Vec<Tensor>,
    exp_avg_sq: Vec<Tensor>,
    steps: i64,
    pub learning_rate: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub clip_norm: f64,
}

impl Adam {
    pub fn new(params: Vec<(String, Tensor)>, learning_rate: f64, eps: f64, clip_norm: f64) -> Self {
        let zeros = |p: &Vec<(String, Tensor)>| p.iter().map(|(_, t)| t.zeros_like()).collect();
        Adam {
            exp_avg: zeros(&params),
            exp_avg_sq: zeros(&params),
            params,
            steps: 0,
            learning_rate,
            beta1: 0.9,
            beta2: 0.999,
            eps,
            clip_norm,
        }
    }

    /// Updates taken so far.
    pub fn steps(&self) -> i64 {
        self.steps
    }

    /// Backpropagates `loss` into this optimiser's parameters only, clips the global
    /// gradient norm, takes one Adam step with learning rate `lr`, and returns the gradient
    /// norm before clipping.
    ///
    /// The gradients are computed with `torch.autograd.grad`-style inputs (our parameters), so
    /// nothing is accumulated into `.grad` of any other tensor in the graph: an actor loss
    /// that flows through the world model leaves the model's parameters and gradients alone.
    /// A parameter the loss does not reach gets a zero gradient.
    pub fn backward_step(&mut self, loss: &Tensor, lr: f64) -> f64 {
        let inputs: Vec<&Tensor> = self.params.iter().map(|(_, p)| p).collect();
        let raw = Tensor::run_backward(&[loss], &inputs, false, false);
        tch::no_grad(|| {
            let grads: Vec<Tensor> = raw
                .into_iter()
                .zip(&self.params)
                .map(|(g, (_, p))| if g.defined() { g } else { p.zeros_like() })
                .collect();
            let norm =
                Tensor::stack(&grads.iter().map(|g| g.square().sum(Kind::Float)).collect::<Vec<_>>(), 0)
                    .sum(Kind::Float)
                    .sqrt()
                    .double_value(&[]);
            let scale = if norm > self.clip_norm { self.clip_norm / (norm + 1e-6) } else { 1.0 };
            self.steps += 1;
            let bc1 = 1.0 - self.beta1.powi(self.steps as i32);
            let bc2 = 1.0 - self.beta2.powi(self.steps as i32);
            for (i, (_, p)) in self.params.iter_mut().enumerate() {
                let g = &grads[i] * scale;
                let m = &mut self.exp_avg[i];
                let _ = m.g_mul_scalar_(self.beta1).g_add_(&(&g * (1.0 - self.beta1)));
                let v = &mut self.exp_avg_sq[i];
                let _ = v.g_mul_scalar_(self.beta2).g_add_(&(g.square() * (1.0 - self.beta2)));
                let denom = (self.exp_avg_sq[i].sqrt() / bc2.sqrt()) + self.eps;
                let update = &self.exp_avg[i] / denom * (lr / bc1);
                let _ = p.g_sub_(&update);
            }
            norm
        })
    }

    /// The name of the first parameter or moment holding a NaN or an infinity
    /// (`exp_avg.<param>`, `exp_avg_sq.<param>`, or the parameter's own name), if any: what a
    /// checkpoint must not contain.
    pub fn first_non_finite(&self) -> Result<Option<String>> {
        for (i, (name, p)) in self.params.iter().enumerate() {
            for (what, t) in [("", p), ("exp_avg.", &self.exp_avg[i]), ("exp_avg_sq.", &self.exp_avg_sq[i])] {
                if !all_finite(t)? {
                    return Ok(Some(format!("{what}{name}")));
                }
            }
        }
        Ok(None)
    }

    /// Saves the moments and step count (safetensors, atomic).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors = vec![("steps".to_owned(), Tensor::from_slice(&[self.steps]))];
        for (i, (name, _)) in self.params.iter().enumerate() {
            tensors.push((format!("exp_avg.{name}"), self.exp_avg[i].shallow_clone()));
            tensors.push((format!("exp_avg_sq.{name}"), self.exp_avg_sq[i].shallow_clone()));
        }
        save_safetensors(path, &tensors)
    }

    /// Restores what [`Adam::save`] wrote, for the same parameter list.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let device = self.params.first().map(|(_, t)| t.device()).unwrap_or(tch::Device::Cpu);
        let loaded = load_safetensors(path, device)?;
        let find = |name: &str| {
            loaded
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t.shallow_clone())
                .ok_or_else(|| Error::OptimizerState(format!("{} lacks `{name}`", path.display())))
        };
        let steps = find("steps")?.int64_value(&[0]);
        tch::no_grad(|| -> Result<()> {
            for (i, (name, p)) in self.params.iter().enumerate() {
                for (prefix, slot) in
                    [("exp_avg", &mut self.exp_avg[i]), ("exp_avg_sq", &mut self.exp_avg_sq[i])]
                {
                    let t = find(&format!("{prefix}.{name}"))?;
                    if t.size() != p.size() {
                        return Err(Error::OptimizerState(format!(
                            "optimiser state for `{name}` has the wrong shape"
                        )));
                    }
                    slot.copy_(&t);
                }
            }
            Ok(())
        })?;
        self.steps = steps;
        Ok(())
    }
}

/// Whether every element of `t` is finite.
pub fn all_finite(t: &Tensor) -> Result<bool> {
    Ok(tch::no_grad(|| t.f_isfinite()?.f_all()?.f_int64_value(&[]))? != 0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn non_finite_parameters_and_moments_are_named() {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[3], nn::Init::Const(1.0));
        let mut opt = Adam::new(vec![("w".into(), w.shallow_clone())], 0.1, 1e-8, 1e9);
        assert_eq!(opt.first_non_finite().unwrap(), None);
        opt.backward_step(&(&w * f64::INFINITY).sum(Kind::Float), 0.1);
        assert!(opt.first_non_finite().unwrap().is_some_and(|n| n.ends_with('w')));
    }

    use super::*;
    use tch::nn::OptimizerConfig;
    use tch::{nn, Device};

    #[test]
    fn matches_tch_adam_on_a_quadratic() {
        // Same parameters, same loss, same hyperparameters: our Adam and libtorch's agree.
        tch::manual_seed(0);
        let target = Tensor::randn([5], (Kind::Float, Device::Cpu));
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[5], nn::Init::Const(0.0));
        let mut ours = Adam::new(vec![("w".into(), w.shallow_clone())], 0.1, 1e-4, 1000.0);
        let vs2 = nn::VarStore::new(Device::Cpu);
        let w2 = vs2.root().var("w", &[5], nn::Init::Const(0.0));
        let mut theirs = nn::Adam { eps: 1e-4, ..Default::default() }.build(&vs2, 0.1).unwrap();
        for _ in 0..20 {
            ours.backward_step(&(&w - &target).square().sum(Kind::Float), 0.1);
            theirs.backward_step(&(&w2 - &target).square().sum(Kind::Float));
        }
        assert!(w.allclose(&w2, 1e-5, 1e-6, false), "{w:?} vs {w2:?}");
    }

    #[test]
    fn clipping_bounds_the_step_and_state_round_trips() {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[3], nn::Init::Const(0.0));
        let mut opt = Adam::new(vec![("w".into(), w.shallow_clone())], 0.01, 1e-8, 1.0);
        let norm = opt.backward_step(&(&w * 1000.0).sum(Kind::Float), 0.01);
        assert!((norm - 1000.0 * 3f64.sqrt()).abs() < 1e-2);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("adam.safetensors");
        opt.save(&path).unwrap();
        let mut other = Adam::new(vec![("w".into(), w.shallow_clone())], 0.01, 1e-8, 1.0);
        other.load(&path).unwrap();
        assert_eq!(other.steps(), 1);
        assert!(other.exp_avg[0].equal(&opt.exp_avg[0]));
        assert!(other.exp_avg_sq[0].equal(&opt.exp_avg_sq[0]));
    }
}
