"""Checks of utils/evaluation/metrics.py against closed forms and toy cases with known answers."""
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also works as plain `pytest`

from utils.evaluation.metrics import (compression_ratio, frechet_distance, kernel_inception_distance,  # noqa: E402
                           nearest_neighbour_distance, precision_recall, psnr, ssim)


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


def exact_gaussian_sample(n, mean, cov, seed=0):
    """n points whose sample mean and (N-1) sample covariance are exactly mean and cov."""
    z = torch.randn(n, len(mean), generator=generator(seed), dtype=torch.float64)
    z = z - z.mean(0)
    z = z @ torch.linalg.inv(torch.linalg.cholesky(torch.cov(z.T))).T  # whiten: covariance I
    return mean + z @ torch.linalg.cholesky(cov).T


def random_spd(d, seed):
    a = torch.randn(d, d, generator=generator(seed), dtype=torch.float64)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


def smooth_images(n, size=9, seed=0):
    """Random smooth images: bilinear upsampling of coarse noise."""
    coarse = torch.rand(n, 1, size // 3, size // 3, generator=generator(seed))
    return F.interpolate(coarse, size=size, mode="bilinear", align_corners=False)


def box_blur(images, passes):
    for _ in range(passes):
        images = F.avg_pool2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return images


# ---------------------------------------------------------------- Fréchet distance

def test_fd_of_a_set_with_itself_is_zero():
    feats = torch.randn(200, 16, generator=generator())
    assert abs(frechet_distance(feats, feats)) < 1e-6


def test_fd_is_symmetric():
    a = torch.randn(300, 8, generator=generator(1))
    b = 2 * torch.randn(300, 8, generator=generator(2)) + 0.5
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)


def test_fd_matches_closed_form_for_diagonal_covariances():
    # Diagonal covariances commute: FD = |mu_a - mu_b|^2 + sum (std_a - std_b)^2.
    mu_a, mu_b = torch.tensor([0.0, 1.0, -2.0]).double(), torch.tensor([1.0, 1.0, 0.0]).double()
    std_a, std_b = torch.tensor([1.0, 2.0, 0.5]).double(), torch.tensor([3.0, 2.0, 1.0]).double()
    a = exact_gaussian_sample(50, mu_a, torch.diag(std_a ** 2), seed=1)
    b = exact_gaussian_sample(70, mu_b, torch.diag(std_b ** 2), seed=2)
    expected = (mu_a - mu_b).square().sum() + (std_a - std_b).square().sum()
    assert frechet_distance(a, b) == pytest.approx(expected.item(), rel=1e-9)


def test_fd_matches_trace_of_product_eigenvalues_for_full_covariances():
    # Independent route: Ca Cb has real positive eigenvalues whose square roots sum to Tr((Ca Cb)^1/2).
    d = 6
    cov_a, cov_b = random_spd(d, 3), random_spd(d, 4)
    mu_a = torch.zeros(d, dtype=torch.float64)
    mu_b = torch.linspace(-1, 1, d, dtype=torch.float64)
    a = exact_gaussian_sample(40, mu_a, cov_a, seed=5)
    b = exact_gaussian_sample(40, mu_b, cov_b, seed=6)
    trace_sqrt = torch.linalg.eigvals(cov_a @ cov_b).real.sqrt().sum()
    expected = (mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * trace_sqrt
    assert frechet_distance(a, b) == pytest.approx(expected.item(), rel=1e-8)


def test_fd_grows_with_blur():
    images = smooth_images(300)
    feats = images.flatten(1)
    distances = [frechet_distance(feats, box_blur(images, p).flatten(1)) for p in (1, 2, 4, 8)]
    assert distances == sorted(distances) and distances[0] > 0


def test_fd_grows_with_feature_shift():
    feats = torch.randn(200, 10, generator=generator())
    shifts = [frechet_distance(feats, feats + t) for t in (0.1, 0.5, 1.0, 2.0)]
    # Shifting every coordinate by t adds exactly D t^2.
    assert shifts == pytest.approx([10 * t ** 2 for t in (0.1, 0.5, 1.0, 2.0)], rel=1e-6)


# ---------------------------------------------------------------- KID

def test_kid_is_about_zero_for_one_distribution():
    a = torch.randn(400, 16, generator=generator(1))
    b = torch.randn(400, 16, generator=generator(2))
    mean, std = kernel_inception_distance(a, b, subsets=20, subset_size=200)
    assert abs(mean) < 2 * std


def test_kid_is_clearly_positive_for_different_distributions():
    a = torch.randn(400, 16, generator=generator(1))
    b = torch.randn(400, 16, generator=generator(2)) + 0.5
    mean, std = kernel_inception_distance(a, b, subsets=20, subset_size=200)
    assert mean > 10 * std > 0


def test_kid_is_reproducible_and_leaves_the_global_rng_alone():
    a = torch.randn(100, 4, generator=generator(1))
    b = torch.randn(100, 4, generator=generator(2))
    state = torch.random.get_rng_state()
    first = kernel_inception_distance(a, b, subsets=5, subset_size=50, seed=3)
    assert torch.equal(state, torch.random.get_rng_state())
    assert first == kernel_inception_distance(a, b, subsets=5, subset_size=50, seed=3)


# ---------------------------------------------------------------- Precision / recall

def uniform_cloud(n, x_range, seed):
    points = torch.rand(n, 2, generator=generator(seed))
    points[:, 0] = x_range[0] + (x_range[1] - x_range[0]) * points[:, 0]
    return points


def test_precision_recall_of_identical_clouds_is_one():
    cloud = uniform_cloud(300, (0, 1), seed=0)
    assert precision_recall(cloud, cloud.clone()) == (1.0, 1.0)


def test_precision_recall_of_a_far_cloud_is_zero():
    real = uniform_cloud(300, (0, 1), seed=0)
    assert precision_recall(real, real + 10) == (0.0, 0.0)


def test_fake_covering_half_the_real_cloud():
    # Real: [0, 2] x [0, 1]; fake: the left half at the same density.
    real = uniform_cloud(1000, (0, 2), seed=1)
    fake = uniform_cloud(500, (0, 1), seed=2)
    precision, recall = precision_recall(real, fake)
    assert precision > 0.97
    assert recall == pytest.approx(0.5, abs=0.05)


def test_precision_recall_does_not_depend_on_batching():
    real = uniform_cloud(200, (0, 2), seed=1)
    fake = uniform_cloud(100, (0, 1), seed=2)
    assert precision_recall(real, fake, batch_size=7) == precision_recall(real, fake, batch_size=1000)


# ---------------------------------------------------------------- Nearest-neighbour distance

def test_nearest_neighbour_distance_of_copies_is_zero():
    train = torch.rand(50, 3, 8, 8, generator=generator())
    assert nearest_neighbour_distance(train[[3, 7, 1, 1]], train, batch_size=16) < 1e-6


def test_nearest_neighbour_distance_of_shifted_copies():
    # Training items far apart, so the shifted copy's nearest neighbour is its original.
    train = 10 * torch.arange(5.0, dtype=torch.float64).reshape(5, 1, 1, 1).expand(5, 3, 4, 4)
    distance = nearest_neighbour_distance(train[:3] + 0.1, train, batch_size=2)
    assert distance == pytest.approx(0.1 * math.sqrt(3 * 4 * 4), rel=1e-6)


# ---------------------------------------------------------------- PSNR / SSIM

def test_psnr_of_constant_offset():
    x = torch.full((2, 3, 8, 8), 0.5)
    assert psnr(x, x + 0.1).tolist() == pytest.approx([20.0, 20.0], abs=1e-4)  # 10 log10(1 / 0.01)
    assert psnr(255 * x, 255 * x + 25.5, data_range=255).tolist() == pytest.approx([20.0, 20.0], abs=1e-4)


def test_psnr_of_identical_images_is_infinite():
    x = torch.rand(2, 3, 8, 8, generator=generator())
    assert torch.isinf(psnr(x, x)).all()


def test_ssim_of_identical_images_is_one():
    x = torch.rand(4, 3, 24, 24, generator=generator())
    assert ssim(x, x).tolist() == pytest.approx([1.0] * 4, abs=1e-9)


def test_ssim_of_constant_images_is_the_luminance_term():
    # No variance anywhere: the contrast-structure factor is C2 / C2 = 1.
    a, b = 0.3, 0.7
    c1 = 0.01 ** 2
    expected = (2 * a * b + c1) / (a ** 2 + b ** 2 + c1)
    result = ssim(torch.full((1, 3, 24, 24), a), torch.full((1, 3, 24, 24), b))
    assert result.item() == pytest.approx(expected, rel=1e-6)


def test_ssim_matches_an_explicit_loop_over_windows():
    x = torch.rand(1, 1, 9, 9, generator=generator(1), dtype=torch.float64)
    y = torch.rand(1, 1, 9, 9, generator=generator(2), dtype=torch.float64)
    g = torch.exp(-torch.arange(-3.0, 4.0, dtype=torch.float64).square() / (2 * 1.5 ** 2))
    w = torch.outer(g, g) / g.sum() ** 2
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    values = []
    for i in range(3):  # 9 - 7 + 1 valid positions per axis
        for j in range(3):
            px, py = x[0, 0, i:i + 7, j:j + 7], y[0, 0, i:i + 7, j:j + 7]
            mx, my = (w * px).sum(), (w * py).sum()
            vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
            cxy = (w * (px - mx) * (py - my)).sum()
            values.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2)))
    assert ssim(x, y).item() == pytest.approx(torch.stack(values).mean().item(), rel=1e-9)


def test_ssim_decreases_with_noise():
    x = smooth_images(4, size=24)
    noise = torch.randn(x.shape, generator=generator(1))
    scores = [ssim(x, x + level * noise).mean().item() for level in (0.02, 0.05, 0.1, 0.2)]
    assert scores == sorted(scores, reverse=True) and scores[0] < 1


def test_ssim_rejects_a_window_larger_than_the_image():
    x = torch.rand(1, 1, 6, 6)
    with pytest.raises(ValueError):
        ssim(x, x)
    assert ssim(x, x, window_size=5).shape == (1,)


def test_compression_ratio():
    assert compression_ratio((3, 24, 24), 64) == 27.0
    assert compression_ratio((3, 24, 24), (16, 3, 3)) == 12.0
