"""--resume for the autoencoders: an interrupted run continues exactly; SIGKILL never leaves a broken checkpoint."""
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import train_script
import utils.training.train
from conftest import ROOT
from utils import cli
from utils.training.checkpoint import load_checkpoint, load_resume, resume_path_for, save_checkpoint
from utils.models import build_model


def train(tiny, *flags):
    train_script.main(["--data", str(tiny), "--threads", "1", "--seed", "5", *flags])


def last_state(path):
    return torch.load(path, weights_only=True)["state"]


def losses(history):
    return [(h["train_loss"], h["valid_loss"]) for h in history]


def test_resume_file_sits_beside_the_checkpoint():
    assert resume_path_for("models/Best_AE.pth") == Path("models/last_AE.pth")
    assert resume_path_for("models/Best_AE_SGD.pth") == Path("models/last_AE_SGD.pth")   # runs do not clash
    assert resume_path_for("models/Best_diffusion.pth") == Path("models/last_diffusion.pth")  # diffusion.RESUME
    assert resume_path_for("out/mine.pth") == Path("out/last_mine.pth")


@pytest.mark.parametrize("model", ["AE", "VAE"])  # the VAE draws noise: the RNG state must be resumed too
def test_resume_matches_an_uninterrupted_run(model, tiny_flowers, workdir):
    train(tiny_flowers, "--model", model, "--epochs", "3")
    straight = last_state(f"models/last_{model}.pth")
    train(tiny_flowers, "--model", model, "--epochs", "1")
    train(tiny_flowers, "--model", model, "--epochs", "3", "--resume")
    resumed = last_state(f"models/last_{model}.pth")
    assert losses(resumed["history"]) == losses(straight["history"])       # bit for bit, on the CPU
    # The first epoch of each run is marked (its one-time costs are not the training's pace: train.py's steady).
    assert [h["starts_run"] for h in resumed["history"]] == [True, True, False]
    assert all(torch.equal(resumed["model"][k], straight["model"][k]) for k in straight["model"])
    assert torch.equal(resumed["optimizer"]["state"][0]["exp_avg"], straight["optimizer"]["state"][0]["exp_avg"])


def test_ctrl_c_saves_the_last_finished_epoch_and_resume_continues_exactly(tiny_flowers, workdir, monkeypatch):
    train(tiny_flowers, "--model", "VAE", "--epochs", "5")
    straight = last_state("models/last_VAE.pth")
    writes = []
    real_save, real_epoch = utils.training.train.save_checkpoint, utils.training.train.train_epoch

    def recording_save(path, state):
        writes.append((Path(path).name, state["epoch"]))
        real_save(path, state)

    def ctrl_c_in_epoch_4(*args, **kwargs):
        if args[6] == 4:   # the epoch number
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)
    monkeypatch.setattr(utils.training.train, "save_checkpoint", recording_save)
    monkeypatch.setattr(utils.training.train, "train_epoch", ctrl_c_in_epoch_4)
    monkeypatch.setattr(utils.training.train, "RESUME_EVERY_S", 1e9)   # only the first epoch and the interrupt write
    with pytest.raises(KeyboardInterrupt):
        train(tiny_flowers, "--model", "VAE", "--epochs", "5")
    assert [epoch for name, epoch in writes if name == "last_VAE.pth"] == [1, 3]
    monkeypatch.setattr(utils.training.train, "train_epoch", real_epoch)
    writes.clear()
    train(tiny_flowers, "--model", "VAE", "--epochs", "5", "--resume")
    assert [epoch for name, epoch in writes if name == "last_VAE.pth"] == [4, 5]   # its first epoch, the end
    resumed = last_state("models/last_VAE.pth")
    assert losses(resumed["history"]) == losses(straight["history"])
    assert all(torch.equal(resumed["model"][k], straight["model"][k]) for k in straight["model"])


def test_resume_takes_the_saved_configuration(tiny_flowers, workdir, capsys):
    train(tiny_flowers, "--model", "AE", "--epochs", "1", "--lr", "0.002", "--encoding-dim", "16")
    train(tiny_flowers, "--model", "AE", "--epochs", "2", "--resume")   # the saved lr and encoding_dim, not the defaults
    out = capsys.readouterr().out
    assert "training   adam lr 0.002" in out and "resuming after epoch 1" in out
    ckpt = load_resume("models/last_AE.pth", "AE")
    assert ckpt["config"]["encoding_dim"] == 16 and ckpt["config"]["lr"] == 0.002 and ckpt["epoch"] == 2


def test_resume_without_a_resume_file_is_one_line(workdir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.run(lambda: train_script.main(["--model", "AE", "--resume", "--checkpoint", "models/Best_AE_SGD.pth"]))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no resume file models/last_AE_SGD.pth" in err


def test_a_crash_mid_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "Best_AE.pth"
    save_checkpoint(path, dict(config=dict(model="AE"), epoch=1))

    def dying_save(state, file):  # the process dies with half a file written
        Path(file).write_bytes(b"half a checkpoint")
        raise KeyboardInterrupt
    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, dict(config=dict(model="AE"), epoch=2))
    assert load_checkpoint(path, model="AE")["epoch"] == 1


def test_sigkill_mid_training_leaves_loadable_checkpoints(tiny_flowers, workdir):
    # Thousands of tiny epochs: the best checkpoint and the resume file are rewritten many times a second.
    child = subprocess.Popen([sys.executable, str(ROOT / "train_script.py"), "--model", "AE", "--data",
                              str(tiny_flowers), "--epochs", "100000", "--patience", "0", "--threads", "1"],
                             cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    best = workdir / "models/Best_AE.pth"
    try:
        deadline = time.monotonic() + 60
        while not best.exists():
            assert child.poll() is None, child.stderr.read()
            assert time.monotonic() < deadline, "no checkpoint within a minute"
            time.sleep(0.01)
        time.sleep(0.5)
        assert child.poll() is None, "training ended before it could be killed"
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    ckpt = load_checkpoint(best, model="AE", image_size=24)
    build_model(ckpt["config"]).load_state_dict(ckpt["model"])
    # The resume file is written after the first epoch (0.5 s before the kill) and then every RESUME_EVERY_S.
    epoch = load_resume(workdir / "models/last_AE.pth", "AE")["epoch"]
    assert epoch >= 1 and ckpt["epoch"] >= 1
    train_script.main(["--model", "AE", "--threads", "1", "--resume", "--epochs", str(epoch + 1)])
    assert load_resume("models/last_AE.pth", "AE")["epoch"] == epoch + 1
