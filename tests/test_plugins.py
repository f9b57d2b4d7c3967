"""A new kind of model, a new sampler and a new noise path are each one piece of code registered once: defined
here, in the test, they run through the project's scripts with no project file edited."""
import json
import math

import pytest
import torch
from PIL import Image
from torch import nn

import diffusion
import evaluate
import random_generation
import train_script
from utils.figures import image_grid
from utils.generators import GENERATORS, Generator
from utils.kinds import decoder
from utils.sampling.objectives import OBJECTIVES, Flow
from utils.sampling.paths import PATHS, Straight
from utils.sampling.samplers import SAMPLERS, Sampler, per_sample_noise, sample_generators

TINY_DIFFUSION = ["--minutes", "0", "--epochs", "1", "--steps", "2", "--film-steps", "2", "--base", "8",
                  "--threads", "1", "--batch-size", "16", "--preview-every", "0"]


class PixelGaussian(nn.Module):
    """Every pixel an independent Gaussian: the simplest generator there is."""

    def __init__(self, channels, image_size):
        super().__init__()
        self.mean = nn.Parameter(torch.full((channels, image_size, image_size), 0.5))
        self.log_std = nn.Parameter(torch.full((channels, image_size, image_size), math.log(0.3)))


class ToyKind:
    """The generator interface (utils/generators.py) of PixelGaussian, as a kind module would write it."""
    DEFAULTS = {"adam": dict(lr=0.05, batch_size=16, epochs=3)}
    SIZE_MULTIPLE = 1
    LOSS_UNIT = "negative log-likelihood per pixel"
    FLAGS = ()

    @staticmethod
    def build(config):
        return PixelGaussian(config["channels"], config["image_size"])

    @staticmethod
    def loss_fn(config):
        def nll(model, x, labels, epoch):
            loss = (model.log_std + (x - model.mean).square() / (2 * model.log_std.exp().square())).mean()
            return loss, loss
        return nll

    @staticmethod
    def describe(config, model):
        return [f"model      a Gaussian per pixel, {sum(p.numel() for p in model.parameters())} parameters"]

    after_training = staticmethod(decoder.after_training)

    @classmethod
    def load(cls, name, checkpoint=None, device="cpu", image_size=None):
        return decoder.load(cls.build, name, checkpoint, device, image_size)

    @staticmethod
    @torch.no_grad()
    def generate(model, config, n, labels=None, seed=0, device="cpu", options=None, first=0):
        z = per_sample_noise(sample_generators(seed, first, n), model.mean.shape)
        return (model.mean + model.log_std.exp() * z).clamp(0, 1)

    @classmethod
    def evaluation_samples(cls, model, config, n, seed, device, label_sets=None, options=None):
        return cls.generate(model, config, n, seed=seed), None

    @staticmethod
    def sampling(config, options=None):
        return "independent pixels"

    @classmethod
    def figure(cls, model, ckpt, path, seed, device, options=None):
        image_grid(cls.generate(model, ckpt["config"], 16, seed=seed), "a Gaussian per pixel", path)

    @staticmethod
    def interpolation(model, ckpt, seed, device, options=None, condition=None, data=None, path=None):
        raise NotImplementedError


def test_a_toy_generator_kind_trains_samples_and_is_evaluated(tiny_flowers, workdir, quick_evaluator, monkeypatch,
                                                             capsys):
    monkeypatch.setitem(GENERATORS, "Toy", Generator("Toy", ToyKind, "python train_script.py --model Toy",
                                                     reconstructs=False, lab=False))
    train_script.main(["--model", "Toy", "--data", str(tiny_flowers), "--threads", "1"])
    log = capsys.readouterr().out
    assert "a Gaussian per pixel" in log and "negative log-likelihood per pixel" in log
    model, ckpt = GENERATORS["Toy"].load()
    assert ckpt["epoch"] >= 1 and model.log_std.exp().mean() < 0.3   # it learned: the flowers vary less than that
    random_generation.main(["--model", "Toy", "--n", "3", "--out-dir", "toy", "--threads", "1"])
    assert (workdir / "vis/random_images_Toy.png").exists() and len(list((workdir / "toy").glob("*.png"))) == 3
    evaluate.main(["--model", "Toy", "--n", "10", "--threads", "1"])
    rows = {row["row"]: row for row in json.loads((workdir / "vis/report.json").read_text())["rows"]}
    assert rows["Toy"]["status"] == f"epoch {ckpt['epoch']}" and rows["Toy"]["fd"] > 0
    assert rows["Toy"]["sampling"] == "independent pixels"


@pytest.fixture
def tiny_diffusion(tiny_flowers, workdir):
    diffusion.main(["--data", str(tiny_flowers), *TINY_DIFFUSION])
    return workdir


def test_a_toy_sampler_is_offered_by_random_generation(tiny_diffusion, monkeypatch, capsys):
    def toy(denoise, x, path, steps, fresh_noise=None, trace=None):
        return torch.zeros_like(x)   # the middle of the pixels' range: mid-grey images
    monkeypatch.setitem(SAMPLERS, "toy", Sampler(toy, "mid-grey, whatever the network says"))
    random_generation.main(["--model", "diffusion", "--sampler", "toy", "--n", "3", "--out-dir", "toy",
                            "--threads", "1"])
    images = sorted(tiny_diffusion.glob("toy/*/*.png"))
    assert len(images) == 3 and all(Image.open(p).getextrema() == ((128, 128),) * 3 for p in images)

    with pytest.raises(SystemExit):   # and --help offers it, from the registry
        random_generation.main(["--help"])
    assert "toy: mid-" in " ".join(capsys.readouterr().out.split())   # however argparse wraps its help


def test_a_toy_noise_path_trains_and_samples_in_diffusion_py(tiny_flowers, workdir, monkeypatch):
    used = []

    class Bent(Straight):
        """The straight path with its times bent towards the noise: t -> sqrt(t)."""
        @classmethod
        def from_config(cls, config):
            used.append("built")
            return cls("uniform")

        def coefficients(self, t):
            used.append("coefficients")
            return super().coefficients(torch.as_tensor(t, dtype=torch.float32).sqrt())

    class BentFlow(Flow):
        path = "bent"
    monkeypatch.setitem(PATHS, "bent", Bent)
    monkeypatch.setitem(OBJECTIVES, "bent-flow", BentFlow())
    diffusion.main(["--data", str(tiny_flowers), "--objective", "bent-flow", *TINY_DIFFUSION])
    assert torch.load("models/Best_diffusion.pth", weights_only=True)["config"]["objective"] == "bent-flow"
    assert used.count("built") >= 3 and "coefficients" in used   # trained, previewed and sampled on it
    assert (workdir / "vis/random_images_diffusion.png").exists()
