"""Where a diffusion model works: on the pixels, or on the codes of a frozen autoencoder (latent diffusion).

A space turns training images in [0, 1] into what the network denoises (encode), and samples back into images
(decode). The objectives, paths and samplers never see the difference.
"""
import hashlib
import math
from pathlib import Path

import torch

from utils.data.dataset import to_float
from utils.errors import UserError


class PixelSpace:
    """The images themselves, scaled to [-1, 1]."""
    min_size = 0   # the smallest image size (px) this space's defaults serve; space_kind takes the largest that fits
    # diffusion.py's network and recipe here: a U-Net at the full resolution with a narrow first level (16 channels,
    # then 32, 64 and 128 at 12, 6 and 3 px), in many small steps. A U-Net on 2x2 blocks of pixels (patch 2) costs
    # less per image (2.2x the images/s) but leaves single-pixel specks of colour (grain 6.30 against 0.99 after 12
    # epochs). The lr sits near the edge of stability (--base 24 diverges at it): with gradients clipped at norm 1
    # and 128 channels at 3 px, not 96 unclipped, network-only FD at 12 / 24 epochs is 3.52 / 2.16 and 3.23 / 2.29
    # (seeds 0 / 1) against 2.99 / 2.19 and 4.50 / 2.90: both seeds under 4 and 2.5 (bench/diffusion_curve.py
    # --epochs, docs/diffusion.md)
    network = dict(patch=1, base=16, mults=(1, 2, 4, 8), upsample="nearest", batch_size=16, lr=3e-3, clip_grad=1.0)
    clip = 1.0   # a predicted clean image is clipped to this range while sampling
    guidance, guidance_max_noise = 1.5, math.inf   # sampling defaults: guided at every step (bench/diffusion_curve.py)
    sampler, steps = "dpm", 20   # DPM-Solver++(2M), 20 network calls at 20 steps
    # The network's arithmetic (cli.precision_for): at 24 px bf16 autocast sampled no faster (0.7 s per 64 either
    # way) and scored FD 2.05 / 2.45 against fp32's 2.00 / 2.40 (seeds 0 / 1;
    # bench/diffusion_samplers.py, docs/bonus.md)
    precision = "fp32"

    def __init__(self, channels, image_size):
        self.shape = (channels, image_size, image_size)

    def encode(self, images):
        return images * 2 - 1

    def decode(self, x):
        return ((x + 1) / 2).clamp(0, 1)


class LargePixelSpace(PixelSpace):
    """Pixels at 64 px and more, sampled as the codes are: on the 16 flowers at 64 px (2x2 blocks, 44 minutes of
    training) 1,000 samples scored FD 1.16 / 1.23, recall 0.761 / 0.751 (seeds 0 / 1) this way against 1.53 / 1.60,
    0.708 / 0.690 with the 24 px defaults above (docs/bonus.md)."""
    min_size = 64
    # 2x2 blocks of pixels, the network the bonus's numbers were measured with (docs/bonus.md)
    network = dict(patch=2, base=32, mults=(1, 2, 3), upsample="transposed", batch_size=64, lr=2e-3, clip_grad=0.0)
    guidance, guidance_max_noise = 3.0, 7 / 3
    sampler = "heun"
    # bf16 where the hardware multiplies it natively: 4.7-5.6 s per 64 samples against fp32's 11.6-11.9, FD 1.10 /
    # 1.20 against 1.16 / 1.23 (the model above, docs/bonus.md)
    precision = "auto"


class LatentSpace:
    """The posterior means of a frozen LatentAutoencoder, times `scale` so that they have unit variance, as the
    noise schedules assume (Rombach et al. 2022)."""
    clip = None  # codes have no fixed range: clipping them to the pixels' [-1, 1] cut their tails, and the samples'
                 # variety with them (recall 0.05 clipped, against 0.8 for the decoded real codes)
    network = dict(patch=1, base=32, mults=(1, 2, 3), upsample="transposed", batch_size=64, lr=2e-3, clip_grad=0.0)
    # Guided strongly, but only at noise-to-signal ratios up to 2.33 (t <= 0.7 on the straight path): on the 16
    # flowers at 64 px, 1,000 samples scored FD 2.08 / recall 0.541 / class acc 83.3 % this way, against 2.20 /
    # 0.479 / 87.7 % for guidance 2 and 2.89 / 0.477 / 76.0 % for 1.5 at every step; on the
    # 8-channel codes 1.33 / 0.675 against 1.78 / 0.672 for 2.5 and 1.70 / 0.676 for 4 up to noise 1 (docs/bonus.md).
    guidance, guidance_max_noise = 3.0, 7 / 3
    # Heun's second-order steps (2 network calls each; 2.6 s per 64 samples at 64 px): on the 16 flowers FD 1.17 /
    # 1.24, recall 0.682 / 0.693 (seeds 0 / 1) against DPM-Solver++'s 1.41 / 1.51, 0.662 / 0.675 at 20 steps (1.30 /
    # 0.670 at 40, seed 0); on the 3 lab classes 2.04 / 2.30, 0.793 / 0.778 against 2.77 / 3.03, 0.776 / 0.765
    # (docs/bonus.md).
    sampler, steps = "heun", 20
    # bf16 where native: 2.0 s per 64 samples against fp32's 2.6, FD 1.18 against 1.17 (seed 0; docs/bonus.md)
    precision = "auto"

    def __init__(self, autoencoder, scale):
        self.autoencoder, self.scale = autoencoder.eval().requires_grad_(False), scale
        self.shape = tuple(autoencoder.code_shape)

    @torch.no_grad()
    def encode(self, images):
        # float32 whatever the caller's autocast: the training noise, its target and the loss are computed on these
        return self.autoencoder.encode(images).float() * self.scale

    @torch.no_grad()
    def decode(self, z):
        return self.autoencoder.decode(z / self.scale).clamp(0, 1)


def weights_digest(model):
    """Changes whenever the autoencoder is retrained: a latent model's codes are only those of its own."""
    digest = hashlib.sha1()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def load_autoencoder(path, device="cpu"):
    from utils.models import load   # here: utils.models itself imports from utils.sampling
    try:
        return load("LatentAE", path, device)[0]
    except UserError as e:
        raise UserError(f"{e} (the first stage of latent diffusion: python train_script.py --model LatentAE)")


@torch.no_grad()
def code_scale(autoencoder, images):
    """1 / the standard deviation of the codes of these images (floats in [0, 1])."""
    codes = torch.cat([autoencoder.encode(batch) for batch in images.split(250)])
    return 1.0 / codes.std().item()


def new_latent(path, image_size, channels, images, device="cpu", n=2000):
    """The configuration of a new latent run on the autoencoder saved at `path`: its code shape, the scale of its
    codes on (the first n of) these training images (uint8) and the digest of its weights."""
    autoencoder = load_autoencoder(path, device)
    if autoencoder.image_shape != (channels, image_size, image_size):
        raise UserError(f"--latent {path} encodes {'x'.join(map(str, autoencoder.image_shape))} images, not the "
                        f"data's {channels}x{image_size}x{image_size} (train it with --image-size {image_size})")
    return dict(shape=list(autoencoder.code_shape), scale=code_scale(autoencoder, to_float(images[:n]).to(device)),
                digest=weights_digest(autoencoder))


PIXEL_SPACES = [PixelSpace, LargePixelSpace]   # a new size range of pixels is one subclass declaring min_size


def space_kind(config):
    """The class of a run's space, for its sampling defaults, without loading an autoencoder."""
    if config.get("latent"):
        return LatentSpace
    return max((space for space in PIXEL_SPACES if space.min_size <= config["image_size"]),
               key=lambda space: space.min_size)


_LOADED = {}   # (autoencoder file, its modification time, device) -> (autoencoder, digest): read once


def make_space(config, device="cpu"):
    """The space of a diffusion run's configuration; a latent model's autoencoder must be the one it was trained on."""
    if not config.get("latent"):
        return space_kind(config)(config["channels"], config["image_size"])
    code, path = config["latent_code"], Path(config["latent"])
    key = (str(path.resolve()), path.stat().st_mtime_ns if path.exists() else None, str(device))
    if key not in _LOADED:   # sampling asks for the space once per batch: load and hash the file only once
        autoencoder = load_autoencoder(config["latent"], device)
        _LOADED[key] = autoencoder, weights_digest(autoencoder)
    autoencoder, digest = _LOADED[key]
    if list(autoencoder.code_shape) != list(code["shape"]) or digest != code["digest"]:
        raise UserError(f"{config['latent']} is not the autoencoder this latent diffusion model was trained on "
                        f"(retrained or replaced since); retrain the diffusion model with --latent {config['latent']}")
    return LatentSpace(autoencoder, code["scale"])
