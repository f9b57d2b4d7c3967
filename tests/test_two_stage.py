"""The two-stage VAE (the default VAE): a second VAE on the first one's codes, sampled from N(0, I)."""
import torch

import train_script
from utils.generators import GENERATORS
from utils.sampling.samplers import sample_generators
from utils.sampling.two_stage import fit_code_vae


def test_the_second_stage_learns_where_the_codes_lie():
    """Codes far from N(0, I) (mean 3, scales 0.2 to 1.5): the second stage's samples have their mean and spread."""
    g = torch.Generator().manual_seed(0)
    scales = torch.tensor([0.2, 0.5, 1.0, 1.5])
    codes = torch.randn(4000, 4, generator=g) * scales + 3
    samples = fit_code_vae(codes, hidden=64).sample(sample_generators(0, 0, 4000))
    assert torch.allclose(samples.mean(0), torch.full((4,), 3.0), atol=0.15)
    assert torch.allclose(samples.std(0), scales, rtol=0.25)


def test_the_default_vae_samples_through_its_second_stage(tiny_flowers, workdir):
    train_script.main(["--model", "VAE", "--data", str(tiny_flowers), "--epochs", "1", "--threads", "1"])
    kind = GENERATORS["VAE"]
    model, ckpt = kind.load()
    assert "second_stage" in ckpt and ckpt["config"]["stages"] == 2
    samples = kind.api.generate(model, ckpt["config"], 4, seed=0)
    direct = model.decode(torch.stack([torch.randn(model.encoding_dim, generator=g)
                                       for g in sample_generators(0, 0, 4)]))
    assert samples.shape == direct.shape and not torch.allclose(samples, direct)   # not z ~ N(0, I) decoded
    again = kind.api.generate(model, ckpt["config"], 2, seed=0)
    assert torch.allclose(again, samples[:2], atol=1e-6)   # sample i is its own (up to the matmul's batch rounding)
