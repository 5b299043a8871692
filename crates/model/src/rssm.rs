//! The recurrent state-space model (PlaNet, Hafner et al. 2019; the seed's §3.2).
//!
//! Deterministic path `h_t = f(h_{t-1}, s_{t-1}, a_t) = GRU(h_{t-1}, act(W[s_{t-1}, a_t]))`,
//! prior `p(s_t | h_t)` and posterior `q(s_t | h_t, e_t)`, both diagonal Gaussians with
//! `std = softplus(x) + min_std`, sampled with the reparameterisation trick.
//!
//! Time alignment (the replay's): `a_t` is the action that led to observation `o_t`, so the
//! state at `t` summarises `o_{≤t}, a_{≤t}`. Where `is_first_t` is set (an episode starts
//! inside a training chunk), `h`, `s` and `a_t` are zeroed before the step, so no
//! information flows across episodes.

use crate::nn::{activate, linear, GruCell};
use gradplan_config::ModelConfig;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// A diagonal Gaussian, `[…, S]` mean and std.
#[derive(Debug)]
pub struct Gaussian {
    pub mean: Tensor,
    pub std: Tensor,
}

impl Gaussian {
    /// A reparameterised sample `μ + σ ε`, ε ~ N(0, I).
    pub fn sample(&self) -> Tensor {
        &self.mean + &self.std * self.mean.randn_like()
    }

    /// KL(self ‖ other), summed over the last dimension.
    ///
    /// `log σ_p/σ_q + (σ_q² + (μ_q − μ_p)²) / (2 σ_p²) − ½` per dimension.
    pub fn kl(&self, other: &Gaussian) -> Tensor {
        let var_ratio = (&self.std / &other.std).square();
        let mean_term = ((&self.mean - &other.mean) / &other.std).square();
        ((var_ratio + mean_term - 1.0) * 0.5 - (&self.std / &other.std).log()).sum_dim_intlist(
            -1,
            false,
            Kind::Float,
        )
    }

    fn from_stats(stats: &Tensor, min_std: f64) -> Gaussian {
        let parts = stats.chunk(2, -1);
        Gaussian { mean: parts[0].shallow_clone(), std: parts[1].softplus() + min_std }
    }
}

/// Offsets added to the transition's inputs in [`Rssm::observe_perturbed`].
#[derive(Debug)]
pub struct InputOffsets {
    /// `δ^s`, added to `s_{t-1}`, `[T, B, S]`.
    pub state: Tensor,
    /// `δ^a`, added to `a_t`, `[T, B, A]`.
    pub action: Tensor,
}

/// The model state: belief (deterministic) and stochastic state.
#[derive(Debug)]
pub struct RssmState {
    /// `h`, `[B, belief]`.
    pub belief: Tensor,
    /// `s`, `[B, state]`.
    pub stoch: Tensor,
}

impl RssmState {
    /// `[h, s]` concatenated, `[…, belief + state]`: the input of decoder and reward model.
    pub fn features(&self) -> Tensor {
        Tensor::cat(&[&self.belief, &self.stoch], -1)
    }

    pub fn shallow_clone(&self) -> RssmState {
        RssmState { belief: self.belief.shallow_clone(), stoch: self.stoch.shallow_clone() }
    }

    pub fn detach(&self) -> RssmState {
        RssmState { belief: self.belief.detach(), stoch: self.stoch.detach() }
    }
}

/// One filtering step: the new state (a posterior sample) and both distributions.
#[derive(Debug)]
pub struct FilterStep {
    pub state: RssmState,
    pub prior: Gaussian,
    pub posterior: Gaussian,
}

/// One open-loop step: the new state and the prior it came from.
#[derive(Debug)]
pub struct Prediction {
    /// `h_{t+1}` and `s_{t+1}` (a prior sample, or the prior mean).
    pub state: RssmState,
    /// `p(s_{t+1} | h_{t+1})`.
    pub prior: Gaussian,
}

/// The result of filtering a sequence of observations.
#[derive(Debug)]
pub struct Observed {
    /// `h_{1:T}`, `[T, B, belief]`.
    pub beliefs: Tensor,
    /// Posterior samples `s_{1:T}`, `[T, B, state]`.
    pub states: Tensor,
    /// `p(s_t | h_t)`, `[T, B, state]` each.
    pub prior: Gaussian,
    /// `q(s_t | h_t, e_t)`, `[T, B, state]` each.
    pub posterior: Gaussian,
}

impl Observed {
    /// The last time step's state, to continue filtering or start imagining from.
    pub fn last(&self) -> RssmState {
        RssmState { belief: self.beliefs.get(-1), stoch: self.states.get(-1) }
    }

    /// `[h, s]`, `[T, B, belief + state]`.
    pub fn features(&self) -> Tensor {
        Tensor::cat(&[&self.beliefs, &self.states], -1)
    }
}

/// The transition model: GRU path, prior and posterior heads.
#[derive(Debug)]
pub struct Rssm {
    cfg: ModelConfig,
    fc_embed_state_action: nn::Linear,
    rnn: GruCell,
    fc_embed_belief_prior: nn::Linear,
    fc_state_prior: nn::Linear,
    fc_embed_belief_posterior: nn::Linear,
    fc_state_posterior: nn::Linear,
}

impl Rssm {
    pub fn new(vs: nn::Path, cfg: &ModelConfig, action_dim: i64) -> Self {
        let (b, s, hid, e) = (cfg.belief_size, cfg.state_size, cfg.hidden_size, cfg.embedding_size);
        Rssm {
            cfg: cfg.clone(),
            fc_embed_state_action: linear(&vs / "fc_embed_state_action", s + action_dim, b),
            rnn: GruCell::new(&vs / "rnn", b, b),
            fc_embed_belief_prior: linear(&vs / "fc_embed_belief_prior", b, hid),
            fc_state_prior: linear(&vs / "fc_state_prior", hid, 2 * s),
            fc_embed_belief_posterior: linear(&vs / "fc_embed_belief_posterior", b + e, hid),
            fc_state_posterior: linear(&vs / "fc_state_posterior", hid, 2 * s),
        }
    }

    /// The all-zero initial state for `batch` sequences.
    pub fn initial(&self, batch: i64, device: tch::Device) -> RssmState {
        RssmState {
            belief: Tensor::zeros([batch, self.cfg.belief_size], (Kind::Float, device)),
            stoch: Tensor::zeros([batch, self.cfg.state_size], (Kind::Float, device)),
        }
    }

    /// `h_t = GRU(h_{t-1}, act(W[s_{t-1}, a_t]))`.
    ///
    /// # Shapes
    /// `prev: [B, …]`, `action: [B, A]` → `[B, belief]`.
    pub fn deterministic(&self, prev: &RssmState, action: &Tensor) -> Tensor {
        let x = self.fc_embed_state_action.forward(&Tensor::cat(&[&prev.stoch, action], -1));
        self.rnn.forward(&activate(self.cfg.activation, &x), &prev.belief)
    }

    /// `p(s_t | h_t)`. `belief: [B, belief]` → `[B, state]`.
    pub fn prior(&self, belief: &Tensor) -> Gaussian {
        let x = activate(self.cfg.activation, &self.fc_embed_belief_prior.forward(belief));
        Gaussian::from_stats(&self.fc_state_prior.forward(&x), self.cfg.min_std)
    }

    /// `q(s_t | h_t, e_t)`. `belief: [B, belief]`, `embed: [B, E]` → `[B, state]`.
    pub fn posterior(&self, belief: &Tensor, embed: &Tensor) -> Gaussian {
        let x = self.fc_embed_belief_posterior.forward(&Tensor::cat(&[belief, embed], -1));
        Gaussian::from_stats(
            &self.fc_state_posterior.forward(&activate(self.cfg.activation, &x)),
            self.cfg.min_std,
        )
    }

    /// One imagined step: `h_{t+1} = f(h_t, s_t, a)`, `s_{t+1} ~ p(· | h_{t+1})` (or its
    /// mean when `sample` is false). Differentiable in `action`.
    ///
    /// # Shapes
    /// `state: [B, …]`, `action: [B, A]` → `[B, …]`.
    pub fn imagine_step(&self, state: &RssmState, action: &Tensor, sample: bool) -> RssmState {
        self.predict(state, action, sample).state
    }

    /// [`Rssm::imagine_step`], also returning the prior `p(s_{t+1} | h_{t+1})` the new
    /// stochastic state was drawn from (latent overshooting needs its KL).
    ///
    /// # Shapes
    /// `state: [B, …]`, `action: [B, A]` → `[B, …]`.
    pub fn predict(&self, state: &RssmState, action: &Tensor, sample: bool) -> Prediction {
        let belief = self.deterministic(state, action);
        let prior = self.prior(&belief);
        let stoch = if sample { prior.sample() } else { prior.mean.shallow_clone() };
        Prediction { state: RssmState { belief, stoch }, prior }
    }

    /// One filtering step with an observation embedding; returns the new state (a
    /// posterior sample) and both distributions.
    ///
    /// # Shapes
    /// `prev: [B, …]`, `action: [B, A]`, `embed: [B, E]`, `is_first: [B]` (1.0 where an
    /// episode starts).
    pub fn observe_step(
        &self,
        prev: &RssmState,
        action: &Tensor,
        embed: &Tensor,
        is_first: &Tensor,
    ) -> FilterStep {
        let keep = is_first.ones_like().g_sub(is_first).unsqueeze(-1); // [B, 1]
        let prev = RssmState { belief: &prev.belief * &keep, stoch: &prev.stoch * &keep };
        let belief = self.deterministic(&prev, &(action * &keep));
        let prior = self.prior(&belief);
        let posterior = self.posterior(&belief, embed);
        let stoch = posterior.sample();
        FilterStep { state: RssmState { belief, stoch }, prior, posterior }
    }

    /// Filters a whole sequence.
    ///
    /// # Shapes
    /// `embeds: [T, B, E]`, `actions: [T, B, A]`, `is_first: [T, B]`, `init: [B, …]`.
    pub fn observe(
        &self,
        embeds: &Tensor,
        actions: &Tensor,
        is_first: &Tensor,
        init: &RssmState,
    ) -> Observed {
        self.observe_perturbed(embeds, actions, is_first, init, None)
    }

    /// [`Rssm::observe`] with `offsets` added to the transition's inputs at every step,
    /// `h_t = f(h_{t-1}, s_{t-1} + δ^s_t, a_t + δ^a_t)` (training-time perturbation,
    /// `model.perturbation`). The states it returns are the filter's own samples `s_t`,
    /// unperturbed; an offset at an episode start is zeroed with the state it would move.
    ///
    /// # Shapes
    /// As [`Rssm::observe`]; `offsets`: `[T, B, S]` and `[T, B, A]`.
    pub fn observe_perturbed(
        &self,
        embeds: &Tensor,
        actions: &Tensor,
        is_first: &Tensor,
        init: &RssmState,
        offsets: Option<&InputOffsets>,
    ) -> Observed {
        let steps = embeds.size()[0];
        debug_assert_eq!(actions.size()[0], steps);
        debug_assert_eq!(is_first.size()[..2], embeds.size()[..2]);
        let mut state = init.shallow_clone();
        let (mut beliefs, mut states) = (Vec::new(), Vec::new());
        let (mut prior_m, mut prior_s, mut post_m, mut post_s) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for t in 0..steps {
            let step = match offsets {
                None => self.observe_step(&state, &actions.get(t), &embeds.get(t), &is_first.get(t)),
                Some(d) => {
                    let moved = RssmState {
                        belief: state.belief.shallow_clone(),
                        stoch: &state.stoch + d.state.get(t),
                    };
                    let action = actions.get(t) + d.action.get(t);
                    self.observe_step(&moved, &action, &embeds.get(t), &is_first.get(t))
                }
            };
            beliefs.push(step.state.belief.shallow_clone());
            states.push(step.state.stoch.shallow_clone());
            prior_m.push(step.prior.mean);
            prior_s.push(step.prior.std);
            post_m.push(step.posterior.mean);
            post_s.push(step.posterior.std);
            state = step.state;
        }
        Observed {
            beliefs: Tensor::stack(&beliefs, 0),
            states: Tensor::stack(&states, 0),
            prior: Gaussian { mean: Tensor::stack(&prior_m, 0), std: Tensor::stack(&prior_s, 0) },
            posterior: Gaussian { mean: Tensor::stack(&post_m, 0), std: Tensor::stack(&post_s, 0) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn kl_matches_the_closed_form() {
        // One dimension: q = N(1, 0.5²), p = N(-1, 2²):
        // KL = ln(2/0.5) + (0.25 + 4) / (2·4) − ½ = ln 4 + 0.53125 − 0.5.
        let q = Gaussian { mean: Tensor::from_slice(&[1.0f32]), std: Tensor::from_slice(&[0.5f32]) };
        let p = Gaussian { mean: Tensor::from_slice(&[-1.0f32]), std: Tensor::from_slice(&[2.0f32]) };
        let expected = 4f64.ln() + 4.25 / 8.0 - 0.5;
        assert!((q.kl(&p).double_value(&[]) - expected).abs() < 1e-6);
        // Summed over dimensions, zero for identical distributions.
        let q2 =
            Gaussian { mean: Tensor::from_slice(&[1.0f32, 1.0]), std: Tensor::from_slice(&[0.5f32, 0.5]) };
        let p2 =
            Gaussian { mean: Tensor::from_slice(&[-1.0f32, 1.0]), std: Tensor::from_slice(&[2.0f32, 0.5]) };
        assert!((q2.kl(&p2).double_value(&[]) - expected).abs() < 1e-6);
        assert!(q2.kl(&q2).double_value(&[]).abs() < 1e-7);
    }

    #[test]
    fn episode_starts_reset_the_state() {
        let _stream = crate::seeded(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = ModelConfig {
            belief_size: 8,
            state_size: 4,
            hidden_size: 8,
            embedding_size: 6,
            ..Default::default()
        };
        let rssm = Rssm::new(vs.root(), &cfg, 2);
        let embed = Tensor::randn([1, 6], (Kind::Float, Device::Cpu));
        let action = Tensor::randn([1, 2], (Kind::Float, Device::Cpu));
        let busy = RssmState {
            belief: Tensor::randn([1, 8], (Kind::Float, Device::Cpu)),
            stoch: Tensor::randn([1, 4], (Kind::Float, Device::Cpu)),
        };
        let first = Tensor::ones([1], (Kind::Float, Device::Cpu));
        let a = rssm.observe_step(&busy, &action, &embed, &first);
        let b = rssm.observe_step(&rssm.initial(1, Device::Cpu), &action.zeros_like(), &embed, &first);
        assert!(
            a.state.belief.allclose(&b.state.belief, 1e-6, 1e-6, false),
            "state leaked across an episode start"
        );
        assert!(a.posterior.mean.allclose(&b.posterior.mean, 1e-6, 1e-6, false));
        let not_first = first.zeros_like();
        let c = rssm.observe_step(&busy, &action, &embed, &not_first);
        assert!(!c.state.belief.allclose(&b.state.belief, 1e-3, 1e-3, false));
    }
}
