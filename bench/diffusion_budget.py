"""Diffusion quality at equal CPU minutes: our default against the reference recipe, scored like evaluate.py.

    python bench/diffusion_budget.py --data ../shared/flowers --minutes 20
    python bench/diffusion_budget.py --data ../shared/flowers --minutes 5 --configs default eps-linear eps-cosine

Each configuration trains for the same wall-clock minutes in this one process, then draws --n class-balanced
samples (ours: our fast sampler, DPM-Solver++ 20 steps, guidance 2; the reference: 50 DDIM steps) that are scored with the project's classifier features: FD, KID, precision/recall, class
accuracy. The reference is the recipe of the class-conditional student projects: diffusers' UNet2DModel
(block_out_channels (32, 64, 64), attention in the two lower blocks, the class as 4 extra input channels),
DDPMScheduler(1000, squaredcos_cap_v2), epsilon MSE, Adam 1e-3, batch 64, sampled with DDIMScheduler in 50
steps. diffusers is needed by this benchmark only (`pip install diffusers`). The VAE's row comes from
models/Best_VAE.pth when it exists.
"""
import argparse
import contextlib
import datetime
import io
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import diffusion  # noqa: E402
from utils.generators import GENERATORS, SamplingOptions  # noqa: E402
from utils.sampling import driver  # noqa: E402
import evaluate  # noqa: E402
import utils.data.images  # noqa: E402
from utils.data.dataset import load_dataset  # noqa: E402
from utils.evaluation.evaluator import yardstick  # noqa: E402

# name -> (diffusion.py flags, label)
OURS = {
    "default": ([], "ours: v-pred, cosine, min-SNR 5"),
    "eps-linear": (["--objective", "eps", "--schedule", "linear", "--min-snr", "0"], "ours: eps-pred, linear (DDPM paper)"),
    "eps-cosine": (["--objective", "eps", "--schedule", "cosine", "--min-snr", "0"], "ours: eps-pred, cosine"),
    "v-cosine": (["--objective", "v", "--schedule", "cosine", "--min-snr", "0"], "ours: v-pred, cosine, no min-SNR"),
}


def train_ours(flags, data_dir, minutes, seed):
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        diffusion.main(flags + ["--data", data_dir, "--minutes", str(minutes), "--seed", str(seed),
                                "--preview-every", "0", "--checkpoint", "models/Best_diffusion.pth"])
    model, ckpt = GENERATORS["diffusion"].load("models/Best_diffusion.pth")
    history = ckpt["history"]
    return (model, ckpt), len(history), sum(h["images_per_s"] for h in history) / len(history)


def sample_ours(trained, n, guidance, sampler, steps, seed):
    model, ckpt = trained
    labels = driver.balanced_labels(len(ckpt["config"]["classes"]), n)
    return driver.sample(model, ckpt["config"], n, labels, SamplingOptions(guidance, sampler, steps), seed), labels


class ReferenceModel(torch.nn.Module):
    """The student-project recipe: a diffusers UNet2DModel with the class as 4 constant input channels."""

    def __init__(self, image_size, num_classes):
        super().__init__()
        from diffusers import UNet2DModel
        self.class_emb = torch.nn.Embedding(num_classes, 4)
        self.unet = UNet2DModel(sample_size=image_size, in_channels=3 + 4, out_channels=3,
                                block_out_channels=(32, 64, 64),
                                down_block_types=("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
                                up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"))

    def forward(self, x, t, labels):
        c = self.class_emb(labels)[:, :, None, None].expand(-1, -1, *x.shape[-2:])
        return self.unet(torch.cat([x, c], dim=1), t).sample


def train_reference(data, minutes, seed, snapshots=(), on_snapshot=None):
    """Trained for `minutes`; on_snapshot(m, model, epochs, img/s) at each of `snapshots` minutes on the way
    (between steps, with the clock stopped)."""
    from diffusers import DDPMScheduler
    torch.manual_seed(seed)
    model = ReferenceModel(data.image_size, len(data.classes))
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    images, labels = data.images[data.train_idx], data.labels[data.train_idx]
    start, epochs, seen, pending = time.perf_counter(), 0, 0, sorted(snapshots)
    while time.perf_counter() - start < minutes * 60:
        order = torch.randperm(len(images))
        for i in range(0, len(order), 64):
            elapsed = time.perf_counter() - start
            if pending and elapsed >= pending[0] * 60:
                on_snapshot(pending.pop(0), model.eval(), epochs, seen / elapsed)
                start += time.perf_counter() - start - elapsed   # sampling time is not training time
            if time.perf_counter() - start >= minutes * 60:
                break
            idx = order[i:i + 64]
            x0 = images[idx].float() / 127.5 - 1
            noise = torch.randn_like(x0)
            t = torch.randint(0, 1000, (len(x0),))
            loss = F.mse_loss(model(scheduler.add_noise(x0, noise, t), t, labels[idx]), noise)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += len(idx)
        epochs += 1
    if pending:
        on_snapshot(pending.pop(0), model.eval(), epochs, seen / (time.perf_counter() - start))
    return model.eval(), epochs, seen / (time.perf_counter() - start)


@torch.no_grad()
def sample_reference(model, num_classes, n, steps, seed):
    from diffusers import DDIMScheduler
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
    scheduler.set_timesteps(steps)
    labels = driver.balanced_labels(num_classes, n)
    g = torch.Generator().manual_seed(seed)
    out = []
    for chunk in labels.split(250):
        x = torch.randn(len(chunk), 3, model.unet.config.sample_size, model.unet.config.sample_size, generator=g)
        for t in scheduler.timesteps:
            x = scheduler.step(model(x, t.expand(len(x)), chunk), t, x).prev_sample
        out.append(((x + 1) / 2).clamp(0, 1))
    return torch.cat(out), labels


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--minutes", type=float, default=20)
    p.add_argument("--configs", nargs="+", default=["default", "reference"],
                   help=f"from {', '.join(OURS)}, reference")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--steps", type=int, default=50, help="DDIM steps of the reference")
    p.add_argument("--sampler", default="dpm", help="our sampler (ddim, dpm)")
    p.add_argument("--our-steps", type=int, default=20, help="our sampler's steps")
    p.add_argument("--guidance", type=float, default=2.0, help="classifier-free guidance of our samples")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(os.cpu_count())
    data_dir = str(Path(args.data).resolve())
    utils.data.images.CACHE_DIR = Path.cwd() / utils.data.images.CACHE_DIR
    data = load_dataset(data_dir, 24, quiet=True)
    stick = yardstick(data, path=str(Path.cwd() / "models/Evaluator.pth"))
    vae_path = Path.cwd() / "models/Best_VAE.pth"
    print(f"# diffusion at equal CPU minutes on {args.data} (24px) — {datetime.date.today()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}; {args.n} class-balanced samples each, evaluator accuracy {stick.accuracy:.1%}")
    print("| configuration | objective | sampler | steps | minutes | epochs | train img/s | sample s / 64 | "
          "FD ↓ | KID ↓ | precision | recall | class acc |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        os.chdir(workdir)
        for name in args.configs:
            if name == "reference":
                model, epochs, images_per_s = train_reference(data, args.minutes, args.seed)
                t0 = time.perf_counter()
                sample_reference(model, len(data.classes), 64, args.steps, args.seed)
                per_64 = time.perf_counter() - t0
                samples, labels = sample_reference(model, len(data.classes), args.n, args.steps, args.seed)
                label, objective, sampler, steps = "reference: diffusers UNet2DModel", "eps, cosine", "DDIM", args.steps
            else:
                flags, label = OURS[name]
                trained, epochs, images_per_s = train_ours(flags, data_dir, args.minutes, args.seed)
                t0 = time.perf_counter()
                sample_ours(trained, 64, args.guidance, args.sampler, args.our_steps, args.seed)
                per_64 = time.perf_counter() - t0
                samples, labels = sample_ours(trained, args.n, args.guidance, args.sampler, args.our_steps, args.seed)
                objective = trained[1]["config"]["objective"] + ", " + trained[1]["config"]["schedule"]
                sampler, steps = args.sampler.upper(), args.our_steps
            q = evaluate.sample_quality(samples, stick, labels)
            rows.append((label, q))
            print(f"| {label} | {objective} | {sampler} | {steps} | {args.minutes:g} | {epochs} | "
                  f"{images_per_s:.0f} | {per_64:.1f} | {q['fd']:.2f} | {q['kid']:.4f} | "
                  f"{q['precision']:.3f} | {q['recall']:.3f} | {q['class_accuracy']:.1%} |", flush=True)
        if vae_path.exists():
            os.chdir(ROOT)
            vae, ckpt = GENERATORS["VAE"].load(str(vae_path))
            vae_samples = GENERATORS["VAE"].api.generate(vae, ckpt["config"], args.n, seed=args.seed)
            q = evaluate.sample_quality(vae_samples, stick)
            print(f"| VAE (models/Best_VAE.pth, epoch {ckpt['epoch']}) | — | decoder | 1 | — | {ckpt['epoch']} | — | — | "
                  f"{q['fd']:.2f} | {q['kid']:.4f} | {q['precision']:.3f} | {q['recall']:.3f} | — |")


if __name__ == "__main__":
    main()
