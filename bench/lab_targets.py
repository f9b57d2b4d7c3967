"""The handout's four loss targets, each trained with the default flags: prints a table, exits 1 if one is missed.

    python bench/lab_targets.py --data ../shared/flowers

Each run stops at the first epoch where its target holds (the 'epoch' column), or at the handout's
epoch limit. Checkpoints and curves go to a temporary folder; the decoded-image cache is shared.
"""
import argparse
import contextlib
import datetime
import io
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import train_script  # noqa: E402
import utils.data.images  # noqa: E402

# (name, flags, target text, epoch limit, test on the last epoch's losses)
TARGETS = [
    ("MLPAE", ["--model", "MLPAE"], "train and valid < 0.03", 20,
     lambda t, v: t < 0.03 and v < 0.03),
    ("AE_SGD", ["--model", "AE", "--optimizer", "sgd"], "train <= 0.015 within 60 epochs", 60,
     lambda t, v: t <= 0.015),
    ("AE", ["--model", "AE"], "train < 0.01, valid < 0.012 within 15 epochs", 15,
     lambda t, v: t < 0.01 and v < 0.012),
    ("VAE", ["--model", "VAE"], "train and valid < 800 within 20 epochs", 20,
     lambda t, v: t < 800 and v < 800),
]


def run_one(flags, limit, target, data, image_size, workdir):
    args = train_script.get_args(flags + ["--data", data, "--image-size", str(image_size),
                                          "--epochs", str(limit), "--checkpoint", f"{workdir}/{flags[1]}.pth"])
    log = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(log):
        history = train_script.train(args, until=lambda h: target(h[-1]["train_loss"], h[-1]["valid_loss"]))
    seconds = time.perf_counter() - start
    last = history[-1]
    met = target(last["train_loss"], last["valid_loss"])
    images_per_s = sum(h["images_per_s"] for h in history) / len(history)
    return dict(epoch=last["epoch"], seconds=seconds, train=last["train_loss"], valid=last["valid_loss"],
                images_per_s=images_per_s, met=met)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="image folder (the real flowers: ../shared/flowers)")
    p.add_argument("--image-size", type=int, default=24)
    p.add_argument("--only", nargs="*", help="run only these rows (MLPAE, AE_SGD, AE, VAE)")
    args = p.parse_args()
    data = str(Path(args.data).resolve())
    utils.data.images.CACHE_DIR = Path.cwd() / utils.data.images.CACHE_DIR  # keep the cache while running in a temp folder
    print(f"# lab targets on {args.data} at {args.image_size}px — {datetime.date.today()}, "
          f"{platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| run | target | epoch | wall s | img/s | train | valid | met |")
    print("|---|---|---|---|---|---|---|---|")
    missed, total = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir:
        os.chdir(workdir)
        for name, flags, text, limit, target in TARGETS:
            if args.only and name not in args.only:
                continue
            r = run_one(flags, limit, target, data, args.image_size, workdir)
            print(f"| {name} | {text} | {r['epoch']} | {r['seconds']:.1f} | {r['images_per_s']:.0f} | "
                  f"{r['train']:.5g} | {r['valid']:.5g} | {'yes' if r['met'] else 'NO'} |", flush=True)
            if not r["met"]:
                missed.append(name)
    print(f"\ntotal {time.perf_counter() - total:.0f}s; " + (f"MISSED: {', '.join(missed)}" if missed else "all targets met"))
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
