"""Spaces: what the diffusion network denoises, and in which precision it reaches the loss."""
import torch

from LatentAutoencoder import LatentAutoencoder
from diffusion import diffusion_loss_fn
from utils.sampling.paths import Straight
from utils.sampling.spaces import LatentSpace
from utils.training.train import autocast


class Sees(torch.nn.Module):
    """Records the dtype of the noisy input the loss gives the network, and answers in bfloat16 as autocast would."""
    num_classes = 0

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x, t, labels=None, interval=None):
        self.seen.append(x.dtype)
        return torch.zeros_like(x, dtype=torch.bfloat16)


def test_latent_codes_noise_and_loss_stay_float32_under_bf16_training():
    """train.py's promise: bf16 for the network's products, float32 for the data, the noise and the loss."""
    torch.manual_seed(0)
    space = LatentSpace(LatentAutoencoder(8, 3, encoding_dim=4, widths=(8, 8)), scale=2.0)
    images = torch.rand(2, 3, 8, 8)
    net = Sees()
    with autocast("cpu", "bf16"):
        codes = space.encode(images)
        loss = diffusion_loss_fn(net, codes, None, Straight(), objective="flow", min_snr=0)
    assert codes.dtype == torch.float32 and net.seen == [torch.float32] and loss.dtype == torch.float32
