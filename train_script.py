"""Train an autoencoder (Parts 1-3) and keep the best model: python train_script.py --model AE"""
import math

from utils import cli
from utils.data.augment import described
from utils.models import (after_training, build_model, describe, kind_of, loss_fn_for, loss_unit, trainable,
                          training_defaults)
from utils.training import distributed, run
from utils.training.train import EarlyStopping, Recipe, make_optimizer, make_scheduler


# Flags that only some models use, with their argparse settings: each kind's FLAGS names the ones it uses, and for
# another model they are refused (they would be saved and silently ignored); their help starts with the models.
MODEL_FLAGS = {
    "upsample_kernel": dict(type=int, choices=[2, 4], default=None, help="kernel of the decoder's stride-2 transposed "
                            "convolutions (2, the AE's default: each code position decodes into its own 4x4 block, "
                            "which shows as a grid; 4, the VAE's: they overlap, for 4x the multiply-adds in those two "
                            "layers)"),
    "recon": dict(choices=["mse", "sigma", "bce"], default="sigma", help="the decoder's likelihood: calibrated "
                  "Gaussian (sigma-VAE, the default: the variance that fits the error), Gaussian of variance 1/2 (the "
                  "plain squared error), or Bernoulli"),
    "stages": dict(type=int, choices=[1, 2], default=2, help="2 fits a second, small VAE to the codes after training "
                   "(two-stage VAE), which random samples then go through; 1 decodes z ~ N(0, I) directly"),
    "beta": dict(type=cli.at_least(0.0, float, finite=True), default=1.0, help="weight of the KL term in the objective"),
    "kl_warmup": dict(type=cli.at_least(0), default=0, help="epochs over which the KL weight ramps up"),
    "gradient_weight": dict(type=cli.at_least(0.0, float, finite=True), default=1.0,
                            help="weight of the squared error of the images' gradients (edges) in its loss"),
}


def users(flag):
    """The models that use one of MODEL_FLAGS."""
    return [name for name, kind in trainable().items() if flag in kind.api.FLAGS]


def get_args(argv=None, default_model=None):
    p = cli.parser(__doc__, epilog="defaults per model and optimizer: " + "; ".join(
        f"{m} {o}: lr {d['lr']:g}, batch {d['batch_size']}, "
        + (f"{d['epochs']} epochs" if "epochs" in d else f"epochs enough for {d['images']:,} training images")
        + (f", decoder kernel {d['upsample_kernel']}" if "upsample_kernel" in d else "")
        for m, kind in trainable().items() for o, d in kind.api.DEFAULTS.items()))
    p.add_argument("--model", default=default_model, required=default_model is None,
                   help="MLPAE, AE or VAE (the handout's), or LatentAE (the bonus: latent diffusion's first stage)")
    p.add_argument("--epochs", type=cli.at_least(1), default=None, help="default: per model and optimizer (see below)")
    p.add_argument("--batch-size", type=cli.at_least(1), default=None,
                   help="default: per model and optimizer; per process under torchrun (the step sees N times it)")
    p.add_argument("--optimizer", choices=["sgd", "momentum", "adam"], default=None,
                   help="sgd is plain SGD (the handout's baseline); default adam")
    p.add_argument("--lr", type=float, default=None, help="default: per model and optimizer")
    p.add_argument("--scheduler", choices=["none", "cosine", "step"], default="none", help="learning-rate schedule")
    p.add_argument("--patience", type=int, default=10, help="early stopping: epochs without improvement (0: off)")
    p.add_argument("--min-delta", type=cli.at_least(0.0, float), default=0.0, help="early stopping: smallest improvement that counts")
    p.add_argument("--encoding-dim", type=cli.at_least(1), default=None,
                   help=f"size of the latent code (default {training_defaults('AE')['encoding_dim']}; LatentAE: "
                        f"channels of its grid, default {training_defaults('LatentAE')['encoding_dim']})")
    for flag, settings in MODEL_FLAGS.items():
        p.add_argument("--" + flag.replace("_", "-"),
                       **dict(settings, help=f"{' and '.join(users(flag))} only: {settings['help']}"))
    run.add_run_flags(p, checkpoint=None)
    args = run.parse(p, argv)
    kind = kind_of(args.model)
    args.checkpoint = args.checkpoint or f"models/Best_{args.model}.pth"
    defaults = training_defaults(args.model, args.optimizer)
    for key in ("optimizer", "lr", "epochs", "batch_size", "upsample_kernel", "encoding_dim", "image_size"):
        if getattr(args, key) is None:
            setattr(args, key, defaults[key])
    args.augment = args.augment or "none"
    for flag in MODEL_FLAGS:
        if flag in args.typed and flag not in kind.FLAGS:
            cli.fail(f"--{flag.replace('_', '-')} applies to {' and '.join(users(flag))} only, not {args.model}: "
                     "leave it out")
    multiple = kind.SIZE_MULTIPLE
    if args.image_size % multiple:
        cli.fail(f"--image-size must be a multiple of {multiple} for {args.model}, got {args.image_size}")
    return args


def settings(args):
    """What a new run of this model saves besides its data: the model's size and the whole recipe (its epochs
    counted from the training set's size where the model's default is a number of images)."""
    keys = ("encoding_dim", "upsample_kernel", "optimizer", "lr", "batch_size", "recon", "stages", "beta",
            "kl_warmup", "gradient_weight", "scheduler", "patience", "min_delta")
    return lambda data: dict({key: getattr(args, key) for key in keys},
                             epochs=args.epochs or math.ceil(training_defaults(args.model, args.optimizer)["images"]
                                                             / len(data.train_idx)))


def train(args, until=None):
    """Train as the flags say, print the log, write the loss curve; returns the history."""
    config, state, data, device = run.start(args, args.model, settings(args))
    model = build_model(config).to(device)
    optimizer = make_optimizer(config["optimizer"], model.parameters(), config["lr"])
    epochs = config["epochs"] = args.epochs if "epochs" in args.typed else config["epochs"]
    recipe = Recipe(optimizer, epochs, config["batch_size"], make_scheduler(config["scheduler"], optimizer, epochs),
                    EarlyStopping(config["patience"], config["min_delta"]), augment=config["augment"],
                    precision=args.precision, compile=args.compile, seed=config["seed"])
    model_line, *own_lines = describe(config, model)
    lines = [model_line,
             f"training   {config['optimizer']} lr {config['lr']:g}, "
             f"{distributed.batch_description(config['batch_size'])}, up to {epochs} epochs, scheduler "
             f"{config['scheduler']}, patience {config['patience']}, seed {config['seed']}"
             + described(config["augment"]), *own_lines]
    run.header(lines, data, args, device, state)
    unit = loss_unit(config)
    print(f"loss       {unit}", flush=True)
    history = run.train(model, loss_fn_for(config), data, recipe, args, config, state, device, unit, until=until)
    if history and distributed.is_main():
        after_training(config, args.checkpoint, data)
    return history


def main(argv=None, default_model=None):
    try:
        train(get_args(argv, default_model))
    finally:
        distributed.teardown()  # a no-op without torchrun


if __name__ == "__main__":
    cli.run(main)
