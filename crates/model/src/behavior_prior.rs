//! A behaviour prior over the replay's actions, whose Mahalanobis distance marks plans that
//! act where the data never acted (behaviour regularisation, as in offline model-based RL,
//! used here as a planning penalty).
//!
//! One network fitted by maximum likelihood to the actions the replay took from each
//! filtered state, with the world model frozen:
//!
//! ```text
//! π_β(a_t | h_t, s_t) = N(μ(z_t), diag σ(z_t)²),   z_t = [h_t, s_t],   σ = softplus(·) + σ_min
//! d(z_t, a_t) = (1/A) Σ_i ((a_t,i − μ_i(z_t)) / σ_i(z_t))²
//! ```
//!
//! d is small for an action like the ones the data's collector took in that state and grows
//! with the distance from them in units of the collector's own spread. So the same plan is
//! penalised on a model whose replay a cautious planner collected (CEM's averaged plans
//! plus exploration noise never sit at the bounds) and free on one whose collector acted
//! bang-bang: the restraint follows the data, where a trust region around the planner's own
//! start (`planner.trust_region`) is the same everywhere.
//!
//! The file has the ensemble's layout with one member: `layers.{i}.weight [1, in, out]`,
//! `layers.{i}.bias [1, 1, out]` (the last layer's out is 2A: μ, then σ's pre-activation),
//! and `threshold []`, the distance the fit calibrated.

use crate::ensemble::{mlp_sizes, DataSupport, Members};
use crate::{EnsembleDims, EnsembleShape, Error, Result};
use gradplan_config::Activation;
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

/// σ_min, the smallest std the prior can claim: a collector without exploration noise would
/// otherwise make every other action infinitely far.
pub const MIN_STD: f64 = 0.05;

/// The prior's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BehaviorPriorShape {
    /// Units of each hidden layer.
    pub hidden: i64,
    /// Hidden layers (at least 1).
    pub layers: i64,
}

/// The prior's Gaussian over actions in a batch of states.
#[derive(Debug)]
pub struct ActionGaussian {
    /// μ(z), `[n, A]`
    pub mean: Tensor,
    /// σ(z) ≥ σ_min, `[n, A]`
    pub std: Tensor,
}

/// π_β(a | h, s) and the distance it calibrates.
pub struct BehaviorPrior {
    net: Members,
    shape: BehaviorPriorShape,
    actions: i64,
}

impl std::fmt::Debug for BehaviorPrior {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BehaviorPrior").field("shape", &self.shape).finish()
    }
}

impl BehaviorPrior {
    /// A freshly initialised prior, its threshold 1 until [`BehaviorPrior::calibrate`] sets it.
    pub fn new(
        shape: BehaviorPriorShape,
        dims: EnsembleDims,
        act: Activation,
        device: Device,
    ) -> Result<BehaviorPrior> {
        if shape.hidden < 1 || shape.layers < 1 {
            return Err(Error::Unsupported(format!(
                "a behaviour prior needs at least 1 hidden layer of at least 1 unit; got {} layers of {} units",
                shape.layers, shape.hidden
            )));
        }
        let sizes = mlp_sizes(dims.features, shape.hidden, shape.layers, 2 * dims.actions);
        Ok(BehaviorPrior { net: Members::new(1, &sizes, act, device), shape, actions: dims.actions })
    }

    pub fn shape(&self) -> BehaviorPriorShape {
        self.shape
    }

    pub fn var_store(&self) -> &nn::VarStore {
        self.net.var_store()
    }

    /// π_β(· | z) for each state.
    ///
    /// # Shapes
    /// `features: [n, belief + state]` → mean and std `[n, A]`.
    pub fn distribution(&self, features: &Tensor) -> ActionGaussian {
        let out = self.net.forward(features.unsqueeze(0)).squeeze_dim(0); // [n, 2A]
        let a = self.actions;
        ActionGaussian { mean: out.narrow(-1, 0, a), std: out.narrow(-1, a, a).softplus() + MIN_STD }
    }

    /// d(z, a): the squared standardised distance of `action` from the prior's mean, averaged
    /// over the A coordinates (1 on average for actions drawn from the prior itself).
    ///
    /// # Shapes
    /// `features: [n, belief + state]`, `action: [n, A]` → `[n]`.
    pub fn distance(&self, features: &Tensor, action: &Tensor) -> Tensor {
        let g = self.distribution(features);
        ((action - g.mean) / g.std).square().mean_dim(-1, false, None)
    }

    /// d_q, the distance the fit calibrated (1 before [`BehaviorPrior::calibrate`]).
    pub fn threshold(&self) -> f64 {
        self.net.threshold()
    }

    /// Sets d_q.
    pub fn calibrate(&mut self, threshold: f64) -> Result<()> {
        self.net.calibrate(threshold, "the behaviour prior's distance")
    }

    /// The Gaussian negative log-likelihood of the taken actions per coordinate (without the
    /// constant ½ ln 2π), averaged over the unmasked transitions.
    ///
    /// # Shapes
    /// `features: [N, belief + state]`, `actions: [N, A]`, `mask: [N]` (1 for a transition
    /// to learn, 0 for one that crosses an episode start) → `[]`.
    pub fn loss(&self, features: &Tensor, actions: &Tensor, mask: &Tensor) -> Tensor {
        let g = self.distribution(features);
        let nll = (((actions - &g.mean) / &g.std).square() * 0.5 + g.std.log()).mean_dim(-1, false, None); // [N]
        (nll * mask).sum(Kind::Float) / mask.sum(Kind::Float).clamp_min(1.0)
    }

    /// Writes the weights and threshold (atomically, safetensors).
    pub fn save(&self, path: &Path) -> Result<()> {
        self.net.save(path)
    }

    /// Reads a prior written by [`BehaviorPrior::save`] for a model of these dimensions; its
    /// shape comes from the file, and a file for another model (or an ensemble's) is refused.
    pub fn load(path: &Path, dims: EnsembleDims, act: Activation, device: Device) -> Result<BehaviorPrior> {
        let mismatch = |detail: String| {
            Error::Unsupported(format!(
                "{} is not a behaviour prior of this run's model ({detail}); fit one with `gradplan ensemble \
                 --run-dir <run> --measure behavior`",
                path.display()
            ))
        };
        let build = |found: EnsembleShape| {
            if found.members != 1 {
                return Err(Error::Unsupported(format!("it has {} members, a prior has 1", found.members)));
            }
            BehaviorPrior::new(
                BehaviorPriorShape { hidden: found.hidden, layers: found.layers },
                dims,
                act,
                device,
            )
        };
        Members::load(path, device, build, |p: &BehaviorPrior| &p.net, mismatch)
    }
}

/// u is differentiable in the action only: the prior's Gaussian is read at the state as a
/// constant, so a planner ascending the penalised return is pulled towards the actions the
/// collector took there, never towards states where the collector acted erratically (the
/// random seed episodes' states, whose σ is wide, would otherwise be a refuge).
impl DataSupport for BehaviorPrior {
    fn relative(&self, features: &Tensor, action: &Tensor) -> Tensor {
        self.net.relative(self.distance(&features.detach(), action))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::OptimizerConfig;

    fn dims() -> EnsembleDims {
        EnsembleDims { features: 4, actions: 2, state: 3 }
    }

    fn prior(hidden: i64) -> BehaviorPrior {
        BehaviorPrior::new(BehaviorPriorShape { hidden, layers: 2 }, dims(), Activation::Elu, Device::Cpu)
            .unwrap()
    }

    #[test]
    fn the_distance_is_the_standardised_square_by_hand() {
        let _g = crate::seeded(21);
        let p = prior(8);
        let f = Tensor::randn([5, 4], (Kind::Float, Device::Cpu));
        let a = Tensor::randn([5, 2], (Kind::Float, Device::Cpu));
        let g = p.distribution(&f);
        assert_eq!(g.mean.size(), [5, 2]);
        assert!(g.std.min().double_value(&[]) >= MIN_STD - 1e-7);
        let (m, s, av) = (
            Vec::<Vec<f32>>::try_from(&g.mean).unwrap(),
            Vec::<Vec<f32>>::try_from(&g.std).unwrap(),
            Vec::<Vec<f32>>::try_from(&a).unwrap(),
        );
        let d = Vec::<f32>::try_from(p.distance(&f, &a)).unwrap();
        for n in 0..5 {
            let by_hand = (0..2).map(|i| ((av[n][i] - m[n][i]) / s[n][i]).powi(2)).sum::<f32>() / 2.0;
            assert!((d[n] - by_hand).abs() < 1e-4 * by_hand.max(1.0), "{n}: {} vs {by_hand}", d[n]);
        }
        // At the mean the distance is 0.
        assert!(p.distance(&f, &g.mean).abs().max().double_value(&[]) < 1e-10);
    }

    #[test]
    fn the_distance_gradient_matches_central_differences() {
        let _g = crate::seeded(22);
        let p = prior(8);
        let f = Tensor::randn([3, 4], (Kind::Float, Device::Cpu));
        let a = Tensor::randn([3, 2], (Kind::Float, Device::Cpu));
        crate::assert_gradient(&|a| p.relative(&f, a).sum(Kind::Double), &a);
    }

    #[test]
    fn fitting_recovers_a_state_dependent_collector() {
        // The collector acts a = (tanh(z₀), −z₁/2) + N(0, diag(0.3², 0.1²)); after the fit the
        // prior's mean and std are the collector's, so its own actions sit at d ≈ 1 and an
        // action at the bounds where the collector never goes is far.
        let _g = crate::seeded(23);
        let opts = (Kind::Float, Device::Cpu);
        let mut p = prior(32);
        let mean_of = |f: &Tensor| Tensor::stack(&[f.select(1, 0).tanh(), f.select(1, 1) * -0.5], 1);
        let spread = Tensor::from_slice(&[0.3f32, 0.1]).view([1, 2]);
        let f = Tensor::randn([4096, 4], opts);
        let a = mean_of(&f) + Tensor::randn([4096, 2], opts) * &spread;
        let mask = Tensor::ones([4096], opts);
        let mut adam = tch::nn::Adam::default().build(p.var_store(), 3e-3).unwrap();
        for _ in 0..1500 {
            let loss = p.loss(&f, &a, &mask);
            adam.backward_step(&loss);
        }
        let fresh = Tensor::randn([2048, 4], opts);
        let taken = mean_of(&fresh) + Tensor::randn([2048, 2], opts) * &spread;
        let own = p.distance(&fresh, &taken).mean(Kind::Float).double_value(&[]);
        assert!((own - 1.0).abs() < 0.35, "the collector's own actions: d = {own}");
        let std = p.distribution(&fresh).std.mean_dim(0, false, None);
        let std = Vec::<f32>::try_from(std).unwrap();
        assert!((std[0] - 0.3).abs() < 0.08 && (std[1] - 0.1).abs() < 0.04, "std {std:?}");
        let bang = mean_of(&fresh).sign().neg(); // the opposite bound of every coordinate
        let far = p.distance(&fresh, &bang).mean(Kind::Float).double_value(&[]);
        assert!(far > 20.0 * own, "own {own}, at the opposite bounds {far}");
        // A masked transition teaches nothing.
        assert_eq!(p.loss(&f, &(a * 100.0), &Tensor::zeros([4096], opts)).double_value(&[]), 0.0);
        p.calibrate(own).unwrap();
        let rel = p.relative(&fresh, &taken).mean(Kind::Float).double_value(&[]);
        assert!((rel - 1.0).abs() < 1e-4, "{rel}");
        assert!(p.calibrate(f64::NAN).is_err());
    }

    #[test]
    fn a_saved_prior_loads_with_its_shape_and_refuses_an_ensemble() {
        let _g = crate::seeded(24);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("behavior_prior.safetensors");
        let mut p = BehaviorPrior::new(
            BehaviorPriorShape { hidden: 5, layers: 1 },
            dims(),
            Activation::Relu,
            Device::Cpu,
        )
        .unwrap();
        p.calibrate(2.5).unwrap();
        p.save(&path).unwrap();
        let back = BehaviorPrior::load(&path, dims(), Activation::Relu, Device::Cpu).unwrap();
        assert_eq!(back.shape(), p.shape());
        assert_eq!(back.threshold(), 2.5);
        let (f, a) = (
            Tensor::randn([4, 4], (Kind::Float, Device::Cpu)),
            Tensor::randn([4, 2], (Kind::Float, Device::Cpu)),
        );
        assert!(p.relative(&f, &a).equal(&back.relative(&f, &a)));
        let other = EnsembleDims { actions: 3, ..dims() };
        let err = BehaviorPrior::load(&path, other, Activation::Relu, Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("not a behaviour prior of this run's model"), "{err}");
        // An ensemble's file (K members) is not a prior.
        let e = crate::Ensemble::new(
            crate::EnsembleShape { members: 3, hidden: 5, layers: 1 },
            dims(),
            Activation::Relu,
            Device::Cpu,
        )
        .unwrap();
        e.save(&path).unwrap();
        let err = BehaviorPrior::load(&path, dims(), Activation::Relu, Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("3 members"), "{err}");
        assert!(BehaviorPrior::new(
            BehaviorPriorShape { hidden: 0, layers: 1 },
            dims(),
            Activation::Relu,
            Device::Cpu
        )
        .is_err());
    }
}
