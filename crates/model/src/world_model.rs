//! The PlaNet world model: encoder, RSSM, observation decoder, reward model, and the ELBO.
//!
//! Loss (the seed's eq. 2, PlaNet's implementation), averaged over time and batch:
//! `‖ô_t − o_t‖²` summed over pixels (a unit-variance Gaussian log-likelihood up to a
//! constant), `(r̂_t − r_t)²`, and `max(KL[q(s_t | h_t, e_t) ‖ p(s_t | h_t)], free_nats)`.
//!
//! # Latent overshooting
//!
//! PlaNet §4, eq. 7 (Hafner et al. 2019); on when β_os (`overshooting_kl_beta`) or the
//! overshooting reward scale is non-zero, off by default (Table A.7). From every posterior
//! state `(h_t, s_t)` of the chunk the prior is rolled open loop with the actions
//! `a_{t+1..t+d}`, sampling `s` at every step as PlaNet does, for `d = 1..D`:
//!
//! ```text
//! overshooting_kl     = β_os/D · Σ_d mean_{t,b} m_{t,d} · max(KL[sg q(s_{t+d} | o_{≤t+d}) ‖ p(s_{t+d} | s_t, a_{t+1..t+d})], free_nats)
//! overshooting_reward = scale/D · Σ_d mean_{t,b} m_{t,d} · (r̂(h_{t+d}, s_{t+d}) − r_{t+d})²
//! ```
//!
//! `sg` stops the gradient (the posterior is the target; overshooting trains the prior).
//! `m_{t,d}` is 1 when `t + d` lies in the chunk and no episode starts in `(t, t + d]`, else 0,
//! so a rollout never crosses an episode start. The mean runs over all `T·B` start times, so
//! every target step gets eq. 7's `(1/D) Σ_d β_d` and the term sits on the per-step scale of
//! the KL above. D = 1 reproduces that KL's value at `t ≥ 1`.
//!
//! Where the PyTorch reference (Kaixhin/PlaNet `main.py`) differs: it starts the rollouts
//! from the *prior* sample at `t` rather than the posterior of eq. 7; it normalises by the
//! mean over its padded `[D, (L−2)·B]` window tensor times `L − 1` (L observations, T = L − 1
//! latent steps), which is ours times `T²/(D(T−1))`, 1.0004 at its `L = D = 50`; its
//! padded steps are raised to `free_nats` by the clamp (a constant, no gradient) where ours
//! add 0; it resets rather than masks at episode ends; and it only adds the reward term when
//! β_os ≠ 0.
//!
//! # Perturbed inputs (`model.perturbation`, #10)
//!
//! Off by default. With `noise`, every step's transition reads `s_{t-1} + δ^s_t` and
//! `a_t + δ^a_t`, δ ~ N(0, ε²) (ε_s, ε_a); with `adversarial`, δ = ε · sign(∇_δ ELBO) at
//! δ = 0, one signed-gradient step found by a first pass over the same batch. The filter's
//! own samples, the encoder and the targets are untouched: the model learns to predict the
//! data from moved inputs, which is what a gradient planner asks of it away from the data.

use crate::nn::{activate, linear, Mlp};
use crate::rssm::{Gaussian, InputOffsets, Observed, Rssm, RssmState};
use crate::{Error, Result};
use gradplan_config::{ConvPrecision, ModelConfig, Perturbation};
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
    /// Four k4 s2 convolutions 3→d→2d→4d→8d (64×64 → 2×2×8d; PlaNet's d = 32 gives 1024),
    /// then a linear layer to the embedding size unless it is 32d.
    Pixels {
        convs: Vec<nn::Conv2D>,
        fc: Option<nn::Linear>,
    },
    State(Mlp),
}

#[derive(Debug)]
enum Decoder {
    /// Linear to the embedding size as a 1×1 map, then conv-transposes k5, k5, k6, k6 s2
    /// through 4d, 2d, d channels to 3×64×64.
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

/// The loss terms of one batch (scalars); `total` carries the graph and is their sum (plus
/// β_global times the global KL when that is on).
#[derive(Debug)]
pub struct Losses {
    pub total: Tensor,
    pub observation: Tensor,
    pub reward: Tensor,
    pub kl: Tensor,
    /// The latent overshooting KL as added to `total` (weighted by β_os/D); 0 when off.
    pub overshooting_kl: Tensor,
    /// The overshooting reward loss as added to `total` (weighted by scale/D); 0 when off.
    pub overshooting_reward: Tensor,
    /// The posterior states `h_{1:T}`, `s_{1:T}` (`[T, B, …]`, still in the graph): where
    /// Dreamer's imagination starts.
    pub posterior: RssmState,
}

/// Latent overshooting terms summed over distances, per start time, unweighted.
#[derive(Debug)]
struct Overshooting {
    /// `Σ_d m_{t,d} max(KL_{t,d}, free_nats)`, `[T, B]` (zeros unless asked for).
    kl: Tensor,
    /// `Σ_d m_{t,d} (r̂_{t+d} − r_{t+d})²`, `[T, B]` (zeros unless asked for).
    reward: Tensor,
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
        check_overshooting(cfg)?;
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
        let d = cfg.cnn_depth;
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
                        conv(&p / "conv1", 3, d, 4),
                        conv(&p / "conv2", d, 2 * d, 4),
                        conv(&p / "conv3", 2 * d, 4 * d, 4),
                        conv(&p / "conv4", 4 * d, 8 * d, 4),
                    ],
                    fc: (e != 32 * d).then(|| linear(&p / "fc", 32 * d, e)),
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
                        deconv(&p / "conv1", e, 4 * d, 5),
                        deconv(&p / "conv2", 4 * d, 2 * d, 5),
                        deconv(&p / "conv3", 2 * d, d, 6),
                        deconv(&p / "conv4", d, 3, 6),
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

    /// The kind the conv stack computes in (`model.conv_precision`).
    fn conv_kind(&self) -> Kind {
        match self.cfg.conv_precision {
            ConvPrecision::F32 => Kind::Float,
            ConvPrecision::Bf16 => Kind::BFloat16,
        }
    }

    /// A conv input or weight `[N, C, H, W]` in the kind and memory order the conv stack
    /// computes in: the same logical tensor, differentiable, cast to [`Self::conv_kind`] and,
    /// with `model.conv_channels_last`, stored NHWC (strides that libtorch's convolutions
    /// read as the channels-last format; tch has no memory-format API).
    ///
    /// `to_kind` is the identity in f32; in bf16 it is differentiable, so the f32 master
    /// weights receive f32 gradients.
    fn conv_operand(&self, t: &Tensor) -> Tensor {
        let t = t.to_kind(self.conv_kind());
        if self.cfg.conv_channels_last {
            t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
        } else {
            t
        }
    }

    /// A conv bias `[C]` in the kind the conv stack computes in.
    fn conv_bias(&self, bias: &Option<Tensor>) -> Option<Tensor> {
        bias.as_ref().map(|b| b.to_kind(self.conv_kind()))
    }

    /// Embeds observations: `[N, 3, 64, 64]` or `[N, D]` → `[N, E]`.
    pub fn encode(&self, obs: &Tensor) -> Tensor {
        match &self.encoder {
            Encoder::Pixels { convs, fc } => {
                let mut x = self.conv_operand(obs);
                for c in convs {
                    let y = x.conv2d(&self.conv_operand(&c.ws), self.conv_bias(&c.bs), 2, 0, 1, 1);
                    x = activate(self.cfg.activation, &y);
                }
                let x = x.flatten(1, -1).to_kind(Kind::Float);
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
                // The first conv-transpose reads a 1×1 map, so each of its k×k outputs is a
                // linear function of the embedding: one matrix product computes it,
                // `y[n, c, i, j] = Σ_e x[n, e] W[e, c, i, j] + b[c]`. Exact, and libtorch's
                // CPU conv-transpose takes 7× longer on this shape, backward included
                // (docs/benchmarks.md, #11).
                let (first, rest) = deconvs.split_first().expect("four deconvs");
                let [e, c, k, _] = first.ws.size()[..] else { unreachable!("a 4-d conv weight") };
                let kind = self.conv_kind();
                let x =
                    fc1.forward(features).to_kind(kind).matmul(&first.ws.to_kind(kind).view([e, c * k * k]));
                let x = match self.conv_bias(&first.bs) {
                    Some(b) => x.view([-1, c, k, k]) + b.view([1, c, 1, 1]),
                    None => x.view([-1, c, k, k]),
                };
                let mut x = self.conv_operand(&activate(self.cfg.activation, &x));
                for (i, d) in rest.iter().enumerate() {
                    x = x.conv_transpose2d(&self.conv_operand(&d.ws), self.conv_bias(&d.bs), 2, 0, 0, 1, 1);
                    if i + 1 < rest.len() {
                        x = activate(self.cfg.activation, &x);
                    }
                }
                x.to_kind(Kind::Float)
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
        self.observe_embedded(&embeds, batch, None)
    }

    /// Filters a batch whose observations are already embedded (`embeds: [T, B, E]`), with
    /// the transition's inputs moved by `offsets` where given.
    fn observe_embedded(
        &self,
        embeds: &Tensor,
        batch: &SequenceBatch,
        offsets: Option<&InputOffsets>,
    ) -> Observed {
        let init = self.rssm.initial(batch.obs.size()[1], self.device());
        self.rssm.observe_perturbed(embeds, &batch.actions, &batch.is_first, &init, offsets)
    }

    /// The offsets `model.perturbation` asks for on this batch (module docs), `None` when it
    /// is off. `embeds` are the batch's embeddings; the adversarial pass reads them detached,
    /// so the encoder's graph is only walked once, by the update.
    fn perturbation(&self, embeds: &Tensor, batch: &SequenceBatch) -> Result<Option<InputOffsets>> {
        let (eps_s, eps_a) = (self.cfg.perturbation_state, self.cfg.perturbation_action);
        let (steps, b) = (batch.is_first.size()[0], batch.is_first.size()[1]);
        let opts = (Kind::Float, self.device());
        let state_shape = [steps, b, self.cfg.state_size];
        let action_shape = [steps, b, self.action_dim];
        match self.cfg.perturbation {
            Perturbation::None => Ok(None),
            Perturbation::Noise => Ok(Some(InputOffsets {
                state: Tensor::randn(state_shape, opts) * eps_s,
                action: Tensor::randn(action_shape, opts) * eps_a,
            })),
            // With gradients on even inside `no_grad` (a loss checked, not trained): the loss
            // is one function of the weights and the batch whoever asks for it.
            Perturbation::Adversarial => tch::with_grad(|| {
                let zero = InputOffsets {
                    state: Tensor::zeros(state_shape, opts).set_requires_grad(true),
                    action: Tensor::zeros(action_shape, opts).set_requires_grad(true),
                };
                let clean = self.elbo(&embeds.detach(), batch, Some(&zero))?;
                let grads = Tensor::run_backward(&[&clean.total], &[&zero.state, &zero.action], false, false);
                Ok(Some(InputOffsets { state: grads[0].sign() * eps_s, action: grads[1].sign() * eps_a }))
            }),
        }
    }

    /// The ELBO terms of a batch, with latent overshooting when it is on (module docs).
    ///
    /// # Shapes
    /// `batch`: `[T, B, …]` throughout.
    pub fn loss(&self, batch: &SequenceBatch) -> Result<Losses> {
        debug_assert_eq!(batch.is_first.size()[..], batch.obs.size()[..2]);
        debug_assert_eq!(batch.rewards.size(), batch.is_first.size());
        let embeds = Self::over_time(&batch.obs, |x| self.encode(x));
        let offsets = self.perturbation(&embeds, batch)?;
        self.elbo(&embeds, batch, offsets.as_ref())
    }

    /// The ELBO terms (and overshooting) of a batch from its embeddings `[T, B, E]`, the
    /// transition's inputs moved by `offsets` where given.
    fn elbo(&self, embeds: &Tensor, batch: &SequenceBatch, offsets: Option<&InputOffsets>) -> Result<Losses> {
        let observed = self.observe_embedded(embeds, batch, offsets);
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
        let mut total = if self.cfg.obs_loss_scale == 1.0 {
            &observation + &reward + &kl
        } else {
            &observation * self.cfg.obs_loss_scale + &reward + &kl
        };
        if self.cfg.global_kl_beta != 0.0 {
            let standard = Gaussian {
                mean: observed.posterior.mean.zeros_like(),
                std: observed.posterior.std.ones_like(),
            };
            total += observed.posterior.kl(&standard).mean(Kind::Float) * self.cfg.global_kl_beta;
        }
        let (kl_beta, reward_scale) = (self.cfg.overshooting_kl_beta, self.cfg.overshooting_reward_scale);
        let zero = || Tensor::zeros([], (Kind::Float, self.device()));
        let (overshooting_kl, overshooting_reward) = if kl_beta != 0.0 || reward_scale != 0.0 {
            let terms = self.overshooting(&observed, batch, kl_beta != 0.0, reward_scale != 0.0);
            // D from the settings even where the chunk clips the windows: eq. 7's 1/D.
            let d = self.cfg.overshooting_distance as f64;
            let os_kl = terms.kl.mean(Kind::Float) * (kl_beta / d);
            let os_reward = terms.reward.mean(Kind::Float) * (reward_scale / d);
            total = total + &os_kl + &os_reward;
            (os_kl, os_reward)
        } else {
            // Nothing is added to `total`, so the loss stays bit-identical to the plain ELBO.
            (zero(), zero())
        };
        let posterior =
            RssmState { belief: observed.beliefs.shallow_clone(), stoch: observed.states.shallow_clone() };
        Ok(Losses { total, observation, reward, kl, overshooting_kl, overshooting_reward, posterior })
    }

    /// Rolls the prior open loop from every posterior state of `observed` for up to D steps
    /// and sums the masked overshooting terms over distances (module docs). All start times
    /// form one batch of `T·B` rows, so the loop runs over distances only; at distance `d`
    /// just the `(T − d)·B` rows whose target `t + d` is still inside the chunk are stepped.
    ///
    /// # Shapes
    /// `observed`: `[T, B, …]`, `batch`: `[T, B, …]` → `[T, B]` each.
    fn overshooting(
        &self,
        observed: &Observed,
        batch: &SequenceBatch,
        with_kl: bool,
        with_reward: bool,
    ) -> Overshooting {
        let (steps, b) = (batch.is_first.size()[0], batch.is_first.size()[1]);
        debug_assert_eq!(observed.beliefs.size()[..2], [steps, b]);
        debug_assert_eq!(batch.actions.size()[..2], [steps, b]);
        // Row t·B + j is start time t of sequence j, so a start time prefix is a row prefix.
        let flat = |x: &Tensor| x.flatten(0, 1);
        let mut state = RssmState { belief: flat(&observed.beliefs), stoch: flat(&observed.states) };
        let actions = flat(&batch.actions); // [T·B, A]
        let rewards = flat(&batch.rewards); // [T·B]

        // PlaNet detaches the target posterior: overshooting should improve the multi-step
        // prior, not pull the filter towards what the open-loop prior can predict.
        let target_mean = flat(&observed.posterior.mean).detach(); // [T·B, S]
        let target_std = flat(&observed.posterior.std).detach();
        let continues = flat(&(batch.is_first.ones_like() - &batch.is_first)); // [T·B]
        let mut alive = continues.ones_like(); // m_{t,d}: no episode start in (t, t + d]
        let mut kl = Tensor::zeros([steps * b], (Kind::Float, self.device()));
        let mut reward = kl.zeros_like();
        let distance = (self.cfg.overshooting_distance as i64).min(steps - 1);
        for d in 1..=distance {
            let rows = (steps - d) * b;
            let ahead = |x: &Tensor| x.narrow(0, d * b, rows); // the values at t + d
            let prev =
                RssmState { belief: state.belief.narrow(0, 0, rows), stoch: state.stoch.narrow(0, 0, rows) };
            alive = alive.narrow(0, 0, rows) * ahead(&continues); // [(T−d)·B]

            // Sampled like PlaNet's open-loop prior; the prior mean would understate the
            // spread the multi-step prior has to account for.
            let step = self.rssm.predict(&prev, &ahead(&actions), true);
            let pad = [0, d * b]; // back to [T·B]: rows past T − d got nothing at this d
            if with_kl {
                let target = Gaussian { mean: ahead(&target_mean), std: ahead(&target_std) };
                // Masking after the clamp: a masked step adds exactly 0, not free_nats.
                let term = target.kl(&step.prior).clamp_min(self.cfg.free_nats) * &alive;
                kl += term.constant_pad_nd(pad);
            }
            if with_reward {
                let term = (self.reward(&step.state.features()) - ahead(&rewards)).square() * &alive;
                reward += term.constant_pad_nd(pad);
            }
            state = step.state;
        }
        Overshooting { kl: kl.view([steps, b]), reward: reward.view([steps, b]) }
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
        gradplan_backend::named_variables(&self.vs)
    }

    /// Saves the weights as safetensors (atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        Ok(gradplan_backend::save_safetensors(path, &self.named_parameters())?)
    }

    /// Loads weights saved by [`WorldModel::save`] into this (identically configured) model.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        Ok(gradplan_backend::load_into_var_store(&self.vs, path)?)
    }
}

/// The overshooting settings [`ModelConfig::validate`] does not check: the weights must be
/// non-negative, and D ≥ 1 when either is on (D = 0 would divide by zero).
fn check_overshooting(cfg: &ModelConfig) -> Result<()> {
    let invalid = |key: &str, reason: &str| {
        Error::Config(gradplan_config::Error::Invalid { key: key.into(), reason: reason.into() })
    };
    for (key, v) in [
        ("model.overshooting_kl_beta", cfg.overshooting_kl_beta),
        ("model.overshooting_reward_scale", cfg.overshooting_reward_scale),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(invalid(key, "must be a non-negative number"));
        }
    }
    let on = cfg.overshooting_kl_beta != 0.0 || cfg.overshooting_reward_scale != 0.0;
    if on && cfg.overshooting_distance == 0 {
        return Err(invalid(
            "model.overshooting_distance",
            "must be at least 1 when latent overshooting is on",
        ));
    }
    Ok(())
}

/// PlaNet's preprocessing on the device: u8 frames `[…, H, W, 3]` to f32 `[…, 3, H, W]`
/// quantised to `bit_depth` bits and centred, `floor(u / 2^(8-b)) / 2^b − 0.5`, plus
/// `U[0, 1) / 2^b` dequantisation noise when `noise` is set (training).
pub fn preprocess_frames(frames: &Tensor, bit_depth: u32, noise: bool) -> Tensor {
    let n = frames.dim() as i64;
    let mut order: Vec<i64> = (0..n - 3).collect();
    order.extend([n - 1, n - 3, n - 2]);
    // Few passes over the batch (it runs once per update, ~6 M values at the cpu-pixels
    // sizes): the quantisation is a shift on the u8 frames, then one permuting copy to f32
    // and in-place scaling. Dividing by powers of two is exact, so the values are bit for bit
    // those of the formula above, and the noise draws the same random numbers.
    let scale = 1.0 / f64::from(1u32 << bit_depth);
    let quantised = frames.bitwise_right_shift_tensor_scalar(i64::from(8 - bit_depth));
    let mut x = quantised.permute(order.as_slice()).to_kind(Kind::Float);
    let _ = x.g_mul_scalar_(scale).g_sub_scalar_(0.5);
    if noise {
        let mut u = x.rand_like();
        let _ = u.g_mul_scalar_(scale);
        let _ = x.g_add_(&u);
    }
    x
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
        let _stream = crate::seeded(0);
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
    fn fused_preprocessing_is_bit_identical_to_the_formula() {
        let _stream = crate::seeded(0);
        let frames = Tensor::randint(256, [3, 2, 8, 8, 3], (Kind::Uint8, Device::Cpu));
        for bits in [1u32, 5, 8] {
            let bins = f64::from(1u32 << bits);
            let x = frames.permute([0, 1, 4, 2, 3]).to_kind(Kind::Float);
            let plain = (x / f64::from(1u32 << (8 - bits))).floor() / bins - 0.5;
            assert!(preprocess_frames(&frames, bits, false).equal(&plain), "{bits} bits");
            tch::manual_seed(11);
            let ours = preprocess_frames(&frames, bits, true);
            tch::manual_seed(11);
            let formula = &plain + plain.rand_like() / bins;
            assert!(ours.equal(&formula), "{bits} bits with noise");
        }
    }

    #[test]
    fn pixel_shapes_and_pytorch_names() {
        let _stream = crate::seeded(0);
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

    #[test]
    fn the_decoders_first_layer_as_a_matrix_product_is_the_conv_transpose() {
        let _stream = crate::seeded(3);
        let cfg = ModelConfig { cnn_depth: 4, embedding_size: 24, ..tiny() };
        let m = WorldModel::new(&cfg, ObsShape::Pixels { size: 64 }, 2, Device::Cpu).unwrap();
        let f = Tensor::randn([5, 20], (Kind::Float, Device::Cpu));
        let Decoder::Pixels { fc1, deconvs } = &m.decoder else { unreachable!() };
        // PlaNet's decoder as written: four conv-transposes from the 1×1 map.
        let mut x = fc1.forward(&f).view([-1, 24, 1, 1]);
        for (i, d) in deconvs.iter().enumerate() {
            x = x.conv_transpose2d(&d.ws, d.bs.as_ref(), 2, 0, 0, 1, 1);
            if i + 1 < deconvs.len() {
                x = x.relu();
            }
        }
        let ours = m.decode(&f);
        assert!(ours.allclose(&x, 1e-5, 1e-6, false), "{}", (&ours - &x).abs().max());
        // The same gradients reach the first layer's weight and bias.
        let g = x.randn_like();
        let grads = |y: &Tensor| {
            Tensor::run_backward(
                &[(y * &g).sum(Kind::Float)],
                &[&deconvs[0].ws, deconvs[0].bs.as_ref().unwrap()],
                false,
                false,
            )
        };
        for (a, b) in grads(&ours).iter().zip(grads(&x).iter()) {
            assert!(a.allclose(b, 1e-4, 1e-5, false), "{}", (a - b).abs().max());
        }
    }

    #[test]
    fn cnn_depth_scales_the_conv_channels() {
        let _stream = crate::seeded(0);
        let cfg = ModelConfig { cnn_depth: 8, embedding_size: 256, ..tiny() };
        let m = WorldModel::new(&cfg, ObsShape::Pixels { size: 64 }, 2, Device::Cpu).unwrap();
        let p = m.named_parameters();
        let get = |n: &str| p.iter().find(|(k, _)| k == n).map(|(_, t)| t.size());
        assert_eq!(get("encoder.conv1.weight"), Some(vec![8, 3, 4, 4]));
        assert_eq!(get("encoder.conv4.weight"), Some(vec![64, 32, 4, 4]));
        assert_eq!(get("encoder.fc.weight"), None, "8d·4 = 256 = e needs no projection");
        assert_eq!(get("decoder.conv1.weight"), Some(vec![256, 32, 5, 5]));
        assert_eq!(get("decoder.conv4.weight"), Some(vec![8, 3, 6, 6]));
        let x = Tensor::zeros([2, 3, 64, 64], (Kind::Float, Device::Cpu));
        assert_eq!(m.encode(&x).size(), vec![2, 256]);
        let f = Tensor::zeros([2, 20], (Kind::Float, Device::Cpu));
        assert_eq!(m.decode(&f).size(), vec![2, 3, 64, 64]);
        // Another embedding size gets the projection from the 32d map.
        let cfg = ModelConfig { cnn_depth: 8, embedding_size: 100, ..tiny() };
        let m = WorldModel::new(&cfg, ObsShape::Pixels { size: 64 }, 2, Device::Cpu).unwrap();
        assert_eq!(m.encode(&x).size(), vec![2, 100]);
    }

    /// Two depth-8 pixel models with the same initial weights: PlaNet's f32 NCHW convs and
    /// the same model with `variant` applied to its conv settings.
    fn conv_twins(seed: i64, variant: impl FnOnce(&mut ModelConfig)) -> (WorldModel, WorldModel) {
        let cfg = ModelConfig { cnn_depth: 8, embedding_size: 256, ..tiny() };
        let mut other = cfg.clone();
        variant(&mut other);
        let build = |cfg: &ModelConfig| {
            tch::manual_seed(seed);
            WorldModel::new(cfg, ObsShape::Pixels { size: 64 }, 2, Device::Cpu).unwrap()
        };
        let (base, variant) = (build(&cfg), build(&other));
        // The conv settings add no parameters, so the same seed gives the same weights.
        for ((name, a), (_, b)) in base.named_parameters().iter().zip(variant.named_parameters()) {
            assert!(a.equal(&b), "{name} differs at initialisation");
        }
        (base, variant)
    }

    #[test]
    fn bf16_convs_match_f32_and_train_f32_weights() {
        let _stream = crate::seeded(0);
        let (f32_model, bf16_model) = conv_twins(7, |c| c.conv_precision = ConvPrecision::Bf16);
        let x = Tensor::rand([4, 3, 64, 64], (Kind::Float, Device::Cpu)) - 0.5;
        let (a, b) = (f32_model.encode(&x), bf16_model.encode(&x));
        assert_eq!(b.kind(), Kind::Float);
        let rel = (&a - &b).norm().double_value(&[]) / a.norm().double_value(&[]);
        assert!(rel < 2e-2, "bf16 encoder differs from f32 by {rel}");
        let f = Tensor::randn([4, 20], (Kind::Float, Device::Cpu));
        let (a, b) = (f32_model.decode(&f), bf16_model.decode(&f));
        let rel = (&a - &b).norm().double_value(&[]) / a.norm().double_value(&[]);
        assert!(rel < 2e-2, "bf16 decoder differs from f32 by {rel}");
        // Gradients reach the f32 master weights.
        bf16_model.decode(&f).square().sum(Kind::Float).backward();
        for (name, p) in bf16_model.named_parameters() {
            if name.starts_with("decoder.conv") {
                assert_eq!(p.kind(), Kind::Float);
                let g = p.grad();
                assert!(g.defined() && g.kind() == Kind::Float, "{name} has no f32 gradient");
                assert!(g.abs().sum(Kind::Float).double_value(&[]) > 0.0, "{name}'s gradient is zero");
            }
        }
    }

    #[test]
    fn channels_last_convs_compute_the_same_model() {
        let _stream = crate::seeded(0);
        let (nchw, nhwc) = conv_twins(3, |c| c.conv_channels_last = true);
        // The operands really are stored NHWC: channel stride 1.
        let x = Tensor::rand([4, 3, 64, 64], (Kind::Float, Device::Cpu)) - 0.5;
        let op = nhwc.conv_operand(&x);
        assert_eq!(op.size(), vec![4, 3, 64, 64]);
        assert_eq!(op.stride(), vec![64 * 64 * 3, 1, 64 * 3, 3]);
        assert!(op.equal(&x));
        let close = |a: &Tensor, b: &Tensor, what: &str| {
            let rel = (a - b).norm().double_value(&[]) / a.norm().double_value(&[]).max(1e-12);
            assert!(rel < 1e-4, "{what}: channels-last differs from NCHW by {rel}");
        };
        close(&nchw.encode(&x), &nhwc.encode(&x), "encoder");
        let f = Tensor::randn([4, 20], (Kind::Float, Device::Cpu));
        close(&nchw.decode(&f), &nhwc.decode(&f), "decoder");
        for m in [&nchw, &nhwc] {
            (m.decode(&f).square().sum(Kind::Float) + m.encode(&x).square().sum(Kind::Float)).backward();
        }
        for ((name, a), (_, b)) in nchw.named_parameters().iter().zip(nhwc.named_parameters()) {
            if name.contains("conv") {
                close(&a.grad(), &b.grad(), name);
            }
        }
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
        let _stream = crate::seeded(0);
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
        let _stream = crate::seeded(1);
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
        let _stream = crate::seeded(2);
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

    /// The loss as it was before latent overshooting existed, term by term.
    fn plain_elbo(m: &WorldModel, batch: &SequenceBatch) -> [Tensor; 4] {
        let observed = m.observe(batch);
        let features = observed.features();
        let recon = WorldModel::over_time(&features, |x| m.decode(x));
        let observation =
            (&recon - &batch.obs).square().sum_dim_intlist(2, false, Kind::Float).mean(Kind::Float);
        let valid = batch.is_first.ones_like() - &batch.is_first;
        let reward_err = (m.reward(&features) - &batch.rewards).square() * &valid;
        let reward = reward_err.sum(Kind::Float) / valid.sum(Kind::Float).clamp_min(1.0);
        let kl = observed.posterior.kl(&observed.prior).clamp_min(m.cfg.free_nats).mean(Kind::Float);
        [&observation + &reward + &kl, observation, reward, kl]
    }

    fn overshooting_cfg(distance: usize) -> ModelConfig {
        ModelConfig {
            overshooting_distance: distance,
            overshooting_kl_beta: 1.0,
            overshooting_reward_scale: 1.0,
            free_nats: 0.0,
            ..tiny()
        }
    }

    #[test]
    fn overshooting_off_is_bit_identical_to_the_plain_elbo() {
        let _stream = crate::seeded(0);
        let m = WorldModel::new(&tiny(), ObsShape::State { dim: 5 }, 2, Device::Cpu).unwrap();
        let batch = random_batch(6, 3, 5, 2);
        let _ = batch.is_first.get(3).get(1).fill_(1.0);
        tch::manual_seed(3);
        let l = m.loss(&batch).unwrap();
        tch::manual_seed(3);
        let [total, observation, reward, kl] = plain_elbo(&m, &batch);
        for (ours, reference) in
            [(&l.total, &total), (&l.observation, &observation), (&l.reward, &reward), (&l.kl, &kl)]
        {
            assert!(ours.equal(reference), "{ours:?} vs {reference:?}");
        }
        assert_eq!(l.overshooting_kl.double_value(&[]), 0.0);
        assert_eq!(l.overshooting_reward.double_value(&[]), 0.0);
    }

    #[test]
    fn the_observation_weight_scales_only_the_observation_term() {
        let _stream = crate::seeded(0);
        let mut m = WorldModel::new(&tiny(), ObsShape::State { dim: 5 }, 2, Device::Cpu).unwrap();
        let batch = random_batch(6, 3, 5, 2);
        tch::manual_seed(3);
        let l = m.loss(&batch).unwrap();
        m.cfg.obs_loss_scale = 50.0;
        tch::manual_seed(3);
        let h = m.loss(&batch).unwrap();
        // Same terms (reported unweighted), total = 50·obs + reward + KL.
        for (a, b) in [(&l.observation, &h.observation), (&l.reward, &h.reward), (&l.kl, &h.kl)] {
            assert!(a.equal(b), "{a:?} vs {b:?}");
        }
        let want = (&h.observation * 50.0 + &h.reward + &h.kl).double_value(&[]);
        let got = h.total.double_value(&[]);
        assert!((got - want).abs() < 1e-5 * want.abs(), "{got} vs {want}");
        assert!(got > l.total.double_value(&[]));
        let bad = ModelConfig { obs_loss_scale: 0.0, ..tiny() };
        assert!(bad.validate().unwrap_err().to_string().contains("obs_loss_scale"));
    }

    #[test]
    fn overshooting_adds_finite_terms_that_train_the_prior() {
        let _stream = crate::seeded(4);
        let m = WorldModel::new(&overshooting_cfg(3), ObsShape::State { dim: 5 }, 2, Device::Cpu).unwrap();
        let l = m.loss(&random_batch(6, 3, 5, 2)).unwrap();
        let (os_kl, os_reward) =
            (l.overshooting_kl.double_value(&[]), l.overshooting_reward.double_value(&[]));
        assert!(os_kl.is_finite() && os_kl > 0.0, "{os_kl}");
        assert!(os_reward.is_finite() && os_reward > 0.0, "{os_reward}");
        let single = (&l.observation + &l.reward + &l.kl).double_value(&[]);
        let total = l.total.double_value(&[]);
        assert!(total > single && (total - single - os_kl - os_reward).abs() < 1e-4 * total.abs());
        // The overshooting KL alone reaches the transition's prior head and its GRU.
        let grad_of = |loss: &Tensor, names: &[&str]| {
            let mut vars = m.var_store().variables();
            for v in vars.values_mut() {
                v.zero_grad();
            }
            loss.backward();
            names.iter().map(|n| vars[*n].grad().abs().sum(Kind::Float).double_value(&[])).collect::<Vec<_>>()
        };
        let l = m.loss(&random_batch(6, 3, 5, 2)).unwrap();
        let g =
            grad_of(&l.overshooting_kl, &["transition.fc_state_prior.weight", "transition.rnn.weight_hh"]);
        assert!(g.iter().all(|&x| x > 0.0), "{g:?}");
        let l = m.loss(&random_batch(6, 3, 5, 2)).unwrap();
        let g = grad_of(&l.overshooting_reward, &["reward.fc1.weight", "transition.rnn.weight_hh"]);
        assert!(g.iter().all(|&x| x > 0.0), "{g:?}");
        // Each weight scales its own term only.
        let half =
            ModelConfig { overshooting_kl_beta: 0.5, overshooting_reward_scale: 0.0, ..overshooting_cfg(3) };
        let mut m2 = WorldModel::new(&half, ObsShape::State { dim: 5 }, 2, Device::Cpu).unwrap();
        let dir = std::env::temp_dir().join(format!("gradplan-model-os-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        m.save(&dir.join("m.safetensors")).unwrap();
        m2.load(&dir.join("m.safetensors")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let batch = random_batch(6, 3, 5, 2);
        tch::manual_seed(5);
        let full = m.loss(&batch).unwrap();
        tch::manual_seed(5);
        let halved = m2.loss(&batch).unwrap();
        assert!(halved.overshooting_kl.allclose(&(&full.overshooting_kl * 0.5), 1e-6, 1e-7, false));
        assert_eq!(halved.overshooting_reward.double_value(&[]), 0.0);
    }

    /// Observations and actions at `times` replaced by fresh noise.
    fn perturbed(batch: &SequenceBatch, times: std::ops::Range<i64>) -> SequenceBatch {
        let (obs, actions) = (batch.obs.copy(), batch.actions.copy());
        for t in times {
            obs.get(t).copy_(&obs.get(t).randn_like());
            actions.get(t).copy_(&actions.get(t).rand_like());
        }
        SequenceBatch { obs, actions, rewards: batch.rewards.copy(), is_first: batch.is_first.copy() }
    }

    /// Per-start-time overshooting terms `[T, B]` with a fixed random stream.
    fn per_start(m: &WorldModel, batch: &SequenceBatch) -> Overshooting {
        tch::manual_seed(6);
        let observed = m.observe(batch);
        m.overshooting(&observed, batch, true, true)
    }

    #[test]
    fn overshooting_never_crosses_an_episode_start() {
        let _stream = crate::seeded(0);
        // An episode starts at k = 4 in every sequence; windows (D = 5) from t < k would reach
        // past it if they were not masked.
        let (steps, k) = (8, 4);
        tch::manual_seed(7);
        let m = WorldModel::new(&overshooting_cfg(5), ObsShape::State { dim: 5 }, 2, Device::Cpu).unwrap();
        let batch = random_batch(steps, 2, 5, 2);
        let _ = batch.is_first.get(k).fill_(1.0);
        let base = per_start(&m, &batch);
        let same = |a: &Tensor, b: &Tensor| a.allclose(b, 1e-6, 1e-7, false);
        // Changing the new episode leaves the windows from the old one untouched …
        let later = per_start(&m, &perturbed(&batch, k..steps));
        for (a, b) in [(&base.kl, &later.kl), (&base.reward, &later.reward)] {
            assert!(same(&a.narrow(0, 0, k), &b.narrow(0, 0, k)), "a window crossed the episode start");
            assert!(!same(&a.narrow(0, k, steps - k), &b.narrow(0, k, steps - k)));
        }
        // … and changing the old episode leaves the windows from the new one untouched.
        let earlier = per_start(&m, &perturbed(&batch, 0..k));
        for (a, b) in [(&base.kl, &earlier.kl), (&base.reward, &earlier.reward)] {
            assert!(same(&a.narrow(0, k, steps - k), &b.narrow(0, k, steps - k)));
            assert!(!same(&a.narrow(0, 0, k), &b.narrow(0, 0, k)));
        }
        // Without the episode start the same change does reach the early windows, so the
        // invariance above is the mask's doing.
        let _ = batch.is_first.get(k).fill_(0.0);
        let (a, b) = (per_start(&m, &batch), per_start(&m, &perturbed(&batch, k..steps)));
        assert!(!same(&a.kl.narrow(0, 0, k), &b.kl.narrow(0, 0, k)));
        // The last start time has no target inside the chunk.
        assert_eq!(a.kl.get(steps - 1).abs().sum(Kind::Float).double_value(&[]), 0.0);
    }

    #[test]
    fn one_step_overshooting_is_the_kl_term() {
        let _stream = crate::seeded(8);
        let cfg = ModelConfig { free_nats: 0.5, overshooting_reward_scale: 0.0, ..overshooting_cfg(1) };
        let m = WorldModel::new(&cfg, ObsShape::State { dim: 5 }, 2, Device::Cpu).unwrap();
        let (steps, b) = (6, 3);
        let batch = random_batch(steps, b, 5, 2);
        let _ = batch.is_first.get(3).get(1).fill_(1.0);
        tch::manual_seed(9);
        let observed = m.observe(&batch);
        let os = m.overshooting(&observed, &batch, true, false);
        // KL[q(s_{t+1}) ‖ p(s_{t+1} | h_{t+1})] clamped, except into an episode start.
        let kl_t = observed.posterior.kl(&observed.prior).clamp_min(cfg.free_nats);
        let cont = batch.is_first.ones_like() - &batch.is_first;
        let expected = (kl_t * cont).narrow(0, 1, steps - 1);
        assert!(os.kl.narrow(0, 0, steps - 1).allclose(&expected, 1e-5, 1e-6, false));
        // Through `loss` (same random stream): the mean over T·B start times.
        tch::manual_seed(9);
        let l = m.loss(&batch).unwrap();
        let want = expected.sum(Kind::Float).double_value(&[]) / (steps * b) as f64;
        assert!((l.overshooting_kl.double_value(&[]) - want).abs() < 1e-5 * want, "{l:?} vs {want}");
    }

    #[test]
    fn overshooting_settings_are_checked() {
        let _stream = crate::seeded(0);
        let new = |cfg: ModelConfig| WorldModel::new(&cfg, ObsShape::State { dim: 5 }, 2, Device::Cpu);
        let err = new(overshooting_cfg(0)).unwrap_err().to_string();
        assert!(err.contains("overshooting_distance"), "{err}");
        let err = new(ModelConfig { overshooting_kl_beta: -1.0, ..tiny() }).unwrap_err().to_string();
        assert!(err.contains("overshooting_kl_beta"), "{err}");
        // D = 0 is harmless while overshooting is off.
        assert!(new(ModelConfig { overshooting_distance: 0, ..tiny() }).is_ok());
        // A chunk shorter than D clips the windows.
        let m = new(overshooting_cfg(50)).unwrap();
        let l = m.loss(&random_batch(4, 2, 5, 2)).unwrap();
        assert!(l.total.double_value(&[]).is_finite());
    }

    fn perturbed_cfg(kind: Perturbation) -> ModelConfig {
        ModelConfig { perturbation: kind, perturbation_state: 0.05, perturbation_action: 0.05, ..tiny() }
    }

    /// The ELBO's total at fixed offsets, with the same posterior noise every call.
    fn total_at(m: &WorldModel, batch: &SequenceBatch, offsets: &InputOffsets) -> f64 {
        tch::manual_seed(11);
        let embeds = WorldModel::over_time(&batch.obs, |x| m.encode(x));
        m.elbo(&embeds, batch, Some(offsets)).unwrap().total.double_value(&[])
    }

    #[test]
    fn adversarial_offsets_raise_the_loss_more_than_random_signs() {
        let _stream = crate::seeded(4);
        let m = WorldModel::new(
            &perturbed_cfg(Perturbation::Adversarial),
            ObsShape::State { dim: 5 },
            2,
            Device::Cpu,
        )
        .unwrap();
        let batch = random_batch(6, 3, 5, 2);
        let _ = batch.is_first.get(3).get(1).fill_(1.0);
        let embeds = WorldModel::over_time(&batch.obs, |x| m.encode(x));
        tch::manual_seed(11);
        let adv = m.perturbation(&embeds, &batch).unwrap().unwrap();
        // Signs of the gradient, ε in size; zero where a step starts an episode (its inputs
        // are reset) and at t = 0 of every sequence.
        for (d, eps) in [(&adv.state, 0.05), (&adv.action, 0.05)] {
            let a = d.abs();
            assert!(a.max().double_value(&[]) <= eps + 1e-7, "{d:?}");
            assert_eq!(d.get(0).abs().sum(Kind::Float).double_value(&[]), 0.0);
            assert_eq!(d.get(3).get(1).abs().sum(Kind::Float).double_value(&[]), 0.0);
            assert!(a.ge(eps - 1e-7).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]) > 0.5);
        }
        // Inside `no_grad` (the trainer's weight check) the same offsets, the same loss.
        tch::manual_seed(11);
        let quiet = tch::no_grad(|| m.perturbation(&embeds, &batch)).unwrap().unwrap();
        assert!(quiet.state.equal(&adv.state) && quiet.action.equal(&adv.action));
        let zero = InputOffsets { state: adv.state.zeros_like(), action: adv.action.zeros_like() };
        let clean = total_at(&m, &batch, &zero);
        let worst = total_at(&m, &batch, &adv);
        // A first-order step uphill beats every random step of the same size.
        for k in 0..8 {
            tch::manual_seed(100 + k);
            let random = InputOffsets {
                state: adv.state.abs()
                    * (Tensor::rand_like(&adv.state).ge(0.5).to_kind(Kind::Float) * 2.0 - 1.0),
                action: adv.action.abs()
                    * (Tensor::rand_like(&adv.action).ge(0.5).to_kind(Kind::Float) * 2.0 - 1.0),
            };
            let other = total_at(&m, &batch, &random);
            assert!(worst > other, "adversarial {worst} vs random signs {other} (clean {clean})");
        }
        assert!(worst > clean, "adversarial {worst} vs clean {clean}");
    }

    #[test]
    fn perturbation_trains_the_model_and_none_leaves_the_elbo_alone() {
        let batch = {
            let _stream = crate::seeded(5);
            random_batch(6, 3, 5, 2)
        };
        let losses = |kind: Perturbation, seed: i64| {
            let _stream = crate::seeded(seed);
            let m =
                WorldModel::new(&perturbed_cfg(kind), ObsShape::State { dim: 5 }, 2, Device::Cpu).unwrap();
            tch::manual_seed(3);
            let l = m.loss(&batch).unwrap();
            tch::manual_seed(3);
            let [plain, ..] = plain_elbo(&m, &batch);
            (l, plain, m)
        };
        let (none, plain, _) = losses(Perturbation::None, 6);
        assert!(none.total.equal(&plain), "off, the loss is PlaNet's ELBO bit for bit");
        for kind in [Perturbation::Noise, Perturbation::Adversarial] {
            let (l, plain, m) = losses(kind, 6);
            let (ours, theirs) = (l.total.double_value(&[]), plain.double_value(&[]));
            assert!(ours.is_finite() && ours != theirs, "{kind:?}: {ours} vs {theirs}");
            // The update reaches every parameter.
            l.total.backward();
            for (name, v) in m.var_store().variables() {
                assert!(
                    v.grad().defined() && v.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0,
                    "{kind:?}: {name}"
                );
            }
        }
        let err = ModelConfig {
            perturbation: Perturbation::Noise,
            perturbation_state: 0.0,
            perturbation_action: 0.0,
            ..tiny()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(err.contains("model.perturbation"), "{err}");
        let err = ModelConfig { perturbation_action: -1.0, ..tiny() }.validate().unwrap_err().to_string();
        assert!(err.contains("model.perturbation_action"), "{err}");
    }
}
