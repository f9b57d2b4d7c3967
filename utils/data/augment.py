"""Training-time augmentation (--augment, the evaluator's classifier, data_analysis.py's preview): flips and crops.

--augment flip keeps the images as they are, mirrored or not; crop (flips and crops) also resamples them, which
blurs every image a little: on the 16 flowers that cost a latent model FD and recall (docs/bonus.md).

The random draw and its application are separate so that under torchrun every process draws the
transforms of the whole global batch (its generator stays in step with the others) and applies its share.
"""
import torch
import torch.nn.functional as F

from utils.errors import UserError


WORDS = {"none": "", "flip": "flips", "crop": "flips, crops"}   # --augment's settings, as the training log says them


def described(setting):
    """The training log's words for an --augment setting; one this version does not have (a resumed checkpoint of an
    earlier version saved True or False) is a one-line error."""
    if not isinstance(setting, str) or setting not in WORDS:
        raise UserError(f"augment setting {setting!r} was written by an earlier version of this project (this one "
                        f"has {', '.join(WORDS)}): train again without --resume")
    words = WORDS[setting]
    return f", augmented ({words})" if words else ""


def random_transforms(n, generator, crop=True):
    """Per image: a horizontal flip (p = 0.5) and a resized crop (scale 0.8-1, shift +-10 %; None without `crop`),
    drawn on the CPU."""
    flip = torch.rand(n, generator=generator) < 0.5
    scale = 0.8 + 0.2 * torch.rand(n, generator=generator)
    shift = (torch.rand(n, 2, generator=generator) - 0.5) * 0.2
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = scale
    theta[:, :, 2] = shift
    return flip, theta if crop else None   # drawn either way: the generator's stream does not depend on `crop`


def apply_transforms(x, flip, theta):
    """Images in [0, 1] stay in [0, 1]: bilinear sampling with reflected borders only mixes pixel values."""
    x = torch.where(flip.to(x.device)[:, None, None, None], x.flip(-1), x)
    if theta is None:
        return x
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def augment(x, generator):
    """Light augmentation of a batch of images in [0, 1]: horizontal flips and small random resized crops."""
    return apply_transforms(x, *random_transforms(len(x), generator))
