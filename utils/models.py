"""The models train_script.py trains, asked through their registered kinds (utils/generators.py, utils/kinds/):
--model NAME -> the kind's network, loss, defaults and log lines. No model is named here.

A kind's defaults (its module's DEFAULTS) were chosen so that each model meets the handout's target on the real
flowers at 24 px in few CPU-seconds (bench/lab_targets.py measures it). A kind's first entry is its default
optimizer; an optimizer without an entry takes that entry's batch size and epochs and its own learning rate from
OPTIMIZER_LR.
"""
from utils.errors import UserError
from utils.generators import GENERATORS, generator

OPTIMIZER_LR = {"sgd": 1.5, "momentum": 0.05, "adam": 1e-3}


def trainable():
    """The kinds train_script.py trains, by name."""
    return {name: kind for name, kind in GENERATORS.items() if kind.trainer == "train_script"}


def kind_of(name):
    if name not in trainable():
        raise UserError(f"unknown model {name!r} (choose from {', '.join(trainable())}; diffusion trains with "
                        "python diffusion.py)")
    return generator(name).api


def training_defaults(model, optimizer=None):
    """(optimizer, lr, batch_size, epochs or images, upsample_kernel, encoding_dim, image_size) for a model and an
    optional optimizer choice; `images` (epochs None): as many epochs as it takes to see that many training images."""
    per_optimizer = kind_of(model).DEFAULTS
    optimizer = optimizer or next(iter(per_optimizer))
    base = per_optimizer.get(optimizer) or dict(next(iter(per_optimizer.values())), lr=OPTIMIZER_LR[optimizer])
    # kernel 2: the handout's decoder; 64 numbers and 24 px: the handout's code and image size
    return dict(dict(upsample_kernel=2, encoding_dim=64, image_size=24, epochs=None, images=None), **base,
                optimizer=optimizer)


def build_model(config):
    """A fresh model from a configuration (a checkpoint's, or a new run's)."""
    return kind_of(config["model"]).build(config)


def loss_fn_for(config):
    """loss(model, x, labels, epoch) -> (objective to minimise, loss to report); the autoencoders ignore the labels."""
    return kind_of(config["model"]).loss_fn(config)


def loss_unit(config):
    """What the training log's losses measure (see loss_fn_for)."""
    return kind_of(config["model"]).LOSS_UNIT


def describe(config, model):
    """The training log's lines of this model: its size first, then its objective where it has its own."""
    return kind_of(config["model"]).describe(config, model)


def after_training(config, checkpoint, data):
    """What follows training (a two-stage VAE fits its second stage to the best model's training codes)."""
    kind_of(config["model"]).after_training(config, checkpoint, data)


def load(name, checkpoint=None, device="cpu", image_size=None):
    """The best saved model of this name, rebuilt from its checkpoint alone, in eval mode."""
    return generator(name).api.load(name, checkpoint, device, image_size)
