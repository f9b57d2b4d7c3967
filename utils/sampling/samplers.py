"""Samplers for diffusion, kept apart from the network and the objective.

Every sampler has one signature, sampler(denoise, x, alpha_bar, steps, fresh_noise=None, trace=None): `x` is the
starting noise x_T (drawn by the caller, per sample, so that sample i does not depend on its batch),
`denoise(x_t, t) -> (eps, x0)` is the network's prediction of the noise and the clean image at integer
timestep t (0 = least noisy), whatever objective it was trained with, and `alpha_bar` is the noise schedule.
`fresh_noise(shape)` gives the stochastic sampler its noise (again per sample); `trace(t, x_t, x0)` sees every step.
"""
import torch


def sample_generators(seed, first, n):
    """One random generator per sample, seeded by (seed, index): sample i never depends on its batch."""
    return [torch.Generator().manual_seed(hash((seed, first + i)) % 2 ** 63) for i in range(n)]


def per_sample_noise(generators, shape):
    """Standard normal noise of the given per-sample shape, each sample's from its own generator."""
    return torch.stack([torch.randn(shape, generator=g) for g in generators])


def timesteps_for(num_timesteps, steps):
    """`steps` timesteps from T-1 down to 0, evenly spaced (never repeated, even if steps > T)."""
    return torch.linspace(num_timesteps - 1, 0, steps).round().long().unique_consecutive().tolist()


def alpha_bar_after(alpha_bar, timesteps, i):
    """alpha_bar of the step after the i-th: 1 (no noise) after the last."""
    return alpha_bar[timesteps[i + 1]] if i + 1 < len(timesteps) else torch.tensor(1.0, dtype=alpha_bar.dtype)


@torch.no_grad()
def ddim_sample(denoise, x, alpha_bar, steps=50, fresh_noise=None, trace=None):
    """Deterministic DDIM (Song et al. 2021, eta = 0): the starting noise fixes the image."""
    timesteps = timesteps_for(len(alpha_bar), steps)
    for i, t in enumerate(timesteps):
        eps, x0 = denoise(x, t)
        if trace is not None:
            trace(t, x, x0)
        ab_next = alpha_bar_after(alpha_bar, timesteps, i)
        x = ab_next.sqrt() * x0 + (1 - ab_next).sqrt() * eps
    return x


@torch.no_grad()
def ddpm_sample(denoise, x, alpha_bar, steps=None, fresh_noise=None, trace=None):
    """Ancestral sampling (Ho et al. 2020) through all T timesteps, whatever `steps` says: from the posterior
    q(x_s | x_t, x0) of each step, with fresh noise added at every step but the last."""
    timesteps = timesteps_for(len(alpha_bar), len(alpha_bar))
    for i, t in enumerate(timesteps):
        _, x0 = denoise(x, t)
        if trace is not None:
            trace(t, x, x0)
        ab_t, ab_s = alpha_bar[t], alpha_bar_after(alpha_bar, timesteps, i)
        beta = 1 - ab_t / ab_s                            # the noise added between s and t
        x = (ab_s.sqrt() * beta * x0 + (ab_t / ab_s).sqrt() * (1 - ab_s) * x) / (1 - ab_t)
        if i + 1 < len(timesteps):
            x = x + (beta * (1 - ab_s) / (1 - ab_t)).sqrt() * fresh_noise(x.shape)
    return x


@torch.no_grad()
def dpm_solver_sample(denoise, x, alpha_bar, steps=20, fresh_noise=None, trace=None):
    """DPM-Solver++(2M) (Lu et al. 2022): a second-order multistep solver of the same ODE as DDIM.

    It works in the half-log-SNR lambda = log(alpha / sigma) and extrapolates the clean-image prediction
    from the last two steps, so it reaches DDIM's quality in fewer network evaluations.
    """
    timesteps = timesteps_for(len(alpha_bar), steps)
    alpha, sigma = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
    lam = torch.log(alpha / sigma)
    x0_prev, h_prev = None, None
    for i, t in enumerate(timesteps):
        _, x0 = denoise(x, t)
        if trace is not None:
            trace(t, x, x0)
        if i + 1 == len(timesteps):
            return x0                                  # the last step lands on the clean prediction
        s = timesteps[i + 1]
        h = lam[s] - lam[t]
        if x0_prev is None:
            d = x0                                     # first step: first order (= DDIM)
        else:
            r = h_prev / h
            d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * x0_prev
        x = (sigma[s] / sigma[t]) * x - alpha[s] * torch.expm1(-h) * d
        x0_prev, h_prev = x0, h
    return x


SAMPLERS = {"ddim": ddim_sample, "ddpm": ddpm_sample, "dpm": dpm_solver_sample}
