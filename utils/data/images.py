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
        pixels = TF.pil_to_tensor(eight_bit(img).convert("RGB"))  # grayscale, palette and RGBA all become RGB
    return resize(pixels, image_size)


def eight_bit(img):
    """PIL's integer and float modes (16-bit PNGs open as I;16) scaled to 8 bits: convert("RGB") would clip them
    at 255, turning a 16-bit image almost white. 16-bit values are divided by 257 (65535 -> 255); 32-bit integer
    and float images are taken as 16-bit when they exceed 255, as [0, 1] floats when a float image stays within 1."""
    if not (img.mode.startswith("I") or img.mode == "F"):
        return img
    import numpy as np
    from PIL import Image
    values = np.asarray(img, dtype=np.float64)
    top = values.max(initial=0)
    if img.mode.startswith("I;16") or top > 255:
        values = values / 257
    elif img.mode == "F" and top <= 1:
        values = values * 255
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")


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
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")   # its own: two runs may build one cache at once
    try:
        torch.save(saved, tmp)
        os.replace(tmp, path)  # atomic: an interrupted run never leaves half a cache behind
    finally:
        tmp.unlink(missing_ok=True)
    return saved
