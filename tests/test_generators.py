"""One interface for every generator: no script asks for a model by name, resume and evaluation keep the saved run,
and sample i is the same image whatever --n and the batch."""
import shutil

import pytest
import torch

import diffusion
import evaluate
import random_generation
import train_script
from conftest import ROOT
from utils import cli
from utils.evaluation import evaluator as evaluator_module
from utils.data.dataset import load_dataset, to_float
from utils.generators import GENERATORS, SamplingOptions
from utils.sampling.driver import sample
from utils.models import training_defaults

TINY_DIFFUSION = ["--minutes", "0", "--epochs", "1", "--steps", "2", "--film-steps", "2", "--base", "8",
                  "--threads", "1", "--batch-size", "16", "--preview-every", "0"]


def test_every_registered_kind_offers_what_the_scripts_call():
    for kind in GENERATORS.values():
        needed = ["load"] + ["generate", "evaluation_samples", "figure", "interpolation"] * kind.samples \
            + ["reconstruct"] * kind.reconstructs
        assert all(callable(getattr(kind.api, name, None)) for name in needed), kind.name


def one_line_error(main, argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.run(lambda: main(argv))
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1
    return err


@pytest.mark.parametrize("flags, named", [(["--data", "OTHER"], "--data"), (["--split-seed", "1"], "--split-seed"),
                                          (["--base", "16"], "--base")])
def test_resume_refuses_a_contradicting_flag_and_leaves_the_resume_file(flags, named, tiny_flowers, workdir, capsys):
    other = workdir / "other_flowers"
    shutil.copytree(tiny_flowers, other)
    diffusion.main(["--data", str(tiny_flowers), *TINY_DIFFUSION])
    resume_file = workdir / "models/last_diffusion.pth"
    before = resume_file.read_bytes()
    flags = [str(other) if f == "OTHER" else f for f in flags]
    err = one_line_error(diffusion.main, ["--resume", "--epochs", "2", *flags, "--threads", "1"], capsys)
    assert f"{named} " in err and "contradicts the run being resumed" in err
    assert resume_file.read_bytes() == before
    # The same flag with the saved value, and the flags that may change, resume fine.
    diffusion.main(["--resume", "--data", str(tiny_flowers), "--epochs", "2", "--threads", "1", "--steps", "2",
                    "--film-steps", "2"])
    assert len(torch.load(resume_file, weights_only=True)["state"]["history"]) == 2


def test_autoencoder_resume_refuses_another_learning_rate(tiny_flowers, workdir, capsys):
    train_script.main(["--model", "AE", "--data", str(tiny_flowers), "--epochs", "1", "--threads", "1"])
    err = one_line_error(train_script.main, ["--model", "AE", "--resume", "--lr", "0.5", "--epochs", "2"], capsys)
    assert "--lr 0.5 contradicts" in err and f"lr = {training_defaults('AE')['lr']}" in err


def test_resume_trains_on_the_saved_data_whatever_the_default_folder(tiny_flowers, workdir, capsys):
    diffusion.main(["--data", str(tiny_flowers), "--split-seed", "2", *TINY_DIFFUSION])
    diffusion.main(["--resume", "--epochs", "2", "--threads", "1", "--steps", "2", "--film-steps", "2"])
    out = capsys.readouterr().out
    assert out.count(f"data       {tiny_flowers}:") == 2 and "built-in synthetic" not in out
    assert torch.load("models/Best_diffusion.pth", weights_only=True)["config"]["split_seed"] == 2


def test_the_ith_sample_does_not_depend_on_n_or_the_batch(tiny_flowers, workdir):
    diffusion.main(["--data", str(tiny_flowers), *TINY_DIFFUSION])
    for n in (4, 12):
        random_generation.main(["--model", "diffusion", "--class", "calendula", "--seed", "3", "--n", str(n),
                                "--out-dir", f"n{n}", "--steps", "3", "--threads", "1"])
    for i in range(4):
        name = f"calendula/calendula_{i:05d}.png"
        assert (workdir / "n4" / name).read_bytes() == (workdir / "n12" / name).read_bytes()
    model, ckpt = diffusion.load()
    labels = torch.arange(6) % 3
    options = SamplingOptions(2.0, "dpm", 3)
    one_batch = sample(model, ckpt["config"], 6, labels, options, seed=5)
    small_batches = sample(model, ckpt["config"], 6, labels, options, seed=5, batch_size=4)
    assert torch.allclose(one_batch, small_batches, atol=1e-6)
    assert not torch.allclose(one_batch[0], one_batch[3])


def test_evaluation_reconstructs_the_checkpoints_own_validation_images(tiny_flowers, workdir, monkeypatch):
    train_script.main(["--model", "AE", "--data", str(tiny_flowers), "--epochs", "1", "--split-seed", "1",
                       "--threads", "1"])
    seen = []
    real = evaluate.reconstruction_quality
    monkeypatch.setattr(evaluate, "reconstruction_quality",
                        lambda kind, model, x, *rest: seen.append(x) or real(kind, model, x, *rest))
    monkeypatch.setattr(evaluator_module, "load_or_train_evaluator",
                        lambda data, *args, **kwargs: (evaluate_stub_classifier(data), 1.0))
    evaluate.main(["--model", "AE", "--n", "12", "--threads", "1"])
    own = load_dataset(str(tiny_flowers), 24, split_seed=1)
    default = load_dataset(str(tiny_flowers), 24, split_seed=0)
    assert not torch.equal(own.valid_idx, default.valid_idx)
    assert torch.equal(seen[0], to_float(own.images[own.valid_idx]))


def evaluate_stub_classifier(data):
    """An untrained feature network: this test is about which images are scored, not how well."""
    from utils.evaluation.evaluator import FlowerClassifier
    model = FlowerClassifier(len(data.classes), data.channels, data.image_size).eval()
    model.source = "an untrained stub"   # the file a real one was read from, which the report names
    return model


def test_no_import_cycles():
    """Every import between the project's own modules (function-level ones too) points one way."""
    import ast
    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
               for p in ROOT.rglob("*.py") if not {".venv", "tests", "bench"} & set(p.parts)}
    edges = {}
    for name, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        edges[name] = {m for m in imported if m in modules and m != name}

    def reaches(start, goal, seen):
        return any(m == goal or (m not in seen and not seen.add(m) and reaches(m, goal, seen)) for m in edges[start])
    assert [name for name in modules if reaches(name, name, set())] == []
