"""torchvision's standard sets (--data mnist, fashion-mnist, cifar10, flowers102) as the folder loader's tensors.

Their files live in ./data/<name>/, downloaded by torchvision on first use. Each set is converted once
(train and test parts together, resized like an image folder) into one uint8 N x C x H x W tensor and
cached in data/cache/, so later runs never touch torchvision. MNIST and Fashion-MNIST stay one channel.
The project's stratified split, not the sets' own train/test division, decides training and validation.
"""
import re
import socket
from pathlib import Path

import torch

from utils.data.images import CACHE_VERSION, cached, load_image, resize
from utils.errors import UserError

DATA_ROOT = Path("data")
DOWNLOAD_TIMEOUT_S = 60
IDX_FILES = ("train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
             "t10k-labels-idx1-ubyte (or the four .gz files)")


def clean_class_name(name):
    # Class names become folder names (random_generation.py --out-dir) and --class values: no '/' or '?'.
    return re.sub(r"[^\w .'-]+", "-", name).strip(" -")


def resize_all(images, image_size, chunk=8192):
    """The folder loader's resize on a whole uint8 tensor, in chunks: it works in float, 4x the memory."""
    if images.shape[-1] == images.shape[-2] == image_size:
        return images
    return torch.cat([resize(part, image_size) for part in images.split(chunk)])


def read_idx_set(cls, root, download, image_size):
    """MNIST-format sets: 60,000 + 10,000 gray 28 x 28 images, kept as one channel."""
    parts = [cls(root, train=train, download=download) for train in (True, False)]
    images = torch.cat([part.data for part in parts]).unsqueeze(1)   # N x 1 x 28 x 28, uint8
    return resize_all(images, image_size), torch.cat([part.targets for part in parts]), parts[0].classes


def read_mnist(root, download, image_size):
    from torchvision.datasets import MNIST
    images, labels, _ = read_idx_set(MNIST, root, download, image_size)
    return images, labels, [str(digit) for digit in range(10)]   # torchvision's names read '0 - zero'


def read_fashion_mnist(root, download, image_size):
    from torchvision.datasets import FashionMNIST
    return read_idx_set(FashionMNIST, root, download, image_size)


def read_cifar10(root, download, image_size):
    from torchvision.datasets import CIFAR10
    parts = [CIFAR10(root, train=train, download=download) for train in (True, False)]
    images = torch.cat([torch.from_numpy(part.data) for part in parts]).permute(0, 3, 1, 2)  # N x 3 x 32 x 32
    labels = torch.cat([torch.tensor(part.targets) for part in parts])
    return resize_all(images.contiguous(), image_size), labels, parts[0].classes


def read_flowers102(root, download, image_size):
    try:
        import scipy.io  # noqa: F401  (torchvision reads the labels from MATLAB files with it)
    except ImportError:
        raise UserError("flowers102 needs scipy to read its label files: pip install scipy") from None
    from torchvision.datasets import Flowers102
    # The JPEGs differ in size, so each is decoded and resized as it is read, exactly as in an image folder.
    parts = [Flowers102(root, split, download=download, loader=lambda path: load_image(path, image_size))
             for split in ("train", "val", "test")]
    images, labels = zip(*(part[i] for part in parts for i in range(len(part))))
    return torch.stack(images), torch.tensor(labels), Flowers102.classes


DATASETS = {  # --data name -> (reader, the files torchvision looks for, as a sentence)
    "mnist": (read_mnist, f"{IDX_FILES} in {DATA_ROOT / 'mnist' / 'MNIST' / 'raw'}/"),
    "fashion-mnist": (read_fashion_mnist, f"{IDX_FILES} in {DATA_ROOT / 'fashion-mnist' / 'FashionMNIST' / 'raw'}/"),
    "cifar10": (read_cifar10, f"cifar-10-python.tar.gz (or its folder cifar-10-batches-py/) in {DATA_ROOT / 'cifar10'}/"),
    "flowers102": (read_flowers102, "102flowers.tgz (or its folder jpg/), imagelabels.mat and setid.mat in "
                                    f"{DATA_ROOT / 'flowers102' / 'flowers-102'}/"),
}


def last_line(error, limit=120):
    """The most specific line of an error (torchvision stacks one per mirror), short enough for one line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[-1] if lines else type(error).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def fetch(name, image_size):
    """Download the set if needed, then read and convert it; a failed download says where the files go."""
    read, files = DATASETS[name]
    root = DATA_ROOT / name
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # urllib waits forever by default: a dead network would hang
    try:
        images, labels, classes = read(root, True, image_size)
    except UserError:
        raise
    except Exception as e:  # offline: URLError or OSError; a failed mirror or bad checksum: RuntimeError; ...
        raise UserError(f"{name} is not in {root}/ and downloading it failed ({last_line(e)}); "
                        f"without internet, place {files}") from None
    finally:
        socket.setdefaulttimeout(previous)
    return {"images": images, "labels": labels.long(), "classes": [clean_class_name(c) for c in classes]}


def load_torchvision(name, image_size):
    """(uint8 images N x C x size x size, int64 labels, class names) of a named set, converted once and cached.

    The cache is keyed by name and size only: torchvision checks the files' checksums (MNIST's by
    presence), and these sets never change. Delete data/cache/<name>-* to convert again.
    """
    saved = cached(f"{name}-{image_size}px", f"v{CACHE_VERSION}", lambda: fetch(name, image_size))
    return saved["images"], saved["labels"], saved["classes"]
