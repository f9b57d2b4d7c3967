"""What the autoencoder kinds share: He init, the squared-error loss, the log's model line, and the generator
interface (utils/generators.py) of a model that decodes codes into images."""
import torch
import torch.nn.functional as F
from torch import nn

from utils.data.dataset import load_training_data, to_float
from utils.errors import UserError
from utils.figures import image_grid, image_rows
from utils.generators import outdated
from utils.sampling.gmm import fit_gmm
from utils.sampling.samplers import per_sample_noise, sample_generators
from utils.training.checkpoint import default_checkpoint, load_checkpoint

SIZE_MULTIPLE = 4   # the convolutional kinds halve the image twice: --image-size a multiple of 4


def he_init(module):
    """He (Kaiming) normal weights and zero biases for the ReLU layers.

    With PyTorch's default (uniform, fan-in/sqrt(5)) init, plain SGD sits on the mean-image plateau
    (MSE ~0.057) for 10+ epochs; with He init it leaves it in the first epoch. Adam barely cares.
    """
    if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        nn.init.zeros_(module.bias)


def size_of(config):
    return dict(image_size=config["image_size"], channels=config["channels"], encoding_dim=config["encoding_dim"])


def channels_last(model):
    """Channels-last weights make the CPU's convolutions run on NHWC: 10-19 % more images/s for these small
    networks on two cores, measured alternately in one process (the diffusion U-Net measured slower with it,
    so it keeps the default layout)."""
    return model.to(memory_format=torch.channels_last)


def squared_error(config):
    """loss(model, x, labels, epoch) -> (objective, reported): the mean squared error per pixel, both."""
    def ae_loss(model, x, labels, epoch):
        mse = F.mse_loss(model(x), x)
        return mse, mse
    return ae_loss


def model_line(config, model, note=""):
    return (f"model      {config['model']} ({type(model).__name__}), {sum(p.numel() for p in model.parameters()):,} "
            f"parameters, encoding_dim {config['encoding_dim']}{note}")


def after_training(config, checkpoint, data):
    """Nothing follows training (the two-stage VAE fits its second stage here)."""


# ---------------------------------------------------------------- the generator interface (utils/generators.py)

def load(build, name, checkpoint=None, device="cpu", image_size=None):
    """The best saved model of this name, rebuilt by `build` from its checkpoint alone, in eval mode."""
    path = checkpoint or default_checkpoint(name)
    ckpt = load_checkpoint(path, model=name, image_size=image_size)
    try:
        model = build(ckpt["config"])
    except KeyError as e:
        raise outdated(path, name, e.args[0]) from None
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), ckpt


@torch.no_grad()
def encode_all(model, images, device):
    return torch.cat([model.encode(batch.to(device)).cpu() for batch in images.split(500)])


@torch.no_grad()
def reconstruct(model, x):
    return model.decode(model.encode(x)).clamp(0, 1)


@torch.no_grad()
def generate(model, config, n, labels=None, seed=0, device="cpu", options=None, first=0):
    """Decodings of random codes, code i drawn from its own generator (labels: the AEs have none): z ~ N(0, I) (for
    a two-stage VAE: u ~ N(0, I) through its second stage), or with options.prior "gmm" from a Gaussian mixture
    fitted to the model's training codes."""
    generators = sample_generators(seed, first, n)
    if options is not None and options.prior == "gmm":
        z = code_mixture(model, config, device).sample(generators).float()
    elif hasattr(model, "second_stage"):
        z = model.second_stage.sample(generators)
    else:
        z = per_sample_noise(generators, (model.encoding_dim,))
    return model.decode(z.to(device)).clamp(0, 1).cpu()


@torch.no_grad()
def code_mixture(model, config, device):
    """The mixture fitted to the codes of the model's own training images (fitted once per loaded model)."""
    if not hasattr(model, "fitted_mixture"):
        images = to_float(load_training_data(config, quiet=True).subset("train")[0])
        model.fitted_mixture = fit_gmm(encode_all(model, images, device))
    return model.fitted_mixture


def evaluation_samples(model, config, n, seed, device, label_sets=None, options=None):
    return generate(model, config, n, seed=seed, device=device, options=options), None


def sampling(config, options=None):
    """How evaluation_samples drew (the report's sampling column)."""
    return "codes from the fitted mixture" if getattr(options, "prior", "normal") == "gmm" else "random codes"


def figure(model, ckpt, path, seed, device, options=None):
    name, prior = ckpt["config"]["model"], getattr(options, "prior", "normal")
    what = ("z from a Gaussian mixture fitted to the training codes" if prior == "gmm" else
            "u ~ N(0, I) through the second stage" if hasattr(model, "second_stage") else "z ~ N(0, I)")
    image_grid(generate(model, ckpt["config"], 64, seed=seed, device=device, options=options),
               f"{name}: 64 decodings of {what} (seed {seed})", path)


@torch.no_grad()
def latent_path(model, ends, weights):
    """Decodings of (1 - w) z_A + w z_B for the codes of the two images in `ends`."""
    z = model.encode(ends)
    w = weights.view(-1, *[1] * (z.dim() - 1))
    return model.decode((1 - w) * z[:1] + w * z[1:]).clamp(0, 1)


def interpolation(model, ckpt, seed, device, options=None, condition=None, data=None, rows=6, steps=8, path=None):
    """Pairs of validation images (of the checkpoint's own split), decoded along the straight line between their
    codes (the VAE's: the means)."""
    name = ckpt["config"]["model"]
    dataset = load_training_data(ckpt["config"], data, quiet=True)
    rows = min(rows, len(dataset.valid_idx) // 2)
    if rows < 1:
        raise UserError("--interpolate needs at least two validation images")
    g = torch.Generator().manual_seed(seed)
    pairs = dataset.valid_idx[torch.randperm(len(dataset.valid_idx), generator=g)[:2 * rows]].view(rows, 2)
    weights = torch.linspace(0, 1, steps, device=device)
    figure_rows = []
    for pair in pairs:
        ends = to_float(dataset.images[pair]).to(device)
        figure_rows.append(torch.cat([ends[:1], latent_path(model, ends, weights), ends[1:]]).cpu())
    columns = ["image A"] + [f"w={w:.2f}" for w in weights.tolist()] + ["image B"]
    path = path or f"vis/interpolation_{name}.png"
    image_rows(figure_rows, [""] * rows, f"{name}: decoding (1 - w) z_A + w z_B between two validation images",
               path, column_labels=columns)
    return path
