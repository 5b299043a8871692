//! A linear-quadratic problem of any action dimension m, with its optimum from the
//! finite-horizon Riccati recursion.
//!
//! The dynamics and reward are those of [`crate::testing::LinearQuadratic`]
//! (`x_{t+1} = A x_t + B a_t`, `r = −x'Qx − ρ|a|²` on the state reached and the action that
//! led to it), but the matrices are public and of any size, and the optimum comes from a
//! Riccati recursion (O(H·n³)) rather than from the normal equations of all H·m actions at
//! once, so m = 64 costs milliseconds. [`ChainLq::chain`] builds the study's instance: a ring
//! of m coupled, marginally stable modes with one actuator each.

use crate::LatentDynamics;
use tch::{Device, Kind, Tensor};

/// The matrices of `x_{t+1} = A x_t + B a_t`, `r = −x'Qx − ρ|a|²`, row-major.
#[derive(Debug, Clone)]
pub struct LqMatrices {
    /// n, state dimension.
    pub n: usize,
    /// m, action dimension.
    pub m: usize,
    /// A, `n × n`.
    pub a: Vec<f64>,
    /// B, `n × m`.
    pub b: Vec<f64>,
    /// Q, `n × n`, symmetric positive semi-definite.
    pub q: Vec<f64>,
    /// ρ > 0, the action cost.
    pub rho: f64,
}

/// A [`LqMatrices`] system as [`LatentDynamics`], bounds [−1, 1], no value.
#[derive(Debug)]
pub struct ChainLq {
    matrices: LqMatrices,
    /// Aᵀ, `[n, n]`, so that a batch of row vectors steps as `x Aᵀ + a Bᵀ`.
    a_t: Tensor,
    /// Bᵀ, `[m, n]`
    b_t: Tensor,
    /// Q, `[n, n]`
    q: Tensor,
    kind: Kind,
}

/// A batch of [`ChainLq`] states.
#[derive(Debug)]
pub struct ChainLqState {
    /// x, `[B, n]`
    pub x: Tensor,
    /// The action that led to x (zero at the start), `[B, m]`.
    pub action: Tensor,
}

/// The unconstrained best sequence from one start state.
#[derive(Debug, Clone)]
pub struct ChainLqOptimum {
    /// a*_{0:H}, time-major, `H·m` values.
    pub actions: Vec<f64>,
    /// R* = R(a*), eq. 3 with γ = 1 and no value.
    pub ret: f64,
}

impl ChainLq {
    pub fn new(matrices: LqMatrices, kind: Kind) -> Self {
        let LqMatrices { n, m, .. } = matrices;
        assert!(matrices.a.len() == n * n && matrices.b.len() == n * m && matrices.q.len() == n * n);
        let tensor = |v: &[f64], rows: usize, cols: usize| {
            Tensor::from_slice(v).view([rows as i64, cols as i64]).to_kind(kind)
        };
        ChainLq {
            a_t: tensor(&matrices.a, n, n).tr().contiguous(),
            b_t: tensor(&matrices.b, n, m).tr().contiguous(),
            q: tensor(&matrices.q, n, n),
            matrices,
            kind,
        }
    }

    /// The study's system for action dimension `m` (state dimension n = m): a ring of modes
    ///
    /// ```text
    /// A = I + 0.1·(S − Sᵀ),   B = 0.25·I + 0.08·S,   Q = I,   ρ = 0.5
    /// ```
    ///
    /// with S the cyclic shift (`(Sx)_i = x_{i+1}`). The skew coupling rotates energy between
    /// neighbours and keeps every mode marginally stable (|eig A| ≥ 1), so doing nothing costs
    /// the whole horizon; B drives each mode and its neighbour, so the actions are coupled and
    /// the problem does not split into m scalar ones (for m ≥ 3). From [`ChainLq::chain_start`]
    /// every optimal action stays inside [−1, 1] with margin (|a*| ≤ 0.61 at H = 12, test
    /// below). The scale of B is chosen for gradient ascent: the Hessian of R in the H·m
    /// actions has eigenvalues in [−14.8, −1.0] for every m at H = 12, so the paper's α = 0.1
    /// is stable (α < 2/14.8) and contracts the slowest direction by 0.9 per iteration.
    pub fn chain(m: usize, kind: Kind) -> Self {
        let shift = |i: usize, j: usize| f64::from(u8::from(j == (i + 1) % m));
        let eye = |i: usize, j: usize| f64::from(u8::from(i == j));
        let grid =
            |f: &dyn Fn(usize, usize) -> f64| -> Vec<f64> { (0..m * m).map(|k| f(k / m, k % m)).collect() };
        let matrices = LqMatrices {
            n: m,
            m,
            a: grid(&|i, j| eye(i, j) + 0.1 * (shift(i, j) - shift(j, i))),
            b: grid(&|i, j| 0.25 * eye(i, j) + 0.08 * shift(i, j)),
            q: grid(&eye),
            rho: 0.5,
        };
        ChainLq::new(matrices, kind)
    }

    /// The study's start state: a fixed, non-periodic pattern of amplitude 0.5, so that the
    /// modes differ and no two actions are the same.
    pub fn chain_start(m: usize) -> Vec<f64> {
        (0..m).map(|i| 0.5 * (1.3 * i as f64 + 0.7).sin()).collect()
    }

    pub fn matrices(&self) -> &LqMatrices {
        &self.matrices
    }

    /// `x0` as a `[1, n]` start state.
    pub fn start(&self, x0: &[f64]) -> ChainLqState {
        let LqMatrices { n, m, .. } = self.matrices;
        assert_eq!(x0.len(), n, "start state");
        ChainLqState {
            x: Tensor::from_slice(x0).view([1, n as i64]).to_kind(self.kind),
            action: Tensor::zeros([1, m as i64], (self.kind, Device::Cpu)),
        }
    }

    /// R of eq. 3 (γ = 1, no value) for `actions` (time-major, `H·m` values), in plain f64.
    pub fn simulate_return(&self, x0: &[f64], actions: &[f64]) -> f64 {
        let LqMatrices { n, m, ref a, ref b, ref q, rho } = self.matrices;
        let mut x = x0.to_vec();
        let mut total = 0.0;
        for u in actions.chunks(m) {
            let ax = mat_mul(a, &x, n, n, 1);
            let bu = mat_mul(b, u, n, m, 1);
            x = ax.iter().zip(&bu).map(|(p, q)| p + q).collect();
            total -= dot(&x, &mat_mul(q, &x, n, n, 1)) + rho * dot(u, u);
        }
        total
    }

    /// The best sequence ignoring the action bounds, by the Riccati recursion on the cost-to-go
    /// `x'P_t x` from `P_H = 0`: with `S = Q + P_{t+1}`,
    ///
    /// ```text
    /// K_t = (B'SB + ρI)⁻¹ B'SA,   P_t = A'SA − A'SB K_t,   a*_t = −K_t x_t
    /// ```
    ///
    /// (the stage reward is charged on the state reached, hence Q inside S). R* is the
    /// simulated return of a*, which equals `−x0'P_0 x0`.
    pub fn optimum(&self, x0: &[f64], horizon: usize) -> ChainLqOptimum {
        let LqMatrices { n, m, ref a, ref b, ref q, rho } = self.matrices;
        let (a_t, b_t) = (transpose(a, n, n), transpose(b, n, m));
        let mut p = vec![0.0; n * n];
        let mut gains = Vec::with_capacity(horizon); // K_t, m × n, last step first
        for _ in 0..horizon {
            let s: Vec<f64> = q.iter().zip(&p).map(|(q, p)| q + p).collect();
            let sa = mat_mul(&s, a, n, n, n); // n × n
            let sb = mat_mul(&s, b, n, n, m); // n × m
            let mut g = mat_mul(&b_t, &sb, m, n, m); // B'SB, m × m
            for i in 0..m {
                g[i * m + i] += rho;
            }
            let k = solve(g, mat_mul(&b_t, &sa, m, n, n), m, n); // m × n
            let ata = mat_mul(&a_t, &sa, n, n, n);
            let atsbk = mat_mul(&mat_mul(&a_t, &sb, n, n, m), &k, n, m, n);
            p = ata.iter().zip(&atsbk).map(|(x, y)| x - y).collect();
            // Keep P symmetric against rounding.
            p = (0..n * n).map(|i| 0.5 * (p[i] + p[(i % n) * n + i / n])).collect();
            gains.push(k);
        }
        let mut x = x0.to_vec();
        let mut actions = Vec::with_capacity(horizon * m);
        for k in gains.iter().rev() {
            let u: Vec<f64> = mat_mul(k, &x, m, n, 1).iter().map(|v| -v).collect();
            let ax = mat_mul(a, &x, n, n, 1);
            let bu = mat_mul(b, &u, n, m, 1);
            x = ax.iter().zip(&bu).map(|(p, q)| p + q).collect();
            actions.extend(u);
        }
        let ret = self.simulate_return(x0, &actions);
        ChainLqOptimum { actions, ret }
    }
}

impl LatentDynamics for ChainLq {
    type State = ChainLqState;

    fn action_dim(&self) -> i64 {
        self.matrices.m as i64
    }
    fn action_low(&self) -> Tensor {
        Tensor::full([self.matrices.m as i64], -1.0, (self.kind, Device::Cpu))
    }
    fn action_high(&self) -> Tensor {
        Tensor::full([self.matrices.m as i64], 1.0, (self.kind, Device::Cpu))
    }
    fn expand(&self, state: &ChainLqState, n: i64) -> ChainLqState {
        ChainLqState { x: state.x.expand([n, -1], false), action: state.action.expand([n, -1], false) }
    }
    fn step(&self, state: &ChainLqState, action: &Tensor) -> ChainLqState {
        ChainLqState {
            x: state.x.matmul(&self.a_t) + action.matmul(&self.b_t),
            action: action.shallow_clone(),
        }
    }
    fn reward(&self, state: &ChainLqState) -> Tensor {
        -(state.x.matmul(&self.q) * &state.x).sum_dim_intlist(1, false, None)
            - state.action.square().sum_dim_intlist(1, false, None) * self.matrices.rho
    }
}

fn dot(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).map(|(a, b)| a * b).sum()
}

/// `X Y` for row-major `X` (`rows × inner`) and `Y` (`inner × cols`).
fn mat_mul(x: &[f64], y: &[f64], rows: usize, inner: usize, cols: usize) -> Vec<f64> {
    let mut out = vec![0.0; rows * cols];
    for i in 0..rows {
        for l in 0..inner {
            let xil = x[i * inner + l];
            for j in 0..cols {
                out[i * cols + j] += xil * y[l * cols + j];
            }
        }
    }
    out
}

fn transpose(x: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    (0..rows * cols).map(|k| x[(k % rows) * cols + k / rows]).collect()
}

/// Solves `G K = R` for `K` (`G` is `d × d`, `R` is `d × cols`, both row-major) by Gaussian
/// elimination with partial pivoting.
fn solve(mut g: Vec<f64>, mut r: Vec<f64>, d: usize, cols: usize) -> Vec<f64> {
    for col in 0..d {
        let pivot =
            (col..d).max_by(|&i, &j| g[i * d + col].abs().total_cmp(&g[j * d + col].abs())).unwrap_or(col);
        for j in 0..d {
            g.swap(col * d + j, pivot * d + j);
        }
        for j in 0..cols {
            r.swap(col * cols + j, pivot * cols + j);
        }
        for row in col + 1..d {
            let factor = g[row * d + col] / g[col * d + col];
            for j in col..d {
                g[row * d + j] -= factor * g[col * d + j];
            }
            for j in 0..cols {
                r[row * cols + j] -= factor * r[col * cols + j];
            }
        }
    }
    let mut k = vec![0.0; d * cols];
    for row in (0..d).rev() {
        for j in 0..cols {
            let rest: f64 = (row + 1..d).map(|l| g[row * d + l] * k[l * cols + j]).sum();
            k[row * cols + j] = (r[row * cols + j] - rest) / g[row * d + row];
        }
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::LinearQuadratic;
    use crate::Objective;

    #[test]
    fn riccati_matches_the_normal_equations_of_the_testing_example() {
        // The matrices of `LinearQuadratic::example`, whose optimum is solved independently
        // over all H·m actions at once.
        let example = LqMatrices {
            n: 3,
            m: 2,
            a: vec![1.0, 0.1, 0.0, 0.0, 0.95, 0.1, 0.05, 0.0, 0.9],
            b: vec![0.0, 0.05, 0.25, 0.0, 0.0, 0.2],
            q: vec![1.0, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 1.0],
            rho: 0.5,
        };
        let ours = ChainLq::new(example, Kind::Double);
        let reference = LinearQuadratic::example(Kind::Double);
        let x0 = LinearQuadratic::EXAMPLE_START;
        for h in [1, 5, 12] {
            let want = reference.optimum(&x0, h, Objective::default());
            let got = ours.optimum(&x0, h);
            assert!((got.ret - want.ret).abs() < 1e-10, "H={h}: {} vs {}", got.ret, want.ret);
            let worst = got.actions.iter().zip(&want.actions).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(worst < 1e-9, "H={h}: actions differ by {worst}");
        }
    }

    #[test]
    fn the_chain_optimum_is_interior_and_beats_its_neighbours() {
        for m in [1, 2, 6, 16, 64] {
            let lq = ChainLq::chain(m, Kind::Double);
            let x0 = ChainLq::chain_start(m);
            let best = lq.optimum(&x0, 12);
            let largest = best.actions.iter().fold(0.0f64, |acc, a| acc.max(a.abs()));
            assert!(largest < 0.8, "m={m}: |a*| reaches {largest}");
            // Doing nothing is far worse: the problem needs control.
            let zero = lq.simulate_return(&x0, &vec![0.0; 12 * m]);
            assert!(zero < 2.0 * best.ret, "m={m}: R(0) = {zero}, R* = {}", best.ret);
            for i in [0, best.actions.len() / 2, best.actions.len() - 1] {
                for delta in [1e-3, -1e-3] {
                    let mut u = best.actions.clone();
                    u[i] += delta;
                    assert!(lq.simulate_return(&x0, &u) < best.ret, "m={m}, coordinate {i}");
                }
            }
        }
    }

    #[test]
    fn the_tensor_dynamics_agree_with_the_f64_simulator() {
        let m = 6;
        let lq = ChainLq::chain(m, Kind::Double);
        let x0 = ChainLq::chain_start(m);
        let best = lq.optimum(&x0, 8);
        let actions = Tensor::from_slice(&best.actions).view([8, 1, m as i64]);
        let ret = Objective::default().returns(&lq, &lq.start(&x0), &actions).double_value(&[0]);
        assert!((ret - best.ret).abs() < 1e-10, "{ret} vs {}", best.ret);
    }
}
