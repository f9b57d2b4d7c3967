"""Samplers for diffusion and flow models, kept apart from the network and the objective.

Every sampler has one signature, sampler(denoise, x, path, steps, fresh_noise=None, trace=None): `x` is the
starting noise (drawn by the caller, per sample, so that sample i does not depend on its batch),
`denoise(x_t, t, until=None) -> (eps, x0)` is the network's prediction of the noise and the clean image at the
path's time t, whatever objective it was trained with (`until`: the end of the step, which a model trained to jump
takes whole; the others ignore it), and `path` (paths.py) gives x_t = a(t) x0 + s(t) eps and the time grid.
`fresh_noise(shape)` gives the stochastic sampler its noise (again per sample); `trace(t, x_t, x0)` sees every step.
Every sampler ends on the clean image (a = 1, s = 0).
"""
from dataclasses import dataclass
from typing import Callable

import torch

from utils.seeds import stable_seed

CLEAN = (torch.tensor(1.0), torch.tensor(0.0))   # (a, s) after the last step


def sample_generators(seed, first, n):
    """One random generator per sample, seeded by (seed, index): sample i never depends on its batch."""
    return [torch.Generator().manual_seed(stable_seed(seed, first + i)) for i in range(n)]


def per_sample_noise(generators, shape):
    """Standard normal noise of the given per-sample shape, each sample's from its own generator."""
    return torch.stack([torch.randn(shape, generator=g) for g in generators])


def steps_of(path, times):
    """(t, the next time, t's (a, s), the next time's (a, s)) for each step of a time grid; after the last step
    comes the clean image (time None)."""
    coefficients = [path.coefficients(t) for t in times] + [CLEAN]
    return zip(times, times[1:] + [None], coefficients, coefficients[1:])


@torch.no_grad()
def ddim_sample(denoise, x, path, steps=50, fresh_noise=None, trace=None):
    """Deterministic DDIM (Song et al. 2021, eta = 0): x_next = a_next x0 + s_next eps. It is Euler's method on
    the probability-flow ODE in x/a against s/a (Karras et al. 2022), and on the straight path Euler's method
    in t itself: x + (t_next - t)(eps - x0)."""
    for t, _, _, (a_next, s_next) in steps_of(path, path.sampling_times(steps)):
        eps, x0 = denoise(x, t)
        if trace is not None:
            trace(t, x, x0)
        x = a_next * x0 + s_next * eps
    return x


@torch.no_grad()
def heun_sample(denoise, x, path, steps=10, fresh_noise=None, trace=None):
    """Heun's second-order method (as in Karras et al. 2022) on the same ODE, written for the clean-image
    prediction: y = x/s moves along rho = a/s with dy/drho = x0, which stays finite at pure noise (a = 0).
    Each step takes a DDIM step, asks the network again there and averages the two predictions; the last step
    lands on the clean prediction. 2 * steps - 1 network evaluations."""
    for t, t_next, (a, s), (a_next, s_next) in steps_of(path, path.sampling_times(steps)):
        eps, x0 = denoise(x, t)
        if trace is not None:
            trace(t, x, x0)
        if t_next is None:
            return x0
        _, x0_there = denoise(a_next * x0 + s_next * eps, t_next)
        x = s_next * (x / s + (a_next / s_next - a / s) * (x0 + x0_there) / 2)
    return x


@torch.no_grad()
def ddpm_sample(denoise, x, path, steps=None, fresh_noise=None, trace=None):
    """Ancestral sampling (Ho et al. 2020) through every step of a DDPM path (`steps` of a continuous one): from
    the posterior q(x_s | x_t, x0) of each step, with fresh noise added at every step but the last. Worked in
    the variance-preserving scale x / sqrt(a^2 + s^2), which is the DDPM process itself for a DDPM path."""
    for t, t_next, (a, s), (a_next, s_next) in steps_of(path, path.ancestral_times(steps)):
        _, x0 = denoise(x, t)
        if trace is not None:
            trace(t, x, x0)
        r, r_next = (a * a + s * s).sqrt(), (a_next * a_next + s_next * s_next).sqrt()
        ab_t, ab_s = (a / r) ** 2, (a_next / r_next) ** 2
        beta = 1 - ab_t / ab_s                            # the noise added between s and t
        x = (ab_s.sqrt() * beta * x0 + (ab_t / ab_s).sqrt() * (1 - ab_s) * x / r) / (1 - ab_t)
        if t_next is not None:
            x = x + (beta * (1 - ab_s) / (1 - ab_t)).sqrt() * fresh_noise(x.shape)
        x = r_next * x
    return x


@torch.no_grad()
def dpm_solver_sample(denoise, x, path, steps=20, fresh_noise=None, trace=None):
    """DPM-Solver++(2M) (Lu et al. 2022): a second-order multistep solver of the same ODE as DDIM.

    It works in the half-log-SNR lambda = log(a / s) and extrapolates the clean-image prediction
    from the last two steps, so it reaches DDIM's quality in fewer network evaluations.
    """
    x0_prev, h_prev = None, None
    for t, t_next, (a, s), (a_next, s_next) in steps_of(path, path.sampling_times(steps)):
        _, x0 = denoise(x, t)
        if trace is not None:
            trace(t, x, x0)
        if t_next is None:
            return x0                                  # the last step lands on the clean prediction
        h = torch.log(a_next / s_next) - torch.log(a / s)
        if x0_prev is None:
            d = x0                                     # first step: first order (= DDIM)
        else:
            r = h_prev / h
            d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * x0_prev
        x = (s_next / s) * x - a_next * torch.expm1(-h) * d
        x0_prev, h_prev = x0, h
    return x


@torch.no_grad()
def jump_sample(denoise, x, path, steps=2, fresh_noise=None, trace=None):
    """Whole jumps, one network call each, for a model of the average velocity over a step (objectives.py's
    Shortcut): asked where the step ends (the clean image after the last), it answers with the (eps, x0) whose
    DDIM step, x_next = a_next x0 + s_next eps, lands there. On a model of instantaneous velocities it is DDIM."""
    for t, t_next, _, (a_next, s_next) in steps_of(path, path.sampling_times(steps)):
        eps, x0 = denoise(x, t, 0.0 if t_next is None else t_next)
        if trace is not None:
            trace(t, x, x0)
        x = a_next * x0 + s_next * eps
    return x


@dataclass(frozen=True)
class Sampler:
    """One registered sampler: its function (the signature above), the words --sampler's help gives it, and
    whether it draws fresh noise at its steps (then it walks the path's ancestral_times, and cannot follow a fixed
    path from a given noise, as --interpolate needs)."""
    run: Callable
    help: str
    stochastic: bool = False

    def __call__(self, denoise, x, path, steps, fresh_noise=None, trace=None):
        return self.run(denoise, x, path, steps, fresh_noise, trace)

    def times(self, path, steps):
        """The times of the network's evaluations along the path (a figure's step count)."""
        return (path.ancestral_times if self.stochastic else path.sampling_times)(steps)


# A new sampler is one function and one entry here: --sampler offers it, and every path and objective take it.
SAMPLERS = {
    "dpm": Sampler(dpm_solver_sample, "deterministic DPM-Solver++(2M), as good as DDIM in fewer steps"),
    "ddim": Sampler(ddim_sample, "deterministic DDIM"),
    "euler": Sampler(ddim_sample, "Euler's method, the same as ddim"),
    "heun": Sampler(heun_sample, "Heun's second-order method, two network calls a step"),
    "jump": Sampler(jump_sample, "a model's own jumps over each step (--objective distill or shortcut), one "
                             "network call a step"),
    "ddpm": Sampler(ddpm_sample, "ancestral DDPM sampling, all T steps of a DDPM model", stochastic=True),
}


def sampler_help():
    return "; ".join(f"{name}: {sampler.help}" for name, sampler in SAMPLERS.items())
