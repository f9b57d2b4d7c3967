"""The registry of models: --model NAME -> class, loss and default hyper-parameters. Names are resolved only here."""
import torch.nn.functional as F

from Autoencoder import Autoencoder
from MLPAutoencoder import MLPAutoencoder
from VarAutoencoder import VarAutoencoder, VAE_loss_function
from utils.errors import UserError

MODEL_CLASSES = {"MLPAE": MLPAutoencoder, "AE": Autoencoder, "VAE": VarAutoencoder}

# Chosen so each model meets the handout's target on the real flowers at 24 px in few CPU-seconds
# (bench/lab_targets.py measures it). lr=None means the optimizer's own default below.
TRAINING_DEFAULTS = {
    "MLPAE": dict(optimizer="adam", lr=None, batch_size=32, epochs=20),
    "AE": dict(optimizer="adam", lr=None, batch_size=8, epochs=15),
    "VAE": dict(optimizer="adam", lr=None, batch_size=16, epochs=20),
}
OPTIMIZER_LR = {"sgd": 0.5, "momentum": 0.05, "adam": 1e-3}


def check_model_name(name, allowed=tuple(MODEL_CLASSES)):
    if name not in allowed:
        raise UserError(f"unknown model {name!r} (choose from {', '.join(allowed)})")


def build_model(config):
    """Rebuild a model from a checkpoint's configuration (or a fresh one)."""
    check_model_name(config["model"])
    cls = MODEL_CLASSES[config["model"]]
    return cls(image_size=config["image_size"], channels=config["channels"], encoding_dim=config["encoding_dim"])


def loss_fn_for(config):
    """loss(model, x, epoch) -> (objective to minimise, loss to report).

    The AEs report the mean squared error per pixel. The VAE reports the plain negative ELBO per
    image (beta = 1); only the objective carries the KL weight and its warm-up.
    """
    if config["model"] != "VAE":
        def ae_loss(model, x, epoch):
            mse = F.mse_loss(model(x), x)
            return mse, mse
        return ae_loss

    recon, beta, warmup = config["recon"], config["beta"], config["kl_warmup"]

    def vae_loss(model, x, epoch):
        recon_x, mu, logvar = model(x)
        reported = VAE_loss_function(recon_x, x, mu, logvar, recon=recon)
        weight = beta * min(1.0, epoch / warmup) if warmup else beta
        if weight == 1.0 or not model.training:
            return reported, reported
        return VAE_loss_function(recon_x, x, mu, logvar, recon=recon, beta=weight), reported
    return vae_loss


def load_trained(model_name, checkpoint=None, device="cpu"):
    """The best saved model of this name, rebuilt from its checkpoint alone, in eval mode."""
    from utils.checkpoint import load_checkpoint
    path = checkpoint or f"models/Best_{model_name}.pth"
    ckpt = load_checkpoint(path, model=model_name)
    model = build_model(ckpt["config"])
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), ckpt
