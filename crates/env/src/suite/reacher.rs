//! dm_control's `suite/reacher.py`: easy and hard.

use super::random::RandomState;
use super::randomizers::randomize_limited_and_rotational_joints;
use super::rewards::{tolerance, Bounds, Margin};
use super::SuiteTask;
use crate::Result;
use gradplan_mujoco::{Model, ObjKind, Physics};
use std::f64::consts::PI;

pub(super) const TIME_LIMIT: f64 = 20.0;
/// `_BIG_TARGET`, the easy task's target radius.
pub(super) const BIG_TARGET: f64 = 0.05;
/// `_SMALL_TARGET`, the hard task's.
pub(super) const SMALL_TARGET: f64 = 0.015;

pub(super) struct Reacher {
    target_size: f64,
    target: usize,
    finger: usize,
}

impl Reacher {
    pub(super) fn new(model: &Model, target_size: f64) -> Result<Self> {
        Ok(Reacher {
            target_size,
            target: model.id(ObjKind::Geom, "target")?,
            finger: model.id(ObjKind::Geom, "finger")?,
        })
    }

    /// `finger_to_target`: x and y of the target's position minus the finger's.
    fn finger_to_target(&self, physics: &Physics) -> [f64; 2] {
        let (t, f) = (physics.geom_xpos(self.target), physics.geom_xpos(self.finger));
        [t[0] - f[0], t[1] - f[1]]
    }
}

impl SuiteTask for Reacher {
    fn initialize_episode(&self, physics: &mut Physics, random: &mut RandomState) -> Result<()> {
        let mut model = physics.model_params();
        let mut size = model.geom_size(self.target);
        size[0] = self.target_size;
        model.set_geom_size(self.target, size);
        randomize_limited_and_rotational_joints(physics, random)?;
        let angle = random.uniform(0.0, 2.0 * PI);
        let radius = random.uniform(0.05, 0.20);
        let mut model = physics.model_params();
        let mut pos = model.geom_pos(self.target);
        pos[0] = radius * angle.sin();
        pos[1] = radius * angle.cos();
        model.set_geom_pos(self.target, pos);
        Ok(())
    }

    fn observation(&self, physics: &Physics) -> Vec<f64> {
        // position: qpos; to_target; velocity: qvel.
        let mut obs = physics.qpos().to_vec();
        obs.extend(self.finger_to_target(physics));
        obs.extend_from_slice(physics.qvel());
        obs
    }

    fn reward(&self, physics: &Physics) -> f64 {
        let model = physics.model();
        let radii = model.geom_size(self.target)[0] + model.geom_size(self.finger)[0];
        let [dx, dy] = self.finger_to_target(physics);
        let distance = (dx * dx + dy * dy).sqrt();
        tolerance(distance, Bounds { lower: 0.0, upper: radii }, Margin::NONE)
    }
}
