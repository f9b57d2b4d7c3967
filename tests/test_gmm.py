"""The Gaussian-mixture prior for the autoencoders' codes (random_generation.py --prior gmm)."""
import torch

import random_generation
import train_script
from utils.sampling.gmm import fit_gmm
from utils.sampling.samplers import sample_generators


def two_blobs(n=3000):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n // 3, 2, generator=g) * torch.tensor([0.3, 0.1]) + torch.tensor([2.0, 0.0])
    b = torch.randn(2 * n // 3, 2, generator=g) @ torch.tensor([[0.5, 0.2], [0.0, 0.4]]) + torch.tensor([-1.0, 1.0])
    return torch.cat([a, b])


def test_em_finds_the_two_blobs():
    gmm = fit_gmm(two_blobs(), components=2)
    order = gmm.means[:, 0].argsort(descending=True)
    assert torch.allclose(gmm.weights[order], torch.tensor([1 / 3, 2 / 3], dtype=torch.float64), atol=0.02)
    assert torch.allclose(gmm.means[order], torch.tensor([[2.0, 0.0], [-1.0, 1.0]], dtype=torch.float64), atol=0.05)


def test_samples_have_the_mixtures_mean_and_covariance():
    gmm = fit_gmm(two_blobs(), components=3)
    mean = gmm.weights @ gmm.means
    second = (gmm.weights[:, None, None] * (gmm.covariances + gmm.means[:, :, None] * gmm.means[:, None, :])).sum(0)
    samples = gmm.sample(sample_generators(0, 0, 20000))
    assert torch.allclose(samples.mean(0), mean, atol=0.03)
    assert torch.allclose(samples.T.cov(), second - torch.outer(mean, mean), atol=0.05)
    assert torch.equal(gmm.sample(sample_generators(0, 0, 3)), samples[:3])   # sample i is its own


def test_prior_flag_writes_its_own_figure(tiny_flowers, workdir):
    train_script.main(["--model", "AE", "--data", str(tiny_flowers), "--epochs", "1", "--threads", "1"])
    random_generation.main(["--model", "AE", "--prior", "gmm", "--n", "5", "--out-dir", "gmm", "--threads", "1"])
    assert (workdir / "vis/random_images_AE_gmm.png").exists() and not (workdir / "vis/random_images_AE.png").exists()
    assert len(list((workdir / "gmm").glob("AE_*.png"))) == 5
