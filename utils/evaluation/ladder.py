"""The calibration ladder of evaluate.py's report: held-out real images made worse by known amounts (blurred,
resampled down and up, noised, noised in colour alone), and samples of a Gaussian fitted to the training pixels (the
baseline any generator must beat). Each ladder's rungs must score in order: bench/evaluator_checks.py checks them."""
import math

import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF

BLUR_SIGMAS = (0.5, 1, 2)          # pixels
RESAMPLE_FACTORS = (2, 3)          # down by this factor, then back up
NOISE_SIGMAS = (0.05, 0.1)         # added Gaussian noise, images in [0, 1]
# Noise in colour alone (each pixel's three values moved by noise of zero mean across them): colour grain 2.5 and 6.1
# on the lab's photos at 24 px, as much as in the samples of a diffusion model that sees 2x2 blocks of pixels after
# 24 and 12 epochs (docs/evaluation.md)
COLOUR_NOISE_SIGMAS = (0.03, 0.055)
LADDERS = ("blur", "resampling", "noise", "colour-noise")


def degrade(images, kind, amount, generator):
    """Held-out images made worse by a known amount: the rungs of the calibration ladder."""
    size = images.shape[-1]
    if kind == "blur":
        return TF.gaussian_blur(images, kernel_size=2 * math.ceil(3 * amount) + 1, sigma=amount)
    if kind == "resampling":
        small = F.interpolate(images, size=round(size / amount), mode="bilinear", antialias=True, align_corners=False)
        return F.interpolate(small, size=size, mode="bilinear", align_corners=False).clamp(0, 1)
    if kind == "colour-noise":
        noise = torch.randn(images.shape, generator=generator)
        return (images + amount * (noise - noise.mean(1, keepdim=True))).clamp(0, 1)
    if kind == "noise":
        return (images + amount * torch.randn(images.shape, generator=generator)).clamp(0, 1)
    raise ValueError(f"unknown degradation {kind!r}")


def ladder(valid, train, n, generator):
    """(row name, ladder, rung, images): held-out real, each degradation in growing amounts, the pixel Gaussian."""
    yield "real (held-out)", None, 0, valid
    for kind, amounts, label in [("blur", BLUR_SIGMAS, "real, blurred (sigma {} px)"),
                                 ("resampling", RESAMPLE_FACTORS, "real, down and up by {}"),
                                 ("noise", NOISE_SIGMAS, "real + noise (sigma {})"),
                                 ("colour-noise", COLOUR_NOISE_SIGMAS if valid.shape[1] == 3 else (),
                                  "real + colour noise (sigma {})")]:
        for rung, amount in enumerate(amounts, 1):
            yield label.format(amount), kind, rung, degrade(valid, kind, amount, generator)
    yield "Gaussian fit to pixels", None, 0, gaussian_baseline(train, n, generator)


def gaussian_baseline(train_images, n, generator):
    """Samples of N(mean, covariance) of the training pixels, drawn as mean + X^T w / sqrt(m - 1), w ~ N(0, I):
    exactly that Gaussian, without forming the D x D covariance (D = 12,288 at 64 px)."""
    flat = train_images.flatten(1).double()
    mean = flat.mean(0)
    weights = torch.randn(n, len(flat), generator=generator, dtype=torch.float64) / math.sqrt(len(flat) - 1)
    return (mean + weights @ (flat - mean)).float().clamp(0, 1).view(n, *train_images.shape[1:])
