"""Part 4: a class-conditional diffusion model (flow matching by default) that trains in minutes on a laptop CPU.

    python diffusion.py > log/train_diffusion.out          # trains for --minutes (default 2)
    python diffusion.py --latent models/Best_LatentAE.pth  # the bonus: on a frozen autoencoder's codes, at 64 px
    python diffusion.py --objective distill --init models/Best_diffusion.pth --minutes 0 --epochs 12 \
        --checkpoint models/Best_distill.pth                  # learn to sample in 1-4 steps (docs/few_step.md)

The network (`Diffuser`) and the loss (`diffusion_loss_fn`) live here, with the training script; the noise paths,
objectives and samplers are in utils/sampling/, sample() in utils/sampling/driver.py, the figures in
utils/sampling/diffusion_figures.py, and a saved model's loading in utils/kinds/diffusion.py. Writes
models/Best_diffusion.pth (the weights it samples with), vis/loss_diffusion.png, vis/preview_diffusion.png during
training, and at the end vis/random_images_diffusion.png and vis/denoise_process_diffusion.png.
"""
import sys

import torch
from torch import nn

from utils import cli
from utils.data.augment import described
from utils.data.dataset import to_float
from utils.data.datasets import DATASETS
from utils.errors import UserError
from utils.generators import outdated
from utils.sampling.objectives import OBJECTIVES, Guidance
from utils.sampling.diffusion_figures import denoise_figure, sample_grid
from utils.sampling.driver import make_path
from utils.sampling.spaces import make_space, new_latent, space_kind
from utils.sampling.teacher import TRAJECTORIES, Teacher
from utils.training import distributed, run
from utils.training.checkpoint import default_checkpoint, figure_name, load_checkpoint
from utils.training.train import EMA, EarlyStopping, Recipe, make_optimizer, steps_per_epoch, with_labels
from utils.unet import NearestUpConv, ResBlock, SelfAttention, timestep_embedding

CHECKPOINT = default_checkpoint("diffusion")
MINUTES = 2   # the default training budget, chosen on the curve of bench/diffusion_curve.py (docs/diffusion.md)


# ---------------------------------------------------------------- the network

def size_multiple(patch, mults):
    """What the image size must be a multiple of: the patch, halved again by each level below the first."""
    return patch * 2 ** (len(mults) - 1)


class Diffuser(nn.Module):
    """A compact U-Net: one residual block per level, self-attention only at the lowest resolution.

    The levels have base, 2*base and 3*base channels; at 24 px with patch 2 they are 12, 6 and 3 positions wide.
    Class label `num_classes` means "no class" (for classifier-free guidance). With multi_label, a label
    is a multi-hot vector over num_classes objects, embedded linearly; the zero vector means "no condition".
    """

    def __init__(self, image_size=24, channels=3, num_classes=0, base=32, mults=(1, 2, 3), multi_label=False,
                 patch=1, upsample="nearest", interval=False):
        super().__init__()
        if image_size % size_multiple(patch, mults):
            raise ValueError(f"image size must be a multiple of {size_multiple(patch, mults)}, got {image_size}")
        self.image_size, self.channels, self.num_classes, self.base = image_size, channels, num_classes, base
        self.multi_label = multi_label
        emb_dim = 4 * base
        widths = [base * m for m in mults]
        embedding = lambda: nn.Sequential(nn.Linear(base, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))  # noqa: E731
        self.time_mlp = embedding()
        # interval: the network also sees the length t - r of the step it is asked to jump (an average velocity,
        # objectives.py's Shortcut); zero at first, so a flow model fine-tuned this way starts as itself.
        self.interval_mlp = embedding() if interval else None
        if interval:
            nn.init.zeros_(self.interval_mlp[-1].weight)
            nn.init.zeros_(self.interval_mlp[-1].bias)
        if not num_classes:
            self.class_emb = None
        else:
            self.class_emb = nn.Linear(num_classes, emb_dim, bias=False) if multi_label else \
                nn.Embedding(num_classes + 1, emb_dim)
        # patch > 1: the U-Net works on patch x patch blocks of pixels stacked as channels (pixel unshuffle), so its
        # first level runs at 1/patch of the resolution, for 1/patch^2 of the convolutions' cost.
        self.unshuffle, self.shuffle = nn.PixelUnshuffle(patch), nn.PixelShuffle(patch)
        self.stem = nn.Conv2d(channels * patch ** 2, base, 3, padding=1)
        self.down = nn.ModuleList(ResBlock(c_in, c_out, emb_dim) for c_in, c_out in zip([base] + widths, widths))
        self.downsample = nn.ModuleList(nn.Conv2d(c, c, 3, stride=2, padding=1) for c in widths[:-1])
        self.mid = nn.ModuleList([ResBlock(widths[-1], widths[-1], emb_dim), ResBlock(widths[-1], widths[-1], emb_dim)])
        self.attention = SelfAttention(widths[-1])
        ups = list(zip(reversed(widths), [widths[-1]] + list(reversed(widths))[:-1]))
        self.up = nn.ModuleList(ResBlock(c_prev + c, c, emb_dim) for c, c_prev in ups)
        # Up a level: "nearest" doubles the grid and then convolves (3x3) at the finer one; "transposed" is one
        # 2x2 stride-2 transposed convolution, a ninth of those multiply-adds at the finer level.
        self.upsample = nn.ModuleList(nn.ConvTranspose2d(c, c, 2, stride=2) if upsample == "transposed" else
                                      NearestUpConv(c) for c in list(reversed(widths))[:-1])
        self.head = nn.Sequential(nn.GroupNorm(8, base), nn.SiLU(), nn.Conv2d(base, channels * patch ** 2, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight)  # start by predicting zero: a stable first step
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, x, t, labels=None, interval=None):
        emb = self.time_mlp(timestep_embedding(t, self.base))
        if self.interval_mlp is not None:   # no interval given: the instantaneous velocity (length 0)
            interval = torch.zeros_like(t) if interval is None else interval
            emb = emb + self.interval_mlp(timestep_embedding(interval, self.base))
        if self.class_emb is not None:
            labels = labels if labels is not None else self.null_labels(len(t), t.device)
            emb = emb + self.class_emb(labels)
        h, skips = self.stem(self.unshuffle(x)), []
        for i, block in enumerate(self.down):
            h = block(h, emb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        h = self.mid[1](self.attention(self.mid[0](h, emb)), emb)
        for i, block in enumerate(self.up):
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
            if i < len(self.upsample):
                h = self.upsample[i](h)
        return self.shuffle(self.head(h))

    def null_labels(self, n, device):
        """The "no condition" label of n images: class index num_classes, or the empty object set."""
        if self.multi_label:
            return torch.zeros(n, self.num_classes, device=device)
        return torch.full((n,), self.num_classes, device=device, dtype=torch.long)


# ---------------------------------------------------------------- the loss

def diffusion_loss_fn(model, x0, labels, path, objective="v", min_snr=5.0, p_uncond=0.1, guidance=Guidance(),
                      teacher=None):
    """The training loss on images x0 in [-1, 1].

    Noise each image at a random time of the path (utils/sampling/paths.py), x_t = a x0 + s eps, and regress
    the network on the objective's target (utils/sampling/objectives.py: eps as Ho et al., v as Salimans & Ho
    2022, x0, the flow's velocity eps - x0, a shortcut model's average velocity over a step, which trains `guidance`
    in (objectives.py's Guidance), following a teacher's velocity when it is a fine-tune, or a distilled jump along
    the teacher's own trajectories). Min-SNR-gamma weighting (Hang et al. 2023) stops the easy, low-noise times from
    dominating; 0 turns it off. Labels are replaced by "no class" with probability p_uncond, so one model also
    learns the unconditional prediction that classifier-free guidance needs.
    """
    parts = OBJECTIVES[objective]
    t = path.training_times(len(x0), x0.device)
    eps = torch.randn_like(x0)
    if labels is not None and model.num_classes:
        drop = torch.rand(len(labels), device=labels.device) < p_uncond
        drop = drop.view(-1, *[1] * (labels.dim() - 1))  # a multi-hot vector is dropped whole
        labels = torch.where(drop, model.null_labels(len(labels), labels.device), labels)
    per_image = parts.squared_error(model, x0, eps, t, labels, path, guidance, teacher)
    if min_snr:
        a, s = path.coefficients(t)
        per_image = per_image * parts.snr_weight((a / s).square().flatten(), min_snr)
    return per_image.mean()


class OneImage(nn.Module):
    """The same prediction `value` whatever the input, time and label: a network that learned nothing else."""

    def __init__(self, model, value):
        super().__init__()
        self.value, self.num_classes, self.null_labels = value, model.num_classes, model.null_labels

    def forward(self, x, *conditions, **more):
        return self.value.expand_as(x)


def blind_loss(model, loss_fn, images, labels, device):
    """The validation loss of the best input-blind prediction (one fixed image). The loss is quadratic in the
    prediction, with one curvature for every element, so its minimum lies along the gradient g at zero: with L(0),
    g and L at -S g, L(-s g) = L(0) - s |g|^2 + s^2 q / 2 has the minimum L(0) - |g|^4 / (2 q). S = half the
    elements: the minimum's own s for a mean squared error, so L(-S g) is far from L(0) and q well measured. (A
    shortcut model's jump targets are its own predictions, so for it this is an estimate, not the minimum.)"""
    def loss_at(value):   # the validation batch with the same seeded noise at every call
        with torch.random.fork_rng():
            torch.manual_seed(0)
            # eval(): the validation loss's mode (a distilling loss draws held-out trajectories in it)
            prediction = OneImage(model, value.view(model.channels, model.image_size, model.image_size)).eval()
            return loss_fn(prediction, to_float(images).to(device), labels.to(device), 0)[0].double()
    zero = torch.zeros(model.channels * model.image_size ** 2, device=device, requires_grad=True)
    at_zero = loss_at(zero)
    g = torch.autograd.grad(at_zero, zero)[0]
    with torch.no_grad():
        far, g2 = g.numel() / 2, g.double().square().sum()
        q = 2 * (loss_at(-far * g) - at_zero + far * g2) / far ** 2
        return (at_zero - g2.square() / (2 * q)).item()


def learned_nothing(model, loss_fn, data, device, ckpt):
    """The warning for a best model past its warm-up whose validation loss is not half that of one fixed image, or
    None (a trained model's is a fifth of it or less). Too high an --lr can throw the network there in its first
    steps and leave it stuck (--base 24 at lr 3e-3: 0.95 of it, samples of noise); the loss stays finite, so
    nothing else would say so. A run still in its warm-up has not had its chance yet."""
    config, best = ckpt["config"], ckpt.get("valid_objective", ckpt["valid_loss"])
    steps = ckpt["epoch"] * steps_per_epoch(len(data.train_idx), config["batch_size"])
    images, labels = with_labels(*data.subset("valid"))
    blind = blind_loss(model, loss_fn, images[:500], labels[:500], device)   # one batch is plenty
    if steps <= config["warmup"] or best < 0.5 * blind:
        return None
    return (f"warning    the best validation loss {best:.4g} is not half that of predicting one fixed image "
            f"({blind:.4g}): the network has barely learned (too high an --lr, or too short a run)")


# ---------------------------------------------------------------- a saved model

def build(config):
    """A fresh network from a configuration (a checkpoint's, or a new run's), for its images or a latent model's
    codes (a latent model without its own autoencoder fails here)."""
    channels, size, _ = make_space(config).shape
    try:
        return Diffuser(size, channels, len(config["classes"]) if config["conditional"] else 0, config["base"],
                        multi_label=config["multi_label"], patch=config["patch"], mults=tuple(config["mults"]),
                        upsample=config["upsample"], interval=OBJECTIVES[config["objective"]].interval)
    except ValueError as e:
        raise UserError(f"{e} (the network's input: {channels}x{size}x{size})") from None


def load(name="diffusion", checkpoint=CHECKPOINT, device="cpu", image_size=None):
    """The sampling network of a saved diffusion model (its EMA, or its last weights), rebuilt from the checkpoint."""
    ckpt = load_checkpoint(checkpoint, model=name, image_size=image_size)
    try:
        model = build(ckpt["config"])
    except KeyError as e:
        raise outdated(checkpoint, name, e.args[0]) from None
    model.load_state_dict(ckpt.get("ema") or ckpt["model"])  # without an EMA (--ema 0) the checkpoint stores none
    # channels-last convolutions sample ~25 % faster on CPU (measured; training gains nothing from them)
    return model.to(device, memory_format=torch.channels_last).eval(), ckpt


def same_data_as(init, saved):
    """check(data) for a fine-tune, which learns its --init model's data (`saved`: that model's configuration):
    another set of classes, or another kind of set (the synthetic one standing in for a missing ./flowers, say, under
    a model of the photos), is an error."""
    kind = lambda source: source if source == "synthetic" or source in DATASETS else "a folder"   # noqa: E731

    def check(data):
        if list(data.classes) != list(saved["classes"]) or kind(str(data.source)) != kind(str(saved["data"])):
            cli.fail(f"--init {init} was trained on {saved['data']} ({len(saved['classes'])} classes), this run's "
                     f"data is {data.source} ({len(data.classes)} classes): pass --data {saved['data']}")
    return check


def initialise(model, teacher, checkpoint):
    """A fine-tune starts as its teacher (the --init model); parts it lacks (a step-length embedding) keep their
    fresh values, which leave the output the teacher's."""
    try:
        missing, unexpected = model.load_state_dict(teacher.state_dict(), strict=False)
    except RuntimeError:
        missing, unexpected = ["(tensor shapes)"], []
    if unexpected or any(not key.startswith("interval_mlp.") for key in missing):
        raise UserError(f"--init {checkpoint}: its network does not fit this run's (other classes or channels?)")


# ---------------------------------------------------------------- training

def get_args(argv=None):
    p = cli.parser(__doc__)
    p.add_argument("--minutes", type=cli.at_least(0.0, float, finite=True), default=MINUTES,
                   help="wall-clock training budget, counted across --resume (0: train --epochs)")
    p.add_argument("--epochs", type=int, default=1000, help="upper limit on epochs")
    p.add_argument("--batch-size", type=cli.at_least(1), default=None,
                   help="images per step and process (default: the space's, 16 below 64 px, 64 at 64 px and on codes)")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: the space's and objective's)")
    p.add_argument("--warmup", type=cli.at_least(0), default=50, help="steps of linear learning-rate warm-up")
    p.add_argument("--clip-grad", type=cli.at_least(0.0, float, finite=True), default=None,
                   help="rescale each step's gradients to at most this global norm (0: never; default: the space's, "
                        "1 on pixels below 64 px, where it steadies training at the learning rate's edge, else 0)")
    p.add_argument("--lr-decay", choices=["none", "cosine", "linear"], default="cosine",
                   help="the learning rate's fall to zero at the end of the --minutes budget (or of --epochs)")
    p.add_argument("--objective", choices=sorted(OBJECTIVES), default="flow",
                   help="what the network predicts: flow matching's velocity on the straight path, the average "
                        "velocity over a step (shortcut: a fine-tune with --init; distill: the same, learnt from the "
                        "--init model's own sampling trajectories; docs/few_step.md), or the DDPM process's v, noise "
                        "(eps, the DDPM paper's) or clean image")
    p.add_argument("--min-snr", type=cli.at_least(0.0, float), default=0.0,
                   help="min-SNR-gamma loss weighting (0: off; 5 suits --objective v; docs/diffusion.md)")
    p.add_argument("--schedule", choices=["linear", "cosine"], default="cosine",
                   help="noise schedule of the DDPM objectives (eps, v, x0)")
    p.add_argument("--timesteps", type=cli.at_least(1), default=1000, help="diffusion steps T of the DDPM objectives")
    p.add_argument("--time-sampling", choices=["uniform", "logit-normal"], default="logit-normal",
                   help="how --objective flow draws its training times t in [0, 1]")
    p.add_argument("--base", type=int, default=None,
                   help="channels at the U-Net's first level (default: the space's, 16 below 64 px, else 32)")
    p.add_argument("--patch", type=int, default=None,
                   help="pixels per side of the blocks the U-Net sees as one position (2: a quarter of the cost; "
                        "default: the space's, 2 at 64 px, else 1)")
    p.add_argument("--mults", type=int, nargs="+", default=None,
                   help="each level's width in --base, finest first (default: the space's, 1 2 4 8 below 64 px)")
    p.add_argument("--latent", default=None, metavar="CHECKPOINT",
                   help="latent diffusion on the codes of this frozen autoencoder (train_script.py --model LatentAE)")
    p.add_argument("--upsample", choices=["nearest", "transposed"], default=None,
                   help="up a level by a 2x2 stride-2 transposed convolution, or by nearest-neighbour doubling and a "
                        "3x3 convolution (default: the space's, nearest on pixels below 64 px)")
    p.add_argument("--ema", type=float, default=0.0,
                   help="EMA decay of the sampling weights, reached as the steps add up (at step n at most "
                        "(1 + n) / (10 + n): 0.98 after 400 steps, 0.998 after 4,000); 0: the last weights, already "
                        "an average as the learning rate decays to zero (docs/diffusion.md)")
    p.add_argument("--p-uncond", type=float, default=0.1, help="label dropout for classifier-free guidance")
    p.add_argument("--train-guidance", type=cli.at_least(0.0, float, finite=True), default=None,
                   help="the guidance an objective that jumps (shortcut) learns to follow, at the noise levels "
                        "--guidance-max-noise guides (default: the space's sampling guidance, 1.5 at 24 px)")
    p.add_argument("--init", default=None, metavar="CHECKPOINT",
                   help="a fine-tune: start from this saved model's weights, network and image size, on its data "
                        "(its classes; a flag that contradicts it is an error)")
    p.add_argument("--trajectories", type=cli.at_least(1), default=TRAJECTORIES,
                   help="how many of the --init model's sampling trajectories --objective distill learns from (at "
                        "most one per training image; 1,024 take ~40 s at 24 px on two cores)")
    p.add_argument("--unconditional", action="store_true", help="ignore the class labels")
    cli.add_sampling_flags(p, "the previews and the final grid", precision=False)   # --precision: training's
    p.add_argument("--film-steps", type=cli.at_least(1), default=50, help="DDIM steps of the denoising-process figure")
    p.add_argument("--preview-every", type=int, default=10, help="epochs between preview grids (0: none)")
    run.add_run_flags(p, CHECKPOINT)
    args = run.parse(p, argv)
    if args.min_snr and OBJECTIVES[args.objective].snr_weight is None:
        cli.fail(f"--min-snr weighs an image's loss by its noise level; --objective {args.objective}'s jumps span "
                 "several: leave it at 0")
    if args.init:   # the fine-tuned network is the saved one, at its size and in its space
        saved = args.init_config = load_checkpoint(args.init, model="diffusion")["config"]
        for key in ("latent", "image_size", "base", "mults", "patch", "upsample"):
            typed, kept = as_flag(getattr(args, key)), as_flag(saved[key])
            if key in args.typed and not run.same(typed, kept):
                cli.fail(f"--{key.replace('_', '-')} {typed} contradicts --init {args.init} (its {key} is {kept}): "
                         "leave the flag out")
            setattr(args, key, saved[key])
    elif OBJECTIVES[args.objective].needs_teacher:
        cli.fail(f"--objective {args.objective} learns from a trained flow model: name it with --init")
    args.image_size = args.image_size or (64 if args.latent else 24)
    space = space_kind(dict(latent=args.latent, image_size=args.image_size))
    for key, value in dict(space.network, **OBJECTIVES[args.objective].recipe).items():
        if getattr(args, key) is None:   # the network and recipe that suit this space and objective, unless given
            setattr(args, key, value)
    if args.train_guidance is None:   # guided as the space's sampler guides, at the noise levels it guides
        args.train_guidance = space.guidance
    args.train_guidance_max_noise = space.guidance_max_noise if args.guidance_max_noise is None else \
        args.guidance_max_noise
    # Flips on codes: 15 minutes are ~250 epochs of the 3 lab classes, which a latent model overfits (docs/bonus.md).
    args.augment = args.augment or ("flip" if args.latent else "none")
    multiple = size_multiple(max(args.patch, 1), args.mults)
    if args.patch < 1 or (not args.latent and args.image_size % multiple):
        cli.fail(f"--image-size must be a multiple of {multiple} (--patch {args.patch} and {len(args.mults)} levels), "
                 f"got {args.image_size}")
    if not (0 <= args.p_uncond <= 1 and 0 <= args.ema < 1):
        cli.fail(f"--p-uncond must be in [0, 1] and --ema in [0, 1); got {args.p_uncond:g} and {args.ema:g}")
    if args.base < 8 or args.base % 8:
        cli.fail(f"--base must be a multiple of 8 (GroupNorm uses 8 groups), got {args.base}")
    return args


def as_flag(value):
    """A saved setting as it is typed: 1 2 4 8 for a list, none for None."""
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value))
    return "none" if value is None else value


def settings(args):
    """What a new run saves besides its data: the network's size, the diffusion process and the recipe."""
    keys = ("unconditional", "base", "mults", "patch", "upsample", "objective", "schedule", "timesteps", "time_sampling",
            "min_snr", "p_uncond", "ema", "lr", "warmup", "lr_decay", "clip_grad", "batch_size", "latent",
            "train_guidance", "train_guidance_max_noise", "init", "trajectories")
    return lambda data: dict({key: getattr(args, key) for key in keys},
                             conditional=(data.multi_label or len(data.classes) > 1) and not args.unconditional,
                             latent_code=new_latent(args.latent, data.image_size, data.channels,
                                                    data.subset("train")[0]) if args.latent else None)


def describe(config, model, space, path, args):
    """The training log's model lines."""
    kind = "objects (multi-label)" if config["multi_label"] else "classes"
    condition = f"conditional on {len(config['classes'])} {kind}" if config["conditional"] else "unconditional"
    codes = f"; on the {'x'.join(map(str, space.shape))} codes of {config['latent']} (times " \
            f"{config['latent_code']['scale']:.3g})" if config["latent"] else ""
    schedule = f" ({config['warmup']} warm-up steps, {config['lr_decay']} decay)" \
        if config["warmup"] or config["lr_decay"] != "none" else ""
    schedule += f", gradients clipped at norm {config['clip_grad']:g}" * bool(config.get("clip_grad"))
    budget = f"{args.minutes:g} minutes" if args.minutes else f"{args.epochs} epochs"
    start = f", from {config['init']}" if config["init"] else ""
    return [f"model      Diffuser (U-Net, base {config['base']}), {sum(p.numel() for p in model.parameters()):,} "
            f"parameters, {condition}{codes}",
            f"diffusion  objective {config['objective']}, {path.describe()}, min-SNR {config['min_snr']:g}, EMA "
            f"{config['ema']}, label dropout {config['p_uncond']}"
            + f", guidance {config['train_guidance']:g} trained in" * OBJECTIVES[config["objective"]].guidance_trained_in,
            f"training   adam lr {config['lr']:g}{schedule}, {distributed.batch_description(config['batch_size'])}, "
            f"{budget}, seed {config['seed']}{start}" + described(config["augment"])]


def main(argv=None):
    try:
        train(get_args(argv))
    finally:
        distributed.teardown()  # a no-op without torchrun


def train(args):
    config, state, data, device = run.start(args, "diffusion", settings(args),
                                            check=same_data_as(args.init, args.init_config) if args.init else None)
    model = build(config).to(device)
    space = make_space(config, device)
    ema = EMA(model, config["ema"]) if config["ema"] else None  # decay 0: sample from the weights themselves
    path = make_path(config)
    labelled = config["conditional"]
    guidance = Guidance(config["train_guidance"], config["train_guidance_max_noise"])
    teacher = None
    if config["init"]:
        net, teacher_ckpt = load(checkpoint=config["init"], device=device)
        if state is None:
            initialise(model, net, config["init"])
        teacher = Teacher(net.requires_grad_(False), teacher_ckpt["config"],
                          data.labels[data.train_idx] if labelled else None, guidance, config["p_uncond"],
                          config["seed"], device, config.get("trajectories", TRAJECTORIES))

    def loss_fn(net, x, labels, epoch):
        loss = diffusion_loss_fn(net, space.encode(x), labels if labelled else None, path, config["objective"],
                                 config["min_snr"], config["p_uncond"], guidance, teacher)
        return loss, loss

    options = cli.sampling_options(args)
    name = figure_name(args.checkpoint, "diffusion")   # another --checkpoint's figures never replace the default's

    def preview(epoch):
        if args.preview_every and epoch % args.preview_every == 0:
            sampler_net = (ema.model if ema else model).eval()   # training mode returns at the next epoch
            sample_grid(sampler_net, config, f"vis/preview_{name}.png", args.seed, device, options, per_row=8)

    recipe = Recipe(make_optimizer("adam", model.parameters(), config["lr"]), args.epochs, config["batch_size"],
                    early_stopping=EarlyStopping(patience=None), ema=ema, minutes=args.minutes or None,
                    augment=config["augment"], precision=args.precision, compile=args.compile, seed=config["seed"],
                    warmup=config["warmup"], decay=config["lr_decay"], clip_grad=config.get("clip_grad", 0.0))
    run.header(describe(config, model, space, path, args), data, args, device, state)
    history = run.train(model, loss_fn, data, recipe, args, config, state, device, "loss (weighted squared error)",
                        "diffusion: training loss (validation: " + ("EMA weights, " if ema else "") + "fixed noise)",
                        on_epoch_end=preview)
    if not history or not distributed.is_main():  # the main process draws the final figures
        return
    best_model, ckpt = load(checkpoint=args.checkpoint, device=device)
    warning = learned_nothing(best_model, loss_fn, data, device, ckpt)
    if warning:
        print(warning, flush=True)
        if not sys.stdout.isatty():   # stdout is the log file: the terminal hears it too
            print("warning:" + warning.removeprefix("warning   "), file=sys.stderr)
    sample_grid(best_model, ckpt["config"], f"vis/random_images_{name}.png", args.seed, device, options)
    denoise_figure(best_model, ckpt["config"], f"vis/denoise_process_{name}.png", args.seed, device,
                   steps=args.film_steps)
    print(f"wrote      vis/random_images_{name}.png, vis/denoise_process_{name}.png")


if __name__ == "__main__":
    cli.run(main)
