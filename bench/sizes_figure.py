"""The same classes drawn by diffusion models trained at different sizes, side by side (one row per class and size).

    python bench/sizes_figure.py --runs runs/size24 runs/size32 runs/latent_vs_pixel/flowers/latent \
        --out docs/sizes_flowers3.png

Each run folder holds a trained models/Best_diffusion.pth (a latent model's autoencoder too, as its training left
it). Every model draws --per-row samples per class with the same seed and diffusion.py's sampling defaults; each
image is shown at the same width, at its own resolution.
"""
import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402

from latent_vs_pixel import inside  # noqa: E402
from utils.figures import image_rows  # noqa: E402
from utils.generators import GENERATORS, SamplingOptions  # noqa: E402


def draw(folder, per_row, seed):
    """(classes, image size, latent or not, per-class samples) of the run in this folder."""
    kind = GENERATORS["diffusion"]
    with inside(folder):
        model, ckpt = kind.load()
        config = ckpt["config"]
        labels = torch.arange(len(config["classes"])).repeat_interleave(per_row)
        images = kind.api.generate(model, config, len(labels), labels, seed, options=SamplingOptions())
    return config["classes"], config["image_size"], bool(config.get("latent")), images.split(per_row)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", required=True, metavar="DIR", help="run folders, smallest size first")
    p.add_argument("--out", required=True)
    p.add_argument("--per-row", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(os.cpu_count())
    runs = [draw(Path(folder), args.per_row, args.seed) for folder in args.runs]
    classes = runs[0][0]
    if any(run[0] != classes for run in runs):
        sys.exit("error: the runs were trained on different classes")
    rows, names = [], []
    for c, name in enumerate(classes):
        for _, size, latent, per_class in runs:
            rows.append(per_class[c])
            names.append(f"{name}\n{size} px{' (latent)' if latent else ''}")
    sizes = " / ".join(f"{size} px" for _, size, _, _ in runs)
    image_rows(rows, names, f"the same classes at {sizes} (seed {args.seed}, each model's default guidance)",
               args.out, cell=0.8)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
