"""Samplers for discrete-time diffusion, kept apart from the network and the loss.

Each takes `denoise(x_t, t) -> (eps, x0)`: the noise and the clean image the model predicts at integer
timestep t (0 = least noisy), and the noise schedule's alpha_bar. Any network and objective that can
answer that question can be sampled by any sampler here.
"""
import torch


def ddim_timesteps(num_timesteps, steps):
    """`steps` timesteps from T-1 down to 0, evenly spaced (never repeated, even if steps > T)."""
    return torch.linspace(num_timesteps - 1, 0, steps).round().long().unique_consecutive()


@torch.no_grad()
def initial_noise(shape, generator, device, noise=None):
    """x_T: the given noise (interpolations choose it), else a fresh draw from the generator."""
    return (noise if noise is not None else torch.randn(shape, generator=generator)).to(device)


@torch.no_grad()
def ddim_sample(denoise, shape, alpha_bar, steps=50, generator=None, device="cpu", trace=None, noise=None):
    """Deterministic DDIM (Song et al. 2021, eta = 0): the noise is fixed by the generator, then no more is added."""
    x = initial_noise(shape, generator, device, noise)
    timesteps = ddim_timesteps(len(alpha_bar), steps).tolist()
    for i, t in enumerate(timesteps):
        if trace is not None:
            trace(t, x)
        eps, x0 = denoise(x, t)
        ab_next = alpha_bar[timesteps[i + 1]] if i + 1 < len(timesteps) else torch.tensor(1.0)
        x = ab_next.sqrt() * x0 + (1 - ab_next).sqrt() * eps
    return x


@torch.no_grad()
def ddpm_sample(denoise, shape, betas, generator=None, device="cpu", trace=None):
    """Ancestral sampling (Ho et al. 2020) through all T steps, from the posterior q(x_{t-1} | x_t, x0)."""
    alphas = 1 - betas
    alpha_bar = torch.cumprod(alphas, 0)
    alpha_bar_prev = torch.cat([torch.ones(1), alpha_bar[:-1]])
    x0_coef = alpha_bar_prev.sqrt() * betas / (1 - alpha_bar)
    xt_coef = alphas.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar)
    posterior_std = (betas * (1 - alpha_bar_prev) / (1 - alpha_bar)).sqrt()
    x = initial_noise(shape, generator, device)
    for t in reversed(range(len(betas))):
        if trace is not None:
            trace(t, x)
        _, x0 = denoise(x, t)
        x = x0_coef[t] * x0 + xt_coef[t] * x
        if t > 0:
            x = x + posterior_std[t] * torch.randn(shape, generator=generator).to(device)
    return x


@torch.no_grad()
def dpm_solver_sample(denoise, shape, alpha_bar, steps=20, generator=None, device="cpu", trace=None, noise=None):
    """DPM-Solver++(2M) (Lu et al. 2022): a second-order multistep solver of the same ODE as DDIM.

    It works in the half-log-SNR lambda = log(alpha / sigma) and extrapolates the clean-image prediction
    from the last two steps, so it reaches DDIM's quality in fewer network evaluations.
    """
    x = initial_noise(shape, generator, device, noise)
    timesteps = ddim_timesteps(len(alpha_bar), steps).tolist()
    alpha, sigma = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
    lam = torch.log(alpha / sigma)
    x0_prev, h_prev = None, None
    for i, t in enumerate(timesteps):
        if trace is not None:
            trace(t, x)
        _, x0 = denoise(x, t)
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
