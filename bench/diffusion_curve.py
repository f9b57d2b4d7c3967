"""Diffusion quality against CPU minutes: one table and docs/diffusion_curve.png.

    python bench/diffusion_curve.py --data ../shared/flowers                  # the curve: every line, 1-15 min
    python bench/diffusion_curve.py --data ../shared/flowers --minutes 3 --configs baseline batch32 flow ...
    python bench/diffusion_curve.py --data ../shared/flowers --epochs 12 24 --configs default patch2 baseline:33

With --epochs the axis is training images instead of minutes, which no machine's speed can move: each point is one
fresh run of that many epochs (`--minutes 0 --epochs N`, its learning rate decaying to the run's end); NAME:N
trains that configuration for N epochs only.

Each of our configurations is one `diffusion.py` run resumed from one budget to the next, its EMA weights kept
as a snapshot at each (a snapshot at 3 minutes is then the model a 3-minute run gives); a configuration whose
learning rate decays to the end of the budget trains one run per budget instead. `reference` is bench/diffusion_budget.py's diffusers recipe (`pip install diffusers`),
snapshotted the same way. Each point draws 1,000 class-balanced samples (ours with the sampling defaults of
diffusion.py, or --guidance) and scores them as evaluate.py does, against the training split. Every point is
cached in --workdir (runs/ is ignored by git): a rerun continues where the last one stopped.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402

import diffusion  # noqa: E402
import evaluate  # noqa: E402
from diffusion_budget import sample_reference, train_reference  # noqa: E402
from evaluator_checks import flags, run, snapshot  # noqa: E402
from utils.data.dataset import load_dataset  # noqa: E402
from utils.evaluation.evaluator import yardstick  # noqa: E402
from utils.evaluation.table import markdown_table  # noqa: E402
from utils.generators import GENERATORS, SamplingOptions  # noqa: E402
from utils.sampling import driver  # noqa: E402
from utils.sampling.spaces import PixelSpace  # noqa: E402

BASELINE_GUIDANCE = 2.0   # the baseline recipe's own guidance; every other configuration samples with diffusion.py's
PREVIOUS = ["--ema", "0.999", "--upsample", "nearest"]   # the first round's winner: docs/diffusion.md


CONFIGS = {  # name -> diffusion.py flags
    "baseline": flags(),
    "default": [],
    "flow": flags(objective="flow"),
    "flow-snr0": flags(objective="flow", min_snr=0),
    "flow-uniform": flags(objective="flow", time_sampling="uniform"),
    "batch32": flags(batch_size=32),
    "flow-batch32": flags(objective="flow", batch_size=32),
    "flow-base24": flags(objective="flow", base=24),
    # on flow matching without min-SNR weighting (flow-snr0), one lever at a time
    "fm-batch32": flags(objective="flow", min_snr=0, batch_size=32),
    "fm-uniform": flags(objective="flow", min_snr=0, time_sampling="uniform"),
    "fm-cosine": flags(objective="flow", min_snr=0, warmup=50, lr_decay="cosine"),
    "fm-base24": flags(objective="flow", min_snr=0, base=24),
    "fm-lr1e-3": flags(objective="flow", min_snr=0, lr=1e-3),
    "fm-lr4e-3": flags(objective="flow", min_snr=0, lr=4e-3),
    "fm-patch2": flags(objective="flow", min_snr=0, patch=2),
    "fm-patch2-base64": flags(objective="flow", min_snr=0, patch=2, base=64),
    # on flow matching with the pixel-unshuffled U-Net (fm-patch2)
    "p2-batch32": flags(objective="flow", min_snr=0, patch=2, batch_size=32),
    "p2-cosine": flags(objective="flow", min_snr=0, patch=2, warmup=50, lr_decay="cosine"),
    "p2-lr1e-3": flags(objective="flow", min_snr=0, patch=2, lr=1e-3),
    # on the first round's winner (flow, patch 2, cosine decay, EMA 0.999, nearest upsampling)
    "previous": PREVIOUS,
    "patch3": PREVIOUS + ["--patch", "3"],
    "patch3-base48": PREVIOUS + ["--patch", "3", "--base", "48"],
    "lr3e-3": PREVIOUS + ["--lr", "3e-3"],
    "batch128": PREVIOUS + ["--batch-size", "128", "--lr", "3e-3"],
    "ema0": ["--ema", "0", "--upsample", "nearest"],
    "ema0-transposed": ["--ema", "0", "--upsample", "transposed"],   # = the default since then
    "lr3e-3-decay": ["--lr", "3e-3"],   # the lr 3e-3 lever again, on the default (no EMA, decay to the end)
    "bf16": ["--precision", "bf16"],    # the default under bfloat16 autocast (fast on CPUs with AMX or AVX512-BF16)
    # The half-resolution U-Net: 2x2 blocks of pixels as one position, three levels, batch 64 (docs/diffusion.md)
    "patch2": ["--patch", "2", "--base", "32", "--mults", "1", "2", "3", "--batch-size", "64", "--lr", "2e-3",
               "--upsample", "transposed"],
    # The full-resolution U-Net with a 96-channel lowest level and unclipped gradients, and each change alone
    "mults1246": ["--mults", "1", "2", "4", "6", "--clip-grad", "0"],
    "unclipped": ["--clip-grad", "0"],
    "mults1246-clipped": ["--mults", "1", "2", "4", "6"],
}
MINUTES = (1, 2, 3, 5, 10, 15)
N_SAMPLES = 1000


def budget_dependent(name):
    """A learning rate that decays to the end of --minutes makes every budget its own run."""
    return diffusion.get_args(CONFIGS[name]).lr_decay != "none"   # the flags on top of diffusion.py's defaults


def our_snapshots(name, data_dir, minutes, workdir, seed):
    """{minutes: checkpoint}: one run of this configuration resumed from budget to budget (or, for a
    budget-dependent recipe, one run per budget), its EMA weights kept at each."""
    paths = {m: workdir / name / "snapshots" / f"diffusion_{m:g}min.pth" for m in minutes}
    for m in sorted(minutes):
        if paths[m].exists():
            continue
        fresh = budget_dependent(name) or m == min(minutes)
        folder = workdir / name / (f"{m:g}min" if budget_dependent(name) else "run")
        (folder / "log").mkdir(parents=True, exist_ok=True)
        print(f"{name}: training to {m:g} minutes ...", flush=True)
        run("diffusion.py", "--data", data_dir, "--seed", seed, "--minutes", m, "--preview-every", 0,
            *(CONFIGS[name] if fresh else ["--resume"]), cwd=folder, log=folder / "log" / "train_diffusion.out")
        paths[m].parent.mkdir(parents=True, exist_ok=True)
        snapshot(folder, m).replace(paths[m])
    return paths


def epoch_snapshots(name, epochs, data_dir, workdir, seed, precision):
    """{epochs: checkpoint}: one fresh run of this configuration per number of epochs."""
    paths = {}
    for n in epochs:
        folder = workdir / name / f"{n}ep"
        paths[n], log = folder / "models" / "Best_diffusion.pth", folder / "log" / "train_diffusion.out"
        if not (log.exists() and f"done       {n} epochs" in log.read_text()):   # a killed run trains again
            shutil.rmtree(folder, ignore_errors=True)
            (folder / "log").mkdir(parents=True, exist_ok=True)
            print(f"{name}: training {n} epochs ...", flush=True)
            run("diffusion.py", "--data", data_dir, "--seed", seed, "--minutes", 0, "--epochs", n, "--preview-every", 0,
                "--precision", precision, *CONFIGS[name], cwd=folder, log=log)
    return paths


def our_point(path, n, seed, guidance):
    kind = GENERATORS["diffusion"]
    model, ckpt = kind.load(str(path))
    config, options = ckpt["config"], SamplingOptions(guidance=guidance)
    labels = driver.balanced_labels(len(config["classes"]), n) if config["conditional"] else None
    t0 = time.perf_counter()
    kind.api.generate(model, config, 64, labels[:64] if labels is not None else None, seed, options=options)
    per_64 = time.perf_counter() - t0
    samples = kind.api.generate(model, config, n, labels, seed, options=options)
    history = ckpt["history"]
    return samples, labels, dict(epochs=len(history), images_per_s=sum(h["images_per_s"] for h in history)
                                 / len(history), per_64=per_64)


def reference_points(data, minutes, seed, n):
    """The reference recipe trained once to the largest budget, sampled (DDIM 50) at every budget on the way."""
    points = {}

    def at(m, model, epochs, images_per_s):
        t0 = time.perf_counter()
        sample_reference(model, len(data.classes), 64, 50, seed)
        per_64 = time.perf_counter() - t0
        samples, labels = sample_reference(model, len(data.classes), n, 50, seed)
        points[m] = samples, labels, dict(epochs=epochs, images_per_s=images_per_s, per_64=per_64)
        model.train()

    train_reference(data, max(minutes), seed, snapshots=sorted(minutes), on_snapshot=at)
    return points


def plot(results, floor, vae, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in [(axes[0], "fd", "FD (lower is better)"), (axes[1], "recall", "recall (higher is better)")]:
        for config in dict.fromkeys(r["config"] for r in results):
            points = sorted((r["minutes"], r[key]) for r in results if r["config"] == config)
            ax.plot(*zip(*points), marker="o", label=config)
        for value, label, style in [(floor, "held-out real", ":"), (vae, "VAE", "--")]:
            if value is not None:
                ax.axhline(value[key], color="gray", linestyle=style, label=label)
        ax.set_xscale("log")
        ax.set_xticks(MINUTES, [f"{m:g}" for m in MINUTES])
        ax.set_yscale("log" if key == "fd" else "linear")
        ax.set_xlabel("training minutes (2 CPU cores)")
        ax.set_title(title)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--configs", nargs="+", default=["baseline", "reference", "fm-patch2", "default"],
                   help=f"from {', '.join(CONFIGS)}, reference")
    p.add_argument("--minutes", type=float, nargs="+", default=MINUTES)
    p.add_argument("--epochs", type=int, nargs="+", default=None,
                   help="an axis of epochs instead of minutes: one fresh run per point")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="diffusion.py's --precision for the --epochs runs (fp32: as on a CPU without native bf16)")
    p.add_argument("--guidance", type=float, default=None, help="guidance of our samples (default: diffusion.py's)")
    p.add_argument("--workdir", default="runs/diffusion_curve")
    p.add_argument("--plot", default=None, help="where the figure goes (default: docs/diffusion_curve.png when "
                                                "every budget is measured, else none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cached", action="store_true",
                   help="train and sample nothing: the table and figure of the points already in --workdir")
    args = p.parse_args(argv)
    torch.set_num_threads(os.cpu_count())
    workdir, data_dir = Path(args.workdir).resolve(), str(Path(args.data).resolve())
    default_guidance = args.guidance if args.guidance is not None else PixelSpace.guidance
    data = load_dataset(data_dir, 24, quiet=True)
    stick = yardstick(data, path=workdir / "Evaluator.pth")
    cache_path = workdir / "results.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    floor = evaluate.calibration_rows(data, stick, N_SAMPLES, torch.Generator().manual_seed(0))[0][0]
    if args.epochs:
        return epochs_table(args, data_dir, workdir, stick, default_guidance, floor)
    results = []
    for name in args.configs:
        guidance = guidance_of(name, args, default_guidance)
        todo = [] if args.cached else [m for m in args.minutes if f"{name}/{m:g}/{guidance:g}" not in cache]
        if todo and name == "reference":
            points = reference_points(data, todo, args.seed, N_SAMPLES)
        elif todo:
            paths = our_snapshots(name, data_dir, args.minutes, workdir, args.seed)
            points = {m: our_point(paths[m], N_SAMPLES, args.seed, guidance) for m in todo}
        for m in todo:
            samples, labels, info = points[m]
            quality = evaluate.sample_quality(samples, stick, labels)
            cache[f"{name}/{m:g}/{guidance:g}"] = dict(config=name, minutes=m, guidance=guidance, **info, **quality)
            cache_path.write_text(json.dumps(cache, indent=1))
            print(markdown_table([cache[f"{name}/{m:g}/{guidance:g}"]]).splitlines()[-1], flush=True)
        results += [cache[key] for m in args.minutes if (key := f"{name}/{m:g}/{guidance:g}") in cache]
    vae = None
    if GENERATORS["VAE"].trained():
        model, ckpt = GENERATORS["VAE"].load()
        vae = evaluate.sample_quality(GENERATORS["VAE"].api.generate(model, ckpt["config"], N_SAMPLES, seed=args.seed),
                                      stick)
    print(f"\n# Diffusion quality against CPU minutes ({datetime.date.today()}, {platform.machine()}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}): {args.data} at 24px, {N_SAMPLES} "
          f"class-balanced samples per point, guidance {default_guidance:g} "
          f"(baseline: {BASELINE_GUIDANCE:g}; reference: DDIM 50, unguided)")
    print(f"held-out real: FD {floor['fd']:.2f}, recall {floor['recall']:.3f}"
          + (f"; VAE: FD {vae['fd']:.2f}, recall {vae['recall']:.3f}" if vae else "") + "\n")
    print(markdown_table(results))
    plot_path = args.plot or ("docs/diffusion_curve.png" if set(MINUTES) <= set(args.minutes) else None)
    if plot_path:
        plot(results, floor, vae, plot_path)
        print(f"\nwrote {plot_path}")


def guidance_of(name, args, default_guidance):
    """The guidance a configuration's samples are drawn with: --guidance, else the baseline's own or diffusion.py's."""
    return BASELINE_GUIDANCE if name == "baseline" and args.guidance is None else default_guidance


def epochs_table(args, data_dir, workdir, stick, default_guidance, floor):
    cache_path = workdir / "results_epochs.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    results = []
    for spec in args.configs:
        name, _, only = spec.partition(":")
        epochs = [int(only)] if only else args.epochs
        guidance = guidance_of(name, args, default_guidance)
        todo = [] if args.cached else [n for n in epochs if f"{name}/{n}ep/{guidance:g}" not in cache]
        paths = epoch_snapshots(name, todo, data_dir, workdir, args.seed, args.precision) if todo else {}
        for n in todo:
            samples, labels, info = our_point(paths[n], N_SAMPLES, args.seed, guidance)
            quality = evaluate.sample_quality(samples, stick, labels)
            cache[f"{name}/{n}ep/{guidance:g}"] = dict(config=name, guidance=guidance, **info, **quality)
            cache_path.write_text(json.dumps(cache, indent=1))
        results += [cache[key] for n in epochs if (key := f"{name}/{n}ep/{guidance:g}") in cache]
    print(f"\n# Diffusion quality against training epochs ({platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}): {args.data} at 24px, {N_SAMPLES} class-balanced samples per point, seed "
          f"{args.seed}")
    print(f"held-out real: FD {floor['fd']:.2f}, recall {floor['recall']:.3f}, grain {floor['grain']:.2f}\n")
    print(markdown_table(results))


if __name__ == "__main__":
    main()
