"""The sampling driver of a diffusion model: its network's output read as (noise, clean image), classifier-free
guidance, and sample(): per-sample noise, the registered sampler, the space's decoding. The network itself and its
loss are diffusion.py's; the samplers, paths, objectives and spaces are this package's other modules.
"""
import math
from dataclasses import replace

import torch

from utils import cli
from utils.generators import SamplingOptions
from utils.sampling.objectives import OBJECTIVES, Guidance, guided
from utils.sampling.paths import PATHS
from utils.sampling.samplers import SAMPLERS, per_sample_noise, sample_generators
from utils.sampling.spaces import make_space, space_kind
from utils.training.train import autocast


def eps_and_x0(output, x_t, a, s, objective, clip=1.0):
    """The network's output as (noise, clean image), with the clean image clipped to [-clip, clip], the data's
    range (pixels; codes have no fixed range: clip None)."""
    _, x0 = OBJECTIVES[objective].eps_and_x0(output, x_t, a, s)
    if clip is not None:
        x0 = x0.clamp(-clip, clip)
    return (x_t - a * x0) / s, x0


def padded(model, multiple):
    """model(x, t, labels) on batches padded to a multiple of `multiple` images. CPU bf16 kernels block the batch:
    in a batch of 5 an image's output depended on its place in it (by up to 0.03), in batches of 4, 8, 12 ... 64
    it did not (measured), so padding keeps sample i the same whatever n and the batch size."""
    def call(x, t, labels=None, interval=None):
        inputs = [x, t, labels] + ([] if interval is None else [interval])   # a network that never jumps takes 3
        extra = -len(x) % multiple
        if extra:
            inputs = [None if v is None else torch.cat([v, v[:1].expand(extra, *v.shape[1:])]) for v in inputs]
        return model(*inputs)[:len(x)]
    return call


def guided_denoiser(model, path, objective, labels=None, guidance=2.0, clip=1.0, max_noise=math.inf, pad_to=1):
    """denoise(x_t, t) -> (eps, x0) for the samplers; with labels, classifier-free guidance of weight `guidance`:
    output = uncond + guidance * (cond - uncond), so 0 is unconditional and 1 purely conditional. Guided only at
    steps whose noise-to-signal ratio s/a is at most max_noise, purely conditional at the noisier ones: guiding
    those narrows the samples' variety (Kynkaanniemi et al. 2024). pad_to: padded()'s multiple."""
    net = padded(model, pad_to)

    def denoise(x, t, until=None):
        """until: where the step ends, for a model of average velocities over a step (objectives.py's Shortcut); a
        model of instantaneous velocities ignores it."""
        t_batch = path.network_time(torch.full((len(x),), t, device=x.device))
        interval = None if until is None else path.network_time(torch.full((len(x),), t - until, device=x.device))
        a, s = (c.to(x.device) for c in path.coefficients(t))
        weight = float(Guidance(guidance, max_noise).at(t, path))
        # .float(): under bf16 autocast the network's output is bfloat16; guidance and the sampler's steps are not
        if labels is None or weight == 0:   # exactly the unconditional prediction, at half the cost
            output = net(x, t_batch, None, interval).float()
        elif weight == 1:                   # exactly the conditional one
            output = net(x, t_batch, labels, interval).float()
        else:
            output = guided(net, x, t_batch, labels, weight, model, interval)
        return eps_and_x0(output, x, a, s, objective, clip)
    return denoise


def make_path(config):
    """The noising path of a configuration: the one its objective trains on (utils/sampling/paths.py's PATHS)."""
    return PATHS[OBJECTIVES[config["objective"]].path].from_config(config)


def resolved(config, options=SamplingOptions()):
    """The options with every None filled in by the model's defaults: its objective's where it has its own (a
    few-step model's sampler, steps and guidance), else its space's (utils/sampling/spaces.py)."""
    space = space_kind(config)
    defaults = dict(guidance=space.guidance, guidance_max_noise=space.guidance_max_noise, sampler=space.sampler,
                    steps=space.steps, precision=space.precision)
    defaults.update(OBJECTIVES[config["objective"]].sampling)
    return replace(options, **{key: value for key, value in defaults.items() if getattr(options, key) is None})


@torch.no_grad()
def sample(model, config, n, labels=None, options=SamplingOptions(), seed=0, device="cpu", trace=None, batch_size=64,
           noise=None, first=0):
    """n images in [0, 1] (labels: n class indices or multi-hot object sets, or None for unconditional samples).
    options: the sampler, its steps, the guidance and its noise limit (guided_denoiser's) and the precision
    ("auto", "fp32" or "bf16", cli.precision_for's); None in any of them: the model's space's default.

    Sample i (counted from `first`) draws its noise from its own generator, seeded by (seed, first + i): the same
    image whatever n and the batch size. `noise`: the starting x_T (n x C x H x W) instead (interpolation)."""
    path, space, options = make_path(config), make_space(config, device), resolved(config, options)
    precision = cli.precision_for(options.precision, torch.device(device))
    out = []
    for start in range(0, n, batch_size):
        end = min(n, start + batch_size)
        generators = sample_generators(seed, first + start, end - start)
        x = noise[start:end] if noise is not None else per_sample_noise(generators, space.shape)
        chunk = labels[start:end].to(device) if labels is not None else None
        denoise = guided_denoiser(model, path, config["objective"], chunk, options.guidance, space.clip,
                                  options.guidance_max_noise, pad_to=8 if precision == "bf16" else 1)
        fresh_noise = lambda size: per_sample_noise(generators, size[1:]).to(device)  # noqa: E731
        with autocast(device, precision):
            x = SAMPLERS[options.sampler](denoise, x.to(device), path, options.steps, fresh_noise, trace)
        out.append(space.decode(x).cpu())
    return torch.cat(out)


def slerp(a, b, weight):
    """Spherical interpolation: Gaussian noise keeps its norm along the path (a straight line would shrink it)."""
    omega = torch.arccos((a.flatten() @ b.flatten() / (a.norm() * b.norm())).clamp(-1, 1))
    if omega < 1e-4:  # (almost) the same direction: the straight line is the arc
        return (1 - weight) * a + weight * b
    return (torch.sin((1 - weight) * omega) * a + torch.sin(weight * omega) * b) / torch.sin(omega)


def balanced_labels(num_classes, n):
    return torch.arange(n) % num_classes


def row_conditions(config, n_rows):
    """Labels and names for rows of a figure: every class in turn, or (multi-label) one object per row."""
    classes = config["classes"]
    labels = balanced_labels(len(classes), n_rows)
    names = [classes[i] for i in labels]
    return (torch.eye(len(classes))[labels] if config.get("multi_label") else labels), names
