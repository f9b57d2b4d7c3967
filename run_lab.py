"""The whole lab in one command: trains, visualises and samples every model, writing the handout's submission files.

Each step is the command the handout asks for, with its output redirected into log/ as the handout says:
    python MLPAE_train_script.py > log/train_MLPAE.out
    python train_script.py --model AE --optimizer sgd > log/train_AE_SGD.out
    python train_script.py --model AE > log/train_AE.out
    python train_script.py --model VAE > log/train_VAE.out
    python visualization.py --model MLPAE|AE|VAE
    python random_generation.py --model AE|VAE
    python diffusion.py > log/train_diffusion.out       (Part 4: about 16 minutes of the total)
"""
import contextlib
import diffusion
import sys
import time
from pathlib import Path

import MLPAE_train_script  # noqa: F401  (documents the step; it is train_script with --model MLPAE)
import random_generation
import train_script
import visualization
from utils import cli
from utils.data import resolve_source

TRAINING = [
    ("log/train_MLPAE.out", ["--model", "MLPAE"]),
    # Its own checkpoint, so the Adam run below is the Best_AE.pth that the figures use.
    ("log/train_AE_SGD.out", ["--model", "AE", "--optimizer", "sgd", "--checkpoint", "models/Best_AE_SGD.pth"]),
    ("log/train_AE.out", ["--model", "AE"]),
    ("log/train_VAE.out", ["--model", "VAE"]),
]
DIFFUSION_LOG = "log/train_diffusion.out"
FIGURES = [(visualization.main, ["--model", m]) for m in ("MLPAE", "AE", "VAE")] + \
          [(random_generation.main, ["--model", m]) for m in ("AE", "VAE")]
ARTEFACTS = ["models/Best_MLPAE.pth", "models/Best_AE.pth", "models/Best_VAE.pth",
             *(f"vis/{split}_{m}.png" for m in ("MLPAE", "AE", "VAE") for split in ("train", "valid")),
             "vis/random_images_AE.png", "vis/random_images_VAE.png",
             *(log for log, _ in TRAINING),
             "models/Best_diffusion.pth", "vis/random_images_diffusion.png", "vis/denoise_process_diffusion.png",
             DIFFUSION_LOG]


def best_line(log):
    lines = Path(log).read_text().strip().splitlines()
    return next((line for line in reversed(lines) if line.startswith("best")), lines[-1])


def main():
    p = cli.parser(__doc__)
    p.add_argument("--quick", action="store_true",
                   help="a smoke test: one epoch per model and few sampling steps (the files, not the results)")
    p.add_argument("--diffusion-minutes", type=float, default=None, help="diffusion's training budget "
                   "(default: diffusion.py's own)")
    args = p.parse_args()
    shared = ["--seed", str(args.seed), "--device", args.device]
    shared += ["--data", args.data] if args.data else []
    shared += ["--threads", str(args.threads)] if args.threads else []
    size = ["--image-size", str(args.image_size)] if args.image_size else []
    epochs = ["--epochs", "1"] if args.quick else []
    diffusion_flags = ["--minutes", "0", "--epochs", "1", "--steps", "3", "--film-steps", "3",
                                          "--preview-every", "0"] if args.quick \
        else ["--minutes", str(args.diffusion_minutes)] if args.diffusion_minutes is not None else []
    print(f"data: {resolve_source(args.data)}" + ("  (built-in synthetic flowers: ./flowers not found)"
                                                   if resolve_source(args.data) == "synthetic" else ""))
    Path("log").mkdir(exist_ok=True)
    start = time.perf_counter()
    for log, flags in TRAINING:
        print(f"[{time.perf_counter() - start:5.0f}s] python train_script.py {' '.join(flags)} > {log}", flush=True)
        with open(log, "w") as out, contextlib.redirect_stdout(out):
            train_script.main(flags + shared + size + epochs)
        print("          " + best_line(log), flush=True)
    print(f"[{time.perf_counter() - start:5.0f}s] python diffusion.py > {DIFFUSION_LOG}", flush=True)
    with open(DIFFUSION_LOG, "w") as out, contextlib.redirect_stdout(out):
        diffusion.main(diffusion_flags + shared + size)
    print("          " + best_line(DIFFUSION_LOG), flush=True)
    for script, flags in FIGURES:
        print(f"[{time.perf_counter() - start:5.0f}s] python {Path(script.__code__.co_filename).name} {' '.join(flags)}",
              flush=True)
        script(flags + shared)
    print(f"\ndone in {time.perf_counter() - start:.0f}s; the submission files:")
    for path in ARTEFACTS:
        print(f"  {'ok     ' if Path(path).exists() else 'MISSING'} {path}")


if __name__ == "__main__":
    cli.run(main)
