"""The figures of a diffusion model: the sample grid, the denoising process and the interpolation between noises."""
import math

import torch

from utils.errors import UserError
from utils.figures import image_rows
from utils.generators import SamplingOptions
from utils.sampling.driver import make_path, row_conditions, resolved, sample, slerp
from utils.sampling.objectives import OBJECTIVES
from utils.sampling.samplers import SAMPLERS
from utils.sampling.spaces import make_space


def sample_grid(model, config, path, seed, device, options=SamplingOptions(), per_row=10):
    """One labelled row per class (or object) plus two unconditional rows (an 8x8 grid for an unconditional model)."""
    options = resolved(config, options)
    if not config["conditional"]:
        images = sample(model, config, 64, None, options, seed, device)
        rows, names = [images[i:i + 8] for i in range(0, 64, 8)], [""] * 8
    else:
        row_labels, names = row_conditions(config, min(len(config["classes"]), 16))
        labels = row_labels.repeat_interleave(per_row, dim=0)
        conditional = sample(model, config, len(labels), labels, options, seed, device)
        unconditional = sample(model, config, 2 * per_row, None, options, seed, device, first=len(labels))
        rows = list(conditional.split(per_row)) + list(unconditional.split(per_row))
        names += ["unconditional"] * 2
    noising = make_path(config)
    n_steps = len(SAMPLERS[options.sampler].times(noising, options.steps))
    title = f"diffusion samples ({options.sampler}, {n_steps} step{'s' * (n_steps > 1)}"
    limit = f" up to noise {options.guidance_max_noise:.3g}" if not math.isinf(options.guidance_max_noise) else ""
    trained = f" over {config['train_guidance']:g} trained in" * OBJECTIVES[config["objective"]].guidance_trained_in
    title += f", guidance {options.guidance:g}{trained}{limit})" if config["conditional"] else ")"
    image_rows(rows, names, title, path)


def denoise_figure(model, config, path, seed, device, n=4, columns=10, steps=50):
    """A few samples followed from pure noise to the final image: under each noisy x_t, the clean image the network
    predicts at that step (a latent model's decoded into pixels). Frames are spaced evenly in how much x_t and that
    prediction have changed so far, so they fall where the image forms (evenly in t, most would show noise)."""
    frames, space = [], make_space(config, device)
    trace = lambda t, x, x0: frames.append((t, space.decode(x).cpu(), space.decode(x0).cpu()))  # noqa: E731
    labels, names = row_conditions(config, n) if config["conditional"] else (None, [""] * n)
    # DDIM's many small steps show the image forming; a few-step model shows its own few steps instead
    own = OBJECTIVES[config["objective"]].sampling
    options = SamplingOptions(sampler=own.get("sampler", "ddim"), steps=own.get("steps", steps))
    final = sample(model, config, n, labels, options, seed, device, trace)
    change = torch.tensor([0.0] + [((b[1] - a[1]).abs() + (b[2] - a[2]).abs()).mean().item()
                                   for a, b in zip(frames, frames[1:])]).cumsum(0)
    keep = sorted({int((change - w).abs().argmin()) for w in torch.linspace(0, change[-1], columns - 1)})
    rows, row_names = [], []
    for r, name in enumerate(names):
        rows += [torch.stack([frames[i][1][r] for i in keep] + [final[r]]), torch.stack([frames[i][2][r] for i in keep])]
        row_names += [f"{name} x_t".strip(), "predicted x0"]
    image_rows(rows, row_names, f"denoising ({options.sampler}, {len(frames)} step{'s' * (len(frames) > 1)}): the "
               "noisy image x_t, and the clean image the network predicts from it", path,
               column_labels=[f"t={frames[i][0]:g}" for i in keep] + ["final"])


def interpolation(model, ckpt, seed, device, options=SamplingOptions(), condition=None, data=None, rows=6, steps=8,
                  path=None):
    """Spherical paths between two starting noises, every point sampled by the deterministic sampler;
    condition: (label, name) for every row, else one class per row."""
    config = ckpt["config"]
    options = resolved(config, options)
    if SAMPLERS[options.sampler].stochastic:
        raise UserError(f"--interpolate needs a deterministic sampler: --sampler dpm or ddim, not {options.sampler}")
    if condition is not None:
        row_labels, names = condition[0].expand(rows, *condition[0].shape), [condition[1]] * rows
    elif config["conditional"]:
        row_labels, names = row_conditions(config, rows)
    else:
        row_labels, names = None, [""] * rows
    ends = torch.randn(rows, 2, *make_space(config).shape, generator=torch.Generator().manual_seed(seed))
    weights = torch.linspace(0, 1, steps + 2)
    noise = torch.stack([slerp(a, b, w) for a, b in ends for w in weights])
    labels = row_labels.repeat_interleave(len(weights), dim=0) if row_labels is not None else None
    images = sample(model, config, len(noise), labels, options, seed, device, noise=noise)
    path = path or "vis/interpolation_diffusion.png"
    image_rows(list(images.split(len(weights))), names,
               f"diffusion: samples from slerp(noise A, noise B, w) ({options.sampler}, {options.steps} steps)", path,
               column_labels=[f"w={w:.2f}" for w in weights.tolist()])
    return path
