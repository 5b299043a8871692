//! dm_control's `suite/utils/randomizers.py`, for the joint kinds the ported tasks have.

use super::random::RandomState;
use crate::{Error, Result};
use gradplan_mujoco::{JointKind, Physics};
use std::f64::consts::PI;

/// `randomize_limited_and_rotational_joints`: each joint in id order, limited hinges and
/// slides uniform in their range, unlimited hinges uniform in [-π, π], unlimited slides
/// left alone. Ball and free joints (whose quaternions dm_control normalises with numpy's
/// BLAS `norm`) are refused: no ported task has one.
pub(super) fn randomize_limited_and_rotational_joints(
    physics: &mut Physics,
    random: &mut RandomState,
) -> Result<()> {
    for joint in 0..physics.model().njnt() {
        let adr = physics.model().joint_qpos_adr(joint);
        let value = match (physics.model().joint_kind(joint), physics.model().joint_range(joint)) {
            (JointKind::Hinge | JointKind::Slide, Some([low, high])) => Some(random.uniform(low, high)),
            (JointKind::Hinge, None) => Some(random.uniform(-PI, PI)),
            (JointKind::Slide, None) => None,
            (kind @ (JointKind::Ball | JointKind::Free), _) => {
                return Err(Error::Backend(format!(
                    "the native backend cannot randomise {kind:?} joints yet; use `env.backend = \"dmc\"`"
                )))
            }
        };
        if let Some(v) = value {
            physics.qpos_mut()[adr] = v;
        }
    }
    Ok(())
}
