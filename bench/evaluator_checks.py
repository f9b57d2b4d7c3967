"""Does the evaluator rank what matters? Prints one table and exits 1 when a check fails.

    python bench/evaluator_checks.py --data ../shared/flowers              # the ladder: a few minutes
    python bench/evaluator_checks.py --data ../shared/flowers --training   # + one diffusion run: ~25 minutes

The ladder: held-out real images, then the same images degraded step by step (blurred, resampled down
and up, with noise added) and samples of a Gaussian fitted to the training pixels. FD must grow along
each degradation, every rung must score worse than the untouched images, and the held-out images'
precision and recall must both be at least 0.85.

--shipped: check the evaluator shipped for this data set and size (utils/evaluation/shipped/) instead of training
one; it fails when none matches the data's fingerprint.

--training: one diffusion run (same seed throughout; v-prediction at full resolution, whose constant learning rate makes
a snapshot the model a shorter run gives) is trained by `diffusion.py` for 1 minute,
then resumed to 3 and to 15 minutes; after each part its EMA weights are kept as a snapshot and 1,000
class-balanced guided samples are drawn with `random_generation.py`. `evaluate.py --samples` scores them:
FD must fall and recall rise from each snapshot to the next. Everything goes to --workdir (runs/ is
ignored by git); snapshots and samples found there are reused (--fresh trains again).
"""
import argparse
import datetime
import math
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import evaluate  # noqa: E402
from utils.evaluation import ladder  # noqa: E402
from utils.training.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from utils.data.dataset import load_dataset  # noqa: E402
from utils.evaluation.evaluator import (fingerprint, measure_with, shipped_path, stored_evaluator,  # noqa: E402
                                        yardstick)
from utils.evaluation.table import markdown_table  # noqa: E402

SNAPSHOT_MINUTES = (1, 3, 15)
# A DDPM recipe, spelled out: v-prediction at full resolution, constant learning rate (a snapshot is a shorter run).
BASELINE = dict(objective="v", schedule="cosine", min_snr=5, batch_size=64, lr=2e-3, base=32, mults=[1, 2, 3],
                ema=0.999, patch=1, upsample="nearest", warmup=0, lr_decay="none")


def flags(**changes):
    """diffusion.py's flags for the baseline with some settings changed."""
    return [f for key, value in dict(BASELINE, **changes).items()
            for f in (f"--{key.replace('_', '-')}", *map(str, value if isinstance(value, list) else [value]))]
N_SAMPLES = 1000
MIN_REAL_PR = 0.85


def run(script, *flags, cwd, log=None):
    """One of the project's own commands, in the work folder (its models/, vis/ and log/ stay there)."""
    command = [sys.executable, str(ROOT / script), *map(str, flags)]
    with open(log, "a") if log else open(Path(cwd) / "commands.out", "a") as out:
        subprocess.run(command, cwd=cwd, check=True, stdout=out)


def snapshot(workdir, minutes):
    """The run's state after its last finished epoch, as a best-model checkpoint that samples from the EMA."""
    saved = load_checkpoint(workdir / "models" / "last_diffusion.pth", model="diffusion")
    state = saved["state"]
    path = workdir / "snapshots" / f"diffusion_{minutes}min.pth"
    ema = state["ema"]["model"] if state["ema"] else None   # --ema 0 keeps none: the model's weights sample
    save_checkpoint(path, dict(config=saved["config"], model=state["model"], ema=ema, epoch=saved["epoch"],
                               history=state["history"]))
    return path


def train_snapshots(data, workdir, seed):
    """One diffusion run, resumed from one budget to the next: a snapshot at each."""
    paths = {m: workdir / "snapshots" / f"diffusion_{m}min.pth" for m in SNAPSHOT_MINUTES}
    if all(p.exists() for p in paths.values()):
        return paths
    shutil.rmtree(workdir / "models", ignore_errors=True)
    (workdir / "log").mkdir(parents=True, exist_ok=True)
    for i, minutes in enumerate(SNAPSHOT_MINUTES):
        resume = ["--resume"] if i else []
        print(f"training the diffusion model to {minutes} minutes ...", flush=True)
        run("diffusion.py", "--data", data, "--seed", seed, "--minutes", minutes, *(resume or flags()),
            cwd=workdir, log=workdir / "log" / "train_diffusion.out")
        snapshot(workdir, minutes)
    return paths


def draw_samples(checkpoint, folder, seed, workdir):
    """N_SAMPLES class-balanced samples as PNGs (reused when the folder already holds them)."""
    if len(list(folder.rglob("*.png"))) >= N_SAMPLES:
        return
    shutil.rmtree(folder, ignore_errors=True)
    start = time.perf_counter()
    run("random_generation.py", "--model", "diffusion", "--checkpoint", checkpoint, "--n", N_SAMPLES,
        "--out-dir", folder, "--seed", seed, cwd=workdir)
    print(f"drew {N_SAMPLES} samples from {checkpoint.name} in {time.perf_counter() - start:.0f}s", flush=True)


def ladder_failures(rows):
    """What the ladder must show: FD growing along each degradation, every rung above the real images' FD,
    and held-out real images inside the training manifold and covering it."""
    real = next(r for r in rows if r["row"] == "real (held-out)")
    failures = [f"{r['row']}: FD {r['fd']:.2f} is not above the held-out real images' {real['fd']:.2f}"
                for r in rows if r.get("status") == "calibration" and r is not real and r["fd"] <= real["fd"]]
    for kind in ladder.LADDERS:
        rungs = sorted((r for r in rows if r.get("ladder") == kind), key=lambda r: r["rung"])
        failures += [f"{b['row']}: FD {b['fd']:.2f} is not above {a['row']}'s {a['fd']:.2f}"
                     for a, b in zip(rungs, rungs[1:]) if b["fd"] <= a["fd"]]
    failures += [f"real (held-out): {key} {real.get(key, math.nan):.3f} is not at least {MIN_REAL_PR}"
                 for key in ("precision", "recall") if not real.get(key, 0) >= MIN_REAL_PR]
    return failures


def training_failures(rows):
    """Longer training must score better: FD falling and recall rising from one snapshot to the next."""
    failures = []
    for a, b in zip(rows, rows[1:]):
        if b["fd"] >= a["fd"]:
            failures.append(f"{b['row']}: FD {b['fd']:.2f} is not below {a['row']}'s {a['fd']:.2f}")
        if b["recall"] <= a["recall"]:
            failures.append(f"{b['row']}: recall {b['recall']:.3f} is not above {a['row']}'s {a['recall']:.3f}")
    return failures


def training_rows(args, workdir, data, stick):
    paths = train_snapshots(str(Path(args.data).resolve()), workdir, args.seed)
    rows = []
    for minutes, path in paths.items():
        folder = workdir / "samples" / f"diffusion_{minutes}min"
        draw_samples(path, folder, args.seed, workdir)
        epoch = load_checkpoint(path)["epoch"]
        row = evaluate.samples_row(folder, data, stick)
        rows.append(dict(row, row=f"diffusion after {minutes} min ({epoch} epochs)"))
    return rows


def shipped_yardstick(data):
    """The yardstick of the evaluator shipped for this data, or None when none matches its fingerprint."""
    found = stored_evaluator(shipped_path(data), fingerprint(data))
    return measure_with(data, *found) if found else None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="image folder with one sub-folder per class")
    p.add_argument("--image-size", type=int, default=24)
    p.add_argument("--shipped", action="store_true", help="check the shipped evaluator instead of training one")
    p.add_argument("--training", action="store_true", help="also train one diffusion run and rank its snapshots")
    p.add_argument("--workdir", default="runs/evaluator_checks", help="checkpoints, samples and logs of the checks")
    p.add_argument("--fresh", action="store_true", help="train the diffusion run again even if its snapshots exist")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    workdir = Path(args.workdir).resolve()
    if args.fresh:
        shutil.rmtree(workdir / "snapshots", ignore_errors=True)
        shutil.rmtree(workdir / "samples", ignore_errors=True)
    data = load_dataset(args.data, args.image_size, quiet=True)
    start = time.perf_counter()
    if args.shipped:
        stick = shipped_yardstick(data)
        if stick is None:
            print(f"FAILED no evaluator shipped for this data: {shipped_path(data)} is missing or was trained on "
                  f"other data (python bench/ship_evaluators.py --data {args.data} --image-size {data.image_size})")
            return 1
    else:
        stick = yardstick(data, path=workdir / "models" / "Evaluator.pth", retrain=True)
    train_seconds = time.perf_counter() - start   # (and the training images' features, a second)
    how = f"loaded from {stick.evaluator.source}" if args.shipped else f"trained in {train_seconds:.0f}s"
    rows, _ = evaluate.calibration_rows(data, stick, N_SAMPLES, torch.Generator().manual_seed(args.seed))
    failures = ladder_failures(rows)
    if stick.accuracy < 0.9:
        failures.append(f"classifier validation accuracy {stick.accuracy:.1%} < 90 %")
    snapshots = training_rows(args, workdir, data, stick) if args.training else []
    failures += training_failures(snapshots)
    print(f"# Evaluator checks ({datetime.date.today()}, {platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}): {args.data} at {data.image_size}px, {len(data.train_idx)} train / "
          f"{len(data.valid_idx)} valid images")
    print(f"feature network: {stick.evaluator.feature_dim}-d features, {how}, "
          f"validation accuracy {stick.accuracy:.1%}\n")
    print(markdown_table(rows + snapshots))
    print("\n" + ("\n".join("FAILED " + f for f in failures) if failures else "all checks passed"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
