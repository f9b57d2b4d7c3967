"""Colour grain: the fine detail's power in the colour channels, which a feature network pools away."""
import torch
import torchvision.transforms.functional as TF

from utils.evaluation.spectrum import colour_detail, high_frequency_power, spectral_features
from utils.evaluation.spectrum import colour_grain as grain_against_level


def colour_grain(images, reference):
    return grain_against_level(images, colour_detail(reference).mean(0))


def smooth_images(n=64, size=24, seed=0):
    """Random colour fields with little fine detail: noise blurred by 2 px."""
    g = torch.Generator().manual_seed(seed)
    return TF.gaussian_blur(torch.rand(n, 3, size, size, generator=g), kernel_size=9, sigma=2.0)


def test_grain_is_one_against_itself_and_grows_with_colour_noise():
    images = smooth_images()
    assert abs(colour_grain(images, images) - 1) < 1e-9
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(1))
    colour_only = noise - noise.mean(1, keepdim=True)    # the three values of a pixel moved apart, not together
    grains = [colour_grain(images + s * colour_only, images) for s in (0.01, 0.02, 0.04)]
    assert 1 < grains[0] < grains[1] < grains[2]


def test_grain_sees_colour_not_brightness():
    images = smooth_images()
    noise = torch.randn(images.shape[0], 1, *images.shape[2:], generator=torch.Generator().manual_seed(2))
    brighter_specks = images + 0.05 * noise               # the same speck in all three channels: no colour
    assert abs(colour_grain(brighter_specks, images) - 1) < 1e-6
    assert high_frequency_power(brighter_specks)[:, 0].mean() > 10 * high_frequency_power(images)[:, 0].mean()


def test_blur_lowers_grain_and_gray_images_have_none():
    images = smooth_images()
    sharp = images + 0.02 * torch.randn(images.shape, generator=torch.Generator().manual_seed(3))
    assert colour_grain(TF.gaussian_blur(sharp, kernel_size=5, sigma=1.0), sharp) < 0.5
    assert colour_grain(images[:, :1], images[:, :1]) is None
    assert spectral_features(images, torch.ones(2), 2.0).shape == (len(images), 2)
