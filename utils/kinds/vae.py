"""Part 3's variational autoencoder as a kind: the negative ELBO, and an optional second stage fitted to its codes
(a two-stage VAE) that random samples go through."""
from VarAutoencoder import VarAutoencoder, VAE_loss_function
from utils.kinds import ae, decoder
from utils.kinds.decoder import (evaluation_samples, figure, generate, sampling, interpolation,  # noqa: F401
                                 reconstruct)
from utils.sampling.two_stage import CodeVAE, fit_code_vae
from utils.training.checkpoint import save_checkpoint

# Kernel-4 decoder: with the handout's kernel 2 each code position decodes into its own 4x4 block and random
# samples show the grid. Batch 32: kernel 4 at batch 64 scored near the pixel Gaussian with one of two seeds.
DEFAULTS = {"adam": dict(lr=2e-3, batch_size=32, epochs=20, upsample_kernel=4)}
SIZE_MULTIPLE = decoder.SIZE_MULTIPLE
LOSS_UNIT = "negative ELBO per image"
FLAGS = ("upsample_kernel", "recon", "stages", "beta", "kl_warmup")   # train_script.py's flags it uses


def build(config):
    return ae.build(config, VarAutoencoder)


def loss_fn(config):
    """The handout's negative ELBO per image (squared error summed over pixels + KL, beta = 1) is reported; the
    objective it trains may differ: a KL weight and its warm-up, or the calibrated decoder of recon="sigma"."""
    recon, beta, warmup = config["recon"], config["beta"], config["kl_warmup"]

    def vae_loss(model, x, labels, epoch):
        # z is sampled in validation too: the reported loss is the negative ELBO, not a z = mu shortcut.
        mu, logvar = model.moments(x)
        recon_x = model.decode(model.reparameterize(mu, logvar))
        reported = VAE_loss_function(recon_x, x, mu, logvar, recon="mse" if recon == "sigma" else recon)
        weight = beta * min(1.0, epoch / warmup) if warmup and model.training else beta  # validation: the full weight
        if weight == 1.0 and recon != "sigma":
            return reported, reported
        return VAE_loss_function(recon_x, x, mu, logvar, recon=recon, beta=weight), reported
    return vae_loss


def describe(config, model):
    return ae.describe(config, model) + [
        f"vae loss   {config['recon']} reconstruction + KL (beta {config['beta']:g}, warm-up {config['kl_warmup']} "
        f"epochs); {config['stages']} stage(s)"]


def load(name, checkpoint=None, device="cpu", image_size=None):
    """decoder.load, with the second stage of a two-stage VAE."""
    model, ckpt = decoder.load(build, name, checkpoint, "cpu", image_size)
    if "second_stage" in ckpt:
        model.second_stage = CodeVAE(model.encoding_dim, hidden=len(ckpt["second_stage"]["decoder.0.weight"]))
        model.second_stage.load_state_dict(ckpt["second_stage"])
    return model.to(device).eval(), ckpt


def after_training(config, checkpoint, data):
    """A two-stage VAE fits its second stage to the best model's codes of the training images."""
    if config["stages"] == 2:
        model, ckpt = load(config["model"], checkpoint)
        images = data.split("train")[0]
        ckpt["second_stage"] = fit_code_vae(decoder.encode_all(model, images, "cpu")).state_dict()
        save_checkpoint(checkpoint, ckpt)
        print(f"stage 2    a two-stage VAE: the second stage fitted to the training codes -> {checkpoint}")

