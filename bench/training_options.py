"""--resume, --precision and --compile on the real flowers: validation curves of the spec AE, as a table and a figure.

    python bench/training_options.py --data ../shared/flowers --epochs 8

Four runs of `train_script.py --model AE`: N epochs straight (fp32); N/2 epochs, then --resume to N; N epochs
under --precision bf16; N epochs with --compile (its seconds include compiling). Writes docs/training_options.png
(or --out). Checkpoints go to a temporary folder.
"""
import argparse
import contextlib
import datetime
import io
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import train_script  # noqa: E402
import utils.data.images  # noqa: E402


def run(flags):
    """(history, seconds) of one quiet train_script run."""
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        history = train_script.train(train_script.get_args(flags))
    return history, time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="image folder (the real flowers: ../shared/flowers)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "docs/training_options.png"))
    args = p.parse_args()
    out = Path(args.out).resolve()
    utils.data.images.CACHE_DIR = Path.cwd() / utils.data.images.CACHE_DIR  # keep the decoded-image cache while in a temp folder
    base = ["--model", "AE", "--data", str(Path(args.data).resolve()), "--seed", str(args.seed), "--patience", "0",
            "--precision", "fp32"]   # the rows named fp32 are fp32 even where auto is bf16 (a CPU with AMX)
    half = args.epochs // 2
    runs = {}
    with tempfile.TemporaryDirectory() as workdir:
        os.chdir(workdir)
        runs["fp32, straight"] = run(base + ["--epochs", str(args.epochs), "--checkpoint", "a/Best_AE.pth"])
        _, s1 = run(base + ["--epochs", str(half), "--checkpoint", "b/Best_AE.pth"])
        resumed, s2 = run(base + ["--epochs", str(args.epochs), "--checkpoint", "b/Best_AE.pth", "--resume"])
        runs[f"fp32, {half} epochs + --resume"] = (resumed, s1 + s2)
        runs["bf16 autocast"] = run(base + ["--epochs", str(args.epochs), "--precision", "bf16",
                                            "--checkpoint", "c/Best_AE.pth"])
        runs["fp32, --compile"] = run(base + ["--epochs", str(args.epochs), "--compile",
                                              "--checkpoint", "d/Best_AE.pth"])
    print(f"# AE on {args.data}, {args.epochs} epochs — {datetime.date.today()}, {platform.machine()} "
          f"{os.cpu_count()} cores, torch {torch.__version__}")
    print("| run | final train | final valid | seconds | median img/s |")
    print("|---|---|---|---|---|")
    for name, (history, seconds) in runs.items():
        speed = statistics.median(h["images_per_s"] for h in history)  # steady state: epoch 1 holds the compiling
        final = history[-1]
        print(f"| {name} | {final['train_loss']:.5f} | {final['valid_loss']:.5f} | {seconds:.0f} | {speed:.0f} |")
    straight, resumed = (runs[k][0] for k in list(runs)[:2])
    same = [h["valid_loss"] for h in straight] == [h["valid_loss"] for h in resumed]
    print(f"resumed run's losses identical to the straight run's: {same}")
    draw(runs, half, out)
    print(f"wrote {out}")


def draw(runs, half, out):
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    styles = ["-", "--", "-", ":"]
    for (name, (history, _)), style in zip(runs.items(), styles):
        ax.plot([h["epoch"] for h in history], [h["valid_loss"] for h in history], style, marker="o",
                markersize=3, label=name, linewidth=2 if style == "-" else 1.5)
    ax.axvline(half + 0.5, color="gray", linewidth=0.8, linestyle=":")
    ax.text(half + 0.6, ax.get_ylim()[1], "resumed here", va="top", fontsize=8, color="gray")
    ax.set(xlabel="epoch", ylabel="validation MSE per pixel", yscale="log",
           title="AE on the flowers: --resume, --precision bf16, --compile")
    ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)


if __name__ == "__main__":
    main()
