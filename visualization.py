"""Originals above their reconstructions, for the training and validation splits: python visualization.py --model AE"""
import torch

from utils import cli
from utils.data.dataset import load_training_data, to_float
from utils.figures import image_rows
from utils.generators import generator
from utils.training.checkpoint import figure_name

MAX_N = 50   # images per row: a figure of thousands is unreadable, and huge


def main(argv=None):
    p = cli.parser(__doc__)
    p.add_argument("--model", required=True, help="MLPAE, AE or VAE")
    p.add_argument("--n", type=int, default=10, help="images per split")
    p.add_argument("--checkpoint", default=None, help="default models/Best_<MODEL>.pth")
    args = p.parse_args(argv)
    kind = generator(args.model, need="reconstructs")
    if not 1 <= args.n <= MAX_N:
        cli.fail(f"--n must be between 1 and {MAX_N} (images per row of the figure), got {args.n}")
    device = cli.setup(args)
    model, ckpt = kind.load(args.checkpoint, device, args.image_size)
    # The checkpoint knows its data, size and split: the figure shows exactly the images it was trained on.
    data = load_training_data(ckpt["config"], args.data)
    g = torch.Generator().manual_seed(args.seed)
    for split, idx in (("train", data.train_idx), ("valid", data.valid_idx)):
        chosen = idx[torch.randperm(len(idx), generator=g)[:args.n]]
        originals = to_float(data.images[chosen]).to(device)
        recon = kind.api.reconstruct(model, originals)
        mse = torch.mean((recon - originals) ** 2).item()
        path = f"vis/{split}_{figure_name(args.checkpoint, args.model)}.png"
        image_rows([originals, recon], ["original", "reconstruction"],
                   f"{args.model} on {split} images (epoch {ckpt['epoch']}, MSE {mse:.4f})", path)
        print(f"wrote {path}")


if __name__ == "__main__":
    cli.run(main)
