"""Look at the data before training: class counts, samples and the mean image per class, the augmentations.

    python data_analysis.py [--data DIR] [--image-size 24]

Writes vis/class_counts.png, vis/samples_per_class.png, vis/mean_images.png, vis/augmentations.png.
"""
import matplotlib.pyplot as plt
import torch

from utils import cli
from utils.data.augment import augment
from utils.data.dataset import load_dataset, to_float
from utils.figures import image_rows, save_figure


def class_counts(data, path):
    counts = torch.bincount(data.labels, minlength=len(data.classes))
    train_counts = torch.bincount(data.labels[data.train_idx], minlength=len(data.classes))
    fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(data.classes) + 2), 4))
    ax.bar(data.classes, counts.tolist(), color="lightgray", label="all")
    ax.bar(data.classes, train_counts.tolist(), color="tab:green", label="training split")
    for i, c in enumerate(counts.tolist()):
        ax.text(i, c, str(c), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("images"), ax.set_title(f"{data.source}: {len(data.labels)} images in {len(data.classes)} classes")
    ax.tick_params(axis="x", rotation=45 if len(data.classes) > 4 else 0)
    ax.legend()
    save_figure(fig, path)


def main(argv=None):
    p = cli.parser(__doc__)
    p.add_argument("--per-class", type=cli.at_least(1), default=10, help="sample images shown per class")
    args = p.parse_args(argv)
    cli.setup(args)
    data = load_dataset(args.data, args.image_size or 24)
    images = to_float(data.images)
    class_counts(data, "vis/class_counts.png")
    per_class = [images[data.labels == c][:args.per_class] for c in range(len(data.classes))]
    image_rows(per_class, data.classes, f"samples per class ({data.image_size}px)", "vis/samples_per_class.png")
    means = torch.stack([images[data.labels == c].mean(0) for c in range(len(data.classes))])
    image_rows([means], ["mean"], "mean image per class", "vis/mean_images.png", cell=1.2, column_labels=data.classes)
    g = torch.Generator().manual_seed(args.seed)
    originals = images[data.train_idx[torch.randperm(len(data.train_idx), generator=g)[:8]]]
    image_rows([originals] + [augment(originals, g) for _ in range(3)],
               ["original", "augmented", "augmented", "augmented"],
               "--augment: flips and small random resized crops (training batches only)", "vis/augmentations.png")
    for name in ("class_counts", "samples_per_class", "mean_images", "augmentations"):
        print(f"wrote vis/{name}.png")


if __name__ == "__main__":
    cli.run(main)
