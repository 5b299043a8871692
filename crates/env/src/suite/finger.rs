//! dm_control's `suite/finger.py`: spin.

use super::random::RandomState;
use super::randomizers::randomize_limited_and_rotational_joints;
use super::SuiteTask;
use crate::{Error, Result};
use gradplan_mujoco::{Model, ObjKind, Physics};

pub(super) const TIME_LIMIT: f64 = 20.0;
pub(super) const CONTROL_TIMESTEP: f64 = 0.02;
/// `_SPIN_VELOCITY`: the hinge speed (rad/s, clockwise) that earns the reward.
const SPIN_VELOCITY: f64 = 15.0;
/// The spinner's damping during spin episodes.
const HINGE_DAMPING: f64 = 0.03;
/// Collision-free initial poses tried before giving up, as dm_control.
const MAX_ATTEMPTS: usize = 1000;

/// `sensordata` indices of the sensors the observation reads.
pub(super) struct Spin {
    hinge_dof: usize,
    /// The `target` and `tip` sites, hidden in spin's frames.
    target_site: usize,
    tip_site: usize,
    proximal: usize,
    distal: usize,
    tip: usize,
    spinner: usize,
    proximal_velocity: usize,
    distal_velocity: usize,
    hinge_velocity: usize,
    touchtop: usize,
    touchbottom: usize,
}

impl Spin {
    pub(super) fn new(model: &Model) -> Result<Self> {
        let at =
            |name: &str| -> Result<usize> { Ok(model.sensor_span(model.id(ObjKind::Sensor, name)?).start) };
        Ok(Spin {
            hinge_dof: model.joint_dof_adr(model.id(ObjKind::Joint, "hinge")?),
            target_site: model.id(ObjKind::Site, "target")?,
            tip_site: model.id(ObjKind::Site, "tip")?,
            proximal: at("proximal")?,
            distal: at("distal")?,
            tip: at("tip")?,
            spinner: at("spinner")?,
            proximal_velocity: at("proximal_velocity")?,
            distal_velocity: at("distal_velocity")?,
            hinge_velocity: at("hinge_velocity")?,
            touchtop: at("touchtop")?,
            touchbottom: at("touchbottom")?,
        })
    }
}

impl SuiteTask for Spin {
    fn initialize_episode(&self, physics: &mut Physics, random: &mut RandomState) -> Result<()> {
        // Spin has no target: dm_control hides the target and tip sites in its frames.
        physics.model_params().set_site_alpha(self.target_site, 0.0);
        physics.model_params().set_site_alpha(self.tip_site, 0.0);
        physics.model_params().set_dof_damping(self.hinge_dof, HINGE_DAMPING);
        for _ in 0..MAX_ATTEMPTS {
            randomize_limited_and_rotational_joints(physics, random)?;
            physics.forward_without_actuation();
            if physics.ncon() == 0 {
                return Ok(());
            }
        }
        Err(Error::Backend(format!("finger-spin: no collision-free state after {MAX_ATTEMPTS} attempts")))
    }

    fn observation(&self, physics: &Physics) -> Vec<f64> {
        let s = physics.sensordata();
        // position: proximal, distal, then the tip relative to the spinner (x, z);
        // velocity: proximal, distal, hinge; touch: log1p of the two touch sensors.
        vec![
            s[self.proximal],
            s[self.distal],
            s[self.tip] - s[self.spinner],
            s[self.tip + 2] - s[self.spinner + 2],
            s[self.proximal_velocity],
            s[self.distal_velocity],
            s[self.hinge_velocity],
            s[self.touchtop].ln_1p(),
            s[self.touchbottom].ln_1p(),
        ]
    }

    fn reward(&self, physics: &Physics) -> f64 {
        if physics.sensordata()[self.hinge_velocity] <= -SPIN_VELOCITY {
            1.0
        } else {
            0.0
        }
    }
}
