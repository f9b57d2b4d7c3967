"""Bonus: the first stage of latent diffusion, Part 3's VAE made spatial (Rombach et al. 2022's KL autoencoder).

3xHxW -> (pixel unshuffle) 12xH/2 -> 32xH/2 -> 64xH/4 (+ residual block) -> encoding_dim x H/4 x W/4 (mean, log-var)
      -> 64xH/4 (+ two residual blocks) -> 32xH/2 -> 12xH/2 -> (pixel shuffle) 3xHxW

At 64 px the code is a 16x16 grid of 8 channels (6x fewer numbers than the image) on which diffusion.py --latent
trains. The full-resolution layers are a pixel (un)shuffle: a convolution at 64x64 would cost more than all the
others together on a CPU. Codes keep their spatial layout, so the diffusion U-Net sees them as a small image.
"""
import torch
import torch.nn.functional as F
from torch import nn


class ResidualBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


class LatentAutoencoder(nn.Module):
    def __init__(self, image_size=64, channels=3, encoding_dim=8, widths=(32, 64)):
        super().__init__()
        if image_size % 4:
            raise ValueError(f"image size must be a multiple of 4 (two 2x steps down), got {image_size}")
        w1, w2 = widths
        self.image_shape = (channels, image_size, image_size)
        self.code_shape = (encoding_dim, image_size // 4, image_size // 4)
        self.encoding_dim = self.code_shape   # the code's size, as evaluate.py's compression column reads it
        self.encoder = nn.Sequential(
            nn.PixelUnshuffle(2), nn.Conv2d(4 * channels, w1, 3, padding=1), nn.SiLU(),   # w1 x H/2
            nn.Conv2d(w1, w2, 4, stride=2, padding=1), ResidualBlock(w2), nn.SiLU(),       # w2 x H/4
            nn.Conv2d(w2, 2 * encoding_dim, 3, padding=1),                                  # mean and log-variance
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(encoding_dim, w2, 3, padding=1), ResidualBlock(w2), ResidualBlock(w2), nn.SiLU(),
            nn.ConvTranspose2d(w2, w1, 4, stride=2, padding=1), nn.SiLU(),                  # w1 x H/2
            nn.Conv2d(w1, w1, 3, padding=1), nn.SiLU(), nn.Conv2d(w1, 4 * channels, 3, padding=1),
            nn.PixelShuffle(2),                                                             # C x H
        )

    def moments(self, x):
        """Mean and log-variance of q(z|x), each encoding_dim x H/4 x W/4, for images in [0, 1]."""
        mu, logvar = self.encoder(x * 2 - 1).chunk(2, dim=1)
        return mu, logvar.clamp(-30, 20)

    def encode(self, x):
        """The deterministic code (the posterior mean): what reconstructions and latent diffusion use."""
        return self.moments(x)[0]

    def decode(self, z):
        """Images in about [0, 1] (not clipped: a sigmoid would flatten the brightest and darkest detail)."""
        return (self.decoder(z) + 1) / 2

    def forward(self, x):
        mu, logvar = self.moments(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decode(z), mu, logvar


def image_gradients(x):
    return x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]


def latent_loss_function(recon_x, x, mu, logvar, kl_weight=1e-6, gradient_weight=1.0):
    """(objective, squared error per pixel).

    The objective is the squared error per pixel, plus `gradient_weight` times the squared error of the images'
    horizontal and vertical differences (edges: the plain squared error forgives a blur too easily), plus a KL term
    per code number so small (Rombach et al.'s weight) that it only keeps the codes' scale in check: detail comes
    first, and diffusion.py --latent rescales the codes to unit variance anyway.
    """
    recon_x, mu, logvar = recon_x.float(), mu.float(), logvar.float()
    mse = F.mse_loss(recon_x, x)
    edges = sum(F.mse_loss(a, b) for a, b in zip(image_gradients(recon_x), image_gradients(x)))
    kl = -0.5 * torch.mean(1 + logvar - mu.pow(2) - logvar.exp())
    return mse + gradient_weight * edges + kl_weight * kl, mse
