"""Fast samplers against the full ancestral DDPM, on the trained model: quality and seconds.

    python bench/diffusion_samplers.py [--n 200] [--guidance 1] [--checkpoint PATH] [--samplers euler:20 heun:10]
                                       [--precisions fp32 bf16]

Loads models/Best_diffusion.pth (or --checkpoint), draws the same class-balanced labels with each sampler, and scores them with
evaluate.py's metrics against the training split. DDPM walks all T = 1000 steps, so --n stays small on a CPU;
every row uses the same n, so their FDs compare like with like (all carry the same small-n bias). --precisions
samples each setting under each (bf16: the network under bfloat16 autocast, sample()'s precision).
"""
import argparse
import datetime
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import diffusion  # noqa: E402
from utils.generators import GENERATORS, SamplingOptions  # noqa: E402
from utils.sampling import driver  # noqa: E402
import evaluate  # noqa: E402
from utils.data.dataset import load_dataset  # noqa: E402
from utils.evaluation.evaluator import yardstick  # noqa: E402

SETTINGS = [("ddpm", 1000), ("ddim", 50), ("ddim", 25), ("dpm", 20), ("dpm", 10)]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--guidance", type=float, default=1.0,
                   help="1 (plain conditional) halves DDPM's hour-long cost against guided sampling")
    p.add_argument("--checkpoint", default=None, help="default models/Best_diffusion.pth")
    p.add_argument("--samplers", nargs="+", default=[f"{name}:{steps}" for name, steps in SETTINGS],
                   help="NAME:STEPS pairs (a DDPM-objective model's ddpm walks all T steps whatever STEPS says)")
    p.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"], default=["fp32"])
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(os.cpu_count())
    model, ckpt = GENERATORS["diffusion"].load(args.checkpoint)
    config = ckpt["config"]
    data = load_dataset(config["data"], config["image_size"], quiet=True)
    stick = yardstick(data)
    labels = driver.balanced_labels(len(config["classes"]), args.n) if config["conditional"] else None
    print(f"# samplers on {args.checkpoint or 'models/Best_diffusion.pth'} (epoch {ckpt['epoch']}, {config['data']}) — {datetime.date.today()}, "
          f"{os.cpu_count()} cores; n={args.n}, guidance {args.guidance:g}")
    print("| sampler | steps | arithmetic | s / 64 images | FD ↓ | KID ↓ | precision | recall | class acc |")
    print("|---|---|---|---|---|---|---|---|---|")
    for sampler, steps in (setting.split(":") for setting in args.samplers):
        for precision in args.precisions:
            t0 = time.perf_counter()
            samples = driver.sample(model, config, args.n, labels,
                                    SamplingOptions(args.guidance, sampler, int(steps), precision=precision), args.seed)
            seconds_per_64 = (time.perf_counter() - t0) * 64 / args.n
            q = evaluate.sample_quality(samples, stick, labels)
            print(f"| {sampler} | {steps} | {precision} | {seconds_per_64:.1f} | {q['fd']:.2f} | {q['kid']:.4f} | "
                  f"{q['precision']:.3f} | {q['recall']:.3f} | {q.get('class_accuracy', float('nan')):.1%} |",
                  flush=True)


if __name__ == "__main__":
    main()
