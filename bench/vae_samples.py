"""Which VAE recipe gives the best random samples? Trains each setting, scores 1,000 samples z ~ N(0, I).

    python bench/vae_samples.py --data ../shared/flowers
    python bench/vae_samples.py --data ../shared/flowers --settings "" "--recon sigma" "--beta 0.5 --kl-warmup 5"

Each setting is a list of train_script.py flags on top of `--model VAE` (the empty one: the defaults). The
reported loss is always the plain negative ELBO (squared error + KL) whatever the objective. Samples are scored
with evaluate.py's FD, KID and precision/recall against the training split, next to the pixel Gaussian's row.
"""
import argparse
import contextlib
import datetime
import io
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


import torch  # noqa: E402

import evaluate  # noqa: E402
from utils.evaluation import ladder  # noqa: E402
import train_script  # noqa: E402
import utils.data.images  # noqa: E402
from utils.data.dataset import load_dataset  # noqa: E402
from utils.evaluation.evaluator import yardstick  # noqa: E402
from utils.generators import GENERATORS  # noqa: E402

SETTINGS = ["", "--stages 1", "--recon mse --stages 1"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--settings", nargs="+", default=SETTINGS, help="train_script.py flags, one string per setting")
    args = p.parse_args()
    data_dir = str(Path(args.data).resolve())
    utils.data.images.CACHE_DIR = Path.cwd() / utils.data.images.CACHE_DIR
    data = load_dataset(data_dir, 24, quiet=True)
    stick = yardstick(data, path=str(Path.cwd() / "models/Evaluator.pth"))
    print(f"# VAE random samples on {args.data} at 24px — {datetime.date.today()}, {os.cpu_count()} cores")
    gaussian = evaluate.sample_quality(ladder.gaussian_baseline(stick.train, args.n,
                                                                  torch.Generator().manual_seed(0)), stick)
    print("| flags | epochs | train s | valid ELBO | FD ↓ | KID ↓ | precision | recall |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| (Gaussian fit to pixels) | | | | {gaussian['fd']:.2f} | {gaussian['kid']:.4f} | "
          f"{gaussian['precision']:.3f} | {gaussian['recall']:.3f} |")
    with tempfile.TemporaryDirectory() as workdir:
        os.chdir(workdir)
        for flags in args.settings:
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                history = train_script.train(train_script.get_args(
                    ["--model", "VAE", "--data", data_dir, "--seed", "0", *flags.split()]))
            seconds = time.perf_counter() - start
            model, ckpt = GENERATORS["VAE"].load()
            samples = GENERATORS["VAE"].api.generate(model, ckpt["config"], args.n, seed=0)
            q = evaluate.sample_quality(samples, stick)
            print(f"| {flags or '(defaults)'} | {len(history)} | {seconds:.0f} | {ckpt['valid_loss']:.1f} | {q['fd']:.2f} | "
                  f"{q['kid']:.4f} | {q['precision']:.3f} | {q['recall']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
