//! dm_control's `suite/cheetah.py`: run.

use super::random::RandomState;
use super::rewards::{tolerance, Bounds, Margin, Sigmoid};
use super::{legacy_step, SuiteTask};
use crate::{Error, Result};
use gradplan_mujoco::{Model, ObjKind, Physics};

pub(super) const TIME_LIMIT: f64 = 10.0;
/// `_RUN_SPEED`, m/s of the torso's subtree.
const RUN_SPEED: f64 = 10.0;
/// Physics steps the initial pose is left to settle for.
const SETTLE_STEPS: usize = 200;

pub(super) struct Cheetah {
    /// `sensordata` index of `torso_subtreelinvel`'s x component.
    speed: usize,
}

impl Cheetah {
    pub(super) fn new(model: &Model) -> Result<Self> {
        if model.nq() != model.njnt() {
            return Err(Error::Backend("cheetah.xml: expected one coordinate per joint".into()));
        }
        let sensor = model.id(ObjKind::Sensor, "torso_subtreelinvel")?;
        Ok(Cheetah { speed: model.sensor_span(sensor).start })
    }
}

impl SuiteTask for Cheetah {
    fn initialize_episode(&self, physics: &mut Physics, random: &mut RandomState) -> Result<()> {
        // qpos[is_limited] = uniform(lower, upper): one draw per limited joint, in order.
        for joint in 0..physics.model().njnt() {
            if let Some([low, high]) = physics.model().joint_range(joint) {
                physics.qpos_mut()[joint] = random.uniform(low, high);
            }
        }
        legacy_step(physics, SETTLE_STEPS)?;
        physics.set_time(0.0);
        Ok(())
    }

    fn observation(&self, physics: &Physics) -> Vec<f64> {
        // position: qpos without the root's x; velocity: qvel.
        let mut obs = physics.qpos()[1..].to_vec();
        obs.extend_from_slice(physics.qvel());
        obs
    }

    fn reward(&self, physics: &Physics) -> f64 {
        let margin = Margin { margin: RUN_SPEED, sigmoid: Sigmoid::Linear, value_at_margin: 0.0 };
        tolerance(physics.sensordata()[self.speed], Bounds { lower: RUN_SPEED, upper: f64::INFINITY }, margin)
    }
}
