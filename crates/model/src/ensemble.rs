//! A one-step ensemble over the RSSM's transitions, whose disagreement measures how far a
//! transition lies from the data the world model was trained on (Plan2Explore's measure,
//! Sekar et al. 2020, used here as a planning penalty rather than an exploration bonus).
//!
//! K small networks `g_k([h_t, s_t], a_t) → μ̂_k` are each regressed onto the posterior mean
//! of the next stochastic state, `E_q[s_{t+1} | h_{t+1}, o_{t+1}]`, from the same replay
//! transitions with the world model frozen. On transitions like the training data they
//! agree; where the data never went they were never pulled together, and their variance
//!
//! ```text
//! d(s_t, a_t) = (1/S) Σ_i Var_k[μ̂_k,i]        (S = state size)
//! ```
//!
//! grows. The single RSSM has no such signal: its prior is as confident off the data as on
//! it (docs/results.md, the tipped cheetah episodes).
//!
//! The members are stored as batched weights, so one `matmul` runs all K of them:
//! `layers.{i}.weight [K, in, out]`, `layers.{i}.bias [K, 1, out]`, and `threshold []`, the
//! disagreement the fit calibrated (a high quantile over fresh samples of the replay's transitions), which
//! makes the penalty's units the same on every task. The file describes its own shape.

use crate::nn::activate;
use crate::{Error, Result, WorldModel};
use gradplan_config::Activation;
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

/// The ensemble's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnsembleShape {
    /// K, the number of members (at least 2: one network cannot disagree with itself).
    pub members: i64,
    /// Units of each hidden layer.
    pub hidden: i64,
    /// Hidden layers per member (at least 1).
    pub layers: i64,
}

impl Default for EnsembleShape {
    fn default() -> Self {
        EnsembleShape { members: 5, hidden: 64, layers: 2 }
    }
}

/// The K members' weights, one batched linear layer per depth.
struct Layer {
    /// `[K, in, out]`
    weight: Tensor,
    /// `[K, 1, out]`
    bias: Tensor,
}

/// K multilayer perceptrons of one shape in their own var store, run as one batched network
/// (`x [1 or K, n, in]` → `[K, n, out]`), and the threshold d_q that calibrates the measure
/// computed from them: the storage both [`Ensemble`] and [`BehaviorPrior`] are made of, with
/// the file layout they share (`layers.{i}.weight [K, in, out]`, `layers.{i}.bias [K, 1,
/// out]`, `threshold []`).
pub(crate) struct Members {
    vs: nn::VarStore,
    layers: Vec<Layer>,
    act: Activation,
    threshold: Tensor,
}

impl Members {
    /// `sizes`: in, the hidden layers, out. Each member initialised like `torch.nn.Linear`
    /// (U(±1/√in)); the threshold is 1 until [`Members::calibrate`] sets it.
    pub(crate) fn new(members: i64, sizes: &[i64], act: Activation, device: Device) -> Members {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                let p = &root / "layers" / i;
                let k = 1.0 / (w[0] as f64).sqrt();
                let init = nn::Init::Uniform { lo: -k, up: k };
                Layer {
                    weight: p.var("weight", &[members, w[0], w[1]], init),
                    bias: p.var("bias", &[members, 1, w[1]], init),
                }
            })
            .collect();
        let threshold = root.ones_no_train("threshold", &[]);
        Members { vs, layers, act, threshold }
    }

    pub(crate) fn forward(&self, x: Tensor) -> Tensor {
        let mut x = x;
        for (i, layer) in self.layers.iter().enumerate() {
            x = x.matmul(&layer.weight) + &layer.bias;
            if i + 1 < self.layers.len() {
                x = activate(self.act, &x);
            }
        }
        x
    }

    pub(crate) fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// d_q (1 before [`Members::calibrate`]).
    pub(crate) fn threshold(&self) -> f64 {
        self.threshold.double_value(&[])
    }

    /// `measure / d_q`, u in units of the data's edge.
    pub(crate) fn relative(&self, measure: Tensor) -> Tensor {
        measure / &self.threshold
    }

    /// Sets d_q (finite and > 0), naming `what` it calibrates in the error.
    pub(crate) fn calibrate(&mut self, value: f64, what: &str) -> Result<()> {
        if !(value.is_finite() && value > 0.0) {
            return Err(Error::Unsupported(format!("{what} threshold must be finite and > 0, got {value}")));
        }
        tch::no_grad(|| {
            let _ = self.threshold.fill_(value);
        });
        Ok(())
    }

    /// Writes the weights and threshold (atomically, safetensors).
    pub(crate) fn save(&self, path: &Path) -> Result<()> {
        Ok(gradplan_backend::save_safetensors(path, &gradplan_backend::named_variables(&self.vs))?)
    }

    /// Reads a file written by [`Members::save`] into the network `build` makes for the
    /// shape the file describes, and checks its threshold. Every failure is `mismatch`'s
    /// error with what was wrong.
    pub(crate) fn load<T>(
        path: &Path,
        device: Device,
        build: impl FnOnce(EnsembleShape) -> Result<T>,
        members: impl Fn(&T) -> &Members,
        mismatch: impl Fn(String) -> Error,
    ) -> Result<T> {
        let tensors = gradplan_backend::load_safetensors(path, device)?;
        let size = |name: &str| tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t.size());
        let first = size("layers.0.weight").ok_or_else(|| mismatch("no layers.0.weight".into()))?;
        let depth = (0..).take_while(|i| size(&format!("layers.{i}.weight")).is_some()).count() as i64;
        if first.len() != 3 || depth < 2 {
            return Err(mismatch(format!("layers.0.weight is {first:?} and there are {depth} layers")));
        }
        let shape = EnsembleShape { members: first[0], hidden: first[2], layers: depth - 1 };
        let built = build(shape).map_err(|e| mismatch(e.to_string()))?;
        let net = members(&built);
        gradplan_backend::copy_into_var_store(&net.vs, tensors, path).map_err(|e| mismatch(e.to_string()))?;
        if !(net.threshold() > 0.0 && net.threshold().is_finite()) {
            return Err(mismatch(format!("its threshold is {}", net.threshold())));
        }
        Ok(built)
    }
}

/// `[in, hidden × layers, out]`, the sizes [`Members::new`] takes.
pub(crate) fn mlp_sizes(input: i64, hidden: i64, layers: i64, output: i64) -> Vec<i64> {
    let mut sizes = vec![input];
    sizes.extend(std::iter::repeat_n(hidden, layers as usize));
    sizes.push(output);
    sizes
}

/// A calibrated measure of how far a transition `(h_t, s_t, a_t)` lies from the data a world
/// model was trained on: the planners' [`u`](DataSupport::relative), 1 at the data's edge.
/// Implemented by the disagreement [`Ensemble`], the [`BehaviorPrior`] and the
/// [`crate::StateDensity`].
pub trait DataSupport: std::fmt::Debug {
    /// u ≥ 0 in units of the calibrated threshold. Differentiable in what it reads: the
    /// ensemble in both, the prior in `action` only, the density in `features` only.
    ///
    /// # Shapes
    /// `features: [n, belief + state]`, `action: [n, A]` → `[n]`.
    fn relative(&self, features: &Tensor, action: &Tensor) -> Tensor;
}

/// K one-step predictors of the next stochastic state, and the disagreement they calibrate.
pub struct Ensemble {
    members: Members,
    shape: EnsembleShape,
}

impl std::fmt::Debug for Ensemble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ensemble").field("shape", &self.shape).finish()
    }
}

/// The dimensions of the model an ensemble belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnsembleDims {
    /// belief + state, the size of `[h, s]`.
    pub features: i64,
    /// A, the action's size.
    pub actions: i64,
    /// S, the stochastic state's size (the prediction target).
    pub state: i64,
}

impl EnsembleDims {
    /// The sizes of `model`'s transitions.
    pub fn of(model: &WorldModel) -> EnsembleDims {
        let m = &model.cfg;
        EnsembleDims {
            features: m.belief_size + m.state_size,
            actions: model.action_dim,
            state: m.state_size,
        }
    }
}

impl Ensemble {
    /// A freshly initialised ensemble (each member like `torch.nn.Linear`: U(±1/√in)),
    /// its threshold 1 until [`Ensemble::calibrate`] sets it.
    pub fn new(
        shape: EnsembleShape,
        dims: EnsembleDims,
        act: Activation,
        device: Device,
    ) -> Result<Ensemble> {
        if shape.members < 2 || shape.hidden < 1 || shape.layers < 1 {
            return Err(Error::Unsupported(format!(
                "an ensemble needs at least 2 members, 1 hidden layer and 1 unit; got {} members, {} layers \
                 of {} units",
                shape.members, shape.layers, shape.hidden
            )));
        }
        let sizes = mlp_sizes(dims.features + dims.actions, shape.hidden, shape.layers, dims.state);
        Ok(Ensemble { members: Members::new(shape.members, &sizes, act, device), shape })
    }

    pub fn shape(&self) -> EnsembleShape {
        self.shape
    }

    pub fn var_store(&self) -> &nn::VarStore {
        self.members.var_store()
    }

    /// Every member's prediction of the next stochastic state's posterior mean.
    ///
    /// # Shapes
    /// `features: [n, belief + state]`, `action: [n, A]` → `[K, n, S]`.
    pub fn predict(&self, features: &Tensor, action: &Tensor) -> Tensor {
        self.members.forward(Tensor::cat(&[features, action], -1).unsqueeze(0)) // [1, n, in] → [K, n, S]
    }

    /// d(s_t, a_t): the members' variance, averaged over the S coordinates.
    ///
    /// # Shapes
    /// `features: [n, belief + state]`, `action: [n, A]` → `[n]`.
    pub fn disagreement(&self, features: &Tensor, action: &Tensor) -> Tensor {
        self.predict(features, action).var_dim(0, false, false).mean_dim(-1, false, None)
    }

    /// d_q, the disagreement the fit calibrated (1 before [`Ensemble::calibrate`]).
    pub fn threshold(&self) -> f64 {
        self.members.threshold()
    }

    /// Sets d_q.
    pub fn calibrate(&mut self, threshold: f64) -> Result<()> {
        self.members.calibrate(threshold, "the ensemble's disagreement")
    }

    /// The mean squared error of every member on the same transitions, summed over members
    /// and averaged over the coordinates of the unmasked ones.
    ///
    /// # Shapes
    /// `features: [N, belief + state]`, `actions: [N, A]`, `targets: [N, S]`, `mask: [N]`
    /// (1 for a transition to learn, 0 for one that crosses an episode start) → `[]`.
    pub fn loss(&self, features: &Tensor, actions: &Tensor, targets: &Tensor, mask: &Tensor) -> Tensor {
        let err = (self.predict(features, actions) - targets.unsqueeze(0)).square().mean_dim(-1, false, None); // [K, N]
        let weighted = (err * mask.unsqueeze(0)).sum(Kind::Float);
        weighted / (mask.sum(Kind::Float).clamp_min(1.0))
    }

    /// Writes the weights and threshold (atomically, safetensors).
    pub fn save(&self, path: &Path) -> Result<()> {
        self.members.save(path)
    }

    /// Reads an ensemble written by [`Ensemble::save`] for a model of these dimensions; its
    /// shape comes from the file, and a file for another model is refused.
    pub fn load(path: &Path, dims: EnsembleDims, act: Activation, device: Device) -> Result<Ensemble> {
        let mismatch = |detail: String| {
            Error::Unsupported(format!(
                "{} is not an ensemble of this run's model ({detail}); fit one with `gradplan ensemble --run-dir <run>`",
                path.display()
            ))
        };
        let build = |shape| Ensemble::new(shape, dims, act, device);
        Members::load(path, device, build, |e: &Ensemble| &e.members, mismatch)
    }
}

/// u = d / d_q.
impl DataSupport for Ensemble {
    fn relative(&self, features: &Tensor, action: &Tensor) -> Tensor {
        self.members.relative(self.disagreement(features, action))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::OptimizerConfig;

    fn dims() -> EnsembleDims {
        EnsembleDims { features: 6, actions: 2, state: 3 }
    }

    #[test]
    fn members_disagree_as_their_variance() {
        let _g = crate::seeded(3);
        let e = Ensemble::new(
            EnsembleShape { members: 4, hidden: 8, layers: 2 },
            dims(),
            Activation::Elu,
            Device::Cpu,
        )
        .unwrap();
        let (f, a) = (
            Tensor::randn([5, 6], (Kind::Float, Device::Cpu)),
            Tensor::randn([5, 2], (Kind::Float, Device::Cpu)),
        );
        let p = e.predict(&f, &a);
        assert_eq!(p.size(), [4, 5, 3]);
        // Member k alone is the k-th slice: the batched layers are K independent networks.
        for k in 0..4 {
            let mut x = Tensor::cat(&[&f, &a], -1);
            for (i, layer) in e.members.layers.iter().enumerate() {
                x = x.matmul(&layer.weight.get(k)) + layer.bias.get(k);
                if i + 1 < e.members.layers.len() {
                    x = x.elu();
                }
            }
            assert!(x.allclose(&p.get(k), 1e-6, 1e-6, false), "member {k}");
        }
        // d is the population variance over members, averaged over the S coordinates.
        let d = Vec::<f64>::try_from(e.disagreement(&f, &a).to_kind(Kind::Double)).unwrap();
        assert_eq!(d.len(), 5);
        let p: Vec<Vec<Vec<f32>>> = (0..4).map(|k| Vec::<Vec<f32>>::try_from(p.get(k)).unwrap()).collect();
        for (n, got) in d.iter().enumerate() {
            let by_hand = (0..3)
                .map(|s| {
                    let xs: Vec<f64> = p.iter().map(|member| member[n][s] as f64).collect();
                    let m = xs.iter().sum::<f64>() / 4.0;
                    xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / 4.0
                })
                .sum::<f64>()
                / 3.0;
            assert!((got - by_hand).abs() < 1e-6, "{n}: {got} vs {by_hand}");
        }
    }

    #[test]
    fn the_disagreement_gradient_matches_central_differences() {
        // The planners ascend through d(s, a) in the action (a polynomial of smooth members).
        let _g = crate::seeded(4);
        let e = Ensemble::new(
            EnsembleShape { members: 3, hidden: 8, layers: 2 },
            dims(),
            Activation::Elu,
            Device::Cpu,
        )
        .unwrap();
        let f = Tensor::randn([3, 6], (Kind::Float, Device::Cpu));
        let a = Tensor::randn([3, 2], (Kind::Float, Device::Cpu));
        crate::assert_gradient(&|a| e.disagreement(&f, a).sum(Kind::Double), &a);
    }

    #[test]
    fn fitting_pulls_the_members_together_on_the_data_only() {
        // Targets are a fixed function of the inputs on a small region; after fitting, the
        // members agree there and still disagree far from it.
        let _g = crate::seeded(11);
        let opts = (Kind::Float, Device::Cpu);
        let mut e = Ensemble::new(
            EnsembleShape { members: 5, hidden: 32, layers: 2 },
            dims(),
            Activation::Elu,
            Device::Cpu,
        )
        .unwrap();
        let f = Tensor::rand([256, 6], opts) * 0.5;
        let a = Tensor::rand([256, 2], opts) * 0.5;
        let targets = Tensor::cat(&[f.narrow(1, 0, 2).sum_dim_intlist(1, true, None), a.narrow(1, 0, 2)], 1);
        let mask = Tensor::ones([256], opts);
        let mut adam = tch::nn::Adam::default().build(e.var_store(), 3e-3).unwrap();
        let before = e.loss(&f, &a, &targets, &mask).double_value(&[]);
        for _ in 0..400 {
            let loss = e.loss(&f, &a, &targets, &mask);
            adam.backward_step(&loss);
        }
        let after = e.loss(&f, &a, &targets, &mask).double_value(&[]);
        assert!(after < before / 20.0, "{before} -> {after}");
        let near = e.disagreement(&f, &a).mean(Kind::Float).double_value(&[]);
        let far = e
            .disagreement(&(f.ones_like() * 6.0), &(a.ones_like() * 6.0))
            .mean(Kind::Float)
            .double_value(&[]);
        assert!(far > 20.0 * near, "near {near}, far {far}");
        // A masked transition teaches nothing.
        let zero = Tensor::zeros([256], opts);
        assert_eq!(e.loss(&f, &a, &(targets * 100.0), &zero).double_value(&[]), 0.0);
        e.calibrate(near).unwrap();
        let rel = e.relative(&f, &a).mean(Kind::Float).double_value(&[]);
        assert!((rel - 1.0).abs() < 1e-4, "{rel}");
        assert!(e.calibrate(0.0).is_err());
    }

    #[test]
    fn a_saved_ensemble_loads_with_its_shape_and_refuses_another_model() {
        let _g = crate::seeded(5);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ensemble.safetensors");
        let shape = EnsembleShape { members: 3, hidden: 7, layers: 1 };
        let mut e = Ensemble::new(shape, dims(), Activation::Relu, Device::Cpu).unwrap();
        e.calibrate(0.25).unwrap();
        e.save(&path).unwrap();
        let back = Ensemble::load(&path, dims(), Activation::Relu, Device::Cpu).unwrap();
        assert_eq!(back.shape(), shape);
        assert_eq!(back.threshold(), 0.25);
        let (f, a) = (
            Tensor::randn([4, 6], (Kind::Float, Device::Cpu)),
            Tensor::randn([4, 2], (Kind::Float, Device::Cpu)),
        );
        assert!(e.predict(&f, &a).equal(&back.predict(&f, &a)));
        let other = EnsembleDims { features: 7, ..dims() };
        let err = Ensemble::load(&path, other, Activation::Relu, Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("not an ensemble of this run's model"), "{err}");
        std::fs::write(&path, b"not safetensors").unwrap();
        assert!(Ensemble::load(&path, dims(), Activation::Relu, Device::Cpu).is_err());
        assert!(Ensemble::new(EnsembleShape { members: 1, ..shape }, dims(), Activation::Relu, Device::Cpu)
            .is_err());
    }
}
