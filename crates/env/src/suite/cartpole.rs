//! dm_control's `suite/cartpole.py`: the `Balance` task in its swing-up and balance, dense
//! and sparse variants.

use super::random::RandomState;
use super::rewards::{tolerance, tolerance_array, Bounds, Margin, Sigmoid};
use super::SuiteTask;
use crate::Result;
use gradplan_mujoco::{Model, ObjKind, Physics};
use std::f64::consts::PI;

/// `_DEFAULT_TIME_LIMIT` in seconds (1000 steps of 0.01 s).
pub(super) const TIME_LIMIT: f64 = 10.0;

/// Which of the four `Balance` tasks.
#[derive(Debug, Clone, Copy)]
pub(super) struct Variant {
    /// Start hanging down (swingup) rather than near upright (balance).
    pub swing_up: bool,
    /// Reward 1 only in the target region rather than the smooth product.
    pub sparse: bool,
}

/// `Balance(swing_up, sparse)` with the model's indices resolved once.
pub(super) struct Balance {
    variant: Variant,
    /// qpos index of the `slider` joint (the cart position).
    slider: usize,
    /// qpos index of `hinge_1`.
    hinge: usize,
    /// The pole bodies, `named.data.xmat[2:]`: every body after the world and the cart.
    poles: std::ops::Range<usize>,
}

impl Balance {
    pub(super) fn new(model: &Model, variant: Variant) -> Result<Self> {
        let slider = model.joint_qpos_adr(model.id(ObjKind::Joint, "slider")?);
        let hinge = model.joint_qpos_adr(model.id(ObjKind::Joint, "hinge_1")?);
        Ok(Balance { variant, slider, hinge, poles: 2..model.nbody() })
    }

    fn cart_position(&self, physics: &Physics) -> f64 {
        physics.qpos()[self.slider]
    }

    /// `pole_angle_cosine`: the zz entry of each pole's orientation.
    fn pole_angle_cosines(&self, physics: &Physics) -> Vec<f64> {
        self.poles.clone().map(|b| physics.xmat(b)[8]).collect()
    }
}

/// numpy's `mean` of a short array: the sum in order, then one division.
fn mean(values: &[f64]) -> f64 {
    values.iter().skip(1).fold(values[0], |acc, v| acc + v) / values.len() as f64
}

impl SuiteTask for Balance {
    fn initialize_episode(&self, physics: &mut Physics, random: &mut RandomState) -> Result<()> {
        let nv = physics.model().nv();
        if self.variant.swing_up {
            let slider = 0.01 * random.randn();
            let hinge = PI + 0.01 * random.randn();
            let rest = random.randn_n(nv - 2);
            let qpos = physics.qpos_mut();
            qpos[self.slider] = slider;
            qpos[self.hinge] = hinge;
            for (q, r) in qpos[2..].iter_mut().zip(rest) {
                *q = 0.1 * r;
            }
        } else {
            let slider = random.uniform(-0.1, 0.1);
            let rest = random.uniform_n(-0.034, 0.034, nv - 1);
            let qpos = physics.qpos_mut();
            qpos[self.slider] = slider;
            qpos[1..].copy_from_slice(&rest);
        }
        let qvel = random.randn_n(nv);
        for (v, r) in physics.qvel_mut().iter_mut().zip(qvel) {
            *v = 0.01 * r;
        }
        Ok(())
    }

    fn observation(&self, physics: &Physics) -> Vec<f64> {
        // position: (cart position, then zz and xz, entries 8 and 2 of the row-major xmat, of
        // each pole), then velocity.
        let mut obs = vec![self.cart_position(physics)];
        for b in self.poles.clone() {
            let r = physics.xmat(b);
            obs.extend([r[8], r[2]]);
        }
        obs.extend_from_slice(physics.qvel());
        obs
    }

    fn reward(&self, physics: &Physics) -> f64 {
        let cart = self.cart_position(physics);
        let cosines = self.pole_angle_cosines(physics);
        if self.variant.sparse {
            let cart_in_bounds = tolerance(cart, Bounds { lower: -0.25, upper: 0.25 }, Margin::NONE);
            let angle_in_bounds =
                tolerance_array(&cosines, Bounds { lower: 0.995, upper: 1.0 }, Margin::NONE)
                    .into_iter()
                    .fold(1.0, |acc, v| acc * v);
            cart_in_bounds * angle_in_bounds
        } else {
            let upright: Vec<f64> = cosines.iter().map(|c| (c + 1.0) / 2.0).collect();
            let centered = (1.0 + tolerance(cart, Bounds::ZERO, Margin::gaussian(2.0))) / 2.0;
            let control_margin = Margin { margin: 1.0, sigmoid: Sigmoid::Quadratic, value_at_margin: 0.0 };
            // physics.control() and angular_vel() are arrays; cart_position() a scalar.
            let small_control =
                (4.0 + tolerance_array(physics.ctrl(), Bounds::ZERO, control_margin)[0]) / 5.0;
            let small_velocity = tolerance_array(&physics.qvel()[1..], Bounds::ZERO, Margin::gaussian(5.0))
                .into_iter()
                .fold(f64::INFINITY, f64::min);
            let small_velocity = (1.0 + small_velocity) / 2.0;
            mean(&upright) * small_control * small_velocity * centered
        }
    }
}
