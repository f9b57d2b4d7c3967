"""Generate images from a trained model: python random_generation.py --model VAE

AE and VAE decode random codes z ~ N(0, I). The diffusion model runs its sampler; with several classes it
writes one labelled row per class plus unconditional rows, or only the class given with --class (a
multi-label model: the object set given with --labels). --interpolate walks between two images instead.
"""
from pathlib import Path

import torch
from torchvision.utils import save_image

from utils import cli
from utils.data import load_training_data, to_float
from utils.figures import image_grid, image_rows
from utils.models import check_model_name, load_trained
from utils.multilabel import describe, parse_label_set

INTERPOLATION_STEPS = 8


@torch.no_grad()
def sample(model, n, generator, device):
    z = torch.randn(n, model.encoding_dim, generator=generator).to(device)
    return model.decode(z).clamp(0, 1).cpu()


def write_pngs(images, folder, prefix, start=0):
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images, start):
        save_image(image, folder / f"{prefix}_{i:05d}.png")


def autoencoder_samples(args, device):
    model, _ = load_trained(args.model, args.checkpoint, device, args.image_size)
    g = torch.Generator().manual_seed(args.seed)
    path = f"vis/random_images_{args.model}.png"
    image_grid(sample(model, 64, g, device), f"{args.model}: 64 decodings of z ~ N(0, I) (seed {args.seed})", path)
    print(f"wrote {path}")
    for start in range(0, args.n, 256):
        write_pngs(sample(model, min(256, args.n - start), g, device), Path(args.out_dir), args.model, start)


def chosen_condition(args, config):
    """(label, its name) from --class or --labels, or (None, None) when neither is given."""
    import diffusion
    if args.labels:
        if not config.get("multi_label"):
            cli.fail("--labels needs a diffusion model trained with --labels (object sets); use --class here")
        label = parse_label_set(args.labels, config["classes"])
        return label, describe(label, config["classes"])
    if args.class_name:
        return torch.tensor(diffusion.class_index(config, args.class_name)), args.class_name
    return None, None


def diffusion_samples(args, device):
    import diffusion
    model, ckpt = diffusion.load_trained(args.checkpoint or diffusion.CHECKPOINT, device, args.image_size)
    config = ckpt["config"]
    label, name = chosen_condition(args, config)
    g = torch.Generator().manual_seed(args.seed)
    draw = lambda n, labels, guidance: diffusion.sample(  # noqa: E731
        model, config, n, labels, guidance, args.sampler, args.steps, g, device)
    path = "vis/random_images_diffusion.png"
    if label is not None:
        image_grid(draw(64, label.expand(64, *label.shape), args.guidance),
                   f"diffusion: {name} (guidance {args.guidance:g}, {args.sampler}, seed {args.seed})", path)
    else:
        diffusion.sample_grid(model, config, path, g, device, args.guidance, args.sampler, args.steps)
    print(f"wrote {path}")
    if not args.n:
        return
    out = Path(args.out_dir)
    if label is not None and config.get("multi_label"):
        write_pngs(draw(args.n, label.expand(args.n, *label.shape), args.guidance), out, "diffusion")
        return
    if not config["conditional"] or config.get("multi_label"):  # no object set given: unconditional samples
        write_pngs(draw(args.n, None, 0), out, "diffusion")
        return
    labels = label.expand(args.n) if label is not None else diffusion.balanced_labels(len(config["classes"]), args.n)
    images = draw(args.n, labels, args.guidance)
    for c, name in enumerate(config["classes"]):
        if (labels == c).any():
            write_pngs(images[labels == c], out / name, name)


@torch.no_grad()
def latent_path(model, ends, weights):
    """Decodings of (1 - w) z_A + w z_B for the codes of the two images in `ends`."""
    z = model.encode(ends)
    w = weights.view(-1, *[1] * (z.dim() - 1))
    return model.decode((1 - w) * z[:1] + w * z[1:]).clamp(0, 1)


def autoencoder_interpolation(args, device, rows=6):
    """Pairs of validation images, decoded along the straight line between their codes (the VAE's: the means)."""
    model, ckpt = load_trained(args.model, args.checkpoint, device, args.image_size)
    data = load_training_data(ckpt["config"], args.data, quiet=True)
    rows = min(rows, len(data.valid_idx) // 2)
    if rows < 1:
        cli.fail("--interpolate needs at least two validation images")
    g = torch.Generator().manual_seed(args.seed)
    pairs = data.valid_idx[torch.randperm(len(data.valid_idx), generator=g)[:2 * rows]].view(rows, 2)
    weights = torch.linspace(0, 1, INTERPOLATION_STEPS, device=device)
    figure = []
    for pair in pairs:
        ends = to_float(data.images[pair]).to(device)
        figure.append(torch.cat([ends[:1], latent_path(model, ends, weights), ends[1:]]).cpu())
    columns = ["image A"] + [f"w={w:.2f}" for w in weights.tolist()] + ["image B"]
    path = f"vis/interpolation_{args.model}.png"
    image_rows(figure, [""] * rows, f"{args.model}: decoding (1 - w) z_A + w z_B between two validation images",
               path, column_labels=columns)
    return path


def diffusion_interpolation(args, device, rows=6):
    """Spherical paths between two starting noises, every point sampled by the deterministic sampler."""
    import diffusion
    if args.sampler == "ddpm":
        cli.fail("--interpolate needs a deterministic sampler: --sampler dpm or ddim, not ddpm")
    model, ckpt = diffusion.load_trained(args.checkpoint or diffusion.CHECKPOINT, device, args.image_size)
    config = ckpt["config"]
    label, name = chosen_condition(args, config)
    if label is not None:
        row_labels, names = label.expand(rows, *label.shape), [name] * rows
    elif config["conditional"]:
        row_labels, names = diffusion.row_conditions(config, rows)
    else:
        row_labels, names = None, [""] * rows
    g = torch.Generator().manual_seed(args.seed)
    size = config["image_size"]
    ends = torch.randn(rows, 2, config["channels"], size, size, generator=g)
    weights = torch.linspace(0, 1, INTERPOLATION_STEPS + 2)
    noise = torch.stack([diffusion.slerp(a, b, w) for a, b in ends for w in weights])
    labels = row_labels.repeat_interleave(len(weights), dim=0) if row_labels is not None else None
    images = diffusion.sample(model, config, len(noise), labels, args.guidance if labels is not None else 0,
                              args.sampler, args.steps, g, device, noise=noise)
    path = "vis/interpolation_diffusion.png"
    image_rows(list(images.split(len(weights))), names,
               f"diffusion: samples from slerp(noise A, noise B, w) ({args.sampler}, {args.steps} steps)", path,
               column_labels=[f"w={w:.2f}" for w in weights.tolist()])
    return path


def main(argv=None):
    p = cli.parser(__doc__)
    p.add_argument("--model", required=True, help="AE, VAE or diffusion")
    p.add_argument("--n", type=int, default=0, help="also write N individual PNGs to --out-dir "
                   "(a conditional diffusion model: class sub-folders, balanced)")
    p.add_argument("--out-dir", default=None, help="folder for the --n individual PNGs")
    p.add_argument("--checkpoint", default=None, help="default models/Best_<MODEL>.pth")
    p.add_argument("--class", dest="class_name", default=None, help="diffusion only: sample this flower class")
    p.add_argument("--labels", default=None, metavar="OBJECTS",
                   help="diffusion only, a model trained with --labels: sample this object set, e.g. \"red cube,gray sphere\"")
    p.add_argument("--interpolate", action="store_true",
                   help="write vis/interpolation_<MODEL>.png instead: AE/VAE decode the straight line between the "
                        "codes of two validation images; diffusion samples along the arc between two starting noises")
    p.add_argument("--guidance", type=float, default=2.0,
                   help="diffusion only: classifier-free guidance weight (0 unconditional, 1 conditional)")
    p.add_argument("--steps", type=int, default=20, help="diffusion only: steps of the dpm or ddim sampler")
    p.add_argument("--sampler", choices=["dpm", "ddim", "ddpm"], default="dpm",
                   help="diffusion only: deterministic DDIM, DPM-Solver++(2M) (as good in fewer steps), "
                        "or ancestral DDPM through all T steps")
    args = p.parse_args(argv)
    check_model_name(args.model, allowed=("AE", "VAE", "diffusion"))
    if args.n < 0 or args.steps < 1:
        cli.fail("--n must be 0 or more and --steps at least 1")
    if args.n and not args.out_dir:
        cli.fail("--n needs --out-dir (the folder for the individual PNGs)")
    if args.model != "diffusion" and (args.class_name or args.labels):
        cli.fail(f"--class and --labels need the diffusion model; {args.model} is not conditional")
    if args.interpolate and args.n:
        cli.fail("--interpolate writes one figure; leave out --n")
    device = cli.setup(args)
    if args.interpolate:
        interpolate = diffusion_interpolation if args.model == "diffusion" else autoencoder_interpolation
        print(f"wrote {interpolate(args, device)}")
        return
    (diffusion_samples if args.model == "diffusion" else autoencoder_samples)(args, device)
    if args.n:
        print(f"wrote {args.n} images to {args.out_dir}/")


if __name__ == "__main__":
    cli.run(main)
