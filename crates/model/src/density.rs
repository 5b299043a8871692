//! A Gaussian density over the model states the replay's observations filter to, whose
//! Mahalanobis distance marks imagined states the data never reached (the state-space
//! counterpart of the [`crate::BehaviorPrior`], used as a planning penalty).
//!
//! The frozen world model filters the replay's chunks; the features `z_t = [h_t, s_t]` of
//! every filtered step give a mean and a covariance, shrunk towards its average variance so
//! that directions the data barely moves along do not dominate:
//!
//! ```text
//! Σ_ε = (1 − ε) Σ + ε (tr Σ / F) I,    Σ_ε = L Lᵀ,    d(z) = (1/F) ‖L⁻¹ (z − μ)‖²
//! ```
//!
//! d is 1 on average for features drawn from the fitted Gaussian and grows quadratically with
//! the distance from the data in units of its own spread. Unlike the ensemble and the prior
//! it reads the state alone: priced at every imagined step, its gradient reaches each action
//! through the states that action leads to, so an ascent is pulled back from plans whose
//! imagined future leaves the states the data visited.
//!
//! Measured (docs/results.md, "A state density"): on the CEM-trained cheetah model the
//! ascent exploits, the filtered states before each fall are as familiar by this distance
//! as upright running, although the raw observations of some falls are not. The filter maps
//! unusual observations to familiar states, so this measure does not mark the fall, and as
//! a penalty it did not prevent one. It is kept as the tool that shows it.
//!
//! The file holds `mean [F]`, `whiten [F, F]` (L⁻ᵀ, so `(z − μ) · whiten` is whitened) and
//! `threshold []`, the distance the fit calibrated.

use crate::ensemble::DataSupport;
use crate::{Error, Result};
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// ε when the fit is not told otherwise.
pub const DEFAULT_SHRINKAGE: f64 = 0.1;

/// Running sums over feature vectors, in f64: what [`StateDensity::fit`] needs.
#[derive(Debug)]
pub struct Moments {
    count: f64,
    /// Σ z, `[F]`
    sum: Tensor,
    /// Σ z zᵀ, `[F, F]`
    outer: Tensor,
}

impl Moments {
    pub fn new(features: i64, device: Device) -> Moments {
        let opts = (Kind::Double, device);
        Moments {
            count: 0.0,
            sum: Tensor::zeros([features], opts),
            outer: Tensor::zeros([features, features], opts),
        }
    }

    /// Adds every row of `features` `[N, F]`.
    pub fn add(&mut self, features: &Tensor) {
        tch::no_grad(|| {
            let z = features.to_kind(Kind::Double);
            self.count += z.size()[0] as f64;
            self.sum += z.sum_dim_intlist(0, false, None);
            self.outer += z.transpose(0, 1).matmul(&z);
        });
    }
}

/// N(μ, Σ_ε) over the model's features and the distance it calibrates.
pub struct StateDensity {
    /// μ, `[F]`
    mean: Tensor,
    /// L⁻ᵀ, `[F, F]`
    whiten: Tensor,
    threshold: Tensor,
}

impl std::fmt::Debug for StateDensity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateDensity").field("features", &self.features()).finish()
    }
}

impl StateDensity {
    /// The Gaussian of `moments`, its covariance shrunk by ε ∈ [0, 1), and its threshold 1
    /// until [`StateDensity::calibrate`] sets it.
    pub fn fit(moments: &Moments, shrinkage: f64) -> Result<StateDensity> {
        if !(0.0..1.0).contains(&shrinkage) {
            return Err(Error::Unsupported(format!("the shrinkage ε must be in [0, 1), got {shrinkage}")));
        }
        let f = moments.sum.size()[0];
        if moments.count < 2.0 {
            return Err(Error::Unsupported(format!(
                "a state density needs at least 2 feature vectors, got {}",
                moments.count
            )));
        }
        let (mean, whiten) = tch::no_grad(|| {
            let n = moments.count;
            let mean = &moments.sum / n;
            let outer = mean.unsqueeze(1).matmul(&mean.unsqueeze(0));
            // The unbiased covariance, then symmetrised against rounding.
            let cov = (&moments.outer - outer * n) / (n - 1.0);
            let cov = (&cov + cov.transpose(0, 1)) * 0.5;
            let average = cov.trace().double_value(&[]) / f as f64;
            if !(average.is_finite() && average > 0.0) {
                return Err(Error::Unsupported(format!(
                    "the features' average variance is {average}: the data does not vary"
                )));
            }
            let eye = Tensor::eye(f, (Kind::Double, cov.device()));
            let shrunk = cov * (1.0 - shrinkage) + eye.shallow_clone() * (shrinkage * average);
            let (chol, info) = shrunk.linalg_cholesky_ex(false, false);
            if info.int64_value(&[]) != 0 {
                return Err(Error::Unsupported(
                    "the features' covariance is singular; fit with a larger shrinkage (--shrinkage)".into(),
                ));
            }
            let inverse = chol.linalg_solve_triangular(&eye, false, true, false); // L⁻¹
            Ok((mean.to_kind(Kind::Float), inverse.transpose(0, 1).contiguous().to_kind(Kind::Float)))
        })?;
        let threshold = Tensor::ones([], (Kind::Float, mean.device()));
        Ok(StateDensity { mean, whiten, threshold })
    }

    /// F, the size of the features it measures.
    pub fn features(&self) -> i64 {
        self.mean.size()[0]
    }

    /// d(z): the squared whitened distance from the mean, averaged over the F coordinates.
    ///
    /// # Shapes
    /// `features: [n, F]` → `[n]`.
    pub fn distance(&self, features: &Tensor) -> Tensor {
        (features - &self.mean).matmul(&self.whiten).square().mean_dim(-1, false, None)
    }

    /// d_q, the distance the fit calibrated (1 before [`StateDensity::calibrate`]).
    pub fn threshold(&self) -> f64 {
        self.threshold.double_value(&[])
    }

    /// Sets d_q (finite and > 0).
    pub fn calibrate(&mut self, threshold: f64) -> Result<()> {
        if !(threshold.is_finite() && threshold > 0.0) {
            return Err(Error::Unsupported(format!(
                "the state density's threshold must be finite and > 0, got {threshold}"
            )));
        }
        self.threshold = Tensor::from(threshold as f32).to_device(self.mean.device());
        Ok(())
    }

    /// Writes the mean, whitening and threshold (atomically, safetensors).
    pub fn save(&self, path: &Path) -> Result<()> {
        let tensors = [
            ("mean".to_owned(), self.mean.shallow_clone()),
            ("threshold".to_owned(), self.threshold.shallow_clone()),
            ("whiten".to_owned(), self.whiten.shallow_clone()),
        ];
        Ok(gradplan_backend::save_safetensors(path, &tensors)?)
    }

    /// Reads a density written by [`StateDensity::save`] for a model whose features are
    /// `features` long; a file for another model, or another measure's, is refused.
    pub fn load(path: &Path, features: i64, device: Device) -> Result<StateDensity> {
        let mismatch = |detail: String| {
            Error::Unsupported(format!(
                "{} is not a state density of this run's model ({detail}); fit one with `gradplan ensemble \
                 --run-dir <run> --measure density`",
                path.display()
            ))
        };
        let mut tensors = gradplan_backend::load_safetensors(path, device)?;
        let mut take = |name: &str| {
            let at = tensors.iter().position(|(n, _)| n == name);
            at.map(|i| tensors.swap_remove(i).1.to_kind(Kind::Float))
                .ok_or_else(|| mismatch(format!("it has no `{name}`")))
        };
        let (mean, whiten, threshold) = (take("mean")?, take("whiten")?, take("threshold")?);
        if mean.size() != [features] || whiten.size() != [features, features] || threshold.size() != [0i64; 0]
        {
            return Err(mismatch(format!(
                "mean {:?}, whiten {:?} and threshold {:?} where the model's features are {features} long",
                mean.size(),
                whiten.size(),
                threshold.size()
            )));
        }
        if let Some((extra, _)) = tensors.first() {
            return Err(mismatch(format!("it also holds `{extra}`")));
        }
        let mut density = StateDensity { mean, whiten, threshold: threshold.shallow_clone() };
        density.calibrate(threshold.double_value(&[])).map_err(|e| mismatch(e.to_string()))?;
        Ok(density)
    }
}

/// u = d(z_t) / d_q, differentiable in the features: the action of the transition is not
/// read (its consequence is the next state's u).
impl DataSupport for StateDensity {
    fn relative(&self, features: &Tensor, _action: &Tensor) -> Tensor {
        self.distance(features) / &self.threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments_of(z: &Tensor) -> Moments {
        let mut m = Moments::new(z.size()[1], Device::Cpu);
        // In two parts: the sums accumulate.
        let half = z.size()[0] / 2;
        m.add(&z.narrow(0, 0, half));
        m.add(&z.narrow(0, half, z.size()[0] - half));
        m
    }

    /// Correlated features: z = x A + b with x ~ N(0, I).
    fn correlated(n: i64) -> (Tensor, Tensor, Tensor) {
        let opts = (Kind::Double, Device::Cpu);
        let a = Tensor::from_slice(&[2.0, 0.0, 0.0, 0.5, 1.0, 0.0, -0.3, 0.2, 0.1])
            .view([3, 3])
            .to_kind(Kind::Double);
        let b = Tensor::from_slice(&[1.0, -2.0, 0.5]).to_kind(Kind::Double);
        let x = Tensor::randn([n, 3], opts);
        (x.matmul(&a) + &b, a, b)
    }

    #[test]
    fn the_distance_is_the_mahalanobis_square_by_hand() {
        let _g = crate::seeded(31);
        let (z, _, _) = correlated(500);
        let eps = 0.2;
        let d = StateDensity::fit(&moments_of(&z), eps).unwrap();
        assert_eq!(d.features(), 3);
        // By hand, in f64: the sample covariance, shrunk, inverted.
        let mean = z.mean_dim(0, false, None);
        let c = &z - &mean;
        let cov = c.transpose(0, 1).matmul(&c) / 499.0;
        let avg = cov.trace().double_value(&[]) / 3.0;
        let shrunk = &cov * (1.0 - eps) + Tensor::eye(3, (Kind::Double, Device::Cpu)) * (eps * avg);
        let inv = shrunk.inverse();
        let probe = Tensor::randn([6, 3], (Kind::Double, Device::Cpu)) * 3.0;
        let diff = &probe - &mean;
        let by_hand = (diff.matmul(&inv) * &diff).sum_dim_intlist(-1, false, None) / 3.0;
        let got = d.distance(&probe.to_kind(Kind::Float)).to_kind(Kind::Double);
        let err = (&got - &by_hand).abs().max().double_value(&[]);
        assert!(err < 1e-4 * by_hand.abs().max().double_value(&[]), "{got:?} vs {by_hand:?}");
        // At the mean it is 0.
        assert!(d.distance(&mean.to_kind(Kind::Float).unsqueeze(0)).double_value(&[0]).abs() < 1e-10);
    }

    #[test]
    fn the_data_itself_sits_at_one_on_average_and_a_far_state_far_beyond() {
        let _g = crate::seeded(32);
        let (z, a, b) = correlated(20_000);
        let d = StateDensity::fit(&moments_of(&z), 0.0).unwrap();
        let own = d.distance(&z.to_kind(Kind::Float)).mean(Kind::Float).double_value(&[]);
        assert!((own - 1.0).abs() < 0.02, "the data's own mean distance {own}");
        // Five standard deviations along the data's narrowest direction: far, though
        // the point is closer to the mean in plain distance than much of the data.
        let narrow = Tensor::from_slice(&[0.0, 0.0, 5.0]).to_kind(Kind::Double).view([1, 3]).matmul(&a) + &b;
        let far = d.distance(&narrow.to_kind(Kind::Float)).double_value(&[0]);
        assert!((far - 25.0 / 3.0).abs() < 0.5, "{far}");
        // Shrinkage trades that direction's weight for robustness: its variance (1% of the
        // average here) is pulled half-way to the average, and the same point is near.
        let shrunk = StateDensity::fit(&moments_of(&z), 0.5).unwrap();
        let less = shrunk.distance(&narrow.to_kind(Kind::Float)).double_value(&[0]);
        assert!(less < far / 5.0, "{less} vs {far}");
        // Bad settings are refused.
        assert!(StateDensity::fit(&moments_of(&z), 1.0).is_err());
        assert!(StateDensity::fit(&Moments::new(3, Device::Cpu), 0.1).is_err());
        let flat = Tensor::ones([10, 3], (Kind::Float, Device::Cpu));
        let err = StateDensity::fit(&moments_of(&flat), 0.1).unwrap_err().to_string();
        assert!(err.contains("does not vary"), "{err}");
    }

    #[test]
    fn the_gradient_in_the_features_matches_central_differences() {
        let _g = crate::seeded(33);
        let (z, _, _) = correlated(400);
        let mut d = StateDensity::fit(&moments_of(&z), 0.1).unwrap();
        d.calibrate(2.0).unwrap();
        let probe = Tensor::randn([4, 3], (Kind::Float, Device::Cpu)) * 2.0;
        let action = Tensor::zeros([4, 1], (Kind::Float, Device::Cpu));
        crate::assert_gradient(&|f| d.relative(f, &action).sum(Kind::Double), &probe);
        // The action is not read.
        let other = Tensor::ones([4, 1], (Kind::Float, Device::Cpu));
        assert!(d.relative(&probe, &action).equal(&d.relative(&probe, &other)));
        assert!(d.calibrate(0.0).is_err());
    }

    #[test]
    fn a_saved_density_loads_and_refuses_another_models_file() {
        let _g = crate::seeded(34);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state_density.safetensors");
        let (z, _, _) = correlated(300);
        let mut d = StateDensity::fit(&moments_of(&z), 0.1).unwrap();
        d.calibrate(1.5).unwrap();
        d.save(&path).unwrap();
        let back = StateDensity::load(&path, 3, Device::Cpu).unwrap();
        assert_eq!(back.threshold(), 1.5);
        let probe = Tensor::randn([5, 3], (Kind::Float, Device::Cpu));
        let a = Tensor::zeros([5, 2], (Kind::Float, Device::Cpu));
        assert!(back.relative(&probe, &a).equal(&d.relative(&probe, &a)));
        let err = StateDensity::load(&path, 4, Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("not a state density of this run's model"), "{err}");
        // An ensemble's (or a prior's) file is not a density.
        let e = crate::Ensemble::new(
            crate::EnsembleShape { members: 2, hidden: 4, layers: 1 },
            crate::EnsembleDims { features: 3, actions: 2, state: 2 },
            gradplan_config::Activation::Relu,
            Device::Cpu,
        )
        .unwrap();
        e.save(&path).unwrap();
        let err = StateDensity::load(&path, 3, Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("has no `mean`"), "{err}");
    }
}
