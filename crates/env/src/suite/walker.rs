//! dm_control's `suite/walker.py`: stand, walk and run.

use super::random::RandomState;
use super::randomizers::randomize_limited_and_rotational_joints;
use super::rewards::{tolerance, Bounds, Margin, Sigmoid};
use super::SuiteTask;
use crate::Result;
use gradplan_mujoco::{Model, ObjKind, Physics};

pub(super) const TIME_LIMIT: f64 = 25.0;
pub(super) const CONTROL_TIMESTEP: f64 = 0.025;
/// `_STAND_HEIGHT`: the torso height counted as standing.
const STAND_HEIGHT: f64 = 1.2;
pub(super) const WALK_SPEED: f64 = 1.0;
pub(super) const RUN_SPEED: f64 = 8.0;

pub(super) struct PlanarWalker {
    /// Target horizontal speed; 0 rewards standing only.
    move_speed: f64,
    torso: usize,
    /// `sensordata` index of `torso_subtreelinvel`'s x component.
    speed: usize,
}

impl PlanarWalker {
    pub(super) fn new(model: &Model, move_speed: f64) -> Result<Self> {
        let sensor = model.id(ObjKind::Sensor, "torso_subtreelinvel")?;
        Ok(PlanarWalker {
            move_speed,
            torso: model.id(ObjKind::Body, "torso")?,
            speed: model.sensor_span(sensor).start,
        })
    }
}

impl SuiteTask for PlanarWalker {
    fn initialize_episode(&self, physics: &mut Physics, random: &mut RandomState) -> Result<()> {
        randomize_limited_and_rotational_joints(physics, random)
    }

    fn observation(&self, physics: &Physics) -> Vec<f64> {
        // orientations: xx and xz (row-major entries 0 and 2) of every body but the world;
        // height: the torso's z; velocity: qvel.
        let mut obs = Vec::new();
        for body in 1..physics.model().nbody() {
            let r = physics.xmat(body);
            obs.extend([r[0], r[2]]);
        }
        obs.push(physics.xpos(self.torso)[2]);
        obs.extend_from_slice(physics.qvel());
        obs
    }

    fn reward(&self, physics: &Physics) -> f64 {
        let height = physics.xpos(self.torso)[2];
        let standing = tolerance(
            height,
            Bounds { lower: STAND_HEIGHT, upper: f64::INFINITY },
            Margin::gaussian(STAND_HEIGHT / 2.0),
        );
        let upright = (1.0 + physics.xmat(self.torso)[8]) / 2.0;
        let stand_reward = (3.0 * standing + upright) / 4.0;
        if self.move_speed == 0.0 {
            return stand_reward;
        }
        let margin = Margin { margin: self.move_speed / 2.0, sigmoid: Sigmoid::Linear, value_at_margin: 0.5 };
        let move_reward = tolerance(
            physics.sensordata()[self.speed],
            Bounds { lower: self.move_speed, upper: f64::INFINITY },
            margin,
        );
        stand_reward * (5.0 * move_reward + 1.0) / 6.0
    }
}
