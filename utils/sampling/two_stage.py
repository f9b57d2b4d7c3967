"""The second stage of a two-stage VAE (Dai & Wipf 2019): a small VAE fitted to the first VAE's codes.

A VAE whose decoder fits the data well (the calibrated decoder, recon="sigma") keeps its codes informative, and
then they no longer fill N(0, I): z ~ N(0, I) lands where no training image's code lies. A second VAE, on the
64-d codes themselves, learns where they do lie; sampling u ~ N(0, I) through its decoder gives codes that the
first decoder turns into flowers. Both stages draw from N(0, I), as the handout asks.
"""
import math

import torch
from torch import nn

from utils.training.train import make_optimizer


class CodeVAE(nn.Module):
    """An MLP VAE on codes, with a learned decoder noise level gamma per code dimension (its own calibration: with
    one gamma for all, dimensions that vary less than gamma are taken for noise and collapse to their mean)."""

    def __init__(self, dim=64, hidden=512):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                     nn.Linear(hidden, 2 * dim))
        self.decoder = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                     nn.Linear(hidden, dim))
        self.log_gamma = nn.Parameter(torch.zeros(dim))

    def loss(self, z):
        """Negative ELBO per code: Gaussian reconstruction of std gamma + KL(q(u|z) || N(0, I))."""
        mu, logvar = self.encoder(z).chunk(2, dim=1)
        u = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        nll = ((self.decoder(u) - z).square() / (2 * torch.exp(2 * self.log_gamma)) + self.log_gamma).sum(1)
        kl = -0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(1)
        return (nll + kl).mean()

    @torch.no_grad()
    def sample(self, generators):
        """One code per generator: u ~ N(0, I), then z ~ N(decoder(u), gamma^2), both drawn by that sample's own
        generator (without the decoder's noise, the dimensions it models as noise would all take their mean)."""
        dim = self.decoder[-1].out_features
        u, noise = torch.stack([torch.randn(2, dim, generator=g) for g in generators]).unbind(1)
        device = self.log_gamma.device
        return self.decoder(u.to(device)) + self.log_gamma.exp() * noise.to(device)


def fit_code_vae(codes, epochs=150, batch_size=256, lr=1e-3, hidden=512, seed=0):
    """The second stage, trained on the first stage's codes of the training images (a few seconds on a CPU)."""
    with torch.random.fork_rng():   # seeded, without touching the caller's random state
        torch.manual_seed(seed)
        model = CodeVAE(codes.shape[1], hidden)
        optimizer = make_optimizer("adam", model.parameters(), lr)
        for _ in range(epochs * math.ceil(len(codes) / batch_size)):
            loss = model.loss(codes[torch.randint(len(codes), (min(batch_size, len(codes)),))])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()
