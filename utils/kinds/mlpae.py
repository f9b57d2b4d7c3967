"""Part 1's MLP autoencoder as a kind: it reconstructs, and does not sample (utils/generators.py says so)."""
from functools import partial

from MLPAutoencoder import MLPAutoencoder
from utils.kinds import decoder
from utils.kinds.decoder import after_training, reconstruct  # noqa: F401  (the generator interface)

DEFAULTS = {"adam": dict(lr=3e-3, batch_size=128, epochs=20)}   # see utils/models.py on how these were chosen
SIZE_MULTIPLE = 1   # fully connected: any image size
LOSS_UNIT = "mean squared error per pixel"
FLAGS = ()   # train_script.py's flags this kind uses (the others are refused for it)
loss_fn = decoder.squared_error


def build(config):
    model = MLPAutoencoder(**decoder.size_of(config))
    model.apply(decoder.he_init)
    return model


def describe(config, model):
    return [decoder.model_line(config, model)]


load = partial(decoder.load, build)
