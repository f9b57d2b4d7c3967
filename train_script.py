"""Train an autoencoder (Parts 1-3) and keep the best model: python train_script.py --model AE"""
import time
from pathlib import Path

import torch

from utils import cli, distributed
from utils.checkpoint import load_resume, resume_path_for
from utils.data import load_dataset
from utils.figures import loss_curve
from utils.models import TRAINING_DEFAULTS, build_model, check_model_name, loss_fn_for, training_defaults
from utils.train import RESUME_SCHEDULE, EarlyStopping, fit, fmt_loss, make_optimizer, make_scheduler

# What --resume takes from the resume file rather than the flags: everything that shapes the model, the data
# and the recipe. --epochs (when given), --device, --threads, --precision and --compile stay the flags'.
RESUMED = ("image_size", "encoding_dim", "data", "split_seed", "valid_fraction", "seed", "optimizer", "lr",
           "batch_size", "scheduler", "patience", "min_delta", "recon", "beta", "kl_warmup", "augment")


def get_args(argv=None, default_model=None):
    p = cli.parser(__doc__, epilog="defaults per model and optimizer: " + "; ".join(
        f"{m} {o}: lr {d['lr']:g}, batch {d['batch_size']}, {d['epochs']} epochs"
        for m, per in TRAINING_DEFAULTS.items() for o, d in per.items()))
    p.add_argument("--model", default=default_model, required=default_model is None, help="MLPAE, AE or VAE")
    p.add_argument("--epochs", type=int, default=None, help="default: per model and optimizer (see below)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="default: per model and optimizer; per process under torchrun (the step sees N times it)")
    p.add_argument("--optimizer", choices=["sgd", "momentum", "adam"], default=None,
                   help="sgd is plain SGD (the handout's baseline); default adam")
    p.add_argument("--lr", type=float, default=None, help="default: per model and optimizer")
    p.add_argument("--scheduler", choices=["none", "cosine", "step"], default="none", help="learning-rate schedule")
    p.add_argument("--patience", type=int, default=10, help="early stopping: epochs without improvement (0: off)")
    p.add_argument("--min-delta", type=float, default=0.0, help="early stopping: smallest improvement that counts")
    p.add_argument("--encoding-dim", type=int, default=64, help="size of the latent code")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the fixed train/validation split")
    p.add_argument("--valid-fraction", type=float, default=0.1, help="share of each class held out")
    p.add_argument("--recon", choices=["mse", "bce"], default="mse", help="VAE only: reconstruction term")
    p.add_argument("--beta", type=float, default=1.0, help="VAE only: weight of the KL term in the objective")
    p.add_argument("--kl-warmup", type=int, default=0, help="VAE only: epochs over which the KL weight ramps up")
    p.add_argument("--checkpoint", default=None, help="where the best model goes (default models/Best_<MODEL>.pth)")
    p.add_argument("--resume", action="store_true",
                   help=f"continue from the resume file beside --checkpoint (models/last_<RUN>.pth, written "
                        f"{RESUME_SCHEDULE}); its saved configuration wins over the flags, except --epochs (when "
                        "given), --device, --threads, --precision and --compile")
    cli.add_training_flags(p)
    cli.add_label_flags(p)
    args = p.parse_args(argv)
    check_model_name(args.model)
    args.checkpoint = args.checkpoint or f"models/Best_{args.model}.pth"
    args.resume_path = resume_path_for(args.checkpoint)
    args.resume_state = restore_flags(args) if args.resume else None
    defaults = training_defaults(args.model, args.optimizer)
    for key in ("optimizer", "lr", "epochs", "batch_size"):
        if getattr(args, key) is None:
            setattr(args, key, defaults[key])
    args.image_size = args.image_size or 24
    if not 0 < args.valid_fraction <= 0.5:
        cli.fail(f"--valid-fraction must be in (0, 0.5], got {args.valid_fraction}")
    for flag in ("epochs", "batch_size", "encoding_dim"):
        if getattr(args, flag) < 1:
            cli.fail(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")
    return args


def restore_flags(args):
    """--resume: the saved configuration replaces the flags (see RESUMED); returns the saved training state."""
    saved = load_resume(args.resume_path, args.model)
    config = saved["config"]
    for key in RESUMED:
        setattr(args, key, config[key])
    args.labels, args.objects = config.get("labels_file"), config.get("objects_file")
    args.epochs = args.epochs or config["epochs"]
    return saved["state"]


def prepare(args):
    """Data, model, optimizer and the configuration the checkpoint will carry."""
    if args.image_size % 4 and args.model != "MLPAE":
        cli.fail(f"--image-size must be a multiple of 4 for {args.model}, got {args.image_size}")
    device = distributed.setup(cli.setup(args))
    args.precision = cli.precision_for(args.precision, device)
    data = load_dataset(args.data, args.image_size, args.valid_fraction, args.split_seed,
                        labels_file=args.labels, objects_file=args.objects)
    config = dict(model=args.model, image_size=data.image_size, channels=data.channels,
                  encoding_dim=args.encoding_dim, data=data.source, classes=data.classes,
                  labels_file=args.labels, objects_file=args.objects,
                  split_seed=args.split_seed, valid_fraction=args.valid_fraction, seed=args.seed,
                  optimizer=args.optimizer, lr=args.lr, batch_size=args.batch_size, epochs=args.epochs,
                  recon=args.recon, beta=args.beta, kl_warmup=args.kl_warmup, scheduler=args.scheduler,
                  patience=args.patience, min_delta=args.min_delta, augment=args.augment, precision=args.precision)
    model = build_model(config).to(device)
    optimizer = make_optimizer(args.optimizer, model.parameters(), args.lr)
    return data, model, optimizer, config, device


def print_header(args, data, model, device):
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model      {args.model} ({type(model).__name__}), {n_params:,} parameters, encoding_dim {args.encoding_dim}")
    print(f"data       {data.source}: {len(data.train_idx)} train / {len(data.valid_idx)} valid images, "
          f"{data.channels}x{data.image_size}x{data.image_size}, classes {', '.join(data.classes)}")
    print(f"training   {args.optimizer} lr {args.lr:g}, {distributed.batch_description(args.batch_size)}, "
          f"up to {args.epochs} epochs, scheduler {args.scheduler}, patience {args.patience}, seed {args.seed}"
          + (", augmented (flips, crops)" if args.augment else ""))
    if args.model == "VAE":
        print(f"vae loss   {args.recon} reconstruction + KL (beta {args.beta:g}, warm-up {args.kl_warmup} epochs)")
    print(f"device     {device}, {torch.get_num_threads()} threads" + cli.speed_description(args)
          + (f"  (resuming after epoch {len(args.resume_state['history'])})" if args.resume_state else ""))
    print(f"loss       {loss_unit(args.model)}", flush=True)


def loss_unit(model):
    return "negative ELBO per image" if model == "VAE" else "mean squared error per pixel"


def train(args, until=None):
    """Train as the flags say, print the log, write the loss curve; returns the history."""
    data, model, optimizer, config, device = prepare(args)
    print_header(args, data, model, device)
    history, start = [], time.perf_counter()
    try:
        fit(model, loss_fn_for(config), data.images[data.train_idx], data.images[data.valid_idx],
            optimizer=optimizer, epochs=args.epochs, batch_size=args.batch_size, device=device,
            scheduler=make_scheduler(args.scheduler, optimizer, args.epochs),
            early_stopping=EarlyStopping(args.patience, args.min_delta), checkpoint_path=args.checkpoint,
            config=config, seed=args.seed, until=until, history=history, log=lambda line: print(line, flush=True),
            resume_path=args.resume_path, resume=args.resume_state, augment=args.augment, precision=args.precision,
            compile=args.compile)
    finally:  # after Ctrl-C too: the curve and the summary of the epochs that finished
        summarise(args, history, time.perf_counter() - start)
    return history


def summarise(args, history, seconds):
    if not distributed.is_main():  # the main process writes the curve and the summary
        return
    if not history:
        print("no epoch finished; nothing saved")
        return
    run_name = Path(args.checkpoint).stem.removeprefix("Best_")
    best = min(history, key=lambda h: h["valid_loss"])
    last = history[-1]
    curve = f"vis/loss_{run_name}.png"
    loss_curve(history, f"{run_name}: {loss_unit(args.model)}", curve, ylabel=loss_unit(args.model))
    print(f"done       {len(history)} epochs in {seconds:.1f}s; final train {fmt_loss(last['train_loss'])}, "
          f"valid {fmt_loss(last['valid_loss'])}")
    print(f"best       epoch {best['epoch']}: valid {fmt_loss(best['valid_loss'])} -> {args.checkpoint}")
    print(f"curve      {curve}")


def main(argv=None, default_model=None):
    try:
        train(get_args(argv, default_model))
    finally:
        distributed.teardown()  # a no-op without torchrun


if __name__ == "__main__":
    cli.run(main)
