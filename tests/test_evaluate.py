"""The flower classifier behind the metrics, and the report with a model missing."""
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import evaluate
from utils.evaluation import ladder
import train_script
import utils.evaluation.evaluator as evaluator_module
from utils.data.dataset import load_dataset
from utils.evaluation.evaluator import accuracy, augment, load_or_train_evaluator, train_classifier, yardstick
from utils.evaluation.table import markdown_table


@pytest.fixture(scope="module")
def synthetic_data():
    return load_dataset("synthetic", 24, quiet=True)


def test_classifier_learns_the_synthetic_flowers(synthetic_data):
    small = synthetic_data
    keep = torch.cat([torch.nonzero(small.labels[small.train_idx] == c).flatten()[:60] for c in range(3)])
    small.train_idx = small.train_idx[keep]   # 180 training images keep the test fast
    model, valid_accuracy = train_classifier(small, epochs=12, batch_size=32, log=lambda s: None)
    assert valid_accuracy >= 0.9
    x, y = small.split("valid")
    assert accuracy(model, x, y) == pytest.approx(valid_accuracy)
    assert model.features(torch.rand(5, 3, 48, 48)).shape == (5, model.feature_dim)   # other sizes are resized


def test_augment_keeps_shape_and_range():
    x = torch.rand(6, 3, 24, 24)
    y = augment(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1 and not torch.equal(x, y)


def test_evaluator_is_reused_until_the_data_changes(tiny_flowers, workdir, monkeypatch):
    data = load_dataset(str(tiny_flowers), 24)
    calls = []
    real_train = evaluator_module.train_classifier
    monkeypatch.setattr(evaluator_module, "train_classifier",
                        lambda d, log=print: calls.append(1) or real_train(d, epochs=1, log=log))
    load_or_train_evaluator(data)
    load_or_train_evaluator(data)
    assert len(calls) == 1
    data.images = data.images.flip(-1)
    load_or_train_evaluator(data)
    assert len(calls) == 2


def test_a_shipped_evaluator_is_used_only_for_its_own_data(tiny_flowers, workdir, monkeypatch, tmp_path_factory):
    data = load_dataset(str(tiny_flowers), 24)
    calls = []
    real_train = evaluator_module.train_classifier
    monkeypatch.setattr(evaluator_module, "train_classifier",
                        lambda d, log=print: calls.append(1) or real_train(d, epochs=1, log=log))
    shipped = tmp_path_factory.mktemp("shipped")
    monkeypatch.setattr(evaluator_module, "SHIPPED", shipped)
    trained, _ = load_or_train_evaluator(data)
    (workdir / evaluator_module.evaluator_path(data)).rename(shipped / Path(evaluator_module.evaluator_path(data)).name)
    loaded, _ = load_or_train_evaluator(data)   # a fresh clone: nothing in models/
    assert len(calls) == 1 and Path(loaded.source).parent == shipped
    x = torch.rand(4, 3, 24, 24)
    assert torch.equal(loaded.embed(x), trained.eval().embed(x))
    data.images = data.images.flip(-1)          # the user's own images: trained anew, into models/
    assert not Path(load_or_train_evaluator(data)[0].source).is_relative_to(shipped)
    assert len(calls) == 2


def test_report_with_a_missing_model(tiny_flowers, workdir, quick_evaluator, capsys):
    # batch 8: enough steps in one epoch of the tiny set for reconstructions that resemble their images
    train_script.main(["--model", "AE", "--data", str(tiny_flowers), "--epochs", "1", "--batch-size", "8",
                       "--threads", "1"])
    evaluate.main(["--model", "all", "--n", "20", "--threads", "1"])
    report = (workdir / "vis/report.md").read_text()
    assert "| VAE |" in report and "not trained yet — run python train_script.py --model VAE" in report
    assert "not trained yet — run python diffusion.py" in report
    rows = {r["row"]: r for r in json.loads((workdir / "vis/report.json").read_text())["rows"]}
    ae = rows["AE"]
    assert ae["n"] == 20 and ae["fd"] > 0 and 0 <= ae["precision"] <= 1 and ae["compression"] == 27
    assert 0 < ae["ssim"] < 1 and ae["psnr"] > 5 and ae["recon_fd"] > rows["real (held-out)"]["fd"]
    assert "LatentAE" not in rows          # a bonus model gets a row only once it is trained here
    assert rows["real (held-out)"]["n"] == 3     # the tiny set holds out one image per class
    assert (workdir / "vis/compare.png").exists()


def test_reconstruction_recall_tells_faithful_from_collapsed_reconstructions(synthetic_data, tmp_path,
                                                                             quick_evaluator):
    stick = yardstick(synthetic_data, path=tmp_path / "Evaluator.pth", log=lambda line: None)
    images = stick.train     # reconstructed against the reference they make up: a faithful copy covers all of it
    model = SimpleNamespace(encoding_dim=8)

    def quality(reconstruct):
        kind = SimpleNamespace(api=SimpleNamespace(reconstruct=lambda m, x: reconstruct(x)))
        return evaluate.reconstruction_quality(kind, model, images, stick, n=len(images), seed=0)

    faithful = quality(lambda x: x)
    collapsed = quality(lambda x: x.mean(0, keepdim=True).expand_as(x))   # every image decoded to the mean image
    assert faithful["recon_recall"] == 1 and faithful["mse"] == 0
    assert collapsed["recon_recall"] < 0.1 and collapsed["recon_fd"] > faithful["recon_fd"]


def test_gaussian_baseline_matches_the_pixel_statistics():
    g = torch.Generator().manual_seed(0)
    mixing = torch.tensor([[1.0, 0.5, 0.0, 0.0], [0.0, 1.0, 0.5, 0.0], [0.0, 0.0, 1.0, -0.5], [0.0, 0.0, 0.0, 1.0]])
    train = (0.5 + 0.08 * torch.randn(400, 4, generator=g) @ mixing).view(400, 1, 2, 2)  # correlated, inside [0, 1]
    samples = ladder.gaussian_baseline(train, 20000, g)
    assert torch.allclose(samples.mean(0), train.mean(0), atol=0.01)
    assert torch.allclose(samples.flatten(1).T.cov(), train.flatten(1).T.cov(), atol=0.001)


def test_table_shows_the_columns_some_row_fills_in_a_fixed_order():
    table = markdown_table([dict(row="real", n=259, fd=1.344, status="calibration"),
                            dict(row="latent", sampling="codes", minutes=17.9, fd=3.15, per_64=2.61)])
    header, rule, real, latent = table.splitlines()
    assert header == "| row | sampling | minutes | n | FD ↓ | s / 64 samples | status |"
    assert rule == "|---" * 7 + "|"
    assert real == "| real | — | — | 259 | 1.34 | — | calibration |"
    assert latent == "| latent | codes | 17.9 | — | 3.15 | 2.6 | — |"
