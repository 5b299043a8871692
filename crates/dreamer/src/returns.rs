//! λ-returns, the seed paper's eqs. 12–13 (Dreamer's eq. 6), in the recursive form
//!
//! ```text
//! V_λ(ŝ_t) = r_t + d_t ((1 − λ) v(ŝ_{t+1}) + λ V_λ(ŝ_{t+1})),   V_λ(ŝ_H) = v(ŝ_H)
//! ```
//!
//! which equals eq. 13's weighted average of the n-step returns V^N_n (eq. 12) with weight
//! λ^{H−1} on the longest (tested against that form). Time alignment is the planners' (eq. 3):
//! ŝ_0 is the start state, r_t = r(ŝ_{t+1}) is the reward for arriving in ŝ_{t+1}, and d_t is
//! the discount applied after it: γ, or 0 when ŝ_{t+1} is terminal (then V_λ(ŝ_t) = r_t). With
//! λ = 1 and constant d_t = γ, V_λ(ŝ_0) is exactly the planners' `Σ γ^i r + γ^H v(ŝ_H)`.

use tch::Tensor;

/// λ-returns of every imagined state ŝ_0 … ŝ_{H−1}.
///
/// `rewards[t] = r(ŝ_{t+1})`, `next_values[t] = v(ŝ_{t+1})` (so the bootstrap v(ŝ_H) is the
/// last row), `discounts[t] = d_t` (γ, or 0 at a terminal ŝ_{t+1}).
///
/// # Shapes
/// `[H, N]` each → `[H, N]`
pub fn lambda_return(rewards: &Tensor, next_values: &Tensor, discounts: &Tensor, lambda: f64) -> Tensor {
    let size = rewards.size();
    debug_assert!(size.len() == 2 && size[0] >= 1, "rewards {size:?}");
    debug_assert_eq!(next_values.size(), size);
    debug_assert_eq!(discounts.size(), size);
    let horizon = size[0];
    let mut next = next_values.get(horizon - 1); // V_λ(ŝ_H) = v(ŝ_H)
    let mut out = Vec::with_capacity(horizon as usize);
    for t in (0..horizon).rev() {
        let blend = next_values.get(t) * (1.0 - lambda) + &next * lambda;
        next = rewards.get(t) + discounts.get(t) * blend;
        out.push(next.shallow_clone());
    }
    out.reverse();
    Tensor::stack(&out, 0)
}

/// Dreamer's loss weights: the probability of still being in the episode at ŝ_t,
/// `w_t = Π_{k<t} d_k` (w_0 = 1), without gradient. With d_k = γ throughout this is γ^t.
///
/// # Shapes
/// `[H, N]` → `[H, N]`
pub fn discount_weights(discounts: &Tensor) -> Tensor {
    let horizon = discounts.size()[0];
    let ones = discounts.get(0).ones_like().unsqueeze(0);
    let shifted = Tensor::cat(&[ones, discounts.narrow(0, 0, horizon - 1)], 0);
    shifted.cumprod(0, discounts.kind()).detach()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(v: &[f64]) -> Tensor {
        Tensor::from_slice(v).view([v.len() as i64, 1])
    }

    fn values(t: &Tensor) -> Vec<f64> {
        Vec::<f64>::try_from(t.flatten(0, -1)).unwrap()
    }

    #[test]
    fn matches_hand_computed_values_with_bootstrap_and_terminal() {
        // H = 3, λ = 0.5, r = (1, 2, 3), v(ŝ_1..3) = (10, 20, 30).
        let (r, v) = (column(&[1.0, 2.0, 3.0]), column(&[10.0, 20.0, 30.0]));
        // γ = 0.9 throughout:
        // V_2 = 3 + 0.9·30 = 30 (the bootstrap v(ŝ_3));
        // V_1 = 2 + 0.9·(0.5·20 + 0.5·30) = 24.5;
        // V_0 = 1 + 0.9·(0.5·10 + 0.5·24.5) = 16.525.
        let ret = values(&lambda_return(&r, &v, &column(&[0.9, 0.9, 0.9]), 0.5));
        for (x, w) in ret.iter().zip([16.525, 24.5, 30.0]) {
            assert!((x - w).abs() < 1e-12, "{ret:?}");
        }
        // Eq. 13 directly: V^N_1 = 1 + 0.9·10 = 10, V^N_2 = 1 + 0.9·2 + 0.81·20 = 19,
        // V^N_3 = 1 + 1.8 + 0.81·3 + 0.729·30 = 27.1; V_λ = ½(V^N_1 + ½V^N_2) + ¼V^N_3.
        let eq13 = 0.5 * (10.0 + 0.5 * 19.0) + 0.25 * 27.1;
        assert!((ret[0] - eq13).abs() < 1e-12, "{} vs {eq13}", ret[0]);

        // ŝ_2 terminal (d_1 = 0): V_1 = r_1 = 2, nothing after it counts;
        // V_0 = 1 + 0.9·(0.5·10 + 0.5·2) = 6.4. V_2 is still computed (and masked by the weights).
        let d = column(&[0.9, 0.0, 0.9]);
        let ret = values(&lambda_return(&r, &v, &d, 0.5));
        for (x, w) in ret.iter().zip([6.4, 2.0, 30.0]) {
            assert!((x - w).abs() < 1e-12, "{ret:?}");
        }
        let w = values(&discount_weights(&d));
        assert_eq!(w, vec![1.0, 0.9, 0.0]);

        // λ = 1 is the discounted return with the bootstrap (the planners' eq. 3).
        let ret = values(&lambda_return(&r, &v, &column(&[0.9, 0.9, 0.9]), 1.0));
        assert!((ret[0] - 27.1).abs() < 1e-12, "{ret:?}");
        // λ = 0 is the one-step TD target.
        let ret = values(&lambda_return(&r, &v, &column(&[0.9, 0.9, 0.9]), 0.0));
        assert!((ret[0] - 10.0).abs() < 1e-12 && (ret[1] - 20.0).abs() < 1e-12, "{ret:?}");
    }
}
