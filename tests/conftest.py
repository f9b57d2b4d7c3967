"""Shared fixtures: the repository on sys.path, one torch thread, and a tiny synthetic image folder."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torchvision.utils import save_image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# One thread per test process: pytest-xdist runs one worker per core (pyproject.toml), and two threads per
# worker would thrash on tiny tensors.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_flowers(tmp_path_factory):
    """A folder of 3 classes x 10 synthetic flower PNGs at 24 px: real files through the real loader."""
    from utils.data.synthetic import synthetic_flowers
    root = tmp_path_factory.mktemp("tiny_flowers")
    images, labels, classes = synthetic_flowers(n_per_class=10, image_size=24, seed=1)
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = root / classes[label]
        folder.mkdir(exist_ok=True)
        save_image(image.float() / 255, folder / f"{i:03d}.png")
    return root


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run in an empty folder, as a student would from a fresh clone (models/, vis/, log/ appear here)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_script(*args, cwd):
    """Run one of the project's scripts as the user would; returns the CompletedProcess."""
    return subprocess.run([sys.executable, str(ROOT / args[0]), *args[1:], "--threads", "1"],
                          cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture
def quick_evaluator(monkeypatch):
    """The report's feature network trained for 2 epochs: enough to score with, a fraction of the real 12."""
    import utils.evaluation.evaluator as evaluator_module
    real_train = evaluator_module.train_classifier
    monkeypatch.setattr(evaluator_module, "train_classifier", lambda d, log=print: real_train(d, epochs=2, log=log))


@pytest.fixture
def samplers_used(monkeypatch):
    """The names of the diffusion samplers called, in order (each still runs)."""
    import dataclasses
    from utils.sampling.samplers import SAMPLERS
    used = []
    def spy(name, sampler):
        return dataclasses.replace(sampler, run=lambda *args: used.append(name) or sampler.run(*args))
    for name, sampler in list(SAMPLERS.items()):
        monkeypatch.setitem(SAMPLERS, name, spy(name, sampler))
    return used
