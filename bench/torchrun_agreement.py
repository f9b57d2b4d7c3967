"""One process against two under torchrun, at the same global batch: the loss curves should lie on each other.

    python bench/torchrun_agreement.py [--data ../shared/flowers] [--epochs 6]

Trains the AE twice in a scratch folder (runs/torchrun/): `train_script.py --batch-size 8` in one process,
and `torchrun --nproc_per_node=2 train_script.py --batch-size 4` (2 x 4 = the same 8 images per step), both with
one thread per process; prints both per-epoch losses and the wall time, and draws docs/torchrun_agreement.png.
"""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from utils.figures import save_figure  # noqa: E402


def train(launcher, batch_size, args, workdir):
    flags = [str(ROOT / "train_script.py"), "--model", "AE", "--data", str(Path(args.data).resolve()),
             "--epochs", str(args.epochs), "--batch-size", str(batch_size), "--threads", "1",
             "--seed", str(args.seed), "--checkpoint", f"models/Best_AE_{batch_size}.pth"]
    start = time.perf_counter()
    subprocess.run(launcher + flags, cwd=workdir, check=True, stdout=subprocess.DEVNULL,
                   env=dict(os.environ, OMP_NUM_THREADS="1"))
    seconds = time.perf_counter() - start
    state = torch.load(workdir / f"models/last_AE_{batch_size}.pth", weights_only=True)["state"]
    return state["history"], seconds


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT / "flowers"))
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    workdir = ROOT / "runs" / "torchrun"
    workdir.mkdir(parents=True, exist_ok=True)
    one, one_s = train([sys.executable], 8, args, workdir)
    two, two_s = train([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"], 4,
                       args, workdir)
    print("| epoch | 1 process, batch 8: train | valid | 2 processes x batch 4: train | valid |")
    print("|---|---|---|---|---|")
    for a, b in zip(one, two):
        print(f"| {a['epoch']} | {a['train_loss']:.6f} | {a['valid_loss']:.6f} | {b['train_loss']:.6f} | "
              f"{b['valid_loss']:.6f} |")
    print(f"wall time: 1 process {one_s:.0f} s, 2 processes {two_s:.0f} s (one thread each)")
    fig, ax = plt.subplots(figsize=(6, 4))
    for history, style, name in ((one, "o-", "1 process, batch 8"), (two, "x--", "torchrun, 2 processes x 4")):
        ax.plot([h["epoch"] for h in history], [h["valid_loss"] for h in history], style, label=name)
    ax.set_xlabel("epoch"), ax.set_ylabel("validation MSE per pixel"), ax.set_yscale("log"), ax.grid(alpha=0.3)
    ax.set_title("AE: one process vs DDP at the same global batch"), ax.legend()
    save_figure(fig, ROOT / "docs" / "torchrun_agreement.png")
    print("wrote docs/torchrun_agreement.png")


if __name__ == "__main__":
    main()
