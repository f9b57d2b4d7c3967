"""Which KL weighting gives the VAE its best random samples? Trains each setting, scores 1,000 samples.

    python bench/vae_beta.py --data ../shared/flowers

The objective is recon + beta * KL (beta ramped up over --kl-warmup epochs); the reported loss is always
the plain negative ELBO. Samples are scored with evaluate.py's FD, KID and precision/recall.
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


import evaluate  # noqa: E402
import train_script  # noqa: E402
import utils.data.images  # noqa: E402
from utils.data.dataset import load_dataset, to_float  # noqa: E402
from utils.evaluation.evaluator import load_or_train_evaluator, predict  # noqa: E402
from utils.generators import GENERATORS  # noqa: E402

SETTINGS = [("1", "0"), ("1", "5"), ("0.5", "0"), ("0.5", "5"), ("2", "0")]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--n", type=int, default=1000)
    args = p.parse_args()
    data_dir = str(Path(args.data).resolve())
    utils.data.images.CACHE_DIR = Path.cwd() / utils.data.images.CACHE_DIR
    data = load_dataset(data_dir, 24, quiet=True)
    evaluator, _ = load_or_train_evaluator(data, path=str(Path.cwd() / "models/Evaluator.pth"))
    train = to_float(data.images[data.train_idx])
    reference = predict(evaluator, train, features=True)
    print(f"# VAE KL weighting on {args.data} at 24px — {datetime.date.today()}, {os.cpu_count()} cores")
    print("| beta | KL warm-up | epochs | train s | valid ELBO | FD ↓ | KID ↓ | precision | recall |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as workdir:
        os.chdir(workdir)
        for beta, warmup in SETTINGS:
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                history = train_script.train(train_script.get_args(
                    ["--model", "VAE", "--data", data_dir, "--beta", beta, "--kl-warmup", warmup]))
            seconds = time.perf_counter() - start
            model, ckpt = GENERATORS["VAE"].load()
            samples = GENERATORS["VAE"].api.generate(model, ckpt["config"], args.n, seed=0)
            q = evaluate.sample_quality(samples, reference, evaluator, train)
            print(f"| {beta} | {warmup} | {len(history)} | {seconds:.0f} | {ckpt['valid_loss']:.1f} | {q['fd']:.2f} | "
                  f"{q['kid']:.4f} | {q['precision']:.3f} | {q['recall']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
