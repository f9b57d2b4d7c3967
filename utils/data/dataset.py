"""Image folders -> one cached uint8 tensor (+ labels, class names) and a fixed stratified split."""
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from utils.data.datasets import DATASETS, load_torchvision
from utils.data.images import CACHE_VERSION, IMAGE_EXTENSIONS, cached, load_image
from utils.data.multilabel import random_split, read_labels
from utils.errors import UserError



@dataclass
class Dataset:
    images: torch.Tensor      # N x C x H x W, uint8
    labels: torch.Tensor      # N class indices (int64), or N x K multi-hot object vectors (float)
    classes: list
    source: str               # the folder, "synthetic", or a torchvision dataset name ("mnist", ...)
    train_idx: torch.Tensor
    valid_idx: torch.Tensor

    @property
    def image_size(self):
        return self.images.shape[-1]

    @property
    def multi_label(self):
        return self.labels.dim() == 2

    @property
    def channels(self):
        return self.images.shape[1]

    def subset(self, name):
        """uint8 images and labels of the 'train' or 'valid' split."""
        idx = self.train_idx if name == "train" else self.valid_idx
        return self.images[idx], self.labels[idx]

    def split(self, name):
        """Float images in [0, 1] and labels of the 'train' or 'valid' split."""
        images, labels = self.subset(name)
        return to_float(images), labels


def to_float(images_uint8):
    return images_uint8.float().div_(255)


def list_images(root):
    """(class name, [image paths]) per class sub-folder; hidden and non-image files are skipped, and so are broken
    links (dangling, or looping), counted in a warning like unreadable images."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"data folder not found: {root} (or name a dataset: {', '.join(DATASETS)} or synthetic)")
    classes, broken = [], 0
    try:
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            names = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")]
            files = sorted(p for p in names if p.is_file())   # False for a dangling or looping link
            broken += len(names) - len(files)
            if files:
                classes.append((folder.name, files))
    except OSError as e:   # no permission to list a folder
        raise UserError(f"cannot read {e.filename or root}: {e.strerror} (check its permissions)") from None
    if broken:
        print(f"warning: skipped {broken} unreadable image file(s) in {root} (broken links)", file=sys.stderr)
    if not classes:
        raise UserError(f"no images found in {root}: expected one sub-folder of images per class")
    return classes


def folder_key(classes, image_size):
    digest = hashlib.sha1(f"v{CACHE_VERSION} size={image_size}".encode())
    for name, files in classes:
        for f in files:
            st = f.stat()
            digest.update(f"{name}/{f.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def decode(files, image_size, root):
    """(uint8 images, indices of the files that decoded); unreadable files are skipped with one warning."""
    images, kept = [], []
    for i, f in enumerate(files):
        try:
            images.append(load_image(f, image_size))
            kept.append(i)
        except Exception:  # PIL raises several types for truncated or corrupt files
            pass
    if len(kept) < len(files):
        print(f"warning: skipped {len(files) - len(kept)} unreadable image file(s) in {root}", file=sys.stderr)
    if not images:
        raise UserError(f"no readable images in {root}")
    return torch.stack(images), torch.tensor(kept)


def load_folder(root, image_size):
    """Decode and resize every image once; later calls read the cached tensor (about a second)."""
    classes = list_images(root)

    def build():
        files = [f for _, fs in classes for f in fs]
        labels = torch.tensor([label for label, (_, fs) in enumerate(classes) for _ in fs])
        images, kept = decode(files, image_size, root)
        return {"images": images, "labels": labels[kept], "classes": [name for name, _ in classes]}
    saved = cached(f"{Path(root).resolve().name}-{image_size}px", folder_key(classes, image_size), build)
    return saved["images"], saved["labels"], saved["classes"]


def load_labelled_folder(root, labels_file, objects_file, image_size):
    """Images named in labels.json (relative to root) with their multi-hot object vectors."""
    names, multi_hot, objects = read_labels(labels_file, objects_file)
    files = [Path(root) / name for name in names]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise UserError(f"{len(missing)} image(s) named in {labels_file} are missing, e.g. {missing[0]}")
    key = hashlib.sha1(Path(labels_file).read_bytes() + "".join(objects).encode())
    key.update(folder_key([("", files)], image_size).encode())

    def build():
        images, kept = decode(files, image_size, root)
        return {"images": images, "labels": multi_hot[kept], "classes": objects}
    saved = cached(f"{Path(root).resolve().name}-labelled-{image_size}px", key.hexdigest()[:16], build)
    return saved["images"], saved["labels"], saved["classes"]


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
    flowers = Path("flowers")
    if not os.path.lexists(flowers):
        return "synthetic"
    # There but unusable: an error, not a quiet fall-back whose models would replace those trained on the photos.
    if not flowers.is_dir():
        raise UserError("./flowers exists but is not a folder (a dangling link, or a file): fix or remove it, or "
                        "pass --data DIR (--data synthetic for the built-in set)")
    if not os.access(flowers, os.R_OK | os.X_OK):
        raise UserError("./flowers is not readable (permissions): chmod u+rx flowers, or pass --data DIR")
    return "flowers"


def load_dataset(data=None, image_size=24, valid_fraction=0.1, split_seed=0, quiet=False,
                 labels_file=None, objects_file=None):
    """The images, labels and fixed split of --data; with labels_file, multi-label object sets instead of classes."""
    source = resolve_source(data)
    if labels_file is not None:
        if source == "synthetic":
            raise UserError("--labels needs --data DIR: the folder its file names are relative to")
        images, labels, objects = load_labelled_folder(source, labels_file, objects_file, image_size)
        train_idx, valid_idx = check_split(source, random_split(len(images), valid_fraction, split_seed), "")
        return Dataset(images, labels, objects, str(source), train_idx, valid_idx)
    if source == "synthetic":
        from utils.data.synthetic import SUPPORTED_SIZES, synthetic_flowers
        if image_size not in SUPPORTED_SIZES:
            raise UserError(f"the built-in synthetic flowers come in {', '.join(map(str, SUPPORTED_SIZES))} px, "
                            f"not {image_size} (pass --data DIR for other sizes)")
        if not quiet:
            print("note: ./flowers not found, using the built-in synthetic flower set (pass --data DIR for real images)")
        images, labels, classes = synthetic_flowers(image_size=image_size)
    elif source in DATASETS:
        images, labels, classes = load_torchvision(source, image_size)
    else:
        images, labels, classes = load_folder(source, image_size)
    train_idx, valid_idx = check_split(source, stratified_split(labels, valid_fraction, split_seed), " of one class")
    return Dataset(images, labels, classes, str(source), train_idx, valid_idx)


def check_split(source, split, where):
    """Training and validation both need images: a one-line error instead of a division by zero later."""
    train_idx, valid_idx = split
    if len(train_idx) == 0 or len(valid_idx) == 0:
        found = len(train_idx) + len(valid_idx)
        raise UserError(f"{source}: found {found} readable image{'s' * (found != 1)}, too few to split into training "
                        f"and validation: a split needs at least 2 images{where}")
    return split


def load_training_data(config, data=None, quiet=False):
    """The data, size, split and label files a checkpoint was trained on (--data overrides the folder)."""
    return load_dataset(data or config["data"], config["image_size"], config.get("valid_fraction", 0.1),
                        config.get("split_seed", 0), quiet, config.get("labels_file"), config.get("objects_file"))
