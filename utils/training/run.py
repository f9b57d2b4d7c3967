"""One training entry for every model: flags -> configuration (on --resume: the saved one) -> data -> header ->
fit() -> loss curve and summary. Each trainer (train_script.py, diffusion.py) adds only what is its own: its
flags, its model settings, how to build the model and its loss, and its header lines."""
import argparse
import math
import sys
import time
from pathlib import Path

import torch

from utils import cli
from utils.data.dataset import load_dataset, load_training_data
from utils.errors import UserError
from utils.figures import loss_curve
from utils.training import distributed
from utils.training.checkpoint import (check_writable, clean_stale_temporaries, load_checkpoint, load_resume,
                                       move_into_place, recorded_best, resume_path_for, unfinished_path_for)
from utils.training.lock import TrainingLock
from utils.training.train import RESUME_SCHEDULE, Run, fit, fmt_loss

FLAG_OF = {"labels_file": "labels", "objects_file": "objects"}   # configuration key -> its flag, where they differ
PER_INVOCATION = {"epochs", "precision"}   # saved, but a resumed run may change them


def add_run_flags(p, checkpoint):
    """The flags of every trainer that say where its run goes and what data it sees."""
    p.add_argument("--split-seed", type=int, default=0, help="seed of the fixed train/validation split")
    p.add_argument("--valid-fraction", type=float, default=0.1, help="share of each class held out")
    p.add_argument("--checkpoint", default=checkpoint, help="where the best model goes")
    p.add_argument("--resume", action="store_true",
                   help=f"continue from the resume file beside --checkpoint (models/last_<RUN>.pth, written "
                        f"{RESUME_SCHEDULE}); data, split and every model setting come from it, and a flag "
                        "that contradicts them is an error; --epochs, --minutes, --device, --threads, --precision "
                        "and --compile may change")
    p.add_argument("--force", action="store_true",
                   help="replace a --checkpoint that holds another kind of model, or a model trained on other data "
                        "than the synthetic set this run falls back to")
    cli.add_training_flags(p)
    cli.add_label_flags(p)


def parse(p, argv=None):
    """The flags, with args.typed: the flags the user actually typed (a default is not a choice to check)."""
    argv = sys.argv[1:] if argv is None else argv
    args = p.parse_args(argv)
    defaults = {action: action.default for action in p._actions}
    try:
        for action in defaults:
            action.default = argparse.SUPPRESS
        args.typed = set(vars(p.parse_args(argv)))
    finally:
        for action, default in defaults.items():
            action.default = default
    if not 0 < args.valid_fraction <= 0.5:
        cli.fail(f"--valid-fraction must be in (0, 0.5], got {args.valid_fraction}")
    if getattr(args, "lr", None) is not None and not (math.isfinite(args.lr) and args.lr > 0):
        cli.fail(f"--lr must be a positive number, got {args.lr:g}")
    if args.image_size is not None and args.image_size < 1:
        cli.fail(f"--image-size must be at least 1, got {args.image_size}")
    return args


def check_replaceable(args, model_name, data):
    """A new run may replace its --checkpoint only when it holds the same kind of model, and the synthetic set that
    stands in for a missing ./flowers never replaces a model trained on real images; --force replaces anyway."""
    if args.force or not Path(args.checkpoint).exists():
        return
    try:
        config = load_checkpoint(args.checkpoint)["config"]
    except UserError:
        cli.fail(f"--checkpoint {args.checkpoint} exists and is not a checkpoint of this project: pass another "
                 "--checkpoint, or --force to replace it")
    if config["model"] != model_name:
        cli.fail(f"--checkpoint {args.checkpoint} holds a {config['model']} model, not {model_name}: pass another "
                 "--checkpoint, or --force to replace it")
    if args.data is None and data.source == "synthetic" and config.get("data") != "synthetic":
        cli.fail(f"./flowers not found, and the synthetic set would replace {args.checkpoint} (trained on "
                 f"{config.get('data')}): pass --data DIR, or --data synthetic to replace it")


def claim(args):
    """The main process alone writes: one training per checkpoint, and killed saves' leftovers cleaned (a new run
    abandons a killed run's unfinished model too)."""
    unfinished = unfinished_path_for(args.checkpoint)
    if distributed.is_main():
        for folder in (Path(args.checkpoint).parent, Path("vis")):   # found now, not after the training
            check_writable(folder)
        TrainingLock(args.checkpoint).acquire()
        for path in (args.checkpoint, args.resume_path, unfinished):
            clean_stale_temporaries(path)
        if not args.resume:
            unfinished.unlink(missing_ok=True)
    args.best_path = best_path_for(args, unfinished)


def best_path_for(args, unfinished):
    """Where this run writes its best model as it goes: the Best file itself when that holds nothing an earlier run
    finished (it is absent, or --resume continues the run that wrote it), else the unfinished file beside it, which
    replaces the Best file when the run finishes; an interrupted, killed or diverged run leaves it as it was."""
    if args.resume:
        return unfinished if unfinished.exists() else Path(args.checkpoint)
    return unfinished if Path(args.checkpoint).exists() else Path(args.checkpoint)


def same(typed, saved):
    if typed == saved:
        return True
    paths = [Path(str(v)) for v in (typed, saved)]
    return all(p.exists() for p in paths) and paths[0].resolve() == paths[1].resolve()


def check_flags(args, config):
    """On --resume: a typed flag that contradicts the saved run is a one-line error, before anything is written."""
    for key, saved in config.items():
        flag = FLAG_OF.get(key, key)
        if flag in args.typed and flag not in PER_INVOCATION and not same(getattr(args, flag), saved):
            raise UserError(f"--{flag.replace('_', '-')} {getattr(args, flag)} contradicts the run being resumed "
                            f"({args.resume_path} has {key} = {saved}); leave the flag out to resume that run")


def start(args, model_name, settings, check=None):
    """(configuration, saved training state or None, data, device).

    A new run's configuration is its data's description plus settings(data), the model's own; a resumed run's is
    the saved one, and its data, size and split are loaded from it. check(data): a new run's own test of its data,
    a one-line error before anything is written."""
    device = distributed.setup(cli.setup(args))
    args.precision = cli.precision_for(args.precision, device)
    args.resume_path = resume_path_for(args.checkpoint)
    if args.resume:
        saved = load_resume(args.resume_path, model_name)
        check_flags(args, saved["config"])
        config = dict(saved["config"], precision=args.precision)
        data = load_training_data(config, quiet=True)
        claim(args)
        args.best_on_disk = recorded_best(args.best_path)
        return config, saved["state"], data, device
    data = load_dataset(args.data, args.image_size, args.valid_fraction, args.split_seed, labels_file=args.labels,
                        objects_file=args.objects)
    check_replaceable(args, model_name, data)
    if check:
        check(data)
    claim(args)
    config = dict(model=model_name, image_size=data.image_size, channels=data.channels, data=data.source,
                  classes=data.classes, multi_label=data.multi_label, labels_file=args.labels,
                  objects_file=args.objects, split_seed=args.split_seed, valid_fraction=args.valid_fraction,
                  seed=args.seed, augment=args.augment, precision=args.precision, **settings(data))
    return config, None, data, device


def header(lines, data, args, device, state):
    """The log's first lines: the model's own, then the data and the device (every trainer's)."""
    kind = "objects (multi-label)" if data.multi_label else "classes"
    resuming = f"  (resuming after epoch {len(state['history'])})" if state else ""
    lines = [lines[0], f"data       {data.source}: {len(data.train_idx)} train / {len(data.valid_idx)} valid images, "
                       f"{data.channels}x{data.image_size}x{data.image_size}, {kind} {', '.join(data.classes)}",
             *lines[1:], f"device     {device}, {torch.get_num_threads()} threads" + cli.speed_description(args)
             + resuming]
    print("\n".join(lines), flush=True)


def train(model, loss_fn, data, recipe, args, config, state, device, loss_unit, curve_title=None, on_epoch_end=None,
          until=None):
    """fit() on the run's split, then (on the main process) the loss curve and the summary; returns the history."""
    history, started = [], time.perf_counter()
    run = Run(args.best_path, config, args.resume_path, state, log=lambda line: print(line, flush=True),
              on_epoch_end=on_epoch_end, until=until, history=history, best=getattr(args, "best_on_disk", None))
    name = Path(args.checkpoint).stem.removeprefix("Best_")
    curve_title = curve_title or f"{name}: {loss_unit}"
    try:
        fit(model, loss_fn, data.subset("train"), data.subset("valid"), recipe, run, device)
    except UserError:   # a diverged run or a failed write: its one line, and no figure
        history.clear()
        raise
    finally:  # after Ctrl-C too: the curve and the summary of the epochs that finished
        if history and distributed.is_main():
            loss_curve(history, curve_title, f"vis/loss_{name}.png", ylabel=loss_unit)
    if not distributed.is_main():
        return history
    move_into_place(args.best_path, args.checkpoint)
    if not history:
        print("no epoch finished; nothing saved")
        return history
    seconds = time.perf_counter() - started
    took = f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f} min"
    print(f"done       {len(history)} epochs in {took}; final train {fmt_loss(history[-1]['train_loss'])}, "
          f"valid {fmt_loss(history[-1]['valid_loss'])}")
    # What the Best file holds: after --resume that can be an epoch the resume file never saw.
    print(f"best       epoch {run.best['epoch']}: valid {fmt_loss(run.best['valid_loss'])} -> {args.checkpoint}"
          if run.best else f"best       no epoch improved on the resumed run's best; {args.checkpoint} not written")
    print(f"curve      vis/loss_{name}.png")
    return history
