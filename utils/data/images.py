"""Decoding, resizing and caching: the low-level steps every image source (folders, torchvision sets) shares."""
import os
from pathlib import Path

import torch

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
CACHE_DIR = Path("data") / "cache"
CACHE_VERSION = 1


def load_image(path, image_size):
    # Imported here: torchvision costs over a second to import, and cached runs never decode.
    import torchvision.transforms.functional as TF
    from PIL import Image
    with Image.open(path) as img:
        img = img.convert("RGB")  # grayscale, palette and RGBA all become RGB
        pixels = TF.pil_to_tensor(img)
    return resize(pixels, image_size)


def resize(pixels, image_size):
    """uint8 C x H x W (or a batch N x C x H x W) -> image_size x image_size, the one resize every source goes through."""
    import torchvision.transforms.functional as TF
    # torchvision's default resize (bilinear, antialiased): the handout's loss targets assume it.
    return TF.resize(pixels, [image_size, image_size], antialias=True)


def cached(name, key, build):
    """build() -> a dict of tensors, computed once and saved as data/cache/<name>-<key>.pt (read back in ~0.1 s)."""
    path = CACHE_DIR / f"{name}-{key}.pt"
    if path.exists():
        return torch.load(path, weights_only=True)
    saved = build()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(saved, tmp)
    os.replace(tmp, path)  # atomic: an interrupted run never leaves half a cache behind
    return saved
