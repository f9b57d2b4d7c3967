"""The whole lab in one command: trains, visualises and samples every model, writing the handout's submission files.

Each step is the command the handout asks for, with its output redirected into log/ as the handout says:
    python MLPAE_train_script.py > log/train_MLPAE.out
    python train_script.py --model AE --optimizer sgd > log/train_AE_SGD.out
    python train_script.py --model AE > log/train_AE.out
    python train_script.py --model VAE > log/train_VAE.out
    python visualization.py --model MLPAE|AE|VAE
    python diffusion.py > log/train_diffusion.out       (Part 4: 2 minutes of training, or what --lab-minutes leaves)
    python random_generation.py --model AE|VAE|diffusion [--interpolate]
    python evaluate.py > log/evaluate.out                   (vis/report.md, vis/report.json)
and then writes diffusion_report.md (the bonus report) and vis/index.html (every result on one page).

    python run_lab.py --bonus --data ../shared/flowers16          # the bonus: diffusion at 64 px, in bonus/
    python run_lab.py --bonus latent --data ../shared/flowers16   # the same through the lab's autoencoder
"""
import time

LAUNCHED = time.perf_counter()   # before torch's imports (~5 s): the lab's minutes count from the command

import contextlib  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402

import diffusion  # noqa: E402
import evaluate  # noqa: E402
import random_generation  # noqa: E402
import train_script  # noqa: E402
import visualization  # noqa: E402
from utils import cli  # noqa: E402
from utils.data.dataset import load_dataset, resolve_source  # noqa: E402
from utils.generators import GENERATORS, LAB  # noqa: E402
from utils.lab_report import diffusion_report, index_page  # noqa: E402
from utils.training.checkpoint import check_writable  # noqa: E402

# (log, trainer, flags): the handout's training commands in its order.
TRAINING = [
    ("log/train_MLPAE.out", train_script, ["--model", "MLPAE"]),   # = python MLPAE_train_script.py
    # Its own checkpoint, so the Adam run below is the Best_AE.pth that the figures use.
    ("log/train_AE_SGD.out", train_script, ["--model", "AE", "--optimizer", "sgd", "--checkpoint",
                                            "models/Best_AE_SGD.pth"]),
    ("log/train_AE.out", train_script, ["--model", "AE"]),
    ("log/train_VAE.out", train_script, ["--model", "VAE"]),
    ("log/train_diffusion.out", diffusion, []),
]
# --quick: one epoch per model and two sampling steps (the fewest every sampler takes), in figures and evaluation.
QUICK_STEPS = ["--steps", "2"]
QUICK = {train_script: ["--epochs", "1"], diffusion: ["--minutes", "0", "--epochs", "1", *QUICK_STEPS,
                                                      "--film-steps", "2", "--preview-every", "0"]}
# The lab's promise: five minutes on two cores. Diffusion trains for its default budget or for what Parts 1-3 leave
# of LAB_MINUTES, whichever is less; what comes after its training (the figures, and the evaluation with its feature
# network trained on a fresh clone) took 0.58-0.73 of Parts 1-3's time on three machines 2.7x apart in speed (the
# docs/results.md), so AFTER_SHARE of it is kept back.
LAB_MINUTES, AFTER_SHARE, MIN_DIFFUSION_MINUTES = 5, 0.5, 1.0
# The bonus at 64 px, two ways: (training steps, the kinds they make, diffusion's minutes). Latent diffusion gets
# 40 minutes after its autoencoder's 140,000 images (~4 minutes), under the bonus's hour; the pixel model the same
# minutes in all. At those equal minutes the pixel model won the 16 flowers (docs/bonus.md), so it is the default.
BONUS = {
    "pixel": ([("log/train_diffusion.out", diffusion, ["--image-size", "64"])], ("diffusion",), 44),
    "latent": ([("log/train_LatentAE.out", train_script, ["--model", "LatentAE"]),
                ("log/train_diffusion.out", diffusion, ["--latent", "models/Best_LatentAE.pth"])],
               ("LatentAE", "diffusion"), 40),
}


def bonus(space):
    """(training steps, {name: kind}, diffusion's minutes) of the bonus in this space."""
    training, names, minutes = BONUS[space]
    return training, {name: GENERATORS[name] for name in names}, minutes


def figures(kinds):
    return [(visualization, ["--model", name]) for name, kind in kinds.items() if kind.reconstructs] + \
           [(random_generation, ["--model", name, *more]) for name, kind in kinds.items() if kind.samples
            for more in ([], ["--interpolate"])]


def artefacts(kinds, training):
    return [*(kind.checkpoint for kind in kinds.values()),
            *(f"vis/{split}_{name}.png" for name, kind in kinds.items() if kind.reconstructs
              for split in ("train", "valid")),
            *(f"vis/random_images_{name}.png" for name, kind in kinds.items() if kind.samples),
            *(log for log, _, _ in training), "vis/denoise_process_diffusion.png",
            *(f"vis/interpolation_{name}.png" for name, kind in kinds.items() if kind.samples), "vis/report.json"]


ARTEFACTS = artefacts(LAB, TRAINING) + ["diffusion_report.md", "vis/index.html"]

def best_line(log):
    lines = Path(log).read_text().strip().splitlines()
    return next((line for line in reversed(lines) if line.startswith("best")), lines[-1])


def diffusion_minutes(elapsed, lab_minutes):
    """diffusion.py's budget when Parts 1-3 took `elapsed` seconds of a lab of `lab_minutes` (0: no limit)."""
    if not lab_minutes:
        return diffusion.MINUTES
    left = (lab_minutes * 60 - elapsed * (1 + AFTER_SHARE)) / 60
    return round(max(MIN_DIFFUSION_MINUTES, min(diffusion.MINUTES, left)), 2)


def check_needs(data, image_size):
    """What every step will need, checked before the first one trains: writable output folders, and data that
    loads at the lab's size with at least two validation images (--interpolate's pair, the evaluation's KID)."""
    if image_size < 1:
        cli.fail(f"--image-size must be at least 1, got {image_size}")
    for folder in ("models", "vis", "log"):
        check_writable(folder)
    valid = len(load_dataset(data, image_size, quiet=True).valid_idx)
    if valid < 2:
        cli.fail(f"{resolve_source(data)} gives {valid} validation image at {image_size} px; the lab's --interpolate "
                 "and evaluation need at least 2 (about 20 images, or more classes)")


def check_flags(plan):
    """Each training step's flags, parsed and checked as its script will check them, before the first one trains:
    an --image-size that one model cannot take stops the lab before the others have replaced their checkpoints."""
    for _, trainer, flags in plan.training:
        trainer.get_args(flags + plan.shared + plan.size + plan.own.get(trainer, []))


def command(module, flags):
    return f"python {Path(module.__file__).name} {' '.join(flags)}".strip()


def get_args():
    p = cli.parser(__doc__)
    p.add_argument("--quick", action="store_true",
                   help="a smoke test: one epoch per model and few sampling steps (the files, not the results)")
    p.add_argument("--diffusion-minutes", type=float, default=None, help="diffusion's training budget "
                   "(default: diffusion.py's own, or less where --lab-minutes needs it)")
    p.add_argument("--lab-minutes", type=float, default=LAB_MINUTES,
                   help=f"the whole lab's wall-clock target: on a slow machine diffusion trains for what Parts 1-3 "
                        f"leave of it (at least {MIN_DIFFUSION_MINUTES:g} minute; 0: always its default)")
    p.add_argument("--bonus", nargs="?", const="pixel", choices=sorted(BONUS), default=None,
                   help="the bonus instead of the lab, written into bonus/ (its own models/, vis/ and log/), for "
                        f"example with --data ../shared/flowers16: diffusion at 64 px for {BONUS['pixel'][2]} minutes "
                        "(a bare --bonus: python diffusion.py --image-size 64), or latent diffusion (--bonus latent: "
                        "python train_script.py --model LatentAE, then diffusion.py --latent on its codes for "
                        f"{BONUS['latent'][2]} minutes)")
    args = p.parse_args()
    if args.lab_minutes < 0:
        cli.fail(f"--lab-minutes must be at least 0 (0: no limit), got {args.lab_minutes:g}")
    return args


def enter_bonus_folder(args):
    """The bonus writes its own models/, vis/ and log/ into bonus/; a --data folder is found from there too."""
    if args.data and Path(args.data).exists():
        args.data = str(Path(args.data).resolve())
    Path("bonus").mkdir(exist_ok=True)
    os.chdir("bonus")
    print("writing into bonus/")


class Plan:
    """What the lab (or the bonus) runs: its training steps and model kinds, the flags every step takes, each
    trainer's own (--quick's, or a fixed diffusion budget) and when it started."""

    def __init__(self, args):
        self.args = args
        self.training, self.kinds, bonus_minutes = bonus(args.bonus) if args.bonus else (TRAINING, LAB, None)
        self.budget = args.diffusion_minutes if args.diffusion_minutes is not None else bonus_minutes
        self.shared = ["--seed", str(args.seed), "--device", args.device, *(["--data", args.data] if args.data else []),
                       *(["--threads", str(args.threads)] if args.threads else [])]
        self.size = ["--image-size", str(args.image_size)] if args.image_size else []
        fixed = {diffusion: ["--minutes", str(self.budget)]} if self.budget is not None else {}
        self.own = QUICK if args.quick else fixed
        self.start = time.perf_counter()

    def say(self, line):
        print(f"[{time.perf_counter() - self.start:5.0f}s] {line}", flush=True)

    def lab_minutes(self, trainer):
        """A trainer with a time budget (diffusion) gets what Parts 1-3 left of the lab, unless a budget is given."""
        if not hasattr(trainer, "MINUTES") or self.budget is not None or self.args.quick:
            return []
        left = diffusion_minutes(time.perf_counter() - self.start, self.args.lab_minutes)
        return ["--minutes", f"{left:g}"] if left != diffusion.MINUTES else []


def train_all(plan):
    for log, trainer, flags in plan.training:
        minutes = plan.lab_minutes(trainer)
        plan.say(f"{command(trainer, flags + minutes)} > {log}")
        if minutes:
            print(f"          (what the {plan.args.lab_minutes:g}-minute lab leaves on this machine; "
                  f"--diffusion-minutes {diffusion.MINUTES:g} trains for diffusion.py's default)", flush=True)
        with open(log, "w") as out, contextlib.redirect_stdout(out):
            trainer.main(flags + minutes + plan.shared + plan.size + plan.own.get(trainer, []))
        print("          " + best_line(log), flush=True)


def draw_and_evaluate(plan):
    for script, flags in figures(plan.kinds):
        flags = flags + (QUICK_STEPS if plan.args.quick and script is random_generation else [])
        plan.say(command(script, flags))
        script.main(flags + plan.shared)
    plan.say("python evaluate.py > log/evaluate.out")
    with open("log/evaluate.out", "w") as out, contextlib.redirect_stdout(out):
        quick = ["--n", "100", *QUICK_STEPS] if plan.args.quick else []
        evaluate.main(plan.shared + ["--model", *plan.kinds] + quick)


def finish(plan):
    if not plan.args.bonus:
        plan.say(f"wrote {diffusion_report()} and {index_page()}")
    print(f"\ndone in {time.perf_counter() - plan.start:.0f}s; the {'bonus' if plan.args.bonus else 'submission'} "
          "files:")
    for path in artefacts(plan.kinds, plan.training) if plan.args.bonus else ARTEFACTS:
        print(f"  {'ok     ' if Path(path).exists() else 'MISSING'} {path}")


def main():
    args = get_args()
    if args.bonus:
        enter_bonus_folder(args)
    print(f"data: {resolve_source(args.data)}" + ("  (built-in synthetic flowers: ./flowers not found)"
                                                   if resolve_source(args.data) == "synthetic" else ""))
    plan = Plan(args)
    check_flags(plan)
    check_needs(args.data, args.image_size or (64 if args.bonus else 24))
    plan.start = LAUNCHED if __name__ == "__main__" else time.perf_counter()   # (called from Python: from the call)
    train_all(plan)
    draw_and_evaluate(plan)
    finish(plan)


if __name__ == "__main__":
    cli.run(main)
