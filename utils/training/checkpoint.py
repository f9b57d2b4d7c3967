"""Checkpoints: weights plus the configuration that rebuilds the model, written atomically."""
import errno
import glob
import os
import tempfile
from pathlib import Path

import torch

from utils.errors import UserError


def default_checkpoint(name):
    """Where a model's best weights go unless --checkpoint says otherwise."""
    return f"models/Best_{name}.pth"


def figure_name(checkpoint, name):
    """The name in a script's figure files: the model's for its default checkpoint, else the checkpoint's own
    (models/Best_AE_SGD.pth -> AE_SGD), so that a figure of another checkpoint never replaces the default's."""
    if checkpoint is None or Path(checkpoint).resolve() == Path(default_checkpoint(name)).resolve():
        return name
    return Path(checkpoint).stem.removeprefix("Best_")


def save_checkpoint(path, state):
    """Write to a temporary file of this process's own, flush it to disk, then rename: a run killed mid-write never
    leaves a broken checkpoint, and two processes never write into one temporary file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        try:
            torch.save(state, tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())   # on disk before the rename makes it the checkpoint
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)   # a full disk or Ctrl-C: no half-written file left behind
            raise
        sync_folder(path.parent)
    except OSError as e:
        raise UserError(cannot_write(path, e)) from None
    except RuntimeError as e:   # torch's writer reports a full disk as "[enforce fail at inline_container.cc]"
        raise UserError(f"cannot write {path}: the disk is full, or the write failed ({last_words(e, 60)}); free some "
                        "space and rerun (--resume continues a training)") from None


def check_writable(folder, flag=None):
    """Create `folder` if needed and write a scratch file into it: a read-only, full or misnamed folder is a
    one-line UserError before the work whose results would go there (os.access says yes to root, wrongly)."""
    folder = Path(folder)
    named = f"{flag} {folder}" if flag else str(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{named} is a file, not a folder: pass a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder) as f:
            f.write(b"x")
    except OSError as e:
        fix = "free some space" if e.errno == errno.ENOSPC else f"make {folder} writable, or pass another path"
        raise UserError(f"cannot write into {named}: {e.strerror or type(e).__name__} ({fix})") from None
    return folder


def cannot_write(path, error):
    """One line for an OSError while writing `path`: which file, why, and what to do."""
    if error.errno == errno.ENOSPC:
        return f"cannot write {path}: the disk is full (free some space and rerun; --resume continues a training)"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {path}: {error.strerror} (make {path.parent} writable, or pass another path)"
    return f"cannot write {path}: {error.strerror or type(error).__name__}"


def last_words(error, limit=100):
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def sync_folder(folder):
    """fsync the folder, so that the rename itself survives a power cut (where the platform allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def pid_alive(pid):
    """Whether a process of this PID exists (a temporary file or lock of a dead one is stale)."""
    if os.name == "nt":   # os.kill(pid, 0) would send Ctrl-C there: ask for a handle instead
        import ctypes
        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)   # PROCESS_QUERY_LIMITED_INFORMATION
        if handle:
            ctypes.windll.kernel32.CloseHandle(handle)
        return bool(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True   # it exists, as another user's process
    return True


def clean_stale_temporaries(path):
    """Delete the temporary files that killed saves of `path` left behind (<name>.<pid>.tmp of dead processes,
    and the <name>.tmp of older versions)."""
    path = Path(path)
    for tmp in path.parent.glob(f"{glob.escape(path.name)}.*tmp"):
        pid = tmp.name[len(path.name) + 1:-len(".tmp")]
        if tmp.name == f"{path.name}.tmp" or (pid.isdigit() and not pid_alive(int(pid))):
            tmp.unlink(missing_ok=True)


def load_checkpoint(path, model=None, image_size=None, resume=False):
    """Load with weights_only=True; a wrong model name or image size, or a resume file where a best model is wanted
    (resume=False), is a one-line UserError."""
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
    if "state" in ckpt and not resume:
        best = path.with_name(f"Best_{path.stem.removeprefix('last_')}{path.suffix}")
        raise UserError(f"{path} is a resume file (the state --resume continues from), not a trained model: pass "
                        f"{best}")
    if model is not None and config["model"] != model:
        raise UserError(f"{path} is a checkpoint of {config['model']}, not {model}")
    if image_size is not None and config["image_size"] != image_size:
        raise UserError(f"{path} was trained at {config['image_size']}px, not {image_size}px")
    return ckpt


def resume_path_for(checkpoint):
    """The resume file beside a best-model checkpoint: models/Best_AE_SGD.pth -> models/last_AE_SGD.pth."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"last_{checkpoint.stem.removeprefix('Best_')}{checkpoint.suffix}")


def unfinished_path_for(checkpoint):
    """Where a new run keeps its best model while the Best file holds an earlier run's finished one:
    models/Best_AE.pth -> models/Best_AE.pth.unfinished, moved over the Best file when the run finishes."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.name + ".unfinished")


def move_into_place(unfinished, checkpoint):
    """A finished run's best model replaces the Best file in one rename (nothing to do where the run wrote the Best
    file itself, or never improved on it)."""
    unfinished, checkpoint = Path(unfinished), Path(checkpoint)
    if unfinished == checkpoint or not unfinished.exists():
        return
    try:
        os.replace(unfinished, checkpoint)
    except OSError as e:
        raise UserError(cannot_write(checkpoint, e)) from None
    sync_folder(checkpoint.parent)


def load_resume(path, model, image_size=None):
    """The full training state that --resume continues from; its absence is a one-line UserError."""
    if not Path(path).exists():
        raise UserError(f"--resume: no resume file {path} (it is written after the first epoch: train once without "
                        f"--resume, with the same --checkpoint)")
    ckpt = load_checkpoint(path, model=model, image_size=image_size, resume=True)
    if "state" not in ckpt:
        raise UserError(f"{path} is a best-model checkpoint, not a resume file")
    return ckpt


def recorded_best(path):
    """(validation objective, epoch, validation loss) that a best-model checkpoint records; None when there is no
    readable one. A resumed run replaces the Best file only with a better model than this."""
    if not Path(path).exists():
        return None
    try:
        ckpt = load_checkpoint(path)
    except UserError:
        return None
    if "valid_loss" not in ckpt:
        return None
    entry = next((h for h in ckpt.get("history") or [] if h.get("epoch") == ckpt.get("epoch")), {})
    objective = ckpt.get("valid_objective", entry.get("valid_objective", ckpt["valid_loss"]))
    return dict(objective=objective, epoch=ckpt.get("epoch"), valid_loss=ckpt["valid_loss"])
