//! Behaviour learning on imagination (Dreamer's Algorithm 1, lines "behavior learning"; the
//! seed's A.4, eqs. 10–13).
//!
//! From every posterior state of a batch (detached: the world model's own loss trains it)
//! the actor imagines H steps through the RSSM prior, `a_t ~ q_φ(·|ŝ_t)` (reparameterised),
//! `ŝ_{t+1} ~ p(·|h_{t+1})`. Rewards come from the model's reward head, `r_t = r(ŝ_{t+1})`,
//! values from v_ψ, and the λ-returns V_λ(ŝ_t), t < H, from [`lambda_return`]. Our DMC tasks
//! never terminate and the model has no continuation head, so every d_t = γ; the λ-return
//! and the loss weights take per-step discounts so that a terminal step can zero them.
//!
//! * actor loss `−mean_t,n w_t V_λ(ŝ_t)`: its gradient reaches φ through the actions of every
//!   imagined step, the RSSM transitions, the reward head and the value (eq. 10);
//! * value loss `mean_t,n w_t ½ (v_ψ(sg ŝ_t) − sg V_λ(ŝ_t))²` (eq. 11).
//!
//! Each is stepped by its own Adam with Dreamer's settings (lr 8e-5, ε 1e-7, clip 100).

use crate::nets::{Actor, Value};
use crate::returns::{discount_weights, lambda_return};
use crate::{load_into, named, Result};
use gradplan_backend::optim::Adam;
use gradplan_config::DreamerConfig;
use gradplan_model::{RssmState, WorldModel};
use std::path::Path;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// Actor and value with their parameters.
pub struct Behavior {
    pub cfg: DreamerConfig,
    actor_vs: VarStore,
    value_vs: VarStore,
    pub actor: Actor,
    pub value: Value,
}

impl std::fmt::Debug for Behavior {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Behavior").field("cfg", &self.cfg).finish()
    }
}

/// One imagined batch.
#[derive(Debug)]
pub struct Imagined {
    /// `[h, s]` of ŝ_0 … ŝ_H, `[H + 1, N, F]`, differentiable in the actor's parameters.
    pub features: Tensor,
    /// `r_t = r(ŝ_{t+1})`, `[H, N]`.
    pub rewards: Tensor,
    /// d_t, `[H, N]` (γ everywhere: no terminal in imagination).
    pub discounts: Tensor,
}

/// The two losses of one imagined batch.
#[derive(Debug)]
pub struct BehaviorLosses {
    /// −mean w·V_λ, in the graph through the imagined dynamics to φ.
    pub actor: Tensor,
    /// mean w·½(v − sg V_λ)², in the graph to ψ only.
    pub value: Tensor,
    /// mean V_λ, detached (for logging).
    pub mean_return: Tensor,
}

/// What one [`update`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UpdateStats {
    pub actor_loss: f64,
    pub value_loss: f64,
    pub actor_grad_norm: f64,
    pub value_grad_norm: f64,
}

impl Behavior {
    /// Freshly initialised actor and value on `features = belief + state` inputs.
    pub fn new(cfg: &DreamerConfig, features: i64, action_dim: i64, device: Device) -> Result<Behavior> {
        cfg.validate()?;
        let actor_vs = VarStore::new(device);
        let value_vs = VarStore::new(device);
        let actor = Actor::new(actor_vs.root() / "actor", cfg, features, action_dim);
        let value = Value::new(value_vs.root() / "value", cfg, features);
        Ok(Behavior { cfg: cfg.clone(), actor_vs, value_vs, actor, value })
    }

    /// For a world model: features `belief + state`, the model's action dimension and device.
    pub fn for_model(cfg: &DreamerConfig, model: &WorldModel) -> Result<Behavior> {
        let features = model.cfg.belief_size + model.cfg.state_size;
        Behavior::new(cfg, features, model.action_dim, model.device())
    }

    /// The actor's parameters (`actor.fc1.weight`, …), sorted by name.
    pub fn actor_parameters(&self) -> Vec<(String, Tensor)> {
        named(&self.actor_vs)
    }

    /// The value's parameters (`value.fc1.weight`, …), sorted by name.
    pub fn value_parameters(&self) -> Vec<(String, Tensor)> {
        named(&self.value_vs)
    }

    /// Saves actor and value weights as two safetensors files (atomically each).
    pub fn save(&self, actor: &Path, value: &Path) -> Result<()> {
        gradplan_backend::save_safetensors(actor, &self.actor_parameters())?;
        Ok(gradplan_backend::save_safetensors(value, &self.value_parameters())?)
    }

    /// Loads what [`Behavior::save`] wrote into this (identically configured) behaviour.
    pub fn load(&mut self, actor: &Path, value: &Path) -> Result<()> {
        load_into(&self.actor_vs, actor)?;
        load_into(&self.value_vs, value)
    }

    /// Imagines H steps with the actor from `start` (detached here).
    ///
    /// # Shapes
    /// `start: [N, …]` → [`Imagined`] with `H = cfg.horizon`
    pub fn imagine(&self, model: &WorldModel, start: &RssmState) -> Imagined {
        let horizon = self.cfg.horizon;
        let mut state = start.detach();
        let mut features = Vec::with_capacity(horizon + 1);
        features.push(state.features());
        for _ in 0..horizon {
            let action = self.actor.dist(features.last().expect("pushed above")).sample();
            state = model.rssm.imagine_step(&state, &action, true);
            features.push(state.features());
        }
        let features = Tensor::stack(&features, 0); // [H + 1, N, F]
        let rewards = model.reward(&features.narrow(0, 1, horizon as i64)); // [H, N]
        let discounts = rewards.full_like(self.cfg.discount);
        Imagined { features, rewards, discounts }
    }

    /// Both losses of one imagination from `start` (module docs).
    ///
    /// # Shapes
    /// `start: [N, …]`
    pub fn losses(&self, model: &WorldModel, start: &RssmState) -> BehaviorLosses {
        let im = self.imagine(model, start);
        let horizon = self.cfg.horizon as i64;
        let values = self.value.forward(&im.features); // [H + 1, N]
        let returns =
            lambda_return(&im.rewards, &values.narrow(0, 1, horizon), &im.discounts, self.cfg.lambda);
        let weights = discount_weights(&im.discounts); // [H, N]
        let actor = -(&weights * &returns).mean(Kind::Float);
        let states = im.features.narrow(0, 0, horizon).detach(); // ŝ_0 … ŝ_{H−1}
        let error = self.value.forward(&states) - returns.detach();
        let value = (weights * error.square() * 0.5).mean(Kind::Float);
        BehaviorLosses { actor, value, mean_return: returns.mean(Kind::Float).detach() }
    }

    /// The deterministic action (the actor's mode) at `state`, `[N, A]`.
    pub fn act(&self, state: &RssmState) -> Tensor {
        self.actor.dist(&state.features()).mode()
    }
}

/// The actor's and value's optimisers (the world model's is the trainer's).
pub struct Optimizers {
    pub actor: Adam,
    pub value: Adam,
}

impl Optimizers {
    /// Adam over each network's own parameters, with `dreamer.*` learning rates, ε and clip.
    pub fn new(behavior: &Behavior) -> Optimizers {
        let c = &behavior.cfg;
        Optimizers {
            actor: Adam::new(behavior.actor_parameters(), c.actor_lr, c.adam_epsilon, c.grad_clip),
            value: Adam::new(behavior.value_parameters(), c.value_lr, c.adam_epsilon, c.grad_clip),
        }
    }

    pub fn save(&self, actor: &Path, value: &Path) -> Result<()> {
        self.actor.save(actor)?;
        Ok(self.value.save(value)?)
    }

    pub fn load(&mut self, actor: &Path, value: &Path) -> Result<()> {
        self.actor.load(actor)?;
        Ok(self.value.load(value)?)
    }
}

/// One actor step and one value step on imagination from the posterior states `posterior`
/// (`[T, B, …]`, flattened to `T·B` starts and detached). The world model is not changed.
pub fn update(
    behavior: &Behavior,
    optimizers: &mut Optimizers,
    model: &WorldModel,
    posterior: &RssmState,
) -> UpdateStats {
    let start = RssmState {
        belief: posterior.belief.detach().flatten(0, -2),
        stoch: posterior.stoch.detach().flatten(0, -2),
    };
    let losses = behavior.losses(model, &start);
    let (lr_actor, lr_value) = (behavior.cfg.actor_lr, behavior.cfg.value_lr);
    let actor_grad_norm = optimizers.actor.backward_step(&losses.actor, lr_actor);
    let value_grad_norm = optimizers.value.backward_step(&losses.value, lr_value);
    UpdateStats {
        actor_loss: losses.actor.double_value(&[]),
        value_loss: losses.value.double_value(&[]),
        actor_grad_norm,
        value_grad_norm,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gradplan_config::ModelConfig;
    use gradplan_model::ObsShape;

    fn tiny() -> (WorldModel, Behavior) {
        let model_cfg = ModelConfig {
            belief_size: 6,
            state_size: 3,
            hidden_size: 8,
            embedding_size: 8,
            ..Default::default()
        };
        let model = WorldModel::new(&model_cfg, ObsShape::State { dim: 4 }, 2, Device::Cpu).unwrap();
        let cfg =
            DreamerConfig { horizon: 4, hidden: 8, actor_layers: 2, value_layers: 2, ..Default::default() };
        let behavior = Behavior::for_model(&cfg, &model).unwrap();
        (model, behavior)
    }

    fn start(n: i64) -> RssmState {
        RssmState {
            belief: Tensor::randn([n, 6], (Kind::Float, Device::Cpu)),
            stoch: Tensor::randn([n, 3], (Kind::Float, Device::Cpu)),
        }
    }

    fn param(params: &[(String, Tensor)], name: &str) -> Tensor {
        params.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no {name}")).1.shallow_clone()
    }

    #[test]
    fn parameters_have_pytorch_names() {
        let _s = crate::seeded(0);
        let (_, b) = tiny();
        let names: Vec<String> = b.actor_parameters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "actor.fc1.bias",
                "actor.fc1.weight",
                "actor.fc2.bias",
                "actor.fc2.weight",
                "actor.fc3.bias",
                "actor.fc3.weight"
            ]
        );
        let value = b.value_parameters();
        assert_eq!(param(&value, "value.fc3.weight").size(), [1, 8]);
        // Initial std ≈ σ₀ = 5: the output layer is small at initialisation.
        let d = b.actor.dist(&Tensor::zeros([1, 9], (Kind::Float, Device::Cpu)));
        assert!((d.std.mean(Kind::Float).double_value(&[]) - 5.0).abs() < 1.0, "{}", d.std);
        assert!(d.mean.abs().max().double_value(&[]) <= 5.0);
    }

    /// The actor loss with a fixed noise draw: deterministic in φ.
    fn actor_loss(model: &WorldModel, b: &Behavior, s: &RssmState) -> f64 {
        tch::manual_seed(11);
        tch::no_grad(|| b.losses(model, s).actor.double_value(&[]))
    }

    #[test]
    fn actor_gradient_flows_through_imagination_and_matches_finite_differences() {
        let _s = crate::seeded(0);
        let (model, b) = tiny();
        let s = start(5);
        tch::manual_seed(11);
        let loss = b.losses(&model, &s).actor;
        let params = b.actor_parameters();
        let inputs: Vec<&Tensor> = params.iter().map(|(_, p)| p).collect();
        let grads = Tensor::run_backward(&[&loss], &inputs, false, false);
        // Every actor tensor gets a non-zero gradient, the first layer included.
        for ((name, _), g) in params.iter().zip(&grads) {
            assert!(g.defined() && g.abs().sum(Kind::Float).double_value(&[]) > 0.0, "{name}: no gradient");
        }
        // Central differences on one output bias of the mean (f32: ε = 1e-2, where the
        // truncation error is ~ε²·|L'''| and the rounding error ~1e-7·|L|/ε; 2 % agreement).
        let index = params.iter().position(|(n, _)| n == "actor.fc3.bias").unwrap();
        let analytic = grads[index].double_value(&[0]);
        let bias = &params[index].1;
        let eps = 1e-2;
        let nudge = |delta: f64| {
            tch::no_grad(|| {
                let _ = bias.get(0).g_add_scalar_(delta);
            })
        };
        nudge(eps);
        let plus = actor_loss(&model, &b, &s);
        nudge(-2.0 * eps);
        let minus = actor_loss(&model, &b, &s);
        nudge(eps);
        let numeric = (plus - minus) / (2.0 * eps);
        assert!(analytic.abs() > 1e-6, "gradient {analytic} too small to check");
        assert!(
            (analytic - numeric).abs() < 0.02 * analytic.abs() + 1e-5,
            "analytic {analytic} vs finite differences {numeric}"
        );
    }

    #[test]
    fn updates_lower_the_value_loss_and_leave_the_model_alone() {
        let _s = crate::seeded(0);
        let (model, b) = tiny();
        let before: Vec<Tensor> = model.named_parameters().iter().map(|(_, p)| p.copy()).collect();
        let posterior = RssmState {
            belief: Tensor::randn([3, 4, 6], (Kind::Float, Device::Cpu)),
            stoch: Tensor::randn([3, 4, 3], (Kind::Float, Device::Cpu)),
        };
        let mut opts = Optimizers::new(&b);
        let flat = RssmState { belief: posterior.belief.flatten(0, 1), stoch: posterior.stoch.flatten(0, 1) };
        let value_loss = |b: &Behavior| {
            tch::manual_seed(5);
            tch::no_grad(|| b.losses(&model, &flat).value.double_value(&[]))
        };
        // A value step on a fixed batch (and fixed noise) lowers its loss.
        let first = value_loss(&b);
        tch::manual_seed(5);
        let losses = b.losses(&model, &flat);
        opts.value.backward_step(&losses.value, 1e-3);
        let second = value_loss(&b);
        assert!(second < first, "value loss {first} -> {second}");

        // Full updates move the actor but never the world model, and leave it no gradients.
        let actor_before: Vec<Tensor> = b.actor_parameters().iter().map(|(_, p)| p.copy()).collect();
        for _ in 0..3 {
            let stats = update(&b, &mut opts, &model, &posterior);
            assert!(stats.actor_loss.is_finite() && stats.value_loss.is_finite());
            assert!(stats.actor_grad_norm > 0.0 && stats.value_grad_norm > 0.0);
        }
        for ((name, p), old) in model.named_parameters().iter().zip(&before) {
            assert!(p.equal(old), "{name} changed");
            assert!(
                !p.grad().defined() || p.grad().abs().sum(Kind::Float).double_value(&[]) == 0.0,
                "{name}"
            );
        }
        let moved = b.actor_parameters().iter().zip(&actor_before).any(|((_, p), old)| !p.equal(old));
        assert!(moved, "the actor did not move");
        assert_eq!(opts.actor.steps(), 3);
    }

    #[test]
    fn weights_and_optimisers_round_trip() {
        let _s = crate::seeded(0);
        let (model, b) = tiny();
        let mut opts = Optimizers::new(&b);
        let posterior = RssmState {
            belief: Tensor::randn([2, 2, 6], (Kind::Float, Device::Cpu)),
            stoch: Tensor::randn([2, 2, 3], (Kind::Float, Device::Cpu)),
        };
        update(&b, &mut opts, &model, &posterior);
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        b.save(&p("actor"), &p("value")).unwrap();
        opts.save(&p("actor_opt"), &p("value_opt")).unwrap();
        tch::manual_seed(1);
        let mut other = Behavior::for_model(&b.cfg, &model).unwrap();
        other.load(&p("actor"), &p("value")).unwrap();
        for ((n, x), (_, y)) in b.actor_parameters().iter().zip(other.actor_parameters()) {
            assert!(x.equal(&y), "{n}");
        }
        let mut other_opts = Optimizers::new(&other);
        other_opts.load(&p("actor_opt"), &p("value_opt")).unwrap();
        assert_eq!(other_opts.value.steps(), 1);
        // Another configuration's weights are refused.
        let wider = DreamerConfig { hidden: 9, ..b.cfg.clone() };
        let mut wrong = Behavior::for_model(&wider, &model).unwrap();
        assert!(wrong.load(&p("actor"), &p("value")).is_err());
    }
}
