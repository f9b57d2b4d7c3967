"""Decode random codes z ~ N(0, I) into images: python random_generation.py --model VAE"""
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


def main(argv=None):
    p = cli.parser(__doc__)
    p.add_argument("--model", required=True, help="AE or VAE")
    p.add_argument("--n", type=int, default=0, help="also write N individual PNGs to --out-dir")
    p.add_argument("--out-dir", default=None, help="folder for the --n individual PNGs")
    p.add_argument("--checkpoint", default=None, help="default models/Best_<MODEL>.pth")
    args = p.parse_args(argv)
    check_model_name(args.model, allowed=("AE", "VAE"))
    if args.n and not args.out_dir:
        cli.fail("--n needs --out-dir (the folder for the individual PNGs)")
    device = cli.setup(args)
    model, _ = load_trained(args.model, args.checkpoint, device, args.image_size)
    g = torch.Generator().manual_seed(args.seed)
    images = sample(model, 64, g, device)
    path = f"vis/random_images_{args.model}.png"
    image_grid(images, f"{args.model}: 64 decodings of z ~ N(0, I) (seed {args.seed})", path)
    print(f"wrote {path}")
    if args.n:
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for start in range(0, args.n, 256):
            for i, image in enumerate(sample(model, min(256, args.n - start), g, device), start):
                save_image(image, out / f"{args.model}_{i:05d}.png")
        print(f"wrote {args.n} images to {out}/")


if __name__ == "__main__":
    cli.run(main)
