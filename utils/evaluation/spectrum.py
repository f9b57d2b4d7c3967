"""Colour grain: the power of an image's fine detail, per channel of luminance and colour.

A generator can draw the right shapes and colours and still cover them in single-pixel specks of saturated colour.
A feature network trained to tell flowers apart pools such specks away, so its FD barely moves; the spectrum sees
them directly. Each image is split into luminance and the two colour-opponent channels (red - green, and
yellow - blue), windowed (Hann, so that the image's border is not an edge) and Fourier transformed; its power is
averaged over the upper half of the radial frequencies (|f| >= sqrt(2)/4 cycles per pixel, half-way to the corner
of the spectrum).
"""
import math

import torch

HIGH = math.sqrt(2) / 4   # cycles per pixel: the upper half of the radial frequencies, up to the corner (sqrt(2)/2)


def opponent_channels(images):
    """(luminance, red - green, yellow - blue) of images in [0, 1], N x 3 x H x W; a gray image has only the first."""
    if images.shape[1] == 1:
        return images
    r, g, b = images.unbind(1)
    return torch.stack([(r + g + b) / 3, r - g, (r + g) / 2 - b], 1)


def high_frequency_power(images):
    """N x C: the mean power of each opponent channel above HIGH, per image (float64)."""
    x = opponent_channels(images.double())
    x = x - x.mean((-2, -1), keepdim=True)
    h, w = x.shape[-2:]
    window = torch.outer(torch.hann_window(h, periodic=False, dtype=x.dtype),
                         torch.hann_window(w, periodic=False, dtype=x.dtype))
    power = torch.fft.fft2(x * window).abs().square()
    radius = torch.sqrt(torch.fft.fftfreq(h, dtype=x.dtype)[:, None] ** 2 + torch.fft.fftfreq(w, dtype=x.dtype) ** 2)
    return power[..., radius >= HIGH].mean(-1)


def colour_grain(images, level):
    """The colour channels' high-frequency power of these images over `level`, the reference photos' (their
    colour_detail(...).mean(0), which the evaluator keeps as detail_level): 1 photo-like, above it grain, below it
    smoother than photos. None for gray images, which have no colour."""
    if images.shape[1] == 1:
        return None
    return (colour_detail(images).mean() / level.double().mean()).item()


def colour_detail(images):
    """N x 2: the high-frequency power of the two colour channels (N x 0 for gray images)."""
    return high_frequency_power(images)[:, 1:]


def spectral_features(images, level, scale):
    """N x 2 features for FD: log(1 + P / level) of each colour channel's high-frequency power P, times scale. The
    level is the photos' mean power: an excess of fine colour (grain) grows logarithmically, while a lack of it
    (blur, which the network's features already see) counts at most log 2."""
    return (torch.log1p(colour_detail(images) / level.double()) * scale).float()
