"""Generate images from a trained model: python random_generation.py --model VAE

AE and VAE decode random codes z ~ N(0, I). The diffusion model runs its sampler; with several classes it
writes one labelled row per class plus unconditional rows, or only the class given with --class (a
multi-label model: the object set given with --labels). --interpolate walks between two images instead.
"""
from pathlib import Path

import torch
from torchvision.utils import save_image

from utils import cli
from utils.data.multilabel import describe, parse_label_set
from utils.figures import image_grid
from utils.generators import GENERATORS, generator
from utils.training.checkpoint import check_writable, figure_name

BATCH = 256   # images generated at a time for --n


def write_pngs(images, folder, prefix, start=0):
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images, start):
        save_image(image, folder / f"{prefix}_{i:05d}.png")


def chosen_condition(args, config):
    """(label, its name) from --class or --labels, or None when neither is given."""
    if not (args.class_name or args.labels):
        return None
    if not config.get("conditional"):
        cli.fail(f"--class and --labels need a model trained on several classes; this {config['model']} model is "
                 "unconditional")
    if args.labels:
        if not config.get("multi_label"):
            cli.fail("--labels needs a model trained with --labels (object sets); use --class here")
        label = parse_label_set(args.labels, config["classes"])
        return label, describe(label, config["classes"])
    if config.get("multi_label"):
        cli.fail("this model is conditioned on object sets: use --labels \"red cube,gray sphere\"")
    if args.class_name not in config["classes"]:
        cli.fail(f"unknown class {args.class_name!r} (choose from {', '.join(config['classes'])})")
    return torch.tensor(config["classes"].index(args.class_name)), args.class_name


def folder_labels(config, n, condition):
    """The labels of --n samples: the chosen condition, else every class in turn; None for no condition."""
    if condition is not None:
        return condition[0].expand(n, *condition[0].shape)
    if config.get("conditional") and not config.get("multi_label"):
        return torch.arange(n) % len(config["classes"])
    return None


def write_folder(kind, model, config, args, device, options, condition):
    """--n PNGs in --out-dir: class sub-folders for class labels (sample i keeps its index whatever --n)."""
    labels = folder_labels(config, args.n, condition)
    out = Path(args.out_dir)
    for start in range(0, args.n, BATCH):
        end = min(args.n, start + BATCH)
        chunk = labels[start:end] if labels is not None else None
        images = kind.api.generate(model, config, end - start, chunk, args.seed, device, options, first=start)
        if chunk is None or chunk.dim() > 1:
            write_pngs(images, out, config["model"], start)
            continue
        for c, name in enumerate(config["classes"]):
            index = torch.nonzero(labels[:end] == c).flatten()
            mine = (chunk == c).nonzero().flatten()
            write_pngs(images[mine], out / name, name, start=int((index < start).sum()))


def main(argv=None):
    p = cli.parser(__doc__)
    *others, last = [name for name, kind in GENERATORS.items() if kind.samples]
    p.add_argument("--model", required=True, help=f"{', '.join(others)} or {last}")
    p.add_argument("--n", type=int, default=0, help="also write N individual PNGs to --out-dir "
                   "(a conditional model: class sub-folders, balanced)")
    p.add_argument("--out-dir", default=None, help="folder for the --n individual PNGs")
    p.add_argument("--checkpoint", default=None, help="default models/Best_<MODEL>.pth")
    p.add_argument("--class", dest="class_name", default=None, help="conditional models: sample this flower class")
    p.add_argument("--labels", default=None, metavar="OBJECTS",
                   help="a model trained with --labels: sample this object set, e.g. \"red cube,gray sphere\"")
    p.add_argument("--interpolate", action="store_true",
                   help="write vis/interpolation_<MODEL>.png instead: AE/VAE decode the straight line between the "
                        "codes of two validation images; diffusion samples along the arc between two starting noises")
    cli.add_sampling_flags(p, "conditional samples (diffusion)")
    p.add_argument("--prior", choices=["normal", "gmm"], default="normal",
                   help="AE and VAE: decode z ~ N(0, I) (the handout's), or codes drawn from a Gaussian mixture fitted "
                        "to the training images' codes (writes vis/random_images_<MODEL>_gmm.png)")
    args = p.parse_args(argv)
    kind = generator(args.model, need="samples")
    if args.prior != "normal" and not kind.fitted_prior:
        cli.fail(f"--prior {args.prior} needs an autoencoder's codes (AE or VAE), not {args.model}")
    if args.n < 0:
        cli.fail("--n must be 0 or more")
    if args.n and not args.out_dir:
        cli.fail("--n needs --out-dir (the folder for the individual PNGs)")
    if args.interpolate and args.n:
        cli.fail("--interpolate writes one figure; leave out --n")
    check_writable("vis")
    if args.n:
        check_writable(args.out_dir, "--out-dir")
    device = cli.setup(args)
    model, ckpt = kind.load(args.checkpoint, device, args.image_size)
    config, options = ckpt["config"], cli.sampling_options(args, prior=args.prior, precision=args.precision)
    condition = chosen_condition(args, config)
    if args.interpolate:
        print("wrote " + kind.api.interpolation(model, ckpt, args.seed, device, options, condition, data=args.data,
                                                path=f"vis/interpolation_{figure_name(args.checkpoint, args.model)}.png"))
        return
    path = f"vis/random_images_{figure_name(args.checkpoint, args.model)}{'_gmm' * (args.prior == 'gmm')}.png"
    if condition is not None:
        label, name = condition
        guidance_text = "its default guidance" if args.guidance is None else f"guidance {args.guidance:g}"
        sampler = args.sampler or "its default sampler"
        image_grid(kind.api.generate(model, config, 64, label.expand(64, *label.shape), args.seed, device, options),
                   f"{args.model}: {name} ({guidance_text}, {sampler}, seed {args.seed})", path)
    else:
        kind.api.figure(model, ckpt, path, args.seed, device, options)
    print(f"wrote {path}")
    if args.n:
        write_folder(kind, model, config, args, device, options, condition)
        print(f"wrote {args.n} images to {args.out_dir}/")


if __name__ == "__main__":
    cli.run(main)
