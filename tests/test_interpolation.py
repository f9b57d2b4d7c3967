"""random_generation.py --interpolate: latent lines for the autoencoders, noise arcs for the diffusion model."""
import pytest
import torch

import diffusion
import random_generation
import train_script
from utils.errors import UserError
from utils.generators import SamplingOptions
from utils.kinds.decoder import latent_path
from utils.sampling.driver import sample, slerp
from utils.models import load


def test_slerp_keeps_the_noise_norm_and_hits_the_ends():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 16, 16, generator=g), torch.randn(3, 16, 16, generator=g)
    assert torch.allclose(slerp(a, b, 0.0), a, atol=1e-5)
    assert torch.allclose(slerp(a, b, 1.0), b, atol=1e-5)
    middle = slerp(a, b, 0.5)
    # Two independent Gaussians are nearly orthogonal: the straight line's midpoint shrinks to ~0.71 of the norm.
    assert middle.norm().item() == pytest.approx(((a.norm() + b.norm()) / 2).item(), rel=0.05)
    assert ((a + b) / 2).norm() < 0.8 * middle.norm()
    assert torch.allclose(slerp(a, a, 0.3), a, atol=1e-5)


def test_given_noise_fixes_the_deterministic_sample():
    model = diffusion.Diffuser(8, 3, num_classes=0, base=8, mults=(1, 2)).eval()
    torch.nn.init.normal_(model.head[-1].weight, std=0.1)
    config = dict(schedule="cosine", timesteps=50, objective="v", channels=3, image_size=8)
    noise = torch.randn(2, 3, 8, 8)
    draw = lambda seed: sample(model, config, 2, None, SamplingOptions(0, "dpm", 4), seed, noise=noise)  # noqa: E731
    assert torch.equal(draw(1), draw(2))                    # the seed no longer matters


@pytest.mark.parametrize("model", ["AE", "VAE"])
def test_autoencoder_interpolation(model, tiny_flowers, workdir):
    train_script.main(["--model", model, "--data", str(tiny_flowers), "--epochs", "1", "--threads", "1"])
    random_generation.main(["--model", model, "--interpolate", "--threads", "1"])
    assert (workdir / f"vis/interpolation_{model}.png").exists()
    trained, _ = load(model)
    ends = torch.rand(2, 3, 24, 24)
    path = latent_path(trained, ends, torch.linspace(0, 1, 5))
    with torch.no_grad():
        reconstructions = trained.decode(trained.encode(ends)).clamp(0, 1)
    assert path.shape == (5, 3, 24, 24)
    assert torch.allclose(path[0], reconstructions[0], atol=1e-5) and torch.allclose(path[-1], reconstructions[1], atol=1e-5)
    assert not torch.allclose(path[2], path[0], atol=1e-3)


def test_diffusion_interpolation(tiny_flowers, workdir):
    diffusion.main(["--data", str(tiny_flowers), "--minutes", "0", "--epochs", "1", "--steps", "2",
                    "--film-steps", "2", "--base", "8", "--threads", "1", "--preview-every", "0"])
    random_generation.main(["--model", "diffusion", "--interpolate", "--steps", "2", "--threads", "1"])
    assert (workdir / "vis/interpolation_diffusion.png").exists()
    with pytest.raises(UserError, match="deterministic sampler"):
        random_generation.main(["--model", "diffusion", "--interpolate", "--sampler", "ddpm", "--threads", "1"])
    with pytest.raises(UserError, match="leave out --n"):
        random_generation.main(["--model", "diffusion", "--interpolate", "--n", "3", "--out-dir", "x"])
