"""Few-step sampling: a model trained to jump (--objective distill or shortcut) against the flow model it was
fine-tuned from.

    python bench/few_step.py --base models/Best_diffusion.pth --jumps models/Best_distill.pth
    python bench/few_step.py --base B --jumps J --steps 1 2 4 --precisions fp32 bf16 --figure docs/few_step.png

Rows: the base model with its default sampler at 20 steps (the reference: FD and recall are also given relative to
it) and at each of --steps, then the jumping model at each of --steps (its own sampler, `jump`). Each row draws the
same --n class-balanced labels and seeds and scores them as evaluate.py does (the course sets' shipped evaluator).
Seconds per 64 samples are the best of three draws after a warm-up, one process, all cores. The extra training is
the fine-tune's own wall time (times the threads it ran on: CPU-minutes) against the base model's. --figure: the
jumping model at 1, 2 and 4 steps and the base at 20, from the same noise and labels, one row each.
"""
import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import evaluate  # noqa: E402
from utils.data.dataset import load_dataset  # noqa: E402
from utils.evaluation.evaluator import yardstick  # noqa: E402
from utils.figures import image_rows  # noqa: E402
from utils.generators import GENERATORS, SamplingOptions  # noqa: E402
from utils.sampling import driver  # noqa: E402


def seconds_per_64(model, config, options, labels):
    kind = GENERATORS["diffusion"]
    kind.api.generate(model, config, 64, labels[:64], 0, options=options)   # warm-up
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        kind.api.generate(model, config, 64, labels[:64], 0, options=options)
        times.append(time.perf_counter() - t0)
    return min(times)


def training_minutes(ckpt):
    """(wall minutes, CPU-minutes) of a checkpoint's whole run (its history, every epoch)."""
    seconds = sum(entry["seconds"] for entry in ckpt["history"])
    return seconds / 60, seconds / 60 * torch.get_num_threads()


def rows(base, jumps, steps, precisions):
    """(label, checkpoint, options) of each row."""
    out = [("base", base, SamplingOptions(precision=p)) for p in precisions]
    out += [("base", base, SamplingOptions(steps=n, precision=p)) for n in steps for p in precisions]
    out += [("jumps", jumps, SamplingOptions(steps=n, precision=p)) for n in steps for p in precisions]
    return out


def figure(models, labels, path, seed):
    (base, base_ckpt), (jumps, jumps_ckpt) = models["base"], models["jumps"]
    grid = [(f"jumps, {n} step{'s' * (n > 1)}", jumps, jumps_ckpt, SamplingOptions(steps=n)) for n in (1, 2, 4)]
    grid.append(("base, 20 steps", base, base_ckpt, SamplingOptions()))
    images = [driver.sample(model, ckpt["config"], len(labels), labels, options, seed) for _, model, ckpt, options in grid]
    image_rows(images, [name for name, *_ in grid], "the same noise and labels at 1, 2 and 4 jumps and at the base "
               "model's 20 steps", path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="the flow model the jumping one was fine-tuned from")
    p.add_argument("--jumps", required=True,
                   help="the model trained to jump (diffusion.py --objective distill or shortcut)")
    p.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"], default=["fp32"])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--figure", default=None, help="also write this figure (PNG)")
    args = p.parse_args(argv)
    torch.set_num_threads(os.cpu_count())
    models = {name: GENERATORS["diffusion"].load(path) for name, path in (("base", args.base), ("jumps", args.jumps))}
    config = models["base"][1]["config"]
    data = load_dataset(config["data"], config["image_size"], quiet=True)
    stick = yardstick(data)
    labels = driver.balanced_labels(len(config["classes"]), args.n)
    print(f"# few-step sampling, {config['data']} at {config['image_size']} px, n={args.n}, seed {args.seed}, "
          f"{os.cpu_count()} cores, torch {torch.__version__}")
    for name, path in (("base", args.base), ("jumps", args.jumps)):
        wall, cpu = training_minutes(models[name][1])
        print(f"# {name}: {path}, objective {models[name][1]['config']['objective']}, "
              f"{len(models[name][1]['history'])} epochs, {wall:.1f} min wall ({cpu:.1f} CPU-min)")
    print("\n| model | sampler | steps | arithmetic | s / 64 | FD ↓ | × 20-step | FD network | recall ↑ | Δ recall | "
          "grain | class acc |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    reference = None
    for name, path, options in rows(args.base, args.jumps, args.steps, args.precisions):
        model, ckpt = models[name]
        options = driver.resolved(ckpt["config"], options)
        per_64 = seconds_per_64(model, ckpt["config"], options, labels)
        q = evaluate.sample_quality(driver.sample(model, ckpt["config"], args.n, labels, options, args.seed), stick,
                                    labels)
        reference = reference or q
        print(f"| {name} | {options.sampler} | {options.steps} | {options.precision} | {per_64:.3f} | {q['fd']:.2f} | "
              f"{q['fd'] / reference['fd']:.2f} | {q['fd_network']:.2f} | {q['recall']:.3f} | "
              f"{q['recall'] - reference['recall']:+.3f} | {q['grain']:.2f} | {q['class_accuracy']:.1%} |", flush=True)
    if args.figure:
        figure(models, driver.balanced_labels(len(config["classes"]), 10), args.figure, args.seed)
        print(f"\nwrote {args.figure}")


if __name__ == "__main__":
    main()
