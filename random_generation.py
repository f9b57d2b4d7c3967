"""Generate images from a trained model: python random_generation.py --model VAE

AE and VAE decode random codes z ~ N(0, I). The diffusion model runs its sampler; with several classes it
writes one labelled row per class plus unconditional rows, or only the class given with --class.
"""
from pathlib import Path

import torch
from torchvision.utils import save_image

from utils import cli
from utils.figures import image_grid
from utils.models import check_model_name, load_trained


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


def diffusion_samples(args, device):
    import diffusion
    model, ckpt = diffusion.load_trained(args.checkpoint or diffusion.CHECKPOINT, device, args.image_size)
    config = ckpt["config"]
    label = diffusion.class_index(config, args.class_name) if args.class_name else None
    g = torch.Generator().manual_seed(args.seed)
    draw = lambda n, labels, guidance: diffusion.sample(  # noqa: E731
        model, config, n, labels, guidance, args.sampler, args.steps, g, device)
    path = "vis/random_images_diffusion.png"
    if label is not None:
        image_grid(draw(64, torch.full((64,), label), args.guidance),
                   f"diffusion: {args.class_name} (guidance {args.guidance:g}, {args.sampler}, seed {args.seed})", path)
    else:
        diffusion.sample_grid(model, config, path, g, device, args.guidance, args.sampler, args.steps)
    print(f"wrote {path}")
    if not args.n:
        return
    out = Path(args.out_dir)
    if not config["conditional"]:
        write_pngs(draw(args.n, None, 0), out, "diffusion")
        return
    labels = torch.full((args.n,), label) if label is not None else diffusion.balanced_labels(len(config["classes"]), args.n)
    images = draw(args.n, labels, args.guidance)
    for c, name in enumerate(config["classes"]):
        if (labels == c).any():
            write_pngs(images[labels == c], out / name, name)


def main(argv=None):
    p = cli.parser(__doc__)
    p.add_argument("--model", required=True, help="AE, VAE or diffusion")
    p.add_argument("--n", type=int, default=0, help="also write N individual PNGs to --out-dir "
                   "(a conditional diffusion model: class sub-folders, balanced)")
    p.add_argument("--out-dir", default=None, help="folder for the --n individual PNGs")
    p.add_argument("--checkpoint", default=None, help="default models/Best_<MODEL>.pth")
    p.add_argument("--class", dest="class_name", default=None, help="diffusion only: sample this flower class")
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
    if args.model != "diffusion" and args.class_name:
        cli.fail(f"--class needs the diffusion model; {args.model} is not class-conditional")
    device = cli.setup(args)
    (diffusion_samples if args.model == "diffusion" else autoencoder_samples)(args, device)
    if args.n:
        print(f"wrote {args.n} images to {args.out_dir}/")


if __name__ == "__main__":
    cli.run(main)
