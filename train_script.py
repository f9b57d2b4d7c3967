"""Train an autoencoder (Parts 1-3) and keep the best model: python train_script.py --model AE"""
import os
import sys
import time
from pathlib import Path

import torch

from utils import cli
from utils.data import load_dataset
from utils.figures import loss_curve
from utils.models import OPTIMIZER_LR, TRAINING_DEFAULTS, build_model, check_model_name, loss_fn_for
from utils.train import EarlyStopping, fit, make_optimizer, make_scheduler


def get_args(argv=None, default_model=None):
    p = cli.parser(__doc__)
    p.add_argument("--model", default=default_model, required=default_model is None, help="MLPAE, AE or VAE")
    p.add_argument("--epochs", type=int, default=None, help="default per model: " + ", ".join(
        f"{m} {d['epochs']}" for m, d in TRAINING_DEFAULTS.items()))
    p.add_argument("--batch-size", type=int, default=None, help="default per model: " + ", ".join(
        f"{m} {d['batch_size']}" for m, d in TRAINING_DEFAULTS.items()))
    p.add_argument("--optimizer", choices=["sgd", "momentum", "adam"], default=None,
                   help="sgd is plain SGD (the handout's baseline); default adam")
    p.add_argument("--lr", type=float, default=None, help="default per optimizer: " + ", ".join(
        f"{o} {lr:g}" for o, lr in OPTIMIZER_LR.items()))
    p.add_argument("--scheduler", choices=["none", "cosine", "step"], default="none", help="learning-rate schedule")
    p.add_argument("--patience", type=int, default=5, help="early stopping: epochs without improvement (0: off)")
    p.add_argument("--min-delta", type=float, default=0.0, help="early stopping: smallest improvement that counts")
    p.add_argument("--encoding-dim", type=int, default=64, help="size of the latent code")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the fixed train/validation split")
    p.add_argument("--valid-fraction", type=float, default=0.1, help="share of each class held out")
    p.add_argument("--recon", choices=["mse", "bce"], default="mse", help="VAE only: reconstruction term")
    p.add_argument("--beta", type=float, default=1.0, help="VAE only: weight of the KL term in the objective")
    p.add_argument("--kl-warmup", type=int, default=0, help="VAE only: epochs over which the KL weight ramps up")
    p.add_argument("--checkpoint", default=None, help="where the best model goes (default models/Best_<MODEL>.pth)")
    args = p.parse_args(argv)
    check_model_name(args.model)
    defaults = TRAINING_DEFAULTS[args.model]
    for key in ("epochs", "batch_size", "optimizer"):
        if getattr(args, key) is None:
            setattr(args, key, defaults[key])
    args.lr = args.lr or defaults["lr"] or OPTIMIZER_LR[args.optimizer]
    args.checkpoint = args.checkpoint or f"models/Best_{args.model}.pth"
    return args


def main(argv=None, default_model=None):
    args = get_args(argv, default_model)
    if args.image_size % 4 and args.model != "MLPAE":
        cli.fail(f"--image-size must be a multiple of 4 for {args.model}, got {args.image_size}")
    device = cli.setup(args)
    data = load_dataset(args.data, args.image_size, args.valid_fraction, args.split_seed)
    config = dict(model=args.model, image_size=data.image_size, channels=data.channels,
                  encoding_dim=args.encoding_dim, data=data.source, classes=data.classes,
                  split_seed=args.split_seed, valid_fraction=args.valid_fraction, seed=args.seed,
                  optimizer=args.optimizer, lr=args.lr, batch_size=args.batch_size, epochs=args.epochs,
                  recon=args.recon, beta=args.beta, kl_warmup=args.kl_warmup)
    model = build_model(config).to(device)
    optimizer = make_optimizer(args.optimizer, model.parameters(), args.lr)
    scheduler = make_scheduler(args.scheduler, optimizer, args.epochs)
    train_images = data.images[data.train_idx]
    valid_images = data.images[data.valid_idx]

    run_name = Path(args.checkpoint).stem.removeprefix("Best_")
    unit = "negative ELBO per image" if args.model == "VAE" else "mean squared error per pixel"
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model      {args.model} ({type(model).__name__}), {n_params:,} parameters, encoding_dim {args.encoding_dim}")
    print(f"data       {data.source}: {len(train_images)} train / {len(valid_images)} valid images, "
          f"{data.channels}x{data.image_size}x{data.image_size}, classes {', '.join(data.classes)}")
    print(f"training   {args.optimizer} lr {args.lr:g}, batch {args.batch_size}, up to {args.epochs} epochs, "
          f"scheduler {args.scheduler}, patience {args.patience}, seed {args.seed}")
    if args.model == "VAE":
        print(f"vae loss   {args.recon} reconstruction + KL (beta {args.beta:g}, warm-up {args.kl_warmup} epochs)")
    print(f"device     {device}, {torch.get_num_threads()} threads")
    print(f"loss       {unit}")
    sys.stdout.flush()

    history, seconds = fit(model, loss_fn_for(config), train_images, valid_images,
                           optimizer=optimizer, scheduler=scheduler, epochs=args.epochs,
                           batch_size=args.batch_size, device=device, checkpoint_path=args.checkpoint,
                           config=config, early_stopping=EarlyStopping(args.patience, args.min_delta),
                           seed=args.seed, log=lambda line: print(line, flush=True))
    if not history:
        print("no epoch finished; nothing saved")
        return
    best = min(history, key=lambda h: h["valid_loss"])
    last = history[-1]
    curve = f"vis/loss_{run_name}.png"
    loss_curve(history, f"{run_name}: {unit}", curve, ylabel=unit)
    print(f"done       {len(history)} epochs in {seconds:.1f}s; final train {last['train_loss']:.5g}, "
          f"valid {last['valid_loss']:.5g}")
    print(f"best       epoch {best['epoch']}: valid {best['valid_loss']:.5g} -> {args.checkpoint}")
    print(f"curve      {curve}")


if __name__ == "__main__":
    cli.run(main)
