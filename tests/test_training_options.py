"""--augment, --precision bf16 and --compile on the trainers."""
import shutil

import pytest
import torch

import data_analysis
import diffusion
import train_script
from utils import cli
from utils.evaluation import evaluator
from utils.data.augment import augment
from utils.training.train import training_batches


def test_augment_keeps_shape_and_range_and_follows_the_generator():
    x = torch.rand(16, 3, 24, 24)
    a = augment(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, augment(x, torch.Generator().manual_seed(0)))
    assert not torch.equal(a, augment(x, torch.Generator().manual_seed(1))) and not torch.allclose(a, x)


def test_one_augment_for_training_the_evaluator_and_the_preview():
    assert evaluator.augment is augment and data_analysis.augment is augment


def test_augment_run(tiny_flowers, workdir, capsys):
    train_script.main(["--model", "AE", "--data", str(tiny_flowers), "--epochs", "1", "--threads", "1", "--augment"])
    assert "augmented (flips, crops)" in capsys.readouterr().out
    assert torch.load("models/Best_AE.pth", weights_only=True)["config"]["augment"] == "crop"
    diffusion.main(["--data", str(tiny_flowers), "--minutes", "0", "--epochs", "1", "--steps", "2", "--film-steps",
                    "2", "--base", "8", "--threads", "1", "--batch-size", "16", "--preview-every", "0", "--augment"])
    assert torch.load("models/Best_diffusion.pth", weights_only=True)["config"]["augment"] == "crop"


def test_bf16_on_the_cpu(tiny_flowers, workdir, capsys):
    train_script.main(["--model", "VAE", "--data", str(tiny_flowers), "--epochs", "1", "--threads", "1",
                       "--precision", "bf16"])
    assert "bf16 autocast" in capsys.readouterr().out
    ckpt = torch.load("models/Best_VAE.pth", weights_only=True)
    assert ckpt["config"]["precision"] == "bf16" and ckpt["model"]["fc_mu.weight"].dtype == torch.float32


@pytest.mark.skipif(not (shutil.which("gcc") or shutil.which("cc")), reason="torch.compile needs a C compiler on CPU")
def test_compile(tiny_flowers, workdir, capsys):
    train_script.main(["--model", "MLPAE", "--data", str(tiny_flowers), "--epochs", "1", "--threads", "1",
                       "--compile"])
    assert "torch.compile" in capsys.readouterr().out
    assert not any(k.startswith("_orig_mod.") for k in torch.load("models/Best_MLPAE.pth", weights_only=True)["model"])


def test_augment_flip_only_mirrors_and_crop_resamples():
    """--augment flip keeps every pixel (each image as it is or mirrored); crop resamples each one."""
    images = (torch.rand(16, 3, 12, 12) * 255).to(torch.uint8)
    labels = torch.zeros(16, dtype=torch.long)

    def first_batch(mode):
        return next(training_batches(images, labels, 16, "cpu", torch.Generator().manual_seed(0), mode))[0]

    plain, flipped, cropped = first_batch("none"), first_batch("flip"), first_batch("crop")
    mirrored = torch.tensor([torch.equal(f, p.flip(-1)) for f, p in zip(flipped, plain)])
    kept = torch.tensor([torch.equal(f, p) for f, p in zip(flipped, plain)])
    assert (mirrored | kept).all() and mirrored.any() and kept.any()
    assert not any(torch.equal(c, p) or torch.equal(c, p.flip(-1)) for c, p in zip(cropped, plain))


def test_auto_precision_is_bf16_only_where_the_hardware_multiplies_bf16(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    assert cli.precision_for("auto", cpu) == "fp32"            # emulated bf16 is slower than fp32
    assert cli.precision_for("bf16", cpu) == "bf16"            # a choice stays a choice
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert cli.precision_for("auto", cpu) == "bf16" and cli.precision_for("fp32", cpu) == "fp32"
    assert cli.precision_for("auto", torch.device("mps")) == "fp32"
    assert cli.precision_for("auto", torch.device("cuda")) == "bf16"
