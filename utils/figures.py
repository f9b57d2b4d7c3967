"""Every figure a teaching assistant opens: labelled image grids and loss curves."""
from pathlib import Path

import matplotlib
matplotlib.use("Agg")  # headless: figures are written to files, never shown
import matplotlib.pyplot as plt
import torch


def save_figure(fig, path):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)


def _strip(images, n_cols):
    """A row's images side by side, as one H x W(x C) array on white with a thin white gap between them; cells past
    the row's end stay white. One picture per row, not one axes per image: matplotlib draws a 64-image grid 2-3x
    faster so (creating an axes costs more than drawing its image)."""
    images = images.detach().float().cpu().clamp(0, 1)
    channels, height, width = images.shape[1:]
    gap = max(1, round(0.05 * width))
    strip = torch.ones(channels, height, n_cols * (width + gap) - gap)
    for left, image in zip(range(0, strip.shape[2], width + gap), images):
        strip[:, :, left:left + width] = image
    return (strip[0] if channels == 1 else strip.permute(1, 2, 0)).numpy(), width, gap


def image_rows(rows, labels, title, path, cell=0.9, column_labels=None):
    """One labelled row per tensor in `rows` (each N x C x H x W in [0, 1]; rows may differ in size); optional
    column titles."""
    n_cols = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), 1, figsize=(cell * n_cols + 1.2, cell * len(rows) + 0.6), squeeze=False)
    for ax, images, label in zip(axes[:, 0], rows, labels):
        strip, width, gap = _strip(images, n_cols)
        ax.imshow(strip, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([]), ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
        if ax is axes[0, 0]:
            for j, name in enumerate(column_labels or []):
                centre = j * (width + gap) + (width - 1) / 2   # pixel centres are whole numbers in imshow
                ax.annotate(name, (centre, -0.5), xytext=(0, 4), textcoords="offset points", ha="center",
                            va="bottom", fontsize=8)
    # Margins in inches, not fractions: a tall grid (16 classes) would otherwise open a wide gap under the title.
    height = fig.get_figheight()
    fig.subplots_adjust(hspace=0.05, top=1 - (0.55 if column_labels else 0.35) / height)
    fig.suptitle(title, fontsize=11, y=1 - 0.08 / height, va="top")
    save_figure(fig, path)


def image_grid(images, title, path, n_cols=8):
    """A plain n_cols-wide grid (random samples)."""
    rows = [images[i:i + n_cols] for i in range(0, len(images), n_cols)]
    image_rows(rows, [""] * len(rows), title, path)


def loss_curve(history, title, path, ylabel="loss"):
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    ax.plot(epochs, [h["valid_loss"] for h in history], "s-", label="validation")
    best = min(history, key=lambda h: h["valid_objective"])   # what the best checkpoint was chosen on
    ax.axvline(best["epoch"], color="gray", ls=":", label=f"best (epoch {best['epoch']})")
    ax.set_xlabel("epoch"), ax.set_ylabel(ylabel), ax.set_title(title)
    if min(min(h["train_loss"], h["valid_loss"]) for h in history) > 0:
        ax.set_yscale("log")
    ax.grid(alpha=0.3), ax.legend()
    save_figure(fig, path)
