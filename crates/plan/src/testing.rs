//! Dynamics with a known optimum, and an auditing wrapper, for testing planners (this crate's
//! tests, and other crates' behind the `testing` feature).
//!
//! [`LinearQuadratic`] is `x_{t+1} = A x_t + B a_t` with reward `r = −x'Qx − ρ|a|²`, where the
//! action cost is on the action that led to the state (the state carries it, as an RSSM state
//! carries what it needs). Its finite-horizon return is a concave quadratic in the stacked
//! actions, so [`LinearQuadratic::optimum`] solves for the best sequence exactly, in f64 and
//! independently of tch.

use crate::{LatentDynamics, Objective};
use std::cell::Cell;
use tch::{Device, Kind, Tensor};

/// A linear system with quadratic reward and an optional quadratic terminal value.
#[derive(Debug)]
pub struct LinearQuadratic {
    n: usize,
    m: usize,
    /// A, `n × n`, row-major.
    a: Vec<f64>,
    /// B, `n × m`, row-major.
    b: Vec<f64>,
    /// Q, `n × n`, symmetric positive definite, row-major.
    q: Vec<f64>,
    /// ρ, the action cost.
    rho: f64,
    /// p of the terminal value `v(x) = −p·x'x`; `None`: the model has no value.
    value: Option<f64>,
    /// K of the linear policy prior `a = K x` (`m × n`, row-major); `None`: no policy.
    policy: Option<Vec<f64>>,
    /// c of the uncertainty `u(x, a) = |a|²/c²` (1 on the sphere |a| = c); `None`: none.
    uncertainty_radius: Option<f64>,
    low: Vec<f64>,
    high: Vec<f64>,
    kind: Kind,
    device: Device,
}

/// A batch of [`LinearQuadratic`] states.
#[derive(Debug)]
pub struct LqState {
    /// x, `[B, n]`
    pub x: Tensor,
    /// The action that led to x (zero at the start), `[B, m]`.
    pub action: Tensor,
}

/// The unconstrained best action sequence of a [`LinearQuadratic`] problem.
#[derive(Debug, Clone)]
pub struct LqOptimum {
    /// a*_{0:H}, time-major, `H·m` values.
    pub actions: Vec<f64>,
    /// R(a*), eq. 3.
    pub ret: f64,
}

impl LinearQuadratic {
    /// A start state whose optimal sequences (horizons up to 12, γ = 1) stay inside [−1, 1]
    /// with margin (largest |a*| ≈ 0.72, at H = 12) for [`LinearQuadratic::example`].
    pub const EXAMPLE_START: [f64; 3] = [0.6, -0.3, 0.5];

    /// A 3-state, 2-action system: a lightly damped, coupled linear system with one marginally
    /// stable mode, so the optimal plan uses the whole horizon. Bounds [−1, 1], no value.
    pub fn example(kind: Kind) -> Self {
        LinearQuadratic {
            n: 3,
            m: 2,
            a: vec![1.0, 0.1, 0.0, 0.0, 0.95, 0.1, 0.05, 0.0, 0.9],
            b: vec![0.0, 0.05, 0.25, 0.0, 0.0, 0.2],
            q: vec![1.0, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 1.0],
            rho: 0.5,
            value: None,
            policy: None,
            uncertainty_radius: None,
            low: vec![-1.0; 2],
            high: vec![1.0; 2],
            kind,
            device: Device::Cpu,
        }
    }

    /// The same system with action bounds `[low, high]` in every dimension.
    pub fn with_bounds(mut self, low: f64, high: f64) -> Self {
        self.low = vec![low; self.m];
        self.high = vec![high; self.m];
        self
    }

    /// The same system with its tensors on `device` (planners must follow it).
    pub fn with_device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// The same system with a terminal value `v(x) = −p·x'x`.
    pub fn with_value(mut self, p: f64) -> Self {
        self.value = Some(p);
        self
    }

    /// The same system with a linear policy prior `a = K x`; `gain` is K, `m × n`, row-major.
    pub fn with_policy(mut self, gain: &[f64]) -> Self {
        assert_eq!(gain.len(), self.m * self.n, "policy gain");
        self.policy = Some(gain.to_vec());
        self
    }

    /// The same system with action cost ρ.
    pub fn with_action_cost(mut self, rho: f64) -> Self {
        self.rho = rho;
        self
    }

    /// The same system with an uncertainty `u(x, a) = |a|²/c²`: a model that trusts small
    /// actions, as a world model trusts the actions its data holds.
    pub fn with_uncertainty(mut self, radius: f64) -> Self {
        self.uncertainty_radius = Some(radius);
        self
    }

    /// `x0` as a `[1, n]` start state.
    pub fn start(&self, x0: &[f64]) -> LqState {
        assert_eq!(x0.len(), self.n, "start state");
        LqState {
            x: self.tensor(x0, [1, self.n as i64]),
            action: Tensor::zeros([1, self.m as i64], (self.kind, self.device)),
        }
    }

    /// R of eq. 3 for `actions` (time-major, `H·m` values), simulated in plain f64.
    pub fn simulate_return(&self, x0: &[f64], actions: &[f64], objective: Objective) -> f64 {
        let mut x = x0.to_vec();
        let mut total = 0.0;
        let mut weight = 1.0;
        for a in actions.chunks(self.m) {
            let ax = mat_vec(&self.a, self.n, &x);
            let ba = mat_vec(&self.b, self.m, a);
            x = ax.iter().zip(&ba).map(|(p, q)| p + q).collect();
            total -= weight * (dot(&x, &mat_vec(&self.q, self.n, &x)) + self.rho * dot(a, a));
            weight *= objective.discount;
        }
        match self.value {
            Some(p) if objective.use_value => total - weight * p * dot(&x, &x),
            _ => total,
        }
    }

    /// The best sequence ignoring the action bounds: `u* = M⁻¹c` from the normal equations of
    /// the concave quadratic `R(u)`, with `x_t = F_t x0 + G_t u`.
    pub fn optimum(&self, x0: &[f64], horizon: usize, objective: Objective) -> LqOptimum {
        let (n, m, hm) = (self.n, self.m, horizon * self.m);
        let mut g = vec![0.0; n * hm]; // G_t, n × Hm
        let mut f = x0.to_vec(); // F_t x0
        let mut normal = NormalEquations { m: vec![0.0; hm * hm], c: vec![0.0; hm], d: hm };
        let mut weight = 1.0;
        for t in 0..horizon {
            g = mat_mat(&self.a, n, &g, hm);
            for k in 0..n {
                for j in 0..m {
                    g[k * hm + t * m + j] = self.b[k * m + j];
                }
            }
            f = mat_vec(&self.a, n, &f);
            normal.add_state_cost(&g, &f, &self.q, weight);
            for i in t * m..(t + 1) * m {
                normal.m[i * hm + i] += weight * self.rho;
            }
            weight *= objective.discount;
        }
        if let (Some(p), true) = (self.value, objective.use_value) {
            let p_identity: Vec<f64> = (0..n * n).map(|i| if i % (n + 1) == 0 { p } else { 0.0 }).collect();
            normal.add_state_cost(&g, &f, &p_identity, weight);
        }
        let actions = solve(normal.m, normal.c, hm);
        let ret = self.simulate_return(x0, &actions, objective);
        LqOptimum { actions, ret }
    }

    fn tensor(&self, values: &[f64], shape: [i64; 2]) -> Tensor {
        Tensor::from_slice(values).view(shape).to_kind(self.kind).to_device(self.device)
    }
}

impl LatentDynamics for LinearQuadratic {
    type State = LqState;

    fn action_dim(&self) -> i64 {
        self.m as i64
    }
    fn action_low(&self) -> Tensor {
        self.tensor(&self.low, [1, self.m as i64]).squeeze_dim(0)
    }
    fn action_high(&self) -> Tensor {
        self.tensor(&self.high, [1, self.m as i64]).squeeze_dim(0)
    }
    fn expand(&self, state: &LqState, n: i64) -> LqState {
        LqState { x: state.x.expand([n, -1], false), action: state.action.expand([n, -1], false) }
    }
    fn step(&self, state: &LqState, action: &Tensor) -> LqState {
        let (n, m) = (self.n as i64, self.m as i64);
        let a = self.tensor(&self.a, [n, n]);
        let b = self.tensor(&self.b, [n, m]);
        // Row vectors: x' = x Aᵀ + a Bᵀ.
        LqState { x: state.x.matmul(&a.tr()) + action.matmul(&b.tr()), action: action.shallow_clone() }
    }
    fn reward(&self, state: &LqState) -> Tensor {
        let n = self.n as i64;
        let q = self.tensor(&self.q, [n, n]);
        -(state.x.matmul(&q) * &state.x).sum_dim_intlist(1, false, None)
            - state.action.square().sum_dim_intlist(1, false, None) * self.rho
    }
    fn value(&self, state: &LqState) -> Option<Tensor> {
        self.value.map(|p| -state.x.square().sum_dim_intlist(1, false, None) * p)
    }
    fn policy(&self, state: &LqState) -> Option<Tensor> {
        let k = self.policy.as_ref()?;
        Some(state.x.matmul(&self.tensor(k, [self.m as i64, self.n as i64]).tr()))
    }
    fn uncertainty(&self, _state: &LqState, action: &Tensor) -> Option<Tensor> {
        let c = self.uncertainty_radius?;
        Some(action.square().sum_dim_intlist(1, false, None) / (c * c))
    }
}

/// Wraps a dynamics and counts the candidate-steps it is asked for and the action elements
/// outside its bounds among them.
#[derive(Debug)]
pub struct Audited<D> {
    pub inner: D,
    steps: Cell<u64>,
    out_of_bounds: Cell<u64>,
}

impl<D: LatentDynamics> Audited<D> {
    pub fn new(inner: D) -> Self {
        Audited { inner, steps: Cell::new(0), out_of_bounds: Cell::new(0) }
    }

    /// Candidate-steps asked for so far (Σ of the batch sizes passed to `step`).
    pub fn candidate_steps(&self) -> u64 {
        self.steps.get()
    }

    /// Action elements outside `[low, high]` passed to `step` so far.
    pub fn out_of_bounds(&self) -> u64 {
        self.out_of_bounds.get()
    }

    /// Zeroes both counts.
    pub fn reset_counts(&self) {
        self.steps.set(0);
        self.out_of_bounds.set(0);
    }
}

impl<D: LatentDynamics> LatentDynamics for Audited<D> {
    type State = D::State;

    fn action_dim(&self) -> i64 {
        self.inner.action_dim()
    }
    fn action_low(&self) -> Tensor {
        self.inner.action_low()
    }
    fn action_high(&self) -> Tensor {
        self.inner.action_high()
    }
    fn expand(&self, state: &D::State, n: i64) -> D::State {
        self.inner.expand(state, n)
    }
    fn step(&self, state: &D::State, action: &Tensor) -> D::State {
        let outside = tch::no_grad(|| {
            let low = action.lt_tensor(&self.inner.action_low());
            let high = action.gt_tensor(&self.inner.action_high());
            low.logical_or(&high).sum(Kind::Int64).int64_value(&[])
        });
        self.steps.set(self.steps.get() + action.size()[0] as u64);
        self.out_of_bounds.set(self.out_of_bounds.get() + outside as u64);
        self.inner.step(state, action)
    }
    fn reward(&self, state: &D::State) -> Tensor {
        self.inner.reward(state)
    }
    fn value(&self, state: &D::State) -> Option<Tensor> {
        self.inner.value(state)
    }
    fn policy(&self, state: &D::State) -> Option<Tensor> {
        self.inner.policy(state)
    }
    fn uncertainty(&self, state: &D::State, action: &Tensor) -> Option<Tensor> {
        self.inner.uncertainty(state, action)
    }
}

/// `M u = c` for the stacked actions u, where R(u) = −u'Mu + 2c'u + const.
struct NormalEquations {
    /// M, `d × d`, row-major.
    m: Vec<f64>,
    c: Vec<f64>,
    d: usize,
}

impl NormalEquations {
    /// Adds the cost `w·x'Sx` of a state `x = f + G u` (S symmetric `n × n`, G `n × d`):
    /// `w·G'SG` to M and `−w·G'S f` to c.
    fn add_state_cost(&mut self, g: &[f64], f: &[f64], s: &[f64], w: f64) {
        let (n, d) = (f.len(), self.d);
        for i in 0..d {
            let gi: Vec<f64> = (0..n).map(|k| g[k * d + i]).collect();
            let sgi = mat_vec(s, n, &gi);
            self.c[i] -= w * dot(&sgi, f);
            for j in 0..d {
                self.m[i * d + j] += w * (0..n).map(|k| sgi[k] * g[k * d + j]).sum::<f64>();
            }
        }
    }
}

fn dot(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).map(|(a, b)| a * b).sum()
}

/// `M v` for a row-major `M` with `cols` columns.
fn mat_vec(m: &[f64], cols: usize, v: &[f64]) -> Vec<f64> {
    m.chunks(cols).map(|row| dot(row, v)).collect()
}

/// `X Y` for a square row-major `X` (`k × k`) and `Y` (`k × cols`).
fn mat_mat(x: &[f64], k: usize, y: &[f64], cols: usize) -> Vec<f64> {
    let mut out = vec![0.0; k * cols];
    for i in 0..k {
        for l in 0..k {
            for j in 0..cols {
                out[i * cols + j] += x[i * k + l] * y[l * cols + j];
            }
        }
    }
    out
}

/// Solves `M u = c` (`M` is `d × d`, row-major) by Gaussian elimination with partial pivoting.
fn solve(mut m: Vec<f64>, mut c: Vec<f64>, d: usize) -> Vec<f64> {
    for col in 0..d {
        let pivot =
            (col..d).max_by(|&i, &j| m[i * d + col].abs().total_cmp(&m[j * d + col].abs())).unwrap_or(col);
        for j in 0..d {
            m.swap(col * d + j, pivot * d + j);
        }
        c.swap(col, pivot);
        for row in col + 1..d {
            let factor = m[row * d + col] / m[col * d + col];
            for j in col..d {
                m[row * d + j] -= factor * m[col * d + j];
            }
            c[row] -= factor * c[col];
        }
    }
    let mut u = vec![0.0; d];
    for row in (0..d).rev() {
        let rest: f64 = (row + 1..d).map(|j| m[row * d + j] * u[j]).sum();
        u[row] = (c[row] - rest) / m[row * d + row];
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_elimination_solves_a_small_system() {
        // [[0, 2], [1, 1]] needs a pivot swap.
        let u = solve(vec![0.0, 2.0, 1.0, 1.0], vec![4.0, 3.0], 2);
        assert!((u[0] - 1.0).abs() < 1e-12 && (u[1] - 2.0).abs() < 1e-12, "{u:?}");
    }

    #[test]
    fn the_analytic_optimum_is_a_stationary_point_and_a_maximum() {
        let lq = LinearQuadratic::example(Kind::Double).with_value(0.7);
        let x0 = LinearQuadratic::EXAMPLE_START;
        let objective = Objective::new(0.9, true);
        let best = lq.optimum(&x0, 6, objective);
        for i in 0..best.actions.len() {
            for delta in [1e-3, -1e-3] {
                let mut u = best.actions.clone();
                u[i] += delta;
                assert!(lq.simulate_return(&x0, &u, objective) < best.ret, "coordinate {i}");
            }
        }
        // The example's start keeps the unconstrained optimum inside [−1, 1] for every horizon
        // the tests use.
        for h in [1, 4, 8, 12] {
            let a = lq.optimum(&x0, h, Objective::default()).actions;
            assert!(a.iter().all(|v| v.abs() < 0.75), "H={h}: {a:?}");
        }
    }
}
