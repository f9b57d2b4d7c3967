"""Checkpoints: weights plus the configuration that rebuilds the model, written atomically."""
import os
from pathlib import Path

import torch

from utils.errors import UserError


def default_checkpoint(name):
    """Where a model's best weights go unless --checkpoint says otherwise."""
    return f"models/Best_{name}.pth"


def save_checkpoint(path, state):
    """Write to a temporary file, then rename: a run killed mid-write never leaves a broken checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path, model=None, image_size=None):
    """Load with weights_only=True; a wrong model name or image size is a one-line UserError."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"cannot read checkpoint {path}: {type(e).__name__}") from None
    config = ckpt.get("config") if isinstance(ckpt, dict) else None
    if not isinstance(config, dict) or "model" not in config:
        raise UserError(f"{path} is not a checkpoint of this project (no configuration inside)")
    if model is not None and config["model"] != model:
        raise UserError(f"{path} is a checkpoint of {config['model']}, not {model}")
    if image_size is not None and config["image_size"] != image_size:
        raise UserError(f"{path} was trained at {config['image_size']}px, not {image_size}px")
    return ckpt


def resume_path_for(checkpoint):
    """The resume file beside a best-model checkpoint: models/Best_AE_SGD.pth -> models/last_AE_SGD.pth."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"last_{checkpoint.stem.removeprefix('Best_')}{checkpoint.suffix}")


def load_resume(path, model, image_size=None):
    """The full training state that --resume continues from; its absence is a one-line UserError."""
    if not Path(path).exists():
        raise UserError(f"--resume: no resume file {path} (it is written after the first epoch: train once without "
                        f"--resume, with the same --checkpoint)")
    ckpt = load_checkpoint(path, model=model, image_size=image_size)
    if "state" not in ckpt:
        raise UserError(f"{path} is a best-model checkpoint, not a resume file")
    return ckpt
