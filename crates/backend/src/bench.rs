//! Backend micro-benchmark: one Grad-MPC iteration on a PlaNet-sized latent model.
//!
//! One iteration of the paper's Algorithm 1: roll J candidate action sequences of length H
//! through the RSSM transition (`h_t = GRU(h_{t-1}, relu(W[s_{t-1}, a_{t-1}]))`, prior
//! `s_t ~ N(μ(h_t), softplus(σ(h_t)) + 0.1)`) and the reward MLP on `[h_t, s_t]`, sum the
//! predicted rewards, backpropagate to the actions only, take one gradient-ascent step and
//! clamp to `[-1, 1]`. `scripts/bench_backend_reference.py` runs the identical computation
//! in PyTorch so the two can be compared on one machine.

use std::time::Instant;
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

/// Sizes of the benchmarked computation (PlaNet's defaults, the seed's Table A.7).
#[derive(Debug, Clone)]
pub struct GradMpcBench {
    /// J, candidate action sequences.
    pub candidates: i64,
    /// H, planning horizon.
    pub horizon: i64,
    /// |A|, action dimension.
    pub action_dim: i64,
    /// Deterministic (GRU) state size, 200.
    pub belief: i64,
    /// Stochastic state size, 30.
    pub state: i64,
    /// Hidden layer width, 200.
    pub hidden: i64,
    /// Timed iterations (after `warmup` untimed ones).
    pub iters: usize,
    pub warmup: usize,
}

impl Default for GradMpcBench {
    fn default() -> Self {
        GradMpcBench {
            candidates: 1000,
            horizon: 12,
            action_dim: 1,
            belief: 200,
            state: 30,
            hidden: 200,
            iters: 20,
            warmup: 3,
        }
    }
}

impl GradMpcBench {
    /// Floating-point operations of one iteration, counted from the matrix products (2 per
    /// multiply-add): per candidate-step the forward pass is the state-action embedding, the
    /// GRU's two `3·belief`-row products, the prior's two layers and the reward's three.
    /// The backward pass goes to the actions only, so autograd skips the weight gradients
    /// and it costs about one forward. Element-wise work is ignored.
    pub fn flops_per_iteration(&self) -> f64 {
        let (b, s, h, a) =
            (self.belief as f64, self.state as f64, self.hidden as f64, self.action_dim as f64);
        let forward = 2.0 * ((s + a) * b + 2.0 * 3.0 * b * b + b * h + h * 2.0 * s + (b + s) * h + h * h + h);
        2.0 * forward * (self.candidates * self.horizon) as f64
    }
}

/// Timings of one benchmark, in milliseconds per iteration.
#[derive(Debug, Clone)]
pub struct Timing {
    pub mean_ms: f64,
    pub min_ms: f64,
    pub iters: usize,
}

/// Transition and reward networks with PyTorch's layouts.
struct LatentNet {
    embed: nn::Linear,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor,
    b_hh: Tensor,
    prior_hidden: nn::Linear,
    prior_out: nn::Linear,
    reward: nn::Sequential,
}

impl LatentNet {
    fn new(vs: &nn::Path, b: &GradMpcBench) -> Self {
        let init = nn::Init::Uniform { lo: -(b.belief as f64).powf(-0.5), up: (b.belief as f64).powf(-0.5) };
        LatentNet {
            embed: nn::linear(vs / "embed", b.state + b.action_dim, b.belief, Default::default()),
            w_ih: vs.var("gru_w_ih", &[3 * b.belief, b.belief], init),
            w_hh: vs.var("gru_w_hh", &[3 * b.belief, b.belief], init),
            b_ih: vs.var("gru_b_ih", &[3 * b.belief], init),
            b_hh: vs.var("gru_b_hh", &[3 * b.belief], init),
            prior_hidden: nn::linear(vs / "prior_hidden", b.belief, b.hidden, Default::default()),
            prior_out: nn::linear(vs / "prior_out", b.hidden, 2 * b.state, Default::default()),
            reward: nn::seq()
                .add(nn::linear(vs / "r1", b.belief + b.state, b.hidden, Default::default()))
                .add_fn(|x| x.relu())
                .add(nn::linear(vs / "r2", b.hidden, b.hidden, Default::default()))
                .add_fn(|x| x.relu())
                .add(nn::linear(vs / "r3", b.hidden, 1, Default::default())),
        }
    }

    /// Σ_t r̂_t for every candidate.
    ///
    /// # Shapes
    /// `actions: [H, J, A]`, `h0: [J, belief]`, `s0: [J, state]`, `noise: [H, J, state]`
    /// → `[J]`.
    fn predicted_return(&self, actions: &Tensor, h0: &Tensor, s0: &Tensor, noise: &Tensor) -> Tensor {
        let horizon = actions.size()[0];
        let mut h = h0.shallow_clone();
        let mut s = s0.shallow_clone();
        let mut total = Tensor::zeros([h0.size()[0]], (Kind::Float, h0.device()));
        for t in 0..horizon {
            let x = self.embed.forward(&Tensor::cat(&[&s, &actions.get(t)], 1)).relu();
            h = x.gru_cell(&h, &self.w_ih, &self.w_hh, Some(&self.b_ih), Some(&self.b_hh));
            let stats = self.prior_out.forward(&self.prior_hidden.forward(&h).relu());
            let parts = stats.chunk(2, 1);
            let std = parts[1].softplus() + 0.1;
            s = &parts[0] + std * noise.get(t);
            total = &total + self.reward.forward(&Tensor::cat(&[&h, &s], 1)).squeeze_dim(1);
        }
        total
    }
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Times one Grad-MPC iteration (forward, backward to the actions, step, clamp).
///
/// On CUDA the device is synchronised before each timer starts and before it is read, so a
/// time covers the queued kernels and not just their launch (the PyTorch reference does
/// the same with `torch.cuda.synchronize()`).
pub fn grad_mpc_iteration(b: &GradMpcBench, device: Device) -> Timing {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(device);
    let net = LatentNet::new(&vs.root(), b);
    let opts = (Kind::Float, device);
    let h0 = Tensor::randn([b.candidates, b.belief], opts);
    let s0 = Tensor::randn([b.candidates, b.state], opts);
    let mut actions = Tensor::randn([b.horizon, b.candidates, b.action_dim], opts).clamp(-1.0, 1.0);
    let lr = 0.1;
    let mut times = Vec::with_capacity(b.iters);
    for i in 0..b.warmup + b.iters {
        sync(device);
        let start = Instant::now();
        let a = actions.detach().set_requires_grad(true);
        let noise = Tensor::randn([b.horizon, b.candidates, b.state], opts);
        let objective = net.predicted_return(&a, &h0, &s0, &noise).sum(Kind::Float);
        let grads = Tensor::run_backward(&[objective], &[&a], false, false);
        actions = tch::no_grad(|| (&a + &grads[0] * lr).clamp(-1.0, 1.0));
        sync(device);
        if i >= b.warmup {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    let mean_ms = times.iter().sum::<f64>() / times.len().max(1) as f64;
    let min_ms = times.iter().copied().fold(f64::INFINITY, f64::min);
    Timing { mean_ms, min_ms, iters: times.len() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradient_step_moves_actions_and_stays_in_bounds() {
        let b = GradMpcBench { candidates: 4, horizon: 3, iters: 1, warmup: 0, ..Default::default() };
        let t = grad_mpc_iteration(&b, Device::Cpu);
        assert_eq!(t.iters, 1);
        assert!(t.mean_ms.is_finite() && t.mean_ms > 0.0);
    }

    #[test]
    fn action_gradient_matches_finite_differences() {
        // The objective is f32; a central difference with eps 1e-2 on a smooth network keeps
        // truncation and rounding error well under 2% of the gradient.
        tch::manual_seed(1);
        let b = GradMpcBench { candidates: 2, horizon: 3, ..Default::default() };
        let vs = nn::VarStore::new(Device::Cpu);
        let net = LatentNet::new(&vs.root(), &b);
        let opts = (Kind::Float, Device::Cpu);
        let h0 = Tensor::randn([2, b.belief], opts);
        let s0 = Tensor::randn([2, b.state], opts);
        let noise = Tensor::randn([3, 2, b.state], opts);
        let a = (Tensor::randn([3, 2, 1], opts) * 0.5).set_requires_grad(true);
        let obj = net.predicted_return(&a, &h0, &s0, &noise).sum(Kind::Float);
        let grad = Tensor::run_backward(&[obj], &[&a], false, false).remove(0);
        let eps = 1e-2;
        for t in 0..3 {
            let e = Tensor::zeros([3, 2, 1], opts);
            let _ = e.get(t).get(0).fill_(eps);
            let f = |x: &Tensor| {
                tch::no_grad(|| net.predicted_return(x, &h0, &s0, &noise).sum(Kind::Float).double_value(&[]))
            };
            let a0 = a.detach();
            let fd = (f(&(&a0 + &e)) - f(&(&a0 - &e))) / (2.0 * eps);
            let g = grad.double_value(&[t, 0, 0]);
            assert!(
                (fd - g).abs() <= 0.02 * g.abs().max(1e-3),
                "t={t}: analytic {g} vs finite difference {fd}"
            );
        }
    }
}
