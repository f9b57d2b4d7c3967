"""Part 4: a class-conditional DDPM that trains in minutes on a laptop CPU.

    python diffusion.py > log/train_diffusion.out          # trains for --minutes (default 15)

The network (`Diffuser`), the noise schedule and the loss (`diffusion_loss_fn`) live here; the samplers
are in utils/sampling.py. Writes models/Best_diffusion.pth (with the EMA weights used for sampling),
vis/loss_diffusion.png, vis/preview_diffusion.png during training, and at the end
vis/random_images_diffusion.png and vis/denoise_process_diffusion.png.
"""
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from utils import cli, distributed
from utils.checkpoint import load_checkpoint, load_resume, resume_path_for
from utils.data import load_dataset
from utils.errors import UserError
from utils.figures import image_rows, loss_curve
from utils.sampling import SAMPLERS
from utils.train import EMA, RESUME_SCHEDULE, EarlyStopping, fit, fmt_loss

CHECKPOINT = "models/Best_diffusion.pth"
RESUME = "models/last_diffusion.pth"


# ---------------------------------------------------------------- noise schedules

def make_betas(schedule, timesteps=1000):
    """beta_t for t = 0..T-1: 'linear' (Ho et al. 2020) or 'cosine' (Nichol & Dhariwal 2021)."""
    if schedule == "linear":
        return torch.linspace(1e-4, 0.02, timesteps, dtype=torch.float64).float()
    if schedule == "cosine":
        s = 0.008
        f = torch.cos((torch.arange(timesteps + 1, dtype=torch.float64) / timesteps + s) / (1 + s) * math.pi / 2) ** 2
        alpha_bar = f / f[0]
        return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999).float()
    raise ValueError(f"unknown schedule {schedule!r} (use linear or cosine)")


# ---------------------------------------------------------------- the network

class ResBlock(nn.Module):
    def __init__(self, c_in, c_out, emb_dim):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(8, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out)
        self.norm2, self.conv2 = nn.GroupNorm(8, c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        # The time and class embedding scales and shifts the normalised features (FiLM, as in ADM).
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.conv2(F.silu(self.norm2(h) * (1 + scale) + shift))
        return h + self.skip(x)


class SelfAttention(nn.Module):
    def __init__(self, channels, heads=4):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(8, channels)
        self.qkv, self.out = nn.Conv2d(channels, 3 * channels, 1), nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).view(b, 3, self.heads, c // self.heads, h * w).transpose(-1, -2).unbind(1)
        y = F.scaled_dot_product_attention(q, k, v)
        return x + self.out(y.transpose(-1, -2).reshape(b, c, h, w))


def timestep_embedding(t, dim):
    """Sinusoidal embedding of integer timesteps (Vaswani et al.; Ho et al.)."""
    freqs = torch.exp(-math.log(10000) * torch.arange(dim // 2, device=t.device) / (dim // 2))
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class Diffuser(nn.Module):
    """A compact U-Net: one residual block per level, self-attention only at the lowest resolution.

    At 24 px the levels are 24, 12 and 6 pixels wide with base, 2*base and 3*base channels.
    Class label `num_classes` means "no class" (for classifier-free guidance). With multi_label, a label
    is a multi-hot vector over num_classes objects, embedded linearly; the zero vector means "no condition".
    """

    def __init__(self, image_size=24, channels=3, num_classes=0, base=32, mults=(1, 2, 3), multi_label=False):
        super().__init__()
        if image_size % 2 ** (len(mults) - 1):
            raise ValueError(f"image size must be a multiple of {2 ** (len(mults) - 1)}, got {image_size}")
        self.image_size, self.channels, self.num_classes, self.base = image_size, channels, num_classes, base
        self.multi_label = multi_label
        emb_dim = 4 * base
        widths = [base * m for m in mults]
        self.time_mlp = nn.Sequential(nn.Linear(base, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        if not num_classes:
            self.class_emb = None
        else:
            self.class_emb = nn.Linear(num_classes, emb_dim, bias=False) if multi_label else \
                nn.Embedding(num_classes + 1, emb_dim)
        self.stem = nn.Conv2d(channels, base, 3, padding=1)
        self.down = nn.ModuleList(ResBlock(c_in, c_out, emb_dim) for c_in, c_out in zip([base] + widths, widths))
        self.downsample = nn.ModuleList(nn.Conv2d(c, c, 3, stride=2, padding=1) for c in widths[:-1])
        self.mid = nn.ModuleList([ResBlock(widths[-1], widths[-1], emb_dim), ResBlock(widths[-1], widths[-1], emb_dim)])
        self.attention = SelfAttention(widths[-1])
        ups = list(zip(reversed(widths), [widths[-1]] + list(reversed(widths))[:-1]))
        self.up = nn.ModuleList(ResBlock(c_prev + c, c, emb_dim) for c, c_prev in ups)
        self.upsample = nn.ModuleList(nn.Conv2d(c, c, 3, padding=1) for c in list(reversed(widths))[:-1])
        self.head = nn.Sequential(nn.GroupNorm(8, base), nn.SiLU(), nn.Conv2d(base, channels, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight)  # start by predicting zero: a stable first step
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, x, t, labels=None):
        emb = self.time_mlp(timestep_embedding(t, self.base))
        if self.class_emb is not None:
            labels = labels if labels is not None else self.null_labels(len(t), t.device)
            emb = emb + self.class_emb(labels)
        h, skips = self.stem(x), []
        for i, block in enumerate(self.down):
            h = block(h, emb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        h = self.mid[1](self.attention(self.mid[0](h, emb)), emb)
        for i, block in enumerate(self.up):
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
            if i < len(self.upsample):
                h = self.upsample[i](F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.head(h)

    def null_labels(self, n, device):
        """The "no condition" label of n images: class index num_classes, or the empty object set."""
        if self.multi_label:
            return torch.zeros(n, self.num_classes, device=device)
        return torch.full((n,), self.num_classes, device=device, dtype=torch.long)


# ---------------------------------------------------------------- the loss

def q_sample(x0, ab, eps):
    """The forward process in one jump: x_t ~ q(x_t | x0) = N(sqrt(ab) x0, (1 - ab) I)."""
    return ab.sqrt() * x0 + (1 - ab).sqrt() * eps


def diffusion_loss_fn(model, x0, labels, alpha_bar, objective="v", min_snr=5.0, p_uncond=0.1):
    """The DDPM training loss on images x0 in [-1, 1].

    Noise a random timestep, x_t = sqrt(ab) x0 + sqrt(1 - ab) eps, and regress the network on eps
    ('eps', Ho et al.) or on v = sqrt(ab) eps - sqrt(1 - ab) x0 ('v', Salimans & Ho 2022). Min-SNR-gamma
    weighting (Hang et al. 2023) stops the easy, low-noise timesteps from dominating; 0 turns it off.
    Labels are replaced by "no class" with probability p_uncond, so one model also learns the
    unconditional prediction that classifier-free guidance needs.
    """
    t = torch.randint(0, len(alpha_bar), (len(x0),), device=x0.device)
    ab = alpha_bar.to(x0.device)[t].view(-1, 1, 1, 1)
    eps = torch.randn_like(x0)
    x_t = q_sample(x0, ab, eps)
    if labels is not None and model.num_classes:
        drop = torch.rand(len(labels), device=labels.device) < p_uncond
        drop = drop.view(-1, *[1] * (labels.dim() - 1))  # a multi-hot vector is dropped whole
        labels = torch.where(drop, model.null_labels(len(labels), labels.device), labels)
    target = eps if objective == "eps" else ab.sqrt() * eps - (1 - ab).sqrt() * x0
    per_image = (model(x_t, t, labels) - target).square().mean(dim=(1, 2, 3))
    if min_snr:
        snr = (ab / (1 - ab)).flatten()
        # With the SNR weighting expressed for each target (eps: min(snr, g)/snr; v: min(snr, g)/(snr + 1)).
        per_image = per_image * snr.clamp(max=min_snr) / (snr if objective == "eps" else snr + 1)
    return per_image.mean()


def eps_and_x0(output, x_t, ab, objective):
    """The network's output as (noise, clean image), with the clean image clipped to the data range."""
    if objective == "eps":
        x0 = (x_t - (1 - ab).sqrt() * output) / ab.sqrt()
    else:
        x0 = ab.sqrt() * x_t - (1 - ab).sqrt() * output
    x0 = x0.clamp(-1, 1)
    return (x_t - ab.sqrt() * x0) / (1 - ab).sqrt(), x0


def guided_denoiser(model, alpha_bar, objective, labels=None, guidance=2.0):
    """denoise(x_t, t) -> (eps, x0) for the samplers; with labels, classifier-free guidance of weight `guidance`:
    output = uncond + guidance * (cond - uncond), so 0 is unconditional and 1 purely conditional."""
    def denoise(x, t):
        t_batch = torch.full((len(x),), t, device=x.device, dtype=torch.long)
        if labels is None or guidance == 0:   # exactly the unconditional prediction, at half the cost
            output = model(x, t_batch)
        elif guidance == 1:                   # exactly the conditional one
            output = model(x, t_batch, labels)
        else:
            both = model(torch.cat([x, x]), torch.cat([t_batch, t_batch]),
                         torch.cat([labels, model.null_labels(len(labels), labels.device)]))
            cond, uncond = both.chunk(2)
            output = uncond + guidance * (cond - uncond)
        return eps_and_x0(output, x, alpha_bar[t].to(x.device), objective)
    return denoise


# ---------------------------------------------------------------- sampling a trained model

def load_trained(checkpoint=CHECKPOINT, device="cpu", image_size=None):
    """The EMA network of a saved diffusion model, rebuilt from its checkpoint alone."""
    ckpt = load_checkpoint(checkpoint, model="diffusion", image_size=image_size)
    c = ckpt["config"]
    model = Diffuser(c["image_size"], c["channels"], len(c["classes"]) if c["conditional"] else 0, c["base"],
                     multi_label=c.get("multi_label", False))
    model.load_state_dict(ckpt["ema"])
    # channels-last convolutions sample ~25 % faster on CPU (measured; training gains nothing from them)
    return model.to(device, memory_format=torch.channels_last).eval(), ckpt


@torch.no_grad()
def sample(model, config, n, labels=None, guidance=2.0, sampler="ddim", steps=50, generator=None,
           device="cpu", trace=None, batch_size=64, noise=None):
    """n images in [0, 1] (labels: n class indices or multi-hot object sets, or None for unconditional samples).
    `noise`: the starting x_T of the deterministic samplers (n x C x H x W), else drawn from the generator."""
    if noise is not None and sampler == "ddpm":
        raise UserError("a given starting noise needs a deterministic sampler (ddim or dpm), not ddpm")
    betas = make_betas(config["schedule"], config["timesteps"])
    alpha_bar = torch.cumprod(1 - betas, 0)
    out = []
    for start in range(0, n, batch_size):
        chunk = labels[start:start + batch_size].to(device) if labels is not None else None
        denoise = guided_denoiser(model, alpha_bar, config["objective"], chunk, guidance)
        shape = (min(batch_size, n - start), config["channels"], config["image_size"], config["image_size"])
        if sampler == "ddpm":
            x = SAMPLERS["ddpm"](denoise, shape, betas, generator, device, trace)
        else:
            x = SAMPLERS[sampler](denoise, shape, alpha_bar, steps, generator, device, trace,
                                  noise[start:start + batch_size] if noise is not None else None)
        out.append(((x + 1) / 2).clamp(0, 1).cpu())
    return torch.cat(out)


def slerp(a, b, weight):
    """Spherical interpolation: Gaussian noise keeps its norm along the path (a straight line would shrink it)."""
    omega = torch.arccos((a.flatten() @ b.flatten() / (a.norm() * b.norm())).clamp(-1, 1))
    if omega < 1e-4:  # (almost) the same direction: the straight line is the arc
        return (1 - weight) * a + weight * b
    return (torch.sin((1 - weight) * omega) * a + torch.sin(weight * omega) * b) / torch.sin(omega)


def balanced_labels(num_classes, n):
    return torch.arange(n) % num_classes


def row_conditions(config, n_rows):
    """Labels and names for rows of a figure: every class in turn, or (multi-label) one object per row."""
    classes = config["classes"]
    labels = balanced_labels(len(classes), n_rows)
    names = [classes[i] for i in labels]
    return (torch.eye(len(classes))[labels] if config.get("multi_label") else labels), names


def class_index(config, name):
    """The label of a class name; an unknown name lists the valid ones."""
    if not config["conditional"]:
        raise UserError("this diffusion model is unconditional: --class needs a model trained on several classes")
    if config.get("multi_label"):
        raise UserError("this diffusion model is conditioned on object sets: use --labels \"red cube,gray sphere\"")
    if name not in config["classes"]:
        raise UserError(f"unknown class {name!r} (choose from {', '.join(config['classes'])})")
    return config["classes"].index(name)


def generate_for_evaluation(model, ckpt, n, generator, device, guidance=2.0, sampler="dpm", steps=20, label_sets=None):
    """Class-balanced conditional samples (with their labels) or unconditional ones, for evaluate.py.
    A multi-label model draws the given label sets (the validation split's) in turn."""
    config = ckpt["config"]
    labels = balanced_labels(len(config["classes"]), n) if config["conditional"] else None
    if config.get("multi_label"):
        labels = label_sets[balanced_labels(len(label_sets), n)]
    return sample(model, config, n, labels, guidance, sampler, steps, generator, device), labels


def sample_grid(model, config, path, generator, device, guidance=2.0, sampler="ddim", steps=50, per_row=10):
    """One labelled row per class (or object) plus two unconditional rows (an 8x8 grid for an unconditional model)."""
    if not config["conditional"]:
        images = sample(model, config, 64, None, 0, sampler, steps, generator, device)
        rows, names = [images[i:i + 8] for i in range(0, 64, 8)], [""] * 8
    else:
        row_labels, names = row_conditions(config, min(len(config["classes"]), 16))
        labels = row_labels.repeat_interleave(per_row, dim=0)
        conditional = sample(model, config, len(labels), labels, guidance, sampler, steps, generator, device)
        unconditional = sample(model, config, 2 * per_row, None, 0, sampler, steps, generator, device)
        rows = list(conditional.split(per_row)) + list(unconditional.split(per_row))
        names += ["unconditional"] * 2
    title = f"diffusion samples ({sampler}, {config['timesteps'] if sampler == 'ddpm' else steps} steps"
    title += f", guidance {guidance:g})" if config["conditional"] else ")"
    image_rows(rows, names, title, path)


def denoise_figure(model, config, path, generator, device, n=6, columns=10, steps=50):
    """A few samples followed from pure noise to the final image, labelled with the timestep t."""
    frames = []
    trace = lambda t, x: frames.append((t, ((x + 1) / 2).clamp(0, 1).cpu()))  # noqa: E731
    labels, names = row_conditions(config, n) if config["conditional"] else (None, [""] * n)
    final = sample(model, config, n, labels, 2.0 if labels is not None else 0, "ddim", steps, generator, device, trace)
    keep = torch.linspace(0, steps - 1, columns - 1).round().long().tolist()
    columns_images = [frames[i][1] for i in keep] + [final]
    rows = [torch.stack([col[r] for col in columns_images]) for r in range(n)]
    image_rows(rows, names, f"denoising: from pure noise (t={config['timesteps'] - 1}) to the sample (DDIM, {steps} steps)",
               path, column_labels=[f"t={frames[i][0]}" for i in keep] + ["final"])


# ---------------------------------------------------------------- training

def get_args(argv=None):
    p = cli.parser(__doc__)
    p.add_argument("--minutes", type=float, default=15,
                   help="wall-clock training budget, counted across --resume (0: train --epochs)")
    p.add_argument("--epochs", type=int, default=1000, help="upper limit on epochs")
    p.add_argument("--batch-size", type=int, default=64,
                   help="images per step; per process under torchrun (the step sees N times it)")
    p.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate")
    p.add_argument("--objective", choices=["eps", "v"], default="v", help="what the network predicts")
    p.add_argument("--min-snr", type=float, default=5.0, help="min-SNR-gamma loss weighting (0: off)")
    p.add_argument("--schedule", choices=["linear", "cosine"], default="cosine", help="noise schedule")
    p.add_argument("--timesteps", type=int, default=1000, help="diffusion steps T")
    p.add_argument("--base", type=int, default=32, help="U-Net width (channels at full resolution)")
    p.add_argument("--ema", type=float, default=0.999, help="EMA decay of the sampling weights")
    p.add_argument("--p-uncond", type=float, default=0.1, help="label dropout for classifier-free guidance")
    p.add_argument("--unconditional", action="store_true", help="ignore the class labels")
    p.add_argument("--guidance", type=float, default=2.0, help="guidance weight of the final sample grid")
    p.add_argument("--sampler", choices=["dpm", "ddim", "ddpm"], default="dpm", help="sampler of the final grid")
    p.add_argument("--steps", type=int, default=20, help="sampler steps of the previews and the final grid")
    p.add_argument("--film-steps", type=int, default=50, help="DDIM steps of the denoising-process figure")
    p.add_argument("--preview-every", type=int, default=5, help="epochs between preview grids (0: none)")
    p.add_argument("--resume", action="store_true",
                   help=f"continue from the resume file beside --checkpoint ({RESUME} by default; written "
                        f"{RESUME_SCHEDULE}); its saved configuration wins over the flags")
    cli.add_training_flags(p)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--checkpoint", default=CHECKPOINT)
    cli.add_label_flags(p)
    args = p.parse_args(argv)
    args.image_size = args.image_size or 24
    if args.image_size % 4:
        cli.fail(f"--image-size must be a multiple of 4, got {args.image_size}")
    if args.base < 8 or args.base % 8:
        cli.fail(f"--base must be a multiple of 8 (GroupNorm uses 8 groups), got {args.base}")
    if min(args.steps, args.film_steps, args.batch_size, args.timesteps) < 1 or args.minutes < 0:
        cli.fail("--steps, --film-steps, --batch-size and --timesteps must be at least 1, --minutes at least 0")
    return args


def main(argv=None):
    try:
        train(get_args(argv))
    finally:
        distributed.teardown()  # a no-op without torchrun


def train(args):
    device = distributed.setup(cli.setup(args))
    args.precision = cli.precision_for(args.precision, device)
    resume_path = resume_path_for(args.checkpoint)
    data = load_dataset(args.data, args.image_size, split_seed=args.split_seed, labels_file=args.labels,
                        objects_file=args.objects)
    conditional = (data.multi_label or len(data.classes) > 1) and not args.unconditional
    config = dict(model="diffusion", image_size=data.image_size, channels=data.channels, classes=data.classes,
                  conditional=conditional, multi_label=data.multi_label, labels_file=args.labels,
                  objects_file=args.objects, data=data.source, split_seed=args.split_seed, valid_fraction=0.1,
                  base=args.base, objective=args.objective, schedule=args.schedule, timesteps=args.timesteps,
                  min_snr=args.min_snr, p_uncond=args.p_uncond, ema=args.ema, lr=args.lr,
                  batch_size=args.batch_size, seed=args.seed, augment=args.augment, precision=args.precision)
    resume = None
    if args.resume:  # the saved configuration wins over the flags: the network must match its weights
        saved = load_resume(resume_path, "diffusion", image_size=data.image_size)
        config, resume = dict(saved["config"], precision=args.precision), saved["state"]
        conditional = config["conditional"]
    model = Diffuser(data.image_size, data.channels, len(config["classes"]) if conditional else 0,
                     config["base"], multi_label=config.get("multi_label", False)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])
    ema = EMA(model, config["ema"])
    alpha_bar = torch.cumprod(1 - make_betas(config["schedule"], config["timesteps"]), 0).to(device)

    def loss_fn(net, x, labels, epoch):
        loss = diffusion_loss_fn(net, x * 2 - 1, labels if conditional else None, alpha_bar,
                                 config["objective"], config["min_snr"], config["p_uncond"])
        return loss, loss

    def preview(epoch):
        if args.preview_every and epoch % args.preview_every == 0:
            sample_grid(ema.model, config, "vis/preview_diffusion.png", torch.Generator().manual_seed(args.seed),
                        device, args.guidance, args.sampler, args.steps, per_row=8)

    n_params = sum(p.numel() for p in model.parameters())
    print(f"model      Diffuser (U-Net, base {config['base']}), {n_params:,} parameters, "
          + (f"conditional on {len(data.classes)} {'objects (multi-label)' if data.multi_label else 'classes'}"
             if conditional else "unconditional"))
    print(f"data       {data.source}: {len(data.train_idx)} train / {len(data.valid_idx)} valid images, "
          f"{data.channels}x{data.image_size}x{data.image_size}")
    print(f"diffusion  {config['objective']}-prediction, {config['schedule']} schedule, T={config['timesteps']}, "
          f"min-SNR {config['min_snr']:g}, EMA {config['ema']}, label dropout {config['p_uncond']}")
    print(f"training   adam lr {config['lr']:g}, {distributed.batch_description(config['batch_size'])}, "
          + (f"{args.minutes:g} minutes" if args.minutes else f"{args.epochs} epochs") + f", seed {args.seed}"
          + (", augmented (flips, crops)" if config.get("augment") else ""))
    print(f"device     {device}, {torch.get_num_threads()} threads" + cli.speed_description(args)
          + ("  (resuming)" if resume else ""), flush=True)
    history = []
    try:
        _, seconds = fit(model, loss_fn, data.images[data.train_idx], data.images[data.valid_idx],
                         train_labels=data.labels[data.train_idx], valid_labels=data.labels[data.valid_idx],
                         optimizer=optimizer, epochs=args.epochs, batch_size=config["batch_size"], device=device,
                         checkpoint_path=args.checkpoint, config=config, ema=ema, minutes=args.minutes or None,
                         resume_path=resume_path, resume=resume, early_stopping=EarlyStopping(patience=None),
                         on_epoch_end=preview, seed=args.seed, history=history, log=lambda line: print(line, flush=True),
                         augment=config.get("augment", False), precision=args.precision, compile=args.compile)
    finally:  # after Ctrl-C too
        if history and distributed.is_main():
            loss_curve(history, "diffusion: training loss (validation: EMA weights, fixed noise)",
                       "vis/loss_diffusion.png")
    if not distributed.is_main():  # the main process draws the final figures
        return
    if not history:
        print("no epoch finished; nothing saved")
        return
    best_model, ckpt = load_trained(args.checkpoint, device)
    g = torch.Generator().manual_seed(args.seed)
    sample_grid(best_model, ckpt["config"], "vis/random_images_diffusion.png", g, device, args.guidance,
                args.sampler, args.steps)
    denoise_figure(best_model, ckpt["config"], "vis/denoise_process_diffusion.png", g, device,
                   steps=args.film_steps)
    best = min(history, key=lambda h: h["valid_loss"])
    print(f"done       {len(history)} epochs in {seconds / 60:.1f} min; final train {fmt_loss(history[-1]['train_loss'])}")
    print(f"best       epoch {best['epoch']}: valid {fmt_loss(best['valid_loss'])} -> {args.checkpoint}")
    print("wrote      vis/loss_diffusion.png, vis/random_images_diffusion.png, vis/denoise_process_diffusion.png")


if __name__ == "__main__":
    cli.run(main)
