"""A new training on a checkpoint that holds a finished model keeps its own best model beside it, in
<checkpoint>.unfinished, and moves it over the Best file only when it finishes: a run that is interrupted, killed or
diverges leaves the earlier model as it was (docs/faults.md)."""
from pathlib import Path

import pytest
import torch

import train_script
import utils.training.train
from utils import cli
from utils.training.checkpoint import load_checkpoint

BEST, UNFINISHED = Path("models/Best_MLPAE.pth"), Path("models/Best_MLPAE.pth.unfinished")


def train(tiny, *flags):
    train_script.main(["--model", "MLPAE", "--data", str(tiny), "--threads", "1", "--patience", "0", *flags])


def stop_in_epoch(monkeypatch, epoch, how):
    """train_epoch raises KeyboardInterrupt (Ctrl-C) or returns nan (a diverged run) in `epoch`."""
    real_epoch = utils.training.train.train_epoch

    def epoch_or_fault(*args, **kwargs):
        if args[6] == epoch:
            if how == "ctrl-c":
                raise KeyboardInterrupt
            return float("nan")
        return real_epoch(*args, **kwargs)
    monkeypatch.setattr(utils.training.train, "train_epoch", epoch_or_fault)


@pytest.mark.parametrize("how", ["ctrl-c", "nan"])
def test_an_unfinished_new_run_leaves_the_finished_model_alone(how, tiny_flowers, workdir, monkeypatch):
    train(tiny_flowers, "--epochs", "1", "--seed", "1")
    finished = BEST.read_bytes()
    real_epoch = utils.training.train.train_epoch
    stop_in_epoch(monkeypatch, 3, how)
    with pytest.raises(SystemExit):
        cli.run(lambda: train(tiny_flowers, "--epochs", "4", "--seed", "2"))
    assert BEST.read_bytes() == finished
    assert load_checkpoint(UNFINISHED)["epoch"] in (1, 2)   # the new run's own best, for --resume
    monkeypatch.setattr(utils.training.train, "train_epoch", real_epoch)
    train(tiny_flowers, "--epochs", "4", "--resume")   # finishes the new run: its model replaces the earlier one
    assert not UNFINISHED.exists()
    ckpt = load_checkpoint(BEST)
    assert ckpt["config"]["seed"] == 2 and len(ckpt["history"]) == ckpt["epoch"] >= 1


def test_a_finished_new_run_replaces_the_model_and_a_first_run_writes_it_directly(tiny_flowers, workdir, monkeypatch):
    writes = []
    real_save = utils.training.train.save_checkpoint
    monkeypatch.setattr(utils.training.train, "save_checkpoint",
                        lambda path, state: writes.append(Path(path).name) or real_save(path, state))
    train(tiny_flowers, "--epochs", "2", "--seed", "1")
    assert "Best_MLPAE.pth" in writes   # nothing to keep: the first run writes the Best file as it goes
    writes.clear()
    UNFINISHED.write_bytes(b"a killed run's, abandoned by the next new run")
    train(tiny_flowers, "--epochs", "2", "--seed", "2")
    assert "Best_MLPAE.pth" not in writes and "Best_MLPAE.pth.unfinished" in writes
    assert not UNFINISHED.exists()
    assert torch.load(BEST, weights_only=True)["config"]["seed"] == 2
