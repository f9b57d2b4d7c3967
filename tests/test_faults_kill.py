"""kill -9 at several points of a training and of its resumed runs: the best model never goes backwards."""
import signal
import subprocess
import sys

import pytest
import torch

import train_script
from conftest import ROOT
from utils import cli


def recorded_score(path):
    """The validation score a best-model checkpoint says it reached."""
    ckpt = torch.load(path, weights_only=True)
    return ckpt["history"][-1]["valid_objective"], ckpt["epoch"]


def training(tiny, *flags):
    return subprocess.Popen([sys.executable, "-u", str(ROOT / "train_script.py"), "--model", "MLPAE", "--data",
                             str(tiny), "--patience", "0", "--threads", "1", *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def kill_after(child, epochs):
    """SIGKILL once the run has logged `epochs` epochs (somewhere in the next epoch's training or saving)."""
    seen, lines = 0, []
    for line in child.stdout:
        lines.append(line)
        seen += line.startswith("epoch")
        if seen == epochs:
            break
    assert child.poll() is None, "training ended before it could be killed:\n" + "".join(lines)
    child.send_signal(signal.SIGKILL)
    child.wait()


@pytest.mark.slow
def test_best_never_gets_worse_after_kill_and_resume(tiny_flowers, workdir):
    # Many 10-ms epochs: the Best file is replaced many times a second while the resume file is written only after
    # the first epoch and every 30 s, so after each kill Best is far ahead of the resume file.
    best = workdir / "models/Best_MLPAE.pth"
    kill_after(training(tiny_flowers, "--epochs", "100000"), 60)
    scores = [recorded_score(best)]
    for epochs in (1, 20):   # kills right after a resumed run's first save, and later on
        kill_after(training(tiny_flowers, "--epochs", "100000", "--resume"), epochs)
        scores.append(recorded_score(best))
    # Stale temporary files of a killed save are cleaned up by the next start.
    (workdir / "models/Best_MLPAE.pth.999999999.tmp").write_bytes(b"half a checkpoint")
    epoch = torch.load(workdir / "models/last_MLPAE.pth", weights_only=True)["epoch"]
    train_script.main(["--model", "MLPAE", "--threads", "1", "--resume", "--epochs", str(epoch + 2)])
    scores.append(recorded_score(best))
    values = [score for score, _ in scores]
    assert values == sorted(values, reverse=True), f"Best went backwards: (score, epoch) {scores}"
    assert not list((workdir / "models").glob("*.tmp"))


@pytest.mark.slow
def test_a_second_training_on_one_checkpoint_refuses_in_one_line(tiny_flowers, workdir, capsys):
    first = training(tiny_flowers, "--epochs", "100000")
    try:
        for line in first.stdout:   # the first run holds the lock once it trains
            if line.startswith("epoch"):
                break
        with pytest.raises(SystemExit) as second:   # (in this process: the lock is the other process's either way)
            cli.run(lambda: train_script.main(["--model", "MLPAE", "--data", str(tiny_flowers), "--threads", "1",
                                               "--epochs", "2"]))
    finally:
        first.kill()
        first.wait()
    out, err = capsys.readouterr()
    assert second.value.code == 2 and out.count("epoch") == 0
    assert err.strip() == (f"error: another training (PID {first.pid}) is writing models/Best_MLPAE.pth: "
                                     "wait for it to finish, or pass another --checkpoint")
    # The first run was killed: its lock is stale, and the next run takes it.
    third = subprocess.run([sys.executable, str(ROOT / "train_script.py"), "--model", "MLPAE", "--data",
                            str(tiny_flowers), "--threads", "1", "--epochs", "1"],
                           capture_output=True, text=True, timeout=120)
    assert third.returncode == 0, third.stderr
    assert not (workdir / "models/Best_MLPAE.pth.lock").exists()
