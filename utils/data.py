"""Image folders -> one cached uint8 tensor (+ labels, class names) and a fixed stratified split."""
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from utils.errors import UserError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
CACHE_DIR = Path("data") / "cache"
CACHE_VERSION = 1


@dataclass
class Dataset:
    images: torch.Tensor      # N x C x H x W, uint8
    labels: torch.Tensor      # N, int64
    classes: list
    source: str               # the folder, or "synthetic"
    train_idx: torch.Tensor
    valid_idx: torch.Tensor

    @property
    def image_size(self):
        return self.images.shape[-1]

    @property
    def channels(self):
        return self.images.shape[1]

    def split(self, name):
        """Float images in [0, 1] and labels of the 'train' or 'valid' split."""
        idx = self.train_idx if name == "train" else self.valid_idx
        return to_float(self.images[idx]), self.labels[idx]


def to_float(images_uint8):
    return images_uint8.float().div_(255)


def list_images(root):
    """(class name, [image paths]) per class sub-folder; hidden and non-image files are skipped."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"data folder not found: {root}")
    classes = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in folder.iterdir()
                       if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))
        if files:
            classes.append((folder.name, files))
    if not classes:
        raise UserError(f"no images found in {root}: expected one sub-folder of images per class")
    return classes


def load_image(path, image_size):
    # Imported here: torchvision costs over a second to import, and cached runs never decode.
    import torchvision.transforms.functional as TF
    from PIL import Image
    with Image.open(path) as img:
        img = img.convert("RGB")  # grayscale, palette and RGBA all become RGB
        pixels = TF.pil_to_tensor(img)
    # torchvision's default resize (bilinear, antialiased): the handout's loss targets assume it.
    return TF.resize(pixels, [image_size, image_size], antialias=True)


def folder_key(classes, image_size):
    digest = hashlib.sha1(f"v{CACHE_VERSION} size={image_size}".encode())
    for name, files in classes:
        for f in files:
            st = f.stat()
            digest.update(f"{name}/{f.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def load_folder(root, image_size):
    """Decode and resize every image once; later calls read the cached tensor (about a second)."""
    classes = list_images(root)
    cache = CACHE_DIR / f"{Path(root).resolve().name}-{image_size}px-{folder_key(classes, image_size)}.pt"
    if cache.exists():
        saved = torch.load(cache, weights_only=True)
        return saved["images"], saved["labels"], saved["classes"]
    images, labels, unreadable = [], [], 0
    for label, (_, files) in enumerate(classes):
        for f in files:
            try:
                images.append(load_image(f, image_size))
                labels.append(label)
            except Exception:  # PIL raises several types for truncated or corrupt files
                unreadable += 1
    if unreadable:
        print(f"warning: skipped {unreadable} unreadable image file(s) in {root}", file=sys.stderr)
    if not images:
        raise UserError(f"no readable images in {root}")
    images, labels = torch.stack(images), torch.tensor(labels)
    class_names = [name for name, _ in classes]
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    torch.save({"images": images, "labels": labels, "classes": class_names}, tmp)
    os.replace(tmp, cache)
    return images, labels, class_names


def stratified_split(labels, valid_fraction=0.1, seed=0):
    """The same split for every script: a fixed fraction of each class, chosen by a seeded permutation."""
    g = torch.Generator().manual_seed(seed)
    train, valid = [], []
    for c in labels.unique(sorted=True):
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        n_valid = max(1, round(valid_fraction * len(idx))) if len(idx) > 1 else 0
        valid.append(idx[:n_valid])
        train.append(idx[n_valid:])
    return torch.cat(train).sort().values, torch.cat(valid).sort().values


def resolve_source(data):
    """--data as given, else ./flowers when it exists, else the built-in synthetic set."""
    if data is not None:
        return data
    return "flowers" if Path("flowers").is_dir() else "synthetic"


def load_dataset(data=None, image_size=24, valid_fraction=0.1, split_seed=0, quiet=False):
    source = resolve_source(data)
    if source == "synthetic":
        from utils.synthetic import SUPPORTED_SIZES, synthetic_flowers
        if image_size not in SUPPORTED_SIZES:
            raise UserError(f"the built-in synthetic flowers come in {', '.join(map(str, SUPPORTED_SIZES))} px, "
                            f"not {image_size} (pass --data DIR for other sizes)")
        if not quiet:
            print("note: ./flowers not found, using the built-in synthetic flower set (pass --data DIR for real images)")
        images, labels, classes = synthetic_flowers(image_size=image_size)
    else:
        images, labels, classes = load_folder(source, image_size)
    train_idx, valid_idx = stratified_split(labels, valid_fraction, split_seed)
    return Dataset(images, labels, classes, str(source), train_idx, valid_idx)
