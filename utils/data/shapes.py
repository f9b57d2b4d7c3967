"""A synthetic multi-label set, iCLEVR-style: one or two coloured shapes on gray, with the names of the objects.

Six objects (three colours x square/triangle), each drawn in its own quadrant, so a classifier and a
conditional generator can both be checked against the object sets they were given.
"""
import json
from pathlib import Path

import torch

COLOURS = {"red": (0.9, 0.1, 0.1), "green": (0.1, 0.8, 0.2), "blue": (0.15, 0.2, 0.95)}
OBJECTS = [f"{colour} {shape}" for colour in COLOURS for shape in ("square", "triangle")]


def draw_shapes(n, size=24, seed=0):
    """n images (N x 3 x size x size floats in [0, 1]) and each image's list of object names."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    half, radius = size // 2, size // 6
    images, names = [], []
    for _ in range(n):
        image = torch.full((3, size, size), 0.5)
        chosen = torch.randperm(len(OBJECTS), generator=g)[:1 + int(torch.rand(1, generator=g) < 0.5)].tolist()
        quadrants = torch.randperm(4, generator=g)[:len(chosen)].tolist()
        for obj, q in zip(chosen, quadrants):
            cy, cx = half // 2 + half * (q // 2), half // 2 + half * (q % 2)
            colour, shape = OBJECTS[obj].split()
            if shape == "square":
                mask = ((yy - cy).abs() <= radius - 1) & ((xx - cx).abs() <= radius - 1)
            else:  # apex up, widening to a base as wide as it is tall: unlike a square at any blur
                mask = ((yy - cy).abs() <= radius) & (2 * (xx - cx).abs() <= yy - cy + radius)
            image[:, mask] = torch.tensor(COLOURS[colour])[:, None]
        images.append(image)
        names.append([OBJECTS[i] for i in chosen])
    return torch.stack(images), names


def write_shapes_folder(root, n=240, size=24, seed=0):
    """PNGs plus labels.json (file name -> object names) and objects.json (name -> index) in root."""
    from torchvision.utils import save_image
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    images, names = draw_shapes(n, size, seed)
    labels = {}
    for i, (image, objects) in enumerate(zip(images, names)):
        save_image(image, root / f"{i:05d}.png")
        labels[f"{i:05d}.png"] = objects
    (root / "labels.json").write_text(json.dumps(labels, indent=0))
    (root / "objects.json").write_text(json.dumps({name: i for i, name in enumerate(OBJECTS)}, indent=0))
    return root


if __name__ == "__main__":  # python -m utils.data.shapes data/shapes --n 2000: a folder to try --labels on
    import argparse
    p = argparse.ArgumentParser(description="Write the synthetic multi-label shapes set (PNGs, labels.json, objects.json).")
    p.add_argument("root")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--size", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    print(f"wrote {args.n} images and labels.json to {write_shapes_folder(args.root, args.n, args.size, args.seed)}")
