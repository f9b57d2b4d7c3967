"""Part 3: the variational autoencoder on the convolutional trunk of Part 2, and its loss."""
import torch
from torch import nn
import torch.nn.functional as F

from Autoencoder import Autoencoder


class VarAutoencoder(Autoencoder):
    """The Part 2 autoencoder whose code is a distribution: mean and log-variance heads replace its Linear."""

    def __init__(self, image_size=24, channels=3, encoding_dim=64, upsample_kernel=4):
        super().__init__(image_size, channels, encoding_dim, upsample_kernel)
        features = self.encoder[-1].in_features
        self.encoder = self.encoder[:-1]  # the convolutional trunk, flattened
        self.fc_mu = nn.Linear(features, encoding_dim)
        self.fc_logvar = nn.Linear(features, encoding_dim)

    def moments(self, x):
        """Mean and log-variance of q(z|x)."""
        h = self.encoder(x)
        return self.fc_mu(h), self.fc_logvar(h)

    def encode(self, x):
        """The deterministic code (the posterior mean), so the VAE reconstructs like the AEs."""
        return self.moments(x)[0]

    @staticmethod
    def reparameterize(mu, logvar):
        # z = mu + sigma * eps keeps the sample differentiable in mu and logvar.
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)

    def forward(self, x):
        mu, logvar = self.moments(x)
        z = self.reparameterize(mu, logvar) if self.training else mu
        return self.decode(z), mu, logvar


def VAE_loss_function(recon_x, x, mu, logvar, recon="mse", beta=1.0):
    """Negative ELBO per image: reconstruction summed over pixels + beta * KL(q(z|x) || N(0, I)).

    recon="mse" is a Gaussian decoder of fixed variance 1/2 (the squared error, as the handout's reference does);
    recon="sigma" is a calibrated Gaussian decoder (sigma-VAE, Rybkin et al. 2021): its variance is the one that
    maximises the likelihood, the batch's mean squared error, so the reconstruction term is
    D/2 log(MSE) + const per image of D pixels (the constant D/2 (1 + log 2 pi) is left out). With the fixed
    variance 1/2, about twenty times the real error, the KL term wins and the codes carry little;
    recon="bce" is a Bernoulli decoder, which can never go below the data's own pixel entropy.
    """
    # Sums over thousands of pixels in float32, also when the network ran under bf16 autocast (--precision bf16).
    recon_x, mu, logvar = recon_x.float(), mu.float(), logvar.float()
    if recon == "mse":
        reconstruction = F.mse_loss(recon_x, x, reduction="sum")
    elif recon == "sigma":
        reconstruction = x[0].numel() / 2 * torch.log(F.mse_loss(recon_x, x)) * x.shape[0]
    elif recon == "bce":
        with torch.autocast(x.device.type, enabled=False):  # CUDA's autocast refuses BCE, even in float32
            reconstruction = F.binary_cross_entropy(recon_x, x, reduction="sum")
    else:
        raise ValueError(f"unknown reconstruction loss {recon!r} (use mse, sigma or bce)")
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return (reconstruction + beta * kl) / x.shape[0]
