//! dm_control's `utils/rewards.py`: `tolerance` and its sigmoids, with numpy's order of
//! operations kept so that rewards are bit-identical.
//!
//! One numpy detail decides the last bit: `y ** 2` is `y * y` when `y` is an array but the
//! C library's `pow(y, 2.0)` when it is a numpy scalar, and glibc's `pow` is not always the
//! correctly rounded square. dm_control passes both (a joint position is a scalar, a slice
//! of `qvel` an array), so [`tolerance`] is the scalar path and [`tolerance_array`] the
//! array path.

/// How `tolerance` falls off outside the bounds; `x` is the distance to the nearest bound in
/// units of the margin, and every sigmoid is 1 at `x = 0` and `value_at_1` at `x = 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sigmoid {
    Gaussian,
    Hyperbolic,
    LongTail,
    Reciprocal,
    Cosine,
    Linear,
    Quadratic,
    TanhSquared,
}

/// The inclusive target interval of `tolerance`; equal ends ask for an exact value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    pub lower: f64,
    pub upper: f64,
}

impl Bounds {
    /// The exact target 0, dm_control's default `bounds=(0.0, 0.0)`.
    pub const ZERO: Bounds = Bounds { lower: 0.0, upper: 0.0 };
}

/// dm_control's default `value_at_margin`.
pub const DEFAULT_VALUE_AT_MARGIN: f64 = 0.1;

/// How numpy squares: see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Square {
    /// Arrays: `np.square`, one correctly rounded product.
    Product,
    /// numpy scalars: `pow(y, 2.0)` from the C library.
    Pow,
}

impl Square {
    fn of(self, y: f64) -> f64 {
        match self {
            Square::Product => y * y,
            // Hidden from the optimiser, which would otherwise turn pow(y, 2) into y * y.
            Square::Pow => y.powf(std::hint::black_box(2.0)),
        }
    }
}

/// dm_control's `_sigmoids(x, value_at_1, sigmoid)` on a numpy scalar.
///
/// # Panics
/// If `value_at_1` is outside the range the sigmoid allows (`[0, 1)` for cosine, linear and
/// quadratic, `(0, 1)` otherwise); tasks pass constants, so this is a programming error.
pub fn sigmoid(x: f64, value_at_1: f64, kind: Sigmoid) -> f64 {
    sigmoid_with(x, value_at_1, kind, Square::Pow)
}

fn sigmoid_with(x: f64, value_at_1: f64, kind: Sigmoid, square: Square) -> f64 {
    let zero_allowed = matches!(kind, Sigmoid::Cosine | Sigmoid::Linear | Sigmoid::Quadratic);
    assert!(
        value_at_1 < 1.0 && (value_at_1 > 0.0 || (zero_allowed && value_at_1 == 0.0)),
        "value_at_1 = {value_at_1} is out of range for {kind:?}"
    );
    match kind {
        Sigmoid::Gaussian => {
            let scale = (-2.0 * value_at_1.ln()).sqrt();
            (-0.5 * square.of(x * scale)).exp()
        }
        Sigmoid::Hyperbolic => {
            let scale = (1.0 / value_at_1).acosh();
            1.0 / (x * scale).cosh()
        }
        Sigmoid::LongTail => {
            let scale = (1.0 / value_at_1 - 1.0).sqrt();
            1.0 / (square.of(x * scale) + 1.0)
        }
        Sigmoid::Reciprocal => {
            let scale = 1.0 / value_at_1 - 1.0;
            1.0 / (x.abs() * scale + 1.0)
        }
        Sigmoid::Cosine => {
            let scale = (2.0 * value_at_1 - 1.0).acos() / std::f64::consts::PI;
            let scaled = x * scale;
            if scaled.abs() < 1.0 {
                (1.0 + (std::f64::consts::PI * scaled).cos()) / 2.0
            } else {
                0.0
            }
        }
        Sigmoid::Linear => {
            let scaled = x * (1.0 - value_at_1);
            if scaled.abs() < 1.0 {
                1.0 - scaled
            } else {
                0.0
            }
        }
        Sigmoid::Quadratic => {
            let scaled = x * (1.0 - value_at_1).sqrt();
            if scaled.abs() < 1.0 {
                1.0 - square.of(scaled)
            } else {
                0.0
            }
        }
        Sigmoid::TanhSquared => {
            let scale = (1.0 - value_at_1).sqrt().atanh();
            1.0 - square.of((x * scale).tanh())
        }
    }
}

/// How `tolerance` treats values outside the bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Margin {
    /// Distance from the nearest bound at which the value has fallen to `value_at_margin`;
    /// 0 makes the reward an indicator of the bounds.
    pub margin: f64,
    pub sigmoid: Sigmoid,
    pub value_at_margin: f64,
}

impl Margin {
    /// No margin: 1 inside the bounds, 0 outside.
    pub const NONE: Margin =
        Margin { margin: 0.0, sigmoid: Sigmoid::Gaussian, value_at_margin: DEFAULT_VALUE_AT_MARGIN };

    /// A Gaussian fall-off reaching 0.1 at `margin`, dm_control's default shape.
    pub fn gaussian(margin: f64) -> Margin {
        Margin { margin, sigmoid: Sigmoid::Gaussian, value_at_margin: DEFAULT_VALUE_AT_MARGIN }
    }
}

/// dm_control's `rewards.tolerance(x, bounds, margin, sigmoid, value_at_margin)` for a
/// numpy scalar `x`: 1 inside the bounds, falling off with the distance to the nearest bound
/// outside them.
///
/// # Panics
/// If `bounds.lower > bounds.upper` or the margin is negative (constants in task code).
pub fn tolerance(x: f64, bounds: Bounds, margin: Margin) -> f64 {
    tolerance_with(x, bounds, margin, Square::Pow)
}

/// `rewards.tolerance` of a numpy array, element by element.
///
/// # Panics
/// As [`tolerance`].
pub fn tolerance_array(xs: &[f64], bounds: Bounds, margin: Margin) -> Vec<f64> {
    xs.iter().map(|&x| tolerance_with(x, bounds, margin, Square::Product)).collect()
}

fn tolerance_with(x: f64, bounds: Bounds, margin: Margin, square: Square) -> f64 {
    assert!(bounds.lower <= bounds.upper, "lower bound must be <= upper bound");
    assert!(margin.margin >= 0.0, "margin must be non-negative");
    let in_bounds = bounds.lower <= x && x <= bounds.upper;
    if in_bounds {
        return 1.0;
    }
    if margin.margin == 0.0 {
        return 0.0;
    }
    let distance = if x < bounds.lower { bounds.lower - x } else { x - bounds.upper };
    let d = distance / margin.margin;
    sigmoid_with(d, margin.value_at_margin, margin.sigmoid, square)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sigmoid_is_one_at_zero_and_value_at_one() {
        for kind in [
            Sigmoid::Gaussian,
            Sigmoid::Hyperbolic,
            Sigmoid::LongTail,
            Sigmoid::Reciprocal,
            Sigmoid::Cosine,
            Sigmoid::Linear,
            Sigmoid::Quadratic,
            Sigmoid::TanhSquared,
        ] {
            assert_eq!(sigmoid(0.0, 0.1, kind), 1.0, "{kind:?}");
            assert!((sigmoid(1.0, 0.1, kind) - 0.1).abs() < 1e-12, "{kind:?}");
        }
    }

    /// The value found in a walker-walk episode where numpy's scalar `** 2` (glibc `pow`)
    /// and `np.square` differ in the last bit; printed by numpy 2.4 with glibc 2.36 (Debian
    /// 12, the platform scripts/setup.sh targets).
    #[test]
    fn scalar_and_array_squares_follow_numpy() {
        let y: f64 = 1.513782277003368 * 2.145966026289347;
        assert_eq!(Square::Product.of(y), 10.552916869342074);
        assert_eq!(Square::Pow.of(y), 10.552916869342075);
    }

    #[test]
    fn tolerance_is_an_indicator_without_margin() {
        let b = Bounds { lower: -0.25, upper: 0.25 };
        assert_eq!(tolerance(0.25, b, Margin::NONE), 1.0);
        assert_eq!(tolerance(0.2500001, b, Margin::NONE), 0.0);
        assert!((tolerance(2.0, Bounds::ZERO, Margin::gaussian(2.0)) - 0.1).abs() < 1e-12);
        assert!((tolerance(-2.0, Bounds::ZERO, Margin::gaussian(2.0)) - 0.1).abs() < 1e-12);
    }
}
