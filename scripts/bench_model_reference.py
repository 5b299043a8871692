"""PyTorch reference for `gradplan bench model`: the same world model (docs/checkpoint-format.md's
modules, the layout crates/model/tests/pytorch_compat.rs checks) and the same work as the Rust
side times, written the way a PyTorch user would write it:

* update: encode the chunk, filter it with the posterior (GRU over T steps, `is_first` resets),
  decode, predict rewards, the ELBO (squared pixel error summed per frame, masked reward MSE,
  max(KL, free nats), plus β_global × KL[q ‖ N(0, I)] when that is set), backward,
  `clip_grad_norm_`, `torch.optim.Adam` step (crates/model/src/world_model.rs `loss`, the
  bench's `Adam::backward_step`). Latent overshooting is not implemented: the caller leaves the
  update out when it is on.
* cem: one CEM decision from a batch-1 zero state (I rounds of J prior-sampled rollouts of H
  steps, reward sum, top-K refit, then the clamped mean is scored once; crates/plan/src/cem.rs).
* grad-mpc: one Grad-MPC decision (J clamped N(0, 1) candidates, I ascent steps through the
  prior rollout to the actions, clamp, final scoring and argmax; crates/plan/src/grad_mpc.rs).

Every measurement is one untimed warm-up then N timed calls, each timer read after
`torch.cuda.synchronize()` on CUDA, like `time_ms` in crates/cli/src/bench/model.rs.

Usage: python bench_model_reference.py [key=value ...]  -> one JSON line. The defaults are the
paper preset (pixels, belief 200, state 30, hidden 200, embedding 1024, |A| 6, batch 50 x
chunk 50, H 12, CEM I 10 J 1000 K 100, Grad-MPC I 40 J 1000 α 0.1); every key is listed in
DEFAULTS below, e.g. `device=cuda updates=3 decisions=3 parts=update,cem,grad-mpc`.
"""
import json
import sys
import time

import torch
from torch import nn
from torch.nn import functional as F

DEFAULTS = {
    "device": "cpu",  # cpu, cuda or cuda:N
    "threads": "2",  # torch.set_num_threads; 0 leaves torch's default
    # also update-bf16 (the update under CPU/CUDA bf16 autocast) and update-cl (channels-last
    # convolutions: weights and conv inputs in NHWC memory order, for oneDNN/cuDNN)
    "parts": "update,cem,grad-mpc",
    "updates": "3",  # timed updates after one warm-up
    "decisions": "3",  # timed decisions per planner after one warm-up
    "obs": "pixels",  # pixels (64x64) or state
    "state_dim": "24",  # length of a state observation
    "action_dim": "6",
    "belief": "200",
    "state": "30",
    "hidden": "200",
    "embedding": "1024",
    "cnn_depth": "32",  # conv channels d, 2d, 4d, 8d (PlaNet's d = 32)
    "activation": "relu",  # relu, elu or tanh
    "min_std": "0.1",
    "free_nats": "3",
    "bit_depth": "5",
    "global_kl_beta": "0",
    "batch": "50",
    "chunk": "50",
    "lr": "1e-3",
    "adam_eps": "1e-4",
    "clip": "1000",
    "horizon": "12",
    "sample": "1",  # sample imagined states (1) or take the prior mean (0)
    "discount": "1",
    "cem_iterations": "10",
    "cem_candidates": "1000",
    "cem_top_k": "100",
    "gd_iterations": "40",
    "gd_candidates": "1000",
    "gd_lr": "0.1",
    "gd_optimizer": "sgd",  # sgd, adam or normalized (on the actions)
    "gd_clip_per_step": "0",  # 0: off
}

TEXT_KEYS = {"device", "parts", "obs", "activation", "gd_optimizer"}
FLOAT_KEYS = {"min_std", "free_nats", "global_kl_beta", "lr", "adam_eps", "clip", "discount", "gd_lr", "gd_clip_per_step"}

ACT = F.relu
MIN_STD = 0.1
CONV_MEMORY = torch.contiguous_format  # torch.channels_last for the update-cl part


class PixelEncoder(nn.Module):  # [N, 3, 64, 64] -> [N, e]
    def __init__(self, embedding, d):
        super().__init__()
        self.conv1 = nn.Conv2d(3, d, 4, stride=2)
        self.conv2 = nn.Conv2d(d, 2 * d, 4, stride=2)
        self.conv3 = nn.Conv2d(2 * d, 4 * d, 4, stride=2)
        self.conv4 = nn.Conv2d(4 * d, 8 * d, 4, stride=2)
        self.fc = nn.Identity() if embedding == 32 * d else nn.Linear(32 * d, embedding)

    def forward(self, obs):
        obs = obs.contiguous(memory_format=CONV_MEMORY)
        x = ACT(self.conv4(ACT(self.conv3(ACT(self.conv2(ACT(self.conv1(obs))))))))
        return self.fc(x.flatten(1))


class PixelDecoder(nn.Module):  # [N, h + s] -> [N, 3, 64, 64]
    def __init__(self, features, embedding, d):
        super().__init__()
        self.fc1 = nn.Linear(features, embedding)
        self.conv1 = nn.ConvTranspose2d(embedding, 4 * d, 5, stride=2)
        self.conv2 = nn.ConvTranspose2d(4 * d, 2 * d, 5, stride=2)
        self.conv3 = nn.ConvTranspose2d(2 * d, d, 6, stride=2)
        self.conv4 = nn.ConvTranspose2d(d, 3, 6, stride=2)

    def forward(self, features):
        x = self.fc1(features)[:, :, None, None].contiguous(memory_format=CONV_MEMORY)
        return self.conv4(ACT(self.conv3(ACT(self.conv2(ACT(self.conv1(x)))))))


class Mlp(nn.Module):  # fc1 ... fcN with ACT between
    def __init__(self, *sizes):
        super().__init__()
        self.layers = len(sizes) - 1
        for i in range(self.layers):
            setattr(self, f"fc{i + 1}", nn.Linear(sizes[i], sizes[i + 1]))

    def forward(self, x):
        for i in range(1, self.layers + 1):
            x = getattr(self, f"fc{i}")(x)
            x = ACT(x) if i < self.layers else x
        return x


def gaussian(stats):
    mean, std = stats.chunk(2, -1)
    return mean, F.softplus(std) + MIN_STD


class Transition(nn.Module):  # the RSSM
    def __init__(self, belief, state, action, hidden, embedding):
        super().__init__()
        self.fc_embed_state_action = nn.Linear(state + action, belief)
        self.rnn = nn.GRUCell(belief, belief)
        self.fc_embed_belief_prior = nn.Linear(belief, hidden)
        self.fc_state_prior = nn.Linear(hidden, 2 * state)
        self.fc_embed_belief_posterior = nn.Linear(belief + embedding, hidden)
        self.fc_state_posterior = nn.Linear(hidden, 2 * state)

    def deterministic(self, belief, stoch, action):
        return self.rnn(ACT(self.fc_embed_state_action(torch.cat([stoch, action], -1))), belief)

    def prior(self, belief):
        return gaussian(self.fc_state_prior(ACT(self.fc_embed_belief_prior(belief))))

    def posterior(self, belief, embed):
        x = ACT(self.fc_embed_belief_posterior(torch.cat([belief, embed], -1)))
        return gaussian(self.fc_state_posterior(x))


class WorldModel(nn.Module):
    def __init__(self, obs, obs_dim, belief, state, hidden, embedding, action, d=32):
        super().__init__()
        if obs == "pixels":
            self.encoder = PixelEncoder(embedding, d)
            self.decoder = PixelDecoder(belief + state, embedding, d)
        else:
            self.encoder = Mlp(obs_dim, embedding, embedding, embedding)
            self.decoder = Mlp(belief + state, embedding, embedding, obs_dim)
        self.transition = Transition(belief, state, action, hidden, embedding)
        self.reward = Mlp(belief + state, hidden, hidden, 1)
        self.belief, self.state = belief, state


def kl(q_mean, q_std, p_mean, p_std):  # KL(q || p), summed over the last dimension
    ratio = q_std / p_std
    return ((ratio.square() + ((q_mean - p_mean) / p_std).square() - 1) * 0.5 - ratio.log()).sum(-1)


def elbo(model, obs, actions, rewards, is_first, free_nats, global_kl_beta):
    t_len, b = is_first.shape
    embeds = model.encoder(obs.flatten(0, 1))
    embeds = embeds.view(t_len, b, -1)
    h = obs.new_zeros(b, model.belief)
    s = obs.new_zeros(b, model.state)
    beliefs, states, prior_m, prior_s, post_m, post_s = [], [], [], [], [], []
    for t in range(t_len):
        keep = (1 - is_first[t]).unsqueeze(-1)
        h = model.transition.deterministic(h * keep, s * keep, actions[t] * keep)
        pm, ps = model.transition.prior(h)
        qm, qs = model.transition.posterior(h, embeds[t])
        s = qm + qs * torch.randn_like(qm)
        beliefs.append(h)
        states.append(s)
        prior_m.append(pm)
        prior_s.append(ps)
        post_m.append(qm)
        post_s.append(qs)
    features = torch.cat([torch.stack(beliefs), torch.stack(states)], -1)  # [T, B, h + s]
    recon = model.decoder(features.flatten(0, 1))
    recon = recon.view(t_len, b, *recon.shape[1:])
    observation = (recon - obs).square().sum(tuple(range(2, recon.dim()))).mean()
    valid = 1 - is_first
    reward_err = (model.reward(features).squeeze(-1) - rewards).square() * valid
    reward = reward_err.sum() / valid.sum().clamp_min(1.0)
    qm, qs = torch.stack(post_m), torch.stack(post_s)
    kl_t = kl(qm, qs, torch.stack(prior_m), torch.stack(prior_s))
    total = observation + reward + kl_t.clamp_min(free_nats).mean()
    if global_kl_beta != 0:
        total = total + kl(qm, qs, torch.zeros_like(qm), torch.ones_like(qs)).mean() * global_kl_beta
    return total


def rollout_return(model, h0, s0, actions, sample, discount):
    """Σ_t γ^t r(s_{t+1}) for every candidate; `actions: [H, J, A]` -> `[J]`."""
    j = actions.shape[1]
    h, s = h0.expand(j, -1), s0.expand(j, -1)
    rewards, weight = [], 1.0
    for t in range(actions.shape[0]):
        h = model.transition.deterministic(h, s, actions[t])
        mean, std = model.transition.prior(h)
        s = mean + std * torch.randn_like(mean) if sample else mean
        rewards.append(model.reward(torch.cat([h, s], -1)).squeeze(-1) * weight)
        weight *= discount
    return torch.stack(rewards).sum(0)


def cem_decision(model, h0, s0, low, high, cfg):
    horizon, iters = cfg["horizon"], cfg["cem_iterations"]
    j, k = cfg["cem_candidates"], cfg["cem_top_k"]
    with torch.no_grad():
        mean = low.new_zeros(horizon, 1, low.shape[0])
        std = torch.ones_like(mean)
        for _ in range(iters):
            noise = torch.randn(horizon, j, low.shape[0], device=low.device)
            samples = torch.clamp(mean + std * noise, low, high)
            returns = rollout_return(model, h0, s0, samples, cfg["sample"], cfg["discount"])
            _, index = returns.topk(k, 0)
            elites = samples.index_select(1, index)
            mean, std = elites.mean(1, keepdim=True), elites.std(1, correction=0, keepdim=True)
        sequence = torch.clamp(mean.squeeze(1), low, high)
        ret = rollout_return(model, h0, s0, sequence.unsqueeze(1), cfg["sample"], cfg["discount"])[0]
        return sequence[0].cpu(), ret.item()


def grad_mpc_decision(model, h0, s0, low, high, cfg):
    horizon, iters, j = cfg["horizon"], cfg["gd_iterations"], cfg["gd_candidates"]
    lr, clip, rule = cfg["gd_lr"], cfg["gd_clip_per_step"], cfg["gd_optimizer"]
    if rule not in ("sgd", "adam", "normalized"):
        raise SystemExit(f"gd_optimizer={rule}: use sgd, adam or normalized")
    with torch.no_grad():
        actions = torch.clamp(torch.randn(horizon, j, low.shape[0], device=low.device), low, high)
    m = v = None
    for step in range(1, iters + 1):
        a = actions.detach().requires_grad_(True)
        objective = rollout_return(model, h0, s0, a, cfg["sample"], cfg["discount"]).sum()
        (grad,) = torch.autograd.grad(objective, [a])
        with torch.no_grad():
            if clip > 0:
                grad = grad * (clip / (grad.norm(dim=-1, keepdim=True) + 1e-12)).clamp_max(1.0)
            if rule == "normalized":
                grad = grad / (grad.square().mean(dim=(0, 2), keepdim=True).sqrt() + 1e-12)
            if rule == "adam":
                m = grad * 0.1 if m is None else m * 0.9 + grad * 0.1
                v = grad.square() * 0.001 if v is None else v * 0.999 + grad.square() * 0.001
                grad = (m / (1 - 0.9**step)) / ((v / (1 - 0.999**step)).sqrt() + 1e-8)
            actions = torch.clamp(actions + grad * lr, low, high)
    with torch.no_grad():
        returns = rollout_return(model, h0, s0, actions, cfg["sample"], cfg["discount"])
        best = returns.argmax(0).item()
        sequence = actions[:, best].clone()
        return sequence[0].cpu(), returns[best].item()


def parse(argv):
    cfg = dict(DEFAULTS)
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or key not in DEFAULTS:
            sys.exit(f"unknown argument {arg!r}; expected key=value with key one of {', '.join(DEFAULTS)}")
        cfg[key] = value
    out = {}
    for key, value in cfg.items():
        if key in TEXT_KEYS:
            out[key] = value
        elif key in FLOAT_KEYS:
            out[key] = float(value)
        else:
            out[key] = int(value)
    out["sample"] = bool(out["sample"])
    return out


def main():
    global ACT, MIN_STD, CONV_MEMORY
    cfg = parse(sys.argv[1:])
    ACT = {"relu": F.relu, "elu": F.elu, "tanh": torch.tanh}[cfg["activation"]]
    MIN_STD = cfg["min_std"]
    device = torch.device(cfg["device"])
    if cfg["threads"] > 0:
        torch.set_num_threads(cfg["threads"])
    torch.manual_seed(0)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def time_ms(n, f):
        f()  # warm-up
        times = []
        for _ in range(n):
            sync()
            start = time.perf_counter()
            f()
            sync()
            times.append((time.perf_counter() - start) * 1e3)
        if not times:  # nothing timed (N = 0): JSON has no infinity
            return {"mean_ms": None, "min_ms": None}
        return {"mean_ms": sum(times) / len(times), "min_ms": min(times)}

    adim = cfg["action_dim"]
    model = WorldModel(
        cfg["obs"], cfg["state_dim"], cfg["belief"], cfg["state"], cfg["hidden"], cfg["embedding"], adim,
        cfg["cnn_depth"],
    ).to(device)
    result = {"torch": torch.__version__, "device": str(device)}
    result["device_name"] = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    parts = [p for p in cfg["parts"].split(",") if p]

    if any(p.startswith("update") for p in parts):
        t_len, b = cfg["chunk"], cfg["batch"]
        if cfg["obs"] == "pixels":
            # As `preprocess_frames` with noise: u8 [T, B, 64, 64, 3] permuted to channels first.
            bits = cfg["bit_depth"]
            raw = torch.randint(256, (t_len, b, 64, 64, 3), dtype=torch.uint8, device=device)
            x = raw.permute(0, 1, 4, 2, 3).float()
            x = torch.floor(x / 2 ** (8 - bits)) / 2**bits - 0.5
            obs = x + torch.rand_like(x) / 2**bits
        else:
            obs = torch.randn(t_len, b, cfg["state_dim"], device=device)
        actions = torch.rand(t_len, b, adim, device=device) * 2 - 1
        rewards = torch.rand(t_len, b, device=device)
        is_first = torch.zeros(t_len, b, device=device)
        is_first[0] = 1
        params = list(model.parameters())
        opt = torch.optim.Adam(params, lr=cfg["lr"], eps=cfg["adam_eps"])

        def update(bf16=False):
            # bf16: PyTorch's mixed precision (autocast picks bf16 for convolutions and matrix
            # products, keeps f32 master weights and f32 reductions).
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = elbo(model, obs, actions, rewards, is_first, cfg["free_nats"], cfg["global_kl_beta"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg["clip"])
            opt.step()

        if "update" in parts:
            result["update"] = time_ms(cfg["updates"], update)
        if "update-bf16" in parts:
            result["update-bf16"] = time_ms(cfg["updates"], lambda: update(True))
        if "update-cl" in parts:
            CONV_MEMORY = torch.channels_last
            model.to(memory_format=torch.channels_last)
            result["update-cl"] = time_ms(cfg["updates"], update)
            CONV_MEMORY = torch.contiguous_format
            model.to(memory_format=torch.contiguous_format)

    # The weights keep requires_grad, as ours do; the planners differentiate to the actions only.
    h0 = torch.zeros(1, cfg["belief"], device=device)
    s0 = torch.zeros(1, cfg["state"], device=device)
    low = -torch.ones(adim, device=device)
    high = torch.ones(adim, device=device)
    planners = {"cem": cem_decision, "grad-mpc": grad_mpc_decision}
    for name, plan in planners.items():
        if name in parts:
            result[name] = time_ms(cfg["decisions"], lambda: plan(model, h0, s0, low, high, cfg))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
