"""Checks of utils/data/synthetic.py: the stand-in data must be well-formed, reproducible and class-distinct."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also works as plain `pytest`

from utils.data.synthetic import CLASSES, SUPPORTED_SIZES, synthetic_flowers  # noqa: E402

ASTILBE, BELLFLOWER, CALENDULA = range(3)


@pytest.fixture(scope="module")
def sample():
    """40 images per class at the default size, as floats in [0, 1]."""
    images, labels, classes = synthetic_flowers(n_per_class=40, image_size=24, seed=0)
    return images.float() / 255, labels, classes


def bright_mean(images):
    """Mean colour of bright pixels: the flowers, since every background palette is a dim green or brown."""
    bright = images.amax(1, keepdim=True) > 0.6
    return (images * bright).sum((0, 2, 3)) / bright.sum()


def centre_mean(images):
    """Mean colour of the middle third, where the main calendula head always sits."""
    s = images.shape[-1]
    return images[:, :, s // 3:2 * s // 3, s // 3:2 * s // 3].mean((0, 2, 3))


def test_shapes_dtypes_and_labels():
    images, labels, classes = synthetic_flowers(n_per_class=7, image_size=24, seed=0)
    assert images.shape == (21, 3, 24, 24) and images.dtype == torch.uint8
    assert labels.dtype == torch.int64
    assert labels.tolist() == [0] * 7 + [1] * 7 + [2] * 7  # sorted by class
    assert classes == CLASSES == ["astilbe", "bellflower", "calendula"]


def test_same_seed_same_images_different_seed_different_images():
    first = synthetic_flowers(n_per_class=5, seed=3)[0]
    assert torch.equal(first, synthetic_flowers(n_per_class=5, seed=3)[0])
    assert not torch.equal(first, synthetic_flowers(n_per_class=5, seed=4)[0])


def test_leaves_global_state_alone():
    torch.manual_seed(123)
    rng, threads = torch.get_rng_state(), torch.get_num_threads()
    synthetic_flowers(n_per_class=2)
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.get_num_threads() == threads


@pytest.mark.parametrize("size", SUPPORTED_SIZES)
def test_supported_sizes(size):
    images, labels, _ = synthetic_flowers(n_per_class=3, image_size=size)
    assert images.shape == (9, 3, size, size) and len(labels) == 9
    assert images.float().std() > 20


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        synthetic_flowers(n_per_class=2, image_size=28)
    with pytest.raises(ValueError):
        synthetic_flowers(n_per_class=0)


def test_pixels_span_a_wide_range_and_images_vary(sample):
    images, _, _ = sample
    assert images.min() < 0.1 and images.max() > 0.9
    assert (images.flatten(1).std(1) > 0.05).all()  # no flat image
    flat = images.flatten(1)
    assert torch.cdist(flat, flat).add(torch.eye(len(flat))).min() > 0.5  # no two images alike


def test_calendula_is_orange_yellow(sample):
    images, labels, _ = sample
    r, g, b = centre_mean(images[labels == CALENDULA])
    assert (r + g) / 2 - b > 0.25
    r, g, b = bright_mean(images[labels == CALENDULA])
    assert r > g > b + 0.2


def test_bellflower_is_bluer_than_calendula(sample):
    images, labels, _ = sample
    assert centre_mean(images[labels == BELLFLOWER])[2] > centre_mean(images[labels == CALENDULA])[2] + 0.15
    r, g, b = bright_mean(images[labels == BELLFLOWER])
    assert b > r + 0.05 and b > g + 0.05


def test_astilbe_is_pinker_than_bellflower(sample):
    images, labels, _ = sample
    r, g, _ = bright_mean(images[labels == ASTILBE])
    r_bell, g_bell, _ = bright_mean(images[labels == BELLFLOWER])
    assert r - g > 0.1 and r - g > (r_bell - g_bell) + 0.1
