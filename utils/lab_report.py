"""What a teaching assistant opens after `python run_lab.py`: diffusion_report.md (the handout's bonus report) and
vis/index.html (one self-contained page with every artefact of the run).

Every number here is read from the run's own files: the checkpoints (configuration and per-epoch history), the
logs in log/ and the evaluation in vis/report.json. Nothing is typed by hand.
"""
import base64
import html
import json
from pathlib import Path

from utils.evaluation.table import html_table, markdown_table
from utils.generators import GENERATORS
from utils.sampling.objectives import OBJECTIVES
from utils.training.checkpoint import load_checkpoint, load_resume, resume_path_for

# What this diffusion model does differently from the DDPM paper (Ho et al. 2020), by configuration key.
INNOVATIONS = [
    ("objective", "flow", "Flow matching (Lipman et al. 2023; rectified flow, Liu et al. 2022) instead of DDPM's noise "
     "prediction: the network predicts the velocity eps - x0 of the straight path x_t = (1 - t) x0 + t eps, which a "
     "deterministic sampler follows in few steps."),
    ("objective", "v", "v-prediction (Salimans & Ho 2022) instead of noise prediction: well scaled at every noise level."),
    ("schedule", "cosine", "Cosine noise schedule (Nichol & Dhariwal 2021) instead of the linear one."),
    ("time_sampling", "logit-normal", "Training times drawn logit-normally (Esser et al. 2024): more of the budget "
     "where the image's layout is decided."),
    ("conditional", True, "Class-conditional with classifier-free guidance (Ho & Salimans 2022): labels dropped with "
     "probability p_uncond in training, so one network gives both predictions that guidance mixes."),
    ("patch", 2, "The U-Net sees 2x2 blocks of pixels as one position (pixel unshuffle), so its first level runs at "
     "half the resolution, for a quarter of the convolutions' cost."),
    ("upsample", "transposed", "2x2 stride-2 transposed convolutions go up a level of the U-Net, a ninth of the "
     "multiply-adds of a 3x3 convolution at the finer grid."),
    ("lr_decay", "cosine", "The learning rate warms up and then falls to zero along a cosine at the end of the "
     "wall-clock budget, so training ends on small steps."),
    ("ema", 0.0, "Sampling from the last weights: with the learning rate decayed to zero they measured better than an "
     "exponential moving average at these budgets."),
    ("ema", 0.999, "Sampling from an exponential moving average of the weights (with a warm-up suited to short runs)."),
    ("precision", "bf16", "Trained under bfloat16 autocast (the default on a CPU that multiplies bfloat16 in hardware): "
     "about 16 % more images per second on an AMX CPU, with the same quality per epoch."),
]
ALWAYS = [
    "A compact U-Net with FiLM-style time and class conditioning and self-attention only at the lowest resolution, "
    "sized to train in minutes on a laptop CPU.",
    "Few-step deterministic samplers (DPM-Solver++(2M), DDIM/Euler, Heun) instead of 1,000 ancestral steps.",
    "A wall-clock training budget (`--minutes`), counted across `--resume`.",
]


def differences(config):
    """The INNOVATIONS this configuration has, then ALWAYS. A flow model's saved --schedule is never used (its path
    is the straight line), so it is not claimed."""
    straight = OBJECTIVES[config["objective"]].path == "straight"
    return [text for key, value, text in INNOVATIONS
            if config.get(key) == value and not (straight and key == "schedule")] + ALWAYS


def training_summary(path):
    """(configuration, parameters, epochs, minutes, mean images/s, best validation loss) of a saved model. The
    epochs and minutes are the whole run's, from the resume file beside it: the best model's own history stops at
    the epoch it was saved."""
    ckpt, resume = load_checkpoint(path), resume_path_for(path)
    history = (load_resume(resume, ckpt["config"]["model"])["state"] if resume.exists() else ckpt)["history"]
    weights = ckpt.get("ema") or ckpt["model"]
    return dict(config=ckpt["config"], parameters=sum(v.numel() for v in weights.values() if v.is_floating_point()),
                epochs=len(history), minutes=sum(h["seconds"] for h in history) / 60,
                images_per_s=sum(h["images_per_s"] for h in history) / len(history),
                best_valid=min(h["valid_loss"] for h in history))


def evaluation(path="vis/report.json"):
    return json.loads(Path(path).read_text()) if Path(path).exists() else None


def diffusion_report(path="diffusion_report.md"):
    """The bonus report: settings, network, training, evaluation, what differs from DDPM, and the figures."""
    kind = GENERATORS["diffusion"]
    run = training_summary(kind.checkpoint)
    config = run["config"]
    changes = differences(config)
    lines = ["# Diffusion report", "",
             "Written by `run_lab.py` from this run's checkpoint (`models/Best_diffusion.pth`), its log "
             "(`log/train_diffusion.out`) and its evaluation (`vis/report.json`).", "",
             "## The run", "",
             f"- data: {config['data']}, {config['image_size']}x{config['image_size']} px, classes "
             f"{', '.join(config['classes'])}",
             f"- network: `Diffuser` U-Net, base width {config['base']}, {run['parameters']:,} parameters",
             f"- objective: {config['objective']}; min-SNR weight {config['min_snr']:g}; label dropout "
             f"{config['p_uncond']:g}; EMA decay {config['ema']:g}",
             f"- training: Adam lr {config['lr']:g}, batch {config['batch_size']}, {run['epochs']} epochs in "
             f"{run['minutes']:.1f} minutes ({run['images_per_s']:.0f} images/s); best validation loss "
             f"{run['best_valid']:.4f}", ""]
    report = evaluation()
    if report:
        lines += ["## Evaluation", "", f"{report['settings']['features']}; {report['settings']['reference']}.", "",
                  markdown_table(report["rows"]), ""]
    lines += ["## What differs from the DDPM paper", "", *(f"- {text}" for text in changes), "",
              "Each change's effect on quality per CPU-minute is measured in docs/diffusion.md "
              "(bench/diffusion_curve.py).", "",
              "## The denoising process", "",
              "Each pair of rows follows one sample from pure noise (left) to the final image: the noisy image x_t, "
              "and under it the clean image the network predicts at that step.", "",
              "![denoising](vis/denoise_process_diffusion.png)", "", "## Samples", "",
              "![samples](vis/random_images_diffusion.png)", "", "![loss](vis/loss_diffusion.png)", ""]
    Path(path).write_text("\n".join(lines))
    return path


def embedded(path):
    return f'<img src="data:image/png;base64,{base64.b64encode(Path(path).read_bytes()).decode()}" alt="{path}">'


def figures(paths):
    return "".join(f"<figure>{embedded(p)}<figcaption>{html.escape(str(p))}</figcaption></figure>"
                   for p in paths if Path(p).exists())


def log_summary(log):
    """A log's header and its last lines (the summary): what the model was and how training ended."""
    lines = Path(log).read_text().strip().splitlines()
    head = [line for line in lines[:8] if not line.startswith("epoch")]
    return "\n".join(head + ["..."] + lines[-4:])


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Flower generative models: lab results</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}}
figure{{display:inline-block;margin:.5em;vertical-align:top}}figure img{{max-width:520px;image-rendering:pixelated}}
figcaption{{font-size:80%;color:#555}}table{{border-collapse:collapse;font-size:85%}}
td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}td:first-child{{text-align:left}}
pre{{background:#f4f4f4;padding:.5em;font-size:80%;overflow-x:auto}}</style></head>
<body><h1>Flower generative models: lab results</h1>
<p>Every figure, log summary and number of this run of <code>python run_lab.py</code>, in one file.</p>
{sections}
<script>window.addEventListener("load", () => {{
  const ok = [...document.images].filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.imagesLoaded = ok + "/" + document.images.length;
}});</script>
</body></html>
"""


def section(title, logs, images, extra=""):
    body = "".join(f"<pre>{html.escape(log_summary(log))}</pre>" for log in logs if Path(log).exists())
    return f"<h2>{html.escape(title)}</h2>{body}{extra}{figures(images)}"


def evaluation_table(report):
    if not report:
        return "<p>No evaluation yet (<code>python evaluate.py</code> writes vis/report.json).</p>"
    settings = "".join(f"<li>{html.escape(k)}: {html.escape(str(v))}</li>" for k, v in report["settings"].items())
    return f"<ul>{settings}</ul>{html_table(report['rows'])}"


def index_page(path="vis/index.html"):
    """Every artefact of the run on one page, images embedded, so the file alone is the whole result."""
    parts = [("Part 1: MLP autoencoder", "MLPAE", ["log/train_MLPAE.out"]),
             ("Part 2: convolutional autoencoder", "AE", ["log/train_AE_SGD.out", "log/train_AE.out"]),
             ("Part 3: variational autoencoder", "VAE", ["log/train_VAE.out"]),
             ("Part 4: diffusion", "diffusion", ["log/train_diffusion.out"])]
    sections = []
    for title, name, logs in parts:
        images = [*(f"vis/loss_{Path(log).stem.removeprefix('train_')}.png" for log in logs),
                  *(f"vis/{figure}_{name}.png" for figure in ("train", "valid", "random_images", "denoise_process",
                                                               "interpolation")), f"vis/random_images_{name}_gmm.png"]
        sections.append(section(title, logs, images))
    sections.append(section("Evaluation", [], ["vis/compare.png"], evaluation_table(evaluation())))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(PAGE.format(sections="\n".join(sections)))
    return path
