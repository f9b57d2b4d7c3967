"""Every kind of generative model, registered once with what the scripts need of it.

evaluate.py, random_generation.py, visualization.py and run_lab.py loop over GENERATORS and never ask for a
model by name. A kind is a module (imported when first used) with these functions:

    load(name, checkpoint, device, image_size) -> (model in eval mode, checkpoint dict)
    generate(model, config, n, labels, seed, device, options) -> n images in [0, 1]; image i depends only on
        (seed, i, its label): not on n or the batch
    evaluation_samples(model, config, n, seed, device, label_sets, options) -> (images, their labels or None)
    sampling(config, options) -> how evaluation_samples draws, in a few words (the report's sampling column)
    figure(model, ckpt, path, seed, device, options) -> writes vis/random_images_<NAME>.png
    interpolation(model, ckpt, seed, device, options, condition) -> writes vis/interpolation_<NAME>.png
    reconstruct(model, x) -> x's reconstruction               (only kinds that reconstruct)

and, for the kinds train_script.py trains (utils/models.py asks them):

    DEFAULTS               {optimizer: dict(lr, batch_size, epochs or images, ...)}, the first one the default
    SIZE_MULTIPLE          --image-size must be a multiple of this
    LOSS_UNIT              what the training log's losses measure
    build(config) -> a fresh network;  loss_fn(config) -> loss(model, x, labels, epoch) -> (objective, reported)
    describe(config, model) -> the log's model lines;  after_training(config, checkpoint, data)

A new kind of model is one new module plus one line here (utils/kinds/ holds the autoencoders'); `module` may
also be the module object itself.
"""
import importlib
from dataclasses import dataclass
from pathlib import Path

from utils.errors import UserError
from utils.training.checkpoint import default_checkpoint


@dataclass(frozen=True)
class SamplingOptions:
    """How a model draws: --guidance, --sampler, --steps and --precision for a diffusion model, --prior for a
    decoder's codes. None: the model's own default (diffusion: its space's, utils/sampling/spaces.py)."""
    guidance: float | None = None
    sampler: str | None = None
    steps: int | None = None
    prior: str = "normal"
    guidance_max_noise: float | None = None
    precision: str | None = None


@dataclass(frozen=True)
class Generator:
    name: str                 # --model NAME, models/Best_NAME.pth
    module: object            # its module's dotted name (imported when first used), or the module itself
    train_command: str
    samples: bool = True      # the MLP autoencoder only reconstructs
    reconstructs: bool = True
    lab: bool = True          # one of the handout's models (run_lab.py trains it; the report always has its row)
    trainer: str = "train_script"   # the script that trains it: train_script (--model NAME) or its own
    fitted_prior: bool = False      # random_generation.py --prior gmm: codes from a mixture fitted to its own

    @property
    def checkpoint(self):
        return default_checkpoint(self.name)

    @property
    def api(self):
        return importlib.import_module(self.module) if isinstance(self.module, str) else self.module

    def trained(self):
        return Path(self.checkpoint).exists()

    def load(self, checkpoint=None, device="cpu", image_size=None):
        path = checkpoint or self.checkpoint
        if not Path(path).exists():
            raise UserError(f"checkpoint not found: {path} (train it first: {self.train_command})")
        return self.api.load(self.name, path, device, image_size)


GENERATORS = {g.name: g for g in [
    Generator("MLPAE", "utils.kinds.mlpae", "python MLPAE_train_script.py", samples=False),
    Generator("AE", "utils.kinds.ae", "python train_script.py --model AE", fitted_prior=True),
    Generator("VAE", "utils.kinds.vae", "python train_script.py --model VAE", fitted_prior=True),
    Generator("diffusion", "utils.kinds.diffusion", "python diffusion.py", reconstructs=False, trainer="diffusion"),
    # The bonus's first stage of latent diffusion (diffusion.py --latent models/Best_LatentAE.pth).
    Generator("LatentAE", "utils.kinds.latent_ae", "python train_script.py --model LatentAE", samples=False,
              lab=False),
]}
LAB = {name: g for name, g in GENERATORS.items() if g.lab}


def reported():
    """The kinds evaluate.py --model all reports: the handout's, and any other that has been trained here."""
    return [g for g in GENERATORS.values() if g.lab or g.trained()]


def generator(name, need=None):
    """The registered kind of this name; `need` ("samples" or "reconstructs") restricts the choice."""
    allowed = [g for g in GENERATORS.values() if need is None or getattr(g, need)]
    if name not in [g.name for g in allowed]:
        raise UserError(f"unknown model {name!r} (choose from {', '.join(g.name for g in allowed)})")
    return GENERATORS[name]


def outdated(path, name, key):
    """The one-line refusal of a checkpoint whose configuration lacks a key that every current one has."""
    command = GENERATORS[name].train_command if name in GENERATORS else f"the script that trains {name}"
    return UserError(f"{path} was written by an earlier version of this project (its configuration has no {key!r}, "
                     f"which this version saves); retrain it: {command}")
