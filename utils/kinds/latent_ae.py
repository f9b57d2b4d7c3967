"""The bonus's first stage of latent diffusion as a kind: a spatial KL autoencoder that reconstructs (diffusion.py
--latent trains on its codes) and does not sample by itself."""
from functools import partial

from LatentAutoencoder import LatentAutoencoder, latent_loss_function
from utils.kinds import decoder
from utils.kinds.decoder import after_training, reconstruct  # noqa: F401  (the generator interface)

# 64 px images to a 16x16 grid of 8 channels (encoding_dim: the grid's channels). 8, not Rombach et al.'s 4: on
# the 16 flowers the reconstructions' recall rose from 0.725 to 0.844 and the latent model's samples' from 0.61 to
# 0.68 at the same minutes, at the same cost per step (docs/bonus.md). Its length is a number of training images,
# not of epochs: 10 epochs of the 16 flowers, 61 of the 2,329 lab photos, whose first stage at 10 epochs was still
# far from converged (recon recall 0.841; 0.903 at 40).
DEFAULTS = {"adam": dict(lr=1e-3, batch_size=32, images=140_000, encoding_dim=8, image_size=64)}
SIZE_MULTIPLE = decoder.SIZE_MULTIPLE
LOSS_UNIT = "mean squared error per pixel"
FLAGS = ("gradient_weight",)   # train_script.py's flags this kind uses (the others are refused for it)


def build(config):
    return LatentAutoencoder(**decoder.size_of(config))   # SiLU and residual blocks: PyTorch's default init suits it


def loss_fn(config):
    def latent_loss(model, x, labels, epoch):
        recon_x, mu, logvar = model(x)
        return latent_loss_function(recon_x, x, mu, logvar, gradient_weight=config["gradient_weight"])
    return latent_loss


def describe(config, model):
    return [decoder.model_line(config, model),
            f"objective  squared error + {config['gradient_weight']:g} x squared error of the image gradients "
            f"+ 1e-6 x KL; code {' x '.join(map(str, model.code_shape))}"]


load = partial(decoder.load, build)
