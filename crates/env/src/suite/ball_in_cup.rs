//! dm_control's `suite/ball_in_cup.py`: catch.

use super::random::RandomState;
use super::SuiteTask;
use crate::Result;
use gradplan_mujoco::{Model, ObjKind, Physics};

pub(super) const TIME_LIMIT: f64 = 20.0;
pub(super) const CONTROL_TIMESTEP: f64 = 0.02;

pub(super) struct BallInCup {
    ball_x: usize,
    ball_z: usize,
    /// The target site inside the cup.
    target: usize,
    ball_body: usize,
    ball_geom: usize,
}

impl BallInCup {
    pub(super) fn new(model: &Model) -> Result<Self> {
        Ok(BallInCup {
            ball_x: model.joint_qpos_adr(model.id(ObjKind::Joint, "ball_x")?),
            ball_z: model.joint_qpos_adr(model.id(ObjKind::Joint, "ball_z")?),
            target: model.id(ObjKind::Site, "target")?,
            ball_body: model.id(ObjKind::Body, "ball")?,
            ball_geom: model.id(ObjKind::Geom, "ball")?,
        })
    }
}

impl SuiteTask for BallInCup {
    fn initialize_episode(&self, physics: &mut Physics, random: &mut RandomState) -> Result<()> {
        // Redraw the ball's position until it does not penetrate the cup (dm_control has no
        // attempt limit here either).
        loop {
            let x = random.uniform(-0.2, 0.2);
            physics.qpos_mut()[self.ball_x] = x;
            let z = random.uniform(0.2, 0.5);
            physics.qpos_mut()[self.ball_z] = z;
            physics.forward_without_actuation();
            if physics.ncon() == 0 {
                return Ok(());
            }
        }
    }

    fn observation(&self, physics: &Physics) -> Vec<f64> {
        let mut obs = physics.qpos().to_vec();
        obs.extend_from_slice(physics.qvel());
        obs
    }

    fn reward(&self, physics: &Physics) -> f64 {
        let target = physics.site_xpos(self.target);
        let ball = physics.xpos(self.ball_body);
        let target_size = physics.model().site_size(self.target);
        let ball_size = physics.model().geom_size(self.ball_geom)[0];
        let inside = [(0, 0), (2, 2)]
            .iter()
            .all(|&(axis, size_axis)| (target[axis] - ball[axis]).abs() < target_size[size_axis] - ball_size);
        if inside {
            1.0
        } else {
            0.0
        }
    }
}
