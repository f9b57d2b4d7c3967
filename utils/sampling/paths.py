"""How images are noised: each path says x_t = a(t) x0 + s(t) eps for its own time t.

    coefficients(t)       (a, s) at time t (a tensor of times gives tensors shaped to broadcast over images)
    training_times(n)     n random times for the loss
    sampling_times(steps) times from pure noise down to the least noisy step; samplers end on the clean image
    ancestral_times(steps) the same for the stochastic DDPM sampler
    network_time(t)       the number the network's time embedding sees
    from_config(config)   (a class method) the path of a run's saved configuration

The samplers (samplers.py) and objectives (objectives.py) use only these, so every sampler works on every path.
A new path is one class registered in PATHS, under the name an objective's `path` gives.
"""
import math

import torch


def make_betas(schedule, timesteps=1000):
    """beta_t for t = 0..T-1: 'linear' (Ho et al. 2020) or 'cosine' (Nichol & Dhariwal 2021)."""
    if schedule == "linear":
        return torch.linspace(1e-4, 0.02, timesteps, dtype=torch.float64).float()
    if schedule == "cosine":
        s = 0.008
        f = torch.cos((torch.arange(timesteps + 1, dtype=torch.float64) / timesteps + s) / (1 + s) * math.pi / 2) ** 2
        alpha_bar = f / f[0]
        return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999).float()
    raise ValueError(f"unknown schedule {schedule!r} (use linear or cosine)")


def shaped(values, t):
    """Per-image coefficients broadcast over (C, H, W) when t is a batch of times."""
    return values.view(-1, 1, 1, 1) if values.dim() else values


class Discrete:
    """The DDPM process (Ho et al. 2020): integer t in 0..T-1, a = sqrt(alpha_bar_t), s = sqrt(1 - alpha_bar_t)."""

    def __init__(self, alpha_bar, schedule=""):
        self.alpha_bar, self.schedule = alpha_bar, schedule

    @classmethod
    def from_config(cls, config):
        return cls(torch.cumprod(1 - make_betas(config["schedule"], config["timesteps"]), 0), config["schedule"])

    def coefficients(self, t):
        ab = self.alpha_bar.to(t.device if torch.is_tensor(t) else "cpu")[t]
        return shaped(ab.sqrt(), t), shaped((1 - ab).sqrt(), t)

    def training_times(self, n, device="cpu"):
        return torch.randint(0, len(self.alpha_bar), (n,), device=device)

    def sampling_times(self, steps):
        """`steps` timesteps from T-1 down to 0, evenly spaced (never repeated, even if steps > T)."""
        return torch.linspace(len(self.alpha_bar) - 1, 0, steps).round().long().unique_consecutive().tolist()

    def ancestral_times(self, steps):
        return self.sampling_times(len(self.alpha_bar))   # DDPM's sampler walks every step of the chain

    def network_time(self, t):
        return t

    def describe(self):
        return f"{self.schedule} schedule, T={len(self.alpha_bar)}".strip()


class Straight:
    """Rectified flow (Liu et al. 2022; Lipman et al. 2023): continuous t in [0, 1], x_t = (1 - t) x0 + t eps.

    Training times are uniform or logit-normal (Esser et al. 2024: more of them in the middle, where the image's
    layout is decided)."""

    def __init__(self, time_sampling="logit-normal"):
        if time_sampling not in ("uniform", "logit-normal"):
            raise ValueError(f"unknown time sampling {time_sampling!r} (use uniform or logit-normal)")
        self.time_sampling = time_sampling

    @classmethod
    def from_config(cls, config):
        return cls(config["time_sampling"])

    def coefficients(self, t):
        t = torch.as_tensor(t, dtype=torch.float32)
        return shaped(1 - t, t), shaped(t, t)

    def training_times(self, n, device="cpu"):
        if self.time_sampling == "uniform":
            return torch.rand(n, device=device)
        return torch.sigmoid(torch.randn(n, device=device))

    def sampling_times(self, steps):
        return torch.linspace(1, 0, steps + 1)[:-1].tolist()

    def ancestral_times(self, steps):
        return self.sampling_times(steps)

    def network_time(self, t):
        return t * 1000   # the sinusoidal embedding's frequencies were chosen for integer steps up to 1000

    def describe(self):
        return f"straight path, {self.time_sampling} t"


PATHS = {"discrete": Discrete, "straight": Straight}   # OBJECTIVES' `path` names these
