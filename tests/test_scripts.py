"""End to end: every command on a tiny synthetic image folder, checking the files written and the one-line errors."""
import base64
import io
import json
import re
import shutil
import subprocess
import sys

import pytest
import torch
from PIL import Image

import diffusion
import random_generation
import run_lab
import train_script
import visualization
from conftest import ROOT, run_script
from utils import cli
from utils.errors import UserError
from utils.lab_report import differences


def train(tiny, *flags):
    train_script.main(["--data", str(tiny), "--epochs", "2", "--threads", "1", *flags])


def test_train_visualise_generate(tiny_flowers, workdir, capsys):
    for model in ("MLPAE", "AE", "VAE"):
        train(tiny_flowers, "--model", model)
        assert (workdir / f"models/Best_{model}.pth").exists()
        assert (workdir / f"vis/loss_{model}.png").exists()
        ckpt = torch.load(workdir / f"models/Best_{model}.pth", weights_only=True)
        assert ckpt["config"]["model"] == model and ckpt["config"]["image_size"] == 24
        assert ckpt["config"]["data"] == str(tiny_flowers) and "split_seed" in ckpt["config"]
        visualization.main(["--model", model, "--threads", "1"])
        assert (workdir / f"vis/train_{model}.png").exists() and (workdir / f"vis/valid_{model}.png").exists()
    log = capsys.readouterr().out
    assert "model      VAE" in log and "epoch   2/2" in log and "best       epoch" in log

    random_generation.main(["--model", "VAE", "--n", "5", "--out-dir", "samples", "--seed", "3"])
    assert (workdir / "vis/random_images_VAE.png").exists()
    assert sorted(p.name for p in (workdir / "samples").iterdir()) == [f"VAE_{i:05d}.png" for i in range(5)]
    first = (workdir / "samples/VAE_00004.png").read_bytes()
    random_generation.main(["--model", "VAE", "--n", "5", "--out-dir", "samples", "--seed", "3"])
    assert (workdir / "samples/VAE_00004.png").read_bytes() == first     # --seed makes it repeatable


def test_training_is_reproducible(tiny_flowers, workdir):
    losses = []
    for _ in range(2):
        train(tiny_flowers, "--model", "AE", "--seed", "7")
        losses.append(torch.load("models/Best_AE.pth", weights_only=True)["history"])
    assert [h["train_loss"] for h in losses[0]] == [h["train_loss"] for h in losses[1]]


def test_log_is_clean_when_redirected(tiny_flowers, workdir):
    result = run_script("MLPAE_train_script.py", "--data", str(tiny_flowers), "--epochs", "2", cwd=workdir)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("model      MLPAE") and "parameters" in lines[0]
    assert [l for l in lines if l.startswith("epoch ")][0].split()[:2] == ["epoch", "1/2"]
    assert "\r" not in result.stdout and "it/s" not in result.stdout and "%|" not in result.stdout
    assert (workdir / "models/Best_MLPAE.pth").exists()


def test_synthetic_default_announced_on_first_line(workdir):
    # Only the first line matters: the process is stopped before it draws the synthetic set and trains.
    child = subprocess.Popen([sys.executable, str(ROOT / "train_script.py"), "--model", "MLPAE", "--threads", "1"],
                             cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = child.stdout.readline()
    finally:
        child.kill()
        child.wait()
    assert first.startswith("note: ./flowers not found, using the built-in synthetic"), child.stderr.read()


SCRIPTS = {"train_script.py": train_script, "visualization.py": visualization,
           "random_generation.py": random_generation}


@pytest.mark.parametrize("args, message", [
    (["train_script.py", "--model", "GAN"], "unknown model 'GAN'"),
    (["train_script.py", "--model", "AE", "--data", "no/such/folder"], "data folder not found"),
    (["train_script.py", "--model", "AE", "--data", "."], "no images found"),
    (["train_script.py", "--model", "AE", "--image-size", "30", "--data", "."], "multiple of 4"),
    (["visualization.py", "--model", "AE"], "checkpoint not found"),
    (["random_generation.py", "--model", "MLPAE"], "unknown model 'MLPAE'"),
    (["random_generation.py", "--model", "VAE", "--n", "3"], "--n needs --out-dir"),
    (["train_script.py", "--model", "AE", "--optimizer", "rmsprop"], "invalid choice"),
])
def test_bad_input_is_one_line(args, message, workdir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.run(lambda: SCRIPTS[args[0]].main(args[1:]))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err


def test_bad_input_from_the_shell_has_no_traceback(workdir):
    result = run_script("train_script.py", "--model", "AE", "--data", "missing", cwd=workdir)
    assert result.returncode == 2 and result.stderr.strip() == (
        "error: data folder not found: missing (or name a dataset: mnist, fashion-mnist, cifar10, flowers102 or synthetic)")


def test_checkpoint_of_another_model_or_size(tiny_flowers, workdir):
    train(tiny_flowers, "--model", "AE", "--epochs", "1")
    shutil.copy("models/Best_AE.pth", "models/Best_VAE.pth")
    with pytest.raises(UserError, match="is a checkpoint of AE, not VAE"):
        visualization.main(["--model", "VAE"])
    with pytest.raises(UserError, match="trained at 24px, not 32px"):
        random_generation.main(["--model", "AE", "--image-size", "32"])


def test_run_lab_writes_every_submission_file(tiny_flowers, workdir, capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", ["run_lab.py", "--data", str(tiny_flowers), "--quick", "--threads", "1"])
    run_lab.main()
    out = capsys.readouterr().out
    assert "MISSING" not in out
    for path in run_lab.ARTEFACTS:
        assert (workdir / path).exists(), path
    assert (workdir / "log/train_AE_SGD.out").read_text().count("training   sgd") == 1
    rows = {row["row"]: row for row in json.loads((workdir / "vis/report.json").read_text())["rows"]}
    assert rows["diffusion"]["sampling"] == "dpm, 2 steps, guidance 1.5"     # --quick's steps reach the report
    assert rows["VAE"]["sampling"] == "random codes"
    check_report_and_page(workdir)


def test_the_lab_keeps_its_minutes_by_shortening_diffusion_on_a_slow_machine():
    default = diffusion.MINUTES
    assert run_lab.diffusion_minutes(70, 5) == default      # machine D: Parts 1-3 in 70 s, the full budget
    slow = run_lab.diffusion_minutes(135, 5)                # machine C (docs/machines.md): 135 s
    assert run_lab.MIN_DIFFUSION_MINUTES < slow < default
    assert 135 * (1 + run_lab.AFTER_SHARE) + slow * 60 == pytest.approx(5 * 60, abs=1)   # the rest kept back
    assert run_lab.diffusion_minutes(400, 5) == run_lab.MIN_DIFFUSION_MINUTES   # never below the floor
    assert run_lab.diffusion_minutes(400, 0) == default     # 0: no limit


def test_a_negative_lab_budget_is_a_one_line_error(workdir, capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", ["run_lab.py", "--lab-minutes", "-1"])
    with pytest.raises(SystemExit) as exit:
        cli.run(run_lab.main)
    assert exit.value.code == 2
    assert capsys.readouterr().err.strip() == "error: --lab-minutes must be at least 0 (0: no limit), got -1"
    assert not any(workdir.iterdir())   # refused before anything was written


def check_report_and_page(workdir):
    """diffusion_report.md's figures exist and its numbers are the checkpoint's; vis/index.html embeds every image
    as a PNG that decodes and holds the evaluation table; a headless Chromium (when installed) loads them all."""
    report = (workdir / "diffusion_report.md").read_text()
    for figure in re.findall(r"!\[[^]]*\]\(([^)]+)\)", report):
        assert (workdir / figure).exists(), figure
    ckpt = torch.load(workdir / "models/last_diffusion.pth", weights_only=True)   # the whole run's epochs
    assert f"{len(ckpt['state']['history'])} epochs in" in report and f"base width {ckpt['config']['base']}," in report
    evaluation = json.loads((workdir / "vis/report.json").read_text())
    assert f"{evaluation['rows'][0]['fd']:.2f}" in report
    page = (workdir / "vis/index.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == page.count("<img") >= 15 and '<table id="evaluation">' in page
    for data in images:
        Image.open(io.BytesIO(base64.b64decode(data))).verify()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser:
        dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
                              "--dump-dom", (workdir / "vis/index.html").resolve().as_uri()],
                             capture_output=True, text=True, timeout=120).stdout
        assert f'data-images-loaded="{len(images)}/{len(images)}"' in dom and 'id="evaluation"' in dom


def test_the_report_claims_only_what_the_run_did():
    flow = dict(objective="flow", schedule="cosine", precision="bf16", conditional=True)
    v = dict(flow, objective="v", precision="fp32")
    assert not any("noise schedule" in line for line in differences(flow))   # a straight path has no schedule
    assert any("Cosine noise schedule" in line for line in differences(v))
    assert any("bfloat16" in line for line in differences(flow)) and not any("bfloat16" in line for line in differences(v))
