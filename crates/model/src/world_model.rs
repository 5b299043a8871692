//! The PlaNet world model: encoder, RSSM, observation decoder, reward model, and the ELBO.
//!
//! Loss (the seed's eq. 2, PlaNet's implementation), averaged over time and batch:
//! `‖ô_t − o_t‖²` summed over pixels (a unit-variance Gaussian log-likelihood up to a
//! constant), `(r̂_t − r_t)²`, and `max(KL[q(s_t | h_t, e_t) ‖ p(s_t | h_t)], free_nats)`.

use crate::nn::{activate, linear, Mlp};
use crate::rssm::{Observed, Rssm, RssmState};
use crate::{Error, Result};
use gradplan_config::ModelConfig;
use std::path::Path;
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

/// What the model observes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObsShape {
    /// `[3, size, size]` images; the conv stack needs `size == 64`.
    Pixels { size: i64 },
    /// `[dim]` vectors.
    State { dim: i64 },
}

#[derive(Debug)]
enum Encoder {
    /// Four k4 s2 convolutions 3→32→64→128→256 (64×64 → 2×2×256 = 1024), then a linear
    /// layer to the embedding size unless it is 1024.
    Pixels {
        convs: Vec<nn::Conv2D>,
        fc: Option<nn::Linear>,
    },
    State(Mlp),
}

#[derive(Debug)]
enum Decoder {
    /// Linear to the embedding size as a 1×1 map, then conv-transposes k5, k5, k6, k6 s2 to
    /// 3×64×64.
    Pixels {
        fc1: nn::Linear,
        deconvs: Vec<nn::ConvTranspose2D>,
    },
    State(Mlp),
}

/// One training batch as tensors, time-major.
#[derive(Debug)]
pub struct SequenceBatch {
    /// Preprocessed observations, `[T, B, 3, 64, 64]` or `[T, B, D]`.
    pub obs: Tensor,
    /// `a_t`, the action that led to `o_t`, `[T, B, A]`.
    pub actions: Tensor,
    /// `r_t`, received on arriving at `o_t`, `[T, B]`.
    pub rewards: Tensor,
    /// 1.0 where an episode starts, `[T, B]`.
    pub is_first: Tensor,
}

/// The loss terms of one batch (scalars); `total` carries the graph.
#[derive(Debug)]
pub struct Losses {
    pub total: Tensor,
    pub observation: Tensor,
    pub reward: Tensor,
    pub kl: Tensor,
}

/// The world model and its parameters.
pub struct WorldModel {
    pub cfg: ModelConfig,
    pub obs: ObsShape,
    pub action_dim: i64,
    vs: nn::VarStore,
    encoder: Encoder,
    decoder: Decoder,
    pub rssm: Rssm,
    reward_model: Mlp,
}

impl std::fmt::Debug for WorldModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorldModel").field("obs", &self.obs).field("action_dim", &self.action_dim).finish()
    }
}

impl WorldModel {
    /// Builds a freshly initialised model on `device`.
    pub fn new(cfg: &ModelConfig, obs: ObsShape, action_dim: i64, device: Device) -> Result<Self> {
        cfg.validate()?;
        if let ObsShape::Pixels { size } = obs {
            if size != 64 {
                return Err(Error::Unsupported(format!(
                    "the conv encoder/decoder is built for 64×64 frames, got {size}×{size}; use image_size = 64"
                )));
            }
        }
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let (b, s, hid, e) = (cfg.belief_size, cfg.state_size, cfg.hidden_size, cfg.embedding_size);
        let conv =
            |p: nn::Path, i, o, k| nn::conv2d(p, i, o, k, nn::ConvConfig { stride: 2, ..Default::default() });
        let deconv = |p: nn::Path, i, o, k| {
            nn::conv_transpose2d(p, i, o, k, nn::ConvTransposeConfig { stride: 2, ..Default::default() })
        };
        let encoder = match obs {
            ObsShape::Pixels { .. } => {
                let p = &root / "encoder";
                Encoder::Pixels {
                    convs: vec![
                        conv(&p / "conv1", 3, 32, 4),
                        conv(&p / "conv2", 32, 64, 4),
                        conv(&p / "conv3", 64, 128, 4),
                        conv(&p / "conv4", 128, 256, 4),
                    ],
                    fc: (e != 1024).then(|| linear(&p / "fc", 1024, e)),
                }
            }
            ObsShape::State { dim } => {
                Encoder::State(Mlp::new(&root / "encoder", &[dim, e, e, e], cfg.activation))
            }
        };
        let decoder = match obs {
            ObsShape::Pixels { .. } => {
                let p = &root / "decoder";
                Decoder::Pixels {
                    fc1: linear(&p / "fc1", b + s, e),
                    deconvs: vec![
                        deconv(&p / "conv1", e, 128, 5),
                        deconv(&p / "conv2", 128, 64, 5),
                        deconv(&p / "conv3", 64, 32, 6),
                        deconv(&p / "conv4", 32, 3, 6),
                    ],
                }
            }
            ObsShape::State { dim } => {
                Decoder::State(Mlp::new(&root / "decoder", &[b + s, e, e, dim], cfg.activation))
            }
        };
        let rssm = Rssm::new(&root / "transition", cfg, action_dim);
        let reward_model = Mlp::new(&root / "reward", &[b + s, hid, hid, 1], cfg.activation);
        Ok(WorldModel { cfg: cfg.clone(), obs, action_dim, vs, encoder, decoder, rssm, reward_model })
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// The parameters, for the optimiser.
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// Embeds observations: `[N, 3, 64, 64]` or `[N, D]` → `[N, E]`.
    pub fn encode(&self, obs: &Tensor) -> Tensor {
        match &self.encoder {
            Encoder::Pixels { convs, fc } => {
                let mut x = obs.shallow_clone();
                for c in convs {
                    x = activate(self.cfg.activation, &c.forward(&x));
                }
                let x = x.flatten(1, -1);
                match fc {
                    Some(fc) => fc.forward(&x),
                    None => x,
                }
            }
            Encoder::State(mlp) => mlp.forward(obs),
        }
    }

    /// Decodes `[h, s]` features `[N, belief + state]` into observation means.
    pub fn decode(&self, features: &Tensor) -> Tensor {
        match &self.decoder {
            Decoder::Pixels { fc1, deconvs } => {
                let mut x = fc1.forward(features).view([-1, self.cfg.embedding_size, 1, 1]);
                for (i, d) in deconvs.iter().enumerate() {
                    x = d.forward(&x);
                    if i + 1 < deconvs.len() {
                        x = activate(self.cfg.activation, &x);
                    }
                }
                x
            }
            Decoder::State(mlp) => mlp.forward(features),
        }
    }

    /// Predicted reward `r̂(h, s)`: `[…, belief + state]` → `[…]`.
    pub fn reward(&self, features: &Tensor) -> Tensor {
        self.reward_model.forward(features).squeeze_dim(-1)
    }

    /// Applies a function over the flattened `[T·B, …]` view of a `[T, B, …]` tensor.
    fn over_time(x: &Tensor, f: impl Fn(&Tensor) -> Tensor) -> Tensor {
        let size = x.size();
        let out = f(&x.flatten(0, 1));
        let mut shape = vec![size[0], size[1]];
        shape.extend_from_slice(&out.size()[1..]);
        out.view(shape.as_slice())
    }

    /// Filters a batch of sequences from the zero state.
    pub fn observe(&self, batch: &SequenceBatch) -> Observed {
        let embeds = Self::over_time(&batch.obs, |x| self.encode(x));
        let init = self.rssm.initial(batch.obs.size()[1], self.device());
        self.rssm.observe(&embeds, &batch.actions, &batch.is_first, &init)
    }

    /// The ELBO terms of a batch.
    pub fn loss(&self, batch: &SequenceBatch) -> Result<Losses> {
        if self.cfg.overshooting_kl_beta != 0.0 || self.cfg.overshooting_reward_scale != 0.0 {
            return Err(Error::Unsupported(
                "latent overshooting is not implemented yet; set its betas to 0".into(),
            ));
        }
        let observed = self.observe(batch);
        let features = observed.features(); // [T, B, belief + state]
        let recon = Self::over_time(&features, |x| self.decode(x));
        let obs_dims: Vec<i64> = (2..recon.dim() as i64).collect();
        let observation = (&recon - &batch.obs)
            .square()
            .sum_dim_intlist(obs_dims.as_slice(), false, Kind::Float)
            .mean(Kind::Float);
        // r_t at an episode start is a placeholder (nothing was received), so it is masked.
        let valid = batch.is_first.ones_like() - &batch.is_first;
        let reward_err = (self.reward(&features) - &batch.rewards).square() * &valid;
        let reward = reward_err.sum(Kind::Float) / valid.sum(Kind::Float).clamp_min(1.0);
        let kl_t = observed.posterior.kl(&observed.prior); // [T, B]
        let kl = kl_t.clamp_min(self.cfg.free_nats).mean(Kind::Float);
        let mut total = &observation + &reward + &kl;
        if self.cfg.global_kl_beta != 0.0 {
            let standard = crate::rssm::Gaussian {
                mean: observed.posterior.mean.zeros_like(),
                std: observed.posterior.std.ones_like(),
            };
            total += observed.posterior.kl(&standard).mean(Kind::Float) * self.cfg.global_kl_beta;
        }
        Ok(Losses { total, observation, reward, kl })
    }

    /// Posterior reconstructions of a batch, `[T, B, …]` like `batch.obs`.
    pub fn reconstruct(&self, batch: &SequenceBatch) -> Tensor {
        tch::no_grad(|| {
            let observed = self.observe(batch);
            Self::over_time(&observed.features(), |x| self.decode(x))
        })
    }

    /// One step of online filtering while acting: `prev` state, the action just taken and
    /// the observation it produced (`[1, …]`), to the new belief.
    pub fn filter(&self, prev: &RssmState, action: &Tensor, obs: &Tensor, is_first: bool) -> RssmState {
        tch::no_grad(|| {
            let embed = self.encode(obs);
            let first =
                Tensor::full([obs.size()[0]], if is_first { 1.0 } else { 0.0 }, (Kind::Float, self.device()));
            self.rssm.observe_step(prev, action, &embed, &first).state
        })
    }

    /// All parameters with their PyTorch-style names (`transition.rnn.weight_ih`, …).
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut vars: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        vars
    }

    /// Saves the weights as safetensors (atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        Ok(gradplan_backend::save_safetensors(path, &self.named_parameters())?)
    }

    /// Loads weights saved by [`WorldModel::save`] into this (identically configured) model.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let loaded = gradplan_backend::load_safetensors(path, self.device())?;
        let mut vars = self.vs.variables();
        if loaded.len() != vars.len() {
            return Err(Error::Checkpoint(format!(
                "{} holds {} tensors but this model has {}; was it saved with another configuration?",
                path.display(),
                loaded.len(),
                vars.len()
            )));
        }
        tch::no_grad(|| {
            for (name, value) in loaded {
                let var = vars.get_mut(&name).ok_or_else(|| {
                    Error::Checkpoint(format!("{} has an unexpected tensor `{name}`", path.display()))
                })?;
                if var.size() != value.size() {
                    return Err(Error::Checkpoint(format!(
                        "`{name}` in {} has shape {:?}, the model expects {:?}",
                        path.display(),
                        value.size(),
                        var.size()
                    )));
                }
                var.copy_(&value);
            }
            Ok(())
        })
    }
}

/// PlaNet's preprocessing on the device: u8 frames `[…, H, W, 3]` to f32 `[…, 3, H, W]`
/// quantised to `bit_depth` bits and centred, `floor(u / 2^(8-b)) / 2^b − 0.5`, plus
/// `U[0, 1) / 2^b` dequantisation noise when `noise` is set (training).
pub fn preprocess_frames(frames: &Tensor, bit_depth: u32, noise: bool) -> Tensor {
    let n = frames.dim() as i64;
    let mut order: Vec<i64> = (0..n - 3).collect();
    order.extend([n - 1, n - 3, n - 2]);
    let bins = f64::from(1u32 << bit_depth);
    let x = frames.permute(order.as_slice()).to_kind(Kind::Float);
    let x = (x / f64::from(1u32 << (8 - bit_depth))).floor() / bins - 0.5;
    if noise {
        &x + x.rand_like() / bins
    } else {
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::OptimizerConfig;

    fn tiny() -> ModelConfig {
        ModelConfig {
            belief_size: 16,
            state_size: 4,
            hidden_size: 16,
            embedding_size: 32,
            ..Default::default()
        }
    }

    #[test]
    fn preprocessing_matches_the_env_crate() {
        let frame: Vec<u8> = (0..64 * 64 * 3).map(|i| (i * 7 % 256) as u8).collect();
        let mut expected = vec![0f32; frame.len()];
        gradplan_env::preprocess::frame_to_chw(&frame, 64, 64, 5, None, &mut expected);
        let t = Tensor::from_slice(&frame).view([1, 64, 64, 3]);
        let ours = preprocess_frames(&t, 5, false);
        assert_eq!(ours.size(), vec![1, 3, 64, 64]);
        let ours: Vec<f32> = ours.flatten(0, -1).try_into().unwrap();
        assert_eq!(ours, expected);
        let noisy = preprocess_frames(&t, 5, true);
        let d = &noisy - preprocess_frames(&t, 5, false);
        assert!(d.min().double_value(&[]) >= 0.0 && d.max().double_value(&[]) < 1.0 / 32.0);
    }

    #[test]
    fn pixel_shapes_and_pytorch_names() {
        let m =
            WorldModel::new(&ModelConfig::default(), ObsShape::Pixels { size: 64 }, 6, Device::Cpu).unwrap();
        let x = Tensor::zeros([2, 3, 64, 64], (Kind::Float, Device::Cpu));
        assert_eq!(m.encode(&x).size(), vec![2, 1024]);
        let f = Tensor::zeros([2, 230], (Kind::Float, Device::Cpu));
        assert_eq!(m.decode(&f).size(), vec![2, 3, 64, 64]);
        let names: Vec<String> = m.named_parameters().into_iter().map(|(n, _)| n).collect();
        for n in [
            "encoder.conv1.weight",
            "decoder.fc1.weight",
            "decoder.conv4.bias",
            "transition.rnn.weight_ih",
            "transition.fc_state_posterior.weight",
            "reward.fc3.bias",
        ] {
            assert!(names.iter().any(|x| x == n), "missing {n} in {names:?}");
        }
        let p = m.named_parameters();
        let get = |n: &str| p.iter().find(|(k, _)| k == n).unwrap().1.size();
        assert_eq!(get("transition.rnn.weight_ih"), vec![600, 200]);
        assert_eq!(get("transition.fc_embed_state_action.weight"), vec![200, 36]);
        assert_eq!(get("decoder.conv1.weight"), vec![1024, 128, 5, 5]); // ConvTranspose: [in, out, k, k]
    }

    fn random_batch(t: i64, b: i64, dim: i64, a: i64) -> SequenceBatch {
        let opts = (Kind::Float, Device::Cpu);
        let is_first = Tensor::zeros([t, b], opts);
        let _ = is_first.get(0).fill_(1.0);
        SequenceBatch {
            obs: Tensor::randn([t, b, dim], opts),
            actions: Tensor::rand([t, b, a], opts) * 2.0 - 1.0,
            rewards: Tensor::rand([t, b], opts),
            is_first,
        }
    }

    #[test]
    fn free_nats_clamp_the_kl_term() {
        tch::manual_seed(0);
        let cfg = ModelConfig { free_nats: 1e6, ..tiny() };
        let m = WorldModel::new(&cfg, ObsShape::State { dim: 5 }, 2, Device::Cpu).unwrap();
        let losses = m.loss(&random_batch(6, 3, 5, 2)).unwrap();
        assert_eq!(losses.kl.double_value(&[]), 1e6);
        let m0 = WorldModel::new(
            &ModelConfig { free_nats: 0.0, ..tiny() },
            ObsShape::State { dim: 5 },
            2,
            Device::Cpu,
        )
        .unwrap();
        let kl = m0.loss(&random_batch(6, 3, 5, 2)).unwrap().kl.double_value(&[]);
        assert!(kl > 0.0 && kl < 1e3);
    }

    #[test]
    fn overfitting_one_batch_lowers_every_term() {
        tch::manual_seed(1);
        let m = WorldModel::new(
            &ModelConfig { free_nats: 0.0, ..tiny() },
            ObsShape::State { dim: 5 },
            2,
            Device::Cpu,
        )
        .unwrap();
        let batch = random_batch(8, 4, 5, 2);
        let mut opt = nn::Adam::default().build(m.var_store(), 3e-3).unwrap();
        let first = m.loss(&batch).unwrap();
        let (obs0, rew0) = (first.observation.double_value(&[]), first.reward.double_value(&[]));
        for _ in 0..300 {
            let l = m.loss(&batch).unwrap();
            opt.backward_step_clip_norm(&l.total, 1000.0);
        }
        let last = m.loss(&batch).unwrap();
        assert!(last.observation.double_value(&[]) < 0.5 * obs0, "reconstruction did not improve");
        assert!(last.reward.double_value(&[]) < 0.5 * rew0, "reward fit did not improve");
    }

    #[test]
    fn checkpoint_round_trip_gives_identical_predictions() {
        tch::manual_seed(2);
        let dir = std::env::temp_dir().join(format!("gradplan-model-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("model.safetensors");
        let a = WorldModel::new(&tiny(), ObsShape::State { dim: 5 }, 2, Device::Cpu).unwrap();
        a.save(&path).unwrap();
        let mut b = WorldModel::new(&tiny(), ObsShape::State { dim: 5 }, 2, Device::Cpu).unwrap();
        b.load(&path).unwrap();
        let f = Tensor::randn([3, 20], (Kind::Float, Device::Cpu));
        assert!(a.decode(&f).equal(&b.decode(&f)));
        assert!(a.reward(&f).equal(&b.reward(&f)));
        let mut wrong = WorldModel::new(&tiny(), ObsShape::State { dim: 7 }, 2, Device::Cpu).unwrap();
        let err = wrong.load(&path).unwrap_err().to_string();
        assert!(err.contains("shape"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
