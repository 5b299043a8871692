"""PyTorch reference for `gradplan bench backend`: one Grad-MPC iteration on the same
PlaNet-sized latent model as crates/backend/src/bench.rs (GRU transition, Gaussian prior,
reward MLP; forward over H steps, gradient to the actions only, ascent step, clamp).

Usage: python bench_backend_reference.py J H A THREADS ITERS WARMUP [DEVICE]  -> one JSON line.
DEVICE is `cpu` (the default) or `cuda`/`cuda:N`; on CUDA every timer is read after
`torch.cuda.synchronize()`, as the Rust side does. THREADS 0 leaves torch's default.
"""
import json
import sys
import time

import torch
from torch import nn
from torch.nn import functional as F


class LatentNet(nn.Module):
    def __init__(self, action_dim, belief=200, state=30, hidden=200):
        super().__init__()
        self.embed = nn.Linear(state + action_dim, belief)
        self.gru = nn.GRUCell(belief, belief)
        self.prior_hidden = nn.Linear(belief, hidden)
        self.prior_out = nn.Linear(hidden, 2 * state)
        self.reward = nn.Sequential(
            nn.Linear(belief + state, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, 1),
        )

    def predicted_return(self, actions, h, s, noise):
        total = torch.zeros(h.shape[0], device=h.device)
        for t in range(actions.shape[0]):
            x = F.relu(self.embed(torch.cat([s, actions[t]], 1)))
            h = self.gru(x, h)
            mean, raw = self.prior_out(F.relu(self.prior_hidden(h))).chunk(2, 1)
            s = mean + (F.softplus(raw) + 0.1) * noise[t]
            total = total + self.reward(torch.cat([h, s], 1)).squeeze(1)
        return total


def main():
    j, horizon, adim, threads, iters, warmup = map(int, sys.argv[1:7])
    device = torch.device(sys.argv[7] if len(sys.argv) > 7 else "cpu")
    if threads > 0:
        torch.set_num_threads(threads)
    torch.manual_seed(0)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    net = LatentNet(adim).to(device)
    h0, s0 = torch.randn(j, 200, device=device), torch.randn(j, 30, device=device)
    actions = torch.randn(horizon, j, adim, device=device).clamp(-1, 1)
    times = []
    for i in range(warmup + iters):
        sync()
        start = time.perf_counter()
        a = actions.detach().requires_grad_(True)
        noise = torch.randn(horizon, j, 30, device=device)
        objective = net.predicted_return(a, h0, s0, noise).sum()
        (grad,) = torch.autograd.grad(objective, [a])
        with torch.no_grad():
            actions = (a + 0.1 * grad).clamp(-1, 1)
        sync()
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1e3)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(json.dumps({
        "mean_ms": sum(times) / len(times),
        "min_ms": min(times),
        "torch": torch.__version__,
        "device": str(device),
        "device_name": name,
    }))


if __name__ == "__main__":
    main()
