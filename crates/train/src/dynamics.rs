//! The world model as the planners see it: [`LatentDynamics`] over RSSM states.
//!
//! This adapter is the only place where planning meets the RSSM; the planners themselves
//! never name it (STYLE: planners see a trait).

use gradplan_dreamer::Behavior;
use gradplan_model::{DataSupport, RssmState, WorldModel};
use gradplan_plan::LatentDynamics;
use std::rc::Rc;
use tch::{Kind, Tensor};

/// Imagined dynamics of a trained world model.
pub struct ModelDynamics {
    pub model: Rc<WorldModel>,
    /// Sample imagined stochastic states with the reparameterisation trick (PlaNet's
    /// planner does) rather than taking the prior mean.
    pub sample: bool,
    /// Dreamer's actor and value, when the run trained them: the planners' `policy()` (the
    /// actor's mode) and `value()`.
    pub behavior: Option<Rc<Behavior>>,
    /// The measure of data support fitted to this model (`gradplan ensemble`: the
    /// disagreement ensemble, the behaviour prior or the state density), the planners'
    /// `uncertainty()`.
    pub support: Option<Rc<dyn DataSupport>>,
    low: Tensor,
    high: Tensor,
}

impl ModelDynamics {
    /// `low`/`high`: the environment's action bounds, `[A]` each.
    pub fn new(
        model: Rc<WorldModel>,
        behavior: Option<Rc<Behavior>>,
        sample: bool,
        low: &[f32],
        high: &[f32],
    ) -> Self {
        let device = model.device();
        ModelDynamics {
            model,
            sample,
            behavior,
            support: None,
            low: Tensor::from_slice(low).to_device(device),
            high: Tensor::from_slice(high).to_device(device),
        }
    }
}

impl LatentDynamics for ModelDynamics {
    type State = RssmState;

    fn action_dim(&self) -> i64 {
        self.model.action_dim
    }

    fn action_low(&self) -> Tensor {
        self.low.shallow_clone()
    }

    fn action_high(&self) -> Tensor {
        self.high.shallow_clone()
    }

    fn expand(&self, state: &RssmState, n: i64) -> RssmState {
        RssmState { belief: state.belief.expand([n, -1], false), stoch: state.stoch.expand([n, -1], false) }
    }

    fn step(&self, state: &RssmState, action: &Tensor) -> RssmState {
        self.model.rssm.imagine_step(state, &action.to_kind(Kind::Float), self.sample)
    }

    fn reward(&self, state: &RssmState) -> Tensor {
        self.model.reward(&state.features())
    }

    fn value(&self, state: &RssmState) -> Option<Tensor> {
        Some(self.behavior.as_ref()?.value.forward(&state.features()))
    }

    fn policy(&self, state: &RssmState) -> Option<Tensor> {
        Some(self.behavior.as_ref()?.act(state))
    }

    /// The fitted measure of `(h_t, s_t, a_t)` in units of its calibrated edge of the
    /// replay's data.
    fn uncertainty(&self, state: &RssmState, action: &Tensor) -> Option<Tensor> {
        let support = self.support.as_ref()?;
        Some(support.relative(&state.features(), &action.to_kind(Kind::Float)))
    }
}
