"""Latent or pixel diffusion at 64 px? Both get the same CPU minutes; the 64 px evaluator scores them.

    python bench/latent_vs_pixel.py --data ../shared/flowers16 --minutes 40
    python bench/latent_vs_pixel.py --data ../shared/flowers --minutes 15

latent: `train_script.py --model LatentAE` (its defaults, or --ae-flags), then `diffusion.py --latent` for --minutes
        (with --latent-flags).
pixel:  `diffusion.py --image-size 64` with each of --pixel's settings (by default the lab's 2x2 blocks, a 32x32
        grid; and 4x4 blocks at twice the width, the latent model's 16x16 grid at about the same cost), each for
        the latent arm's minutes in all: its autoencoder's training time plus --minutes.
Each arm runs in its own folder under --workdir (runs/ is ignored by git); a finished step or score found there is
reused.
Each model draws 1,000 class-balanced samples twice, with two spaces' sampling defaults ("pixels'", those of pixels
below 64 px: guidance 1.5 at every step, DPM-Solver++, fp32; "codes'", the latent models' and
the 64 px pixel models': guidance 3 up to noise-to-signal 7/3, Heun, bf16 where native), scored as evaluate.py does
(once per --sample-seeds seed: their spread is the noise of a comparison); the bars are the bonus's (FD <= 2x the
blurred-real rung at sigma 1 px, recall >= 0.6x and class accuracy >= the held-out real row's).
"""
import argparse
import datetime
import json
import os
import platform
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402

import diffusion  # noqa: E402
import evaluate  # noqa: E402
from evaluator_checks import run  # noqa: E402
from utils import cli  # noqa: E402
from utils.data.dataset import load_dataset  # noqa: E402
from utils.evaluation.evaluator import yardstick  # noqa: E402
from utils.evaluation.table import markdown_table  # noqa: E402
from utils.generators import GENERATORS, SamplingOptions  # noqa: E402
from utils.sampling import driver  # noqa: E402
from utils.sampling.spaces import LatentSpace, PixelSpace  # noqa: E402

N_SAMPLES = 1000
PIXEL_SETTINGS = ["--patch 2", "--patch 4 --base 64"]
SAMPLINGS = {"pixel": PixelSpace, "latent": LatentSpace}   # each space's sampling defaults, tried on both models


@contextmanager
def inside(folder):
    """A latent checkpoint names its autoencoder relative to the folder it was trained in."""
    here = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(here)


def timed(step, folder, done, *command):
    """Run one command in the arm's folder unless it finished before; its wall minutes, kept in the folder."""
    record = folder / f"{step}.json"
    if not (folder / done).exists():
        (folder / "log").mkdir(parents=True, exist_ok=True)
        print(f"{folder.name}: {step} ...", flush=True)
        start = time.perf_counter()
        run(*command, cwd=folder, log=folder / "log" / f"{step}.out")
        record.write_text(json.dumps(dict(minutes=(time.perf_counter() - start) / 60)))
    return json.loads(record.read_text())["minutes"]


def folder_name(arm):
    """'pixel --patch 2' -> pixel_patch_2"""
    return arm.replace("--", "").replace(" ", "_")


def train_arms(data_dir, minutes, workdir, seed, pixel_settings, ae_flags="", latent_flags=""):
    """{arm: (folder, minutes of training in all)}; each pixel arm gets the latent arm's total (when it is trained)."""
    latent_arm = " ".join(part for part in ["latent", ae_flags, latent_flags] if part)
    latent = workdir / folder_name(latent_arm)
    ae = timed("autoencoder", latent, "models/Best_LatentAE.pth", "train_script.py", "--model", "LatentAE",
               "--data", data_dir, "--seed", seed, *ae_flags.split())
    diffusion_minutes = timed("diffusion", latent, "models/Best_diffusion.pth", "diffusion.py", "--latent",
                              "models/Best_LatentAE.pth", "--data", data_dir, "--seed", seed, "--minutes", minutes,
                              "--preview-every", 0, *latent_flags.split())
    total = ae + diffusion_minutes
    arms = {latent_arm: (latent, total)}
    for setting in pixel_settings:
        name = "pixel " + setting
        folder = workdir / folder_name(name)
        # Its own minutes: a pixel arm trained before is reused, whatever the latent arm's total is now.
        arms[name] = (folder, timed("diffusion", folder, "models/Best_diffusion.pth", "diffusion.py", "--image-size",
                                    "64", *setting.split(), "--data", data_dir, "--seed", seed, "--minutes",
                                    f"{total:.2f}", "--preview-every", 0))
    return arms


def score(folder, stick, seed, space):
    """The model's samples scored under this space's sampling defaults (kept in the folder, reused)."""
    precision = cli.precision_for(space.precision, torch.device("cpu"))
    record = folder / f"score_{space.__name__}_{space.sampler}{'_bf16' * (precision == 'bf16')}_seed{seed}.json"
    if record.exists():
        return json.loads(record.read_text())
    kind = GENERATORS["diffusion"]
    options = SamplingOptions(space.guidance, space.sampler, guidance_max_noise=space.guidance_max_noise,
                              precision=precision)
    with inside(folder):
        model, ckpt = kind.load()
        config = ckpt["config"]
        labels = driver.balanced_labels(len(config["classes"]), N_SAMPLES)
        start = time.perf_counter()
        kind.api.generate(model, config, 64, labels[:64], seed, options=options)
        per_64 = time.perf_counter() - start
        samples = kind.api.generate(model, config, N_SAMPLES, labels, seed, options=options)
    history = ckpt["history"]
    row = dict(epochs=len(history), images_per_s=sum(h["images_per_s"] for h in history) / len(history),
               per_64=per_64, **evaluate.sample_quality(samples, stick, labels))
    record.write_text(json.dumps(row, default=float))   # tensors and numpy floats as plain numbers
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--minutes", type=float, default=40, help="the latent diffusion model's training budget")
    p.add_argument("--workdir", default="runs/latent_vs_pixel")
    p.add_argument("--pixel", nargs="+", default=PIXEL_SETTINGS, metavar="FLAGS",
                   help="diffusion.py flags of each pixel-space arm, one quoted string each (default: %(default)s)")
    p.add_argument("--ae-flags", default="", metavar="FLAGS",
                   help="train_script.py flags of the latent arm's autoencoder, one quoted string (e.g. '--epochs 20')")
    p.add_argument("--latent-flags", default="", metavar="FLAGS",
                   help="diffusion.py flags of the latent arm's diffusion model, one quoted string (e.g. '--base 48'; "
                        "a lone flag after '=': --latent-flags=--augment)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sample-seeds", type=int, nargs="+", default=None, metavar="SEED",
                   help="seeds of each model's 1,000 samples (default: --seed); several show the scores' spread")
    args = p.parse_args(argv)
    torch.set_num_threads(os.cpu_count())
    data_dir = str(Path(args.data).resolve())
    workdir = Path(args.workdir).resolve() / Path(data_dir).name
    arms = train_arms(data_dir, args.minutes, workdir, args.seed, args.pixel, args.ae_flags, args.latent_flags)
    data = load_dataset(data_dir, 64, quiet=True)
    stick = yardstick(data)   # the evaluator evaluate.py uses for this data set at 64 px
    calibration, _ = evaluate.calibration_rows(data, stick, N_SAMPLES, torch.Generator().manual_seed(0))
    real = calibration[0]
    blur = next(r for r in calibration if r["ladder"] == "blur" and "sigma 1 px" in r["row"])
    rows = [real, blur]
    seeds = args.sample_seeds or [args.seed]
    for arm, (folder, minutes) in arms.items():
        for name, space in SAMPLINGS.items():
            for seed in seeds:
                quality = score(folder, stick, seed, space)
                bf16 = cli.precision_for(space.precision, torch.device("cpu")) == "bf16"
                sampling = name + ", bf16" * bf16 + (f", seed {seed}" if len(seeds) > 1 else "")
                rows.append(dict(row=arm, sampling=sampling, minutes=round(minutes, 1), **quality))
                print(markdown_table(rows[-1:]).splitlines()[-1], flush=True)
    print(f"\n# Latent against pixel diffusion at 64 px ({datetime.date.today()}, {platform.machine()}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}): {args.data}, {N_SAMPLES} class-balanced "
          f"samples each\n")
    print(markdown_table(rows))
    print(f"\nbars: FD <= {2 * blur['fd']:.2f}, recall >= {0.6 * real['recall']:.3f}, "
          f"class acc >= {real['class_accuracy']:.1%}")
    for r in rows[2:]:
        met = [r["fd"] <= 2 * blur["fd"], r["recall"] >= 0.6 * real["recall"],
               r["class_accuracy"] >= real["class_accuracy"]]
        print(f"{r['row']}, {r['sampling']} sampling: " + ", ".join(f"{name} {'met' if ok else 'MISSED'}"
                                          for name, ok in zip(["FD", "recall", "class acc"], met)))


if __name__ == "__main__":
    main()
