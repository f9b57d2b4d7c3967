"""The evaluator's yardstick: degraded images score worse the more they are degraded, and the checks say so."""
import functools
import json

import pytest
import torch

import evaluate
from utils.evaluation import ladder
import utils.evaluation.evaluator as evaluator_module
from bench import evaluator_checks
from utils.data.dataset import load_dataset, to_float
from utils.evaluation.evaluator import load_or_train_evaluator, yardstick


@pytest.fixture
def quick_evaluator(monkeypatch):
    """A few epochs are enough on the synthetic flowers (the network and its losses stay the default ones)."""
    monkeypatch.setattr(evaluator_module, "train_classifier",
                        functools.partial(evaluator_module.train_classifier, epochs=4))


@pytest.fixture(scope="module")
def synthetic():
    data = load_dataset("synthetic", 24, quiet=True)
    keep = torch.cat([torch.nonzero(data.labels[data.train_idx] == c).flatten()[:150] for c in range(3)])
    data.train_idx = data.train_idx[keep]    # 450 training and 120 validation images keep the test fast
    return data


def test_blur_and_noise_ladders_grow_on_the_synthetic_flowers_and_a_reversed_rung_fails(synthetic, tmp_path,
                                                                                         quick_evaluator):
    stick = yardstick(synthetic, path=tmp_path / "Evaluator.pth", log=lambda line: None)
    rows, _ = evaluate.calibration_rows(synthetic, stick, 1000, torch.Generator().manual_seed(0))
    by_name = {r["row"]: r["fd"] for r in rows}
    real = by_name["real (held-out)"]
    blur = [by_name[f"real, blurred (sigma {s} px)"] for s in ladder.BLUR_SIGMAS]
    noise = [by_name[f"real + noise (sigma {s})"] for s in ladder.NOISE_SIGMAS]
    assert real < blur[0] < blur[1] < blur[2]
    assert real < noise[0] < noise[1]
    assert by_name["Gaussian fit to pixels"] > real
    assert not [f for f in evaluator_checks.ladder_failures(rows) if "blurred" in f or "noise" in f]
    # The same rows with two rungs swapped: sigma 0.5 now scores like sigma 2, and the checks say so.
    blurred = [r for r in rows if r.get("ladder") == "blur"]
    blurred[0]["fd"], blurred[2]["fd"] = blurred[2]["fd"], blurred[0]["fd"]
    failures = evaluator_checks.ladder_failures(rows)
    assert any("blurred (sigma 1 px)" in f and "is not above" in f for f in failures)


def test_the_check_script_exits_non_zero_when_a_ladder_is_broken(tmp_path, quick_evaluator, monkeypatch, capsys,
                                                                 tiny_flowers):
    monkeypatch.setattr(ladder, "BLUR_SIGMAS", (2, 1, 0.5))    # a ladder that runs backwards
    code = evaluator_checks.main(["--data", str(tiny_flowers), "--workdir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1 and "FAILED real, blurred (sigma 1 px)" in out and "| real (held-out) |" in out


def test_training_snapshots_must_improve():
    better = [dict(row="1 min", fd=3.0, recall=0.2), dict(row="3 min", fd=2.0, recall=0.4),
              dict(row="15 min", fd=1.0, recall=0.6)]
    assert evaluator_checks.training_failures(better) == []
    worse_fd = [better[0], dict(better[1], fd=3.5), better[2]]
    assert any("3 min: FD" in f for f in evaluator_checks.training_failures(worse_fd))
    worse_recall = [better[0], better[1], dict(better[2], recall=0.3)]
    assert any("15 min: recall" in f for f in evaluator_checks.training_failures(worse_recall))


def test_a_new_version_retrains_the_stored_evaluator(tiny_flowers, tmp_path, monkeypatch):
    data = load_dataset(str(tiny_flowers), 24, quiet=True)
    calls = []
    real_train = evaluator_module.train_classifier
    monkeypatch.setattr(evaluator_module, "train_classifier",
                        lambda d, log=print: calls.append(1) or real_train(d, epochs=1, log=log))
    path = tmp_path / "Evaluator.pth"
    load_or_train_evaluator(data, path=path)
    load_or_train_evaluator(data, path=path)
    assert len(calls) == 1
    monkeypatch.setattr(evaluator_module, "VERSION", evaluator_module.VERSION + 1)
    load_or_train_evaluator(data, path=path)
    assert len(calls) == 2


def test_each_data_set_and_size_keeps_its_own_stored_evaluator(tiny_flowers, workdir, monkeypatch):
    calls = []
    real_train = evaluator_module.train_classifier
    monkeypatch.setattr(evaluator_module, "train_classifier",
                        lambda d, log=print: calls.append(d.image_size) or real_train(d, epochs=1, log=log))
    small, large = (load_dataset(str(tiny_flowers), size, quiet=True) for size in (24, 32))
    for data in (small, large, small, large):
        load_or_train_evaluator(data)
    assert calls == [24, 32]          # scoring the 32 px set left the 24 px evaluator in place
    assert (workdir / f"models/Evaluator_{tiny_flowers.name}_24px.pth").exists()


def test_evaluate_scores_a_folder_of_samples(tiny_flowers, workdir, monkeypatch, capsys, quick_evaluator):
    # The real images of two classes, written at another size: the folder's class names give class accuracy.
    from torchvision.utils import save_image
    data = load_dataset(str(tiny_flowers), 24, quiet=True)
    for c in (0, 2):
        folder = workdir / "samples" / data.classes[c]
        folder.mkdir(parents=True)
        for i in torch.nonzero(data.labels == c).flatten()[:4].tolist():
            image = torch.nn.functional.interpolate(to_float(data.images[i:i + 1]), size=40, mode="bilinear")
            save_image(image, folder / f"{i}.png")
    evaluate.main(["--samples", "samples", "--data", str(tiny_flowers), "--json", "--threads", "1"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    row = rows[-1]
    assert row["row"] == "samples" and row["n"] == 8 and row["fd"] > 0 and 0 <= row["class_accuracy"] <= 1
    assert [r["row"] for r in rows[:2]] == ["real (held-out)", "real, blurred (sigma 0.5 px)"]
    assert not (workdir / "vis" / "report.md").exists()   # scoring a folder leaves the models' report alone


def test_the_curve_trains_each_budget_of_a_decaying_recipe_on_its_own():
    """A learning rate that decays to the end of --minutes (the default's) cannot be snapshotted from one resumed run:
    each budget is its own run. A constant one (the baseline's) can."""
    from bench import diffusion_curve
    assert diffusion_curve.budget_dependent("default")
    assert diffusion_curve.budget_dependent("p2-cosine")
    assert not diffusion_curve.budget_dependent("baseline")
    assert not diffusion_curve.budget_dependent("fm-patch2")


def test_the_checks_score_with_the_shipped_evaluator_without_training(tiny_flowers, workdir, monkeypatch, capsys,
                                                                       quick_evaluator):
    from bench import ship_evaluators
    monkeypatch.setattr(evaluator_module, "SHIPPED", workdir / "shipped")
    checks = ["--data", str(tiny_flowers), "--workdir", str(workdir / "checks"), "--shipped"]
    assert evaluator_checks.main(checks) == 1 and "FAILED no evaluator shipped" in capsys.readouterr().out
    ship_evaluators.main(["--data", str(tiny_flowers)])
    shipped = workdir / "shipped" / f"Evaluator_{tiny_flowers.name}_24px.pth"
    assert f"shipped {shipped}" in capsys.readouterr().out
    monkeypatch.setattr(evaluator_module, "train_classifier", lambda *a, **k: pytest.fail("trained one"))
    evaluator_checks.main(checks)
    out = capsys.readouterr().out
    assert f"loaded from {shipped}" in out and "| real (held-out) |" in out
