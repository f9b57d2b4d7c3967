"""torchrun: two CPU processes (gloo) train like one process with twice the batch, and write their files once."""
import subprocess
import sys

import pytest
import torch

import train_script
from conftest import ROOT
from utils.training import distributed
from utils.training.train import training_batches


def torchrun(script, *flags, cwd):
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                           str(ROOT / script), *flags, "--threads", "1"],
                          cwd=cwd, capture_output=True, text=True, timeout=120)


def failure(result):
    """What a failed torchrun printed: rank 0's own lines, then the tail (often only the other rank's echo of it)."""
    rank0 = "\n".join(line for line in result.stderr.splitlines() if "[rank0]" in line)
    return f"{rank0[-2500:]}\n...\n{result.stderr[-2500:]}"


def shares(monkeypatch, world, augment, batch_size=4):
    """The batches every simulated process would train on in one epoch (x, global batch size), per process."""
    images = torch.arange(27 * 3 * 4 * 4, dtype=torch.float32).reshape(27, 3, 4, 4).remainder(256).to(torch.uint8)
    labels = torch.arange(27)
    per_rank = []
    for rank in range(world):
        monkeypatch.setattr(distributed, "world_size", lambda: world)
        monkeypatch.setattr(distributed, "rank", lambda: rank)
        per_rank.append(list(training_batches(images, labels, batch_size, "cpu", torch.Generator().manual_seed(3),
                                              augment)))
    return per_rank


@pytest.mark.parametrize("augment", [False, True])
def test_shares_of_a_global_batch_are_the_single_process_batch(monkeypatch, augment):
    one = shares(monkeypatch, 1, augment, batch_size=8)[0]
    two = shares(monkeypatch, 2, augment, batch_size=4)
    assert len(one) == len(two[0]) == len(two[1]) == 4                       # 27 images: 8 + 8 + 8 + 3
    for (x, y, n), (x0, y0, n0), (x1, y1, n1) in zip(one, *two):
        assert n == n0 == n1 == len(x) and len(x0) + len(x1) == n             # the last batch splits 2 + 1
        assert torch.equal(torch.cat([y0, y1]), y) and torch.equal(torch.cat([x0, x1]), x)


def test_two_processes_match_one_process_with_twice_the_batch(tiny_flowers, workdir, tmp_path_factory):
    # fp32: in bf16 each process's half batch is rounded apart from the whole one, so the match is only loose there.
    flags = ["--model", "AE", "--data", str(tiny_flowers), "--epochs", "2", "--seed", "3", "--precision", "fp32"]
    result = torchrun("train_script.py", *flags, "--batch-size", "4", cwd=workdir)
    assert result.returncode == 0, failure(result)
    assert result.stdout.count("model      AE") == 1                           # rank 1 prints nothing
    assert "batch 8 (2 processes x 4)" in result.stdout and "x 2 processes (gloo)" in result.stdout
    assert sorted(p.name for p in (workdir / "models").iterdir()) == ["Best_AE.pth", "last_AE.pth"]
    saved = torch.load(workdir / "models/Best_AE.pth", weights_only=True)
    assert not any(k.startswith(("module.", "model.", "_orig_mod.")) for k in saved["model"])
    two = torch.load(workdir / "models/last_AE.pth", weights_only=True)["state"]["history"]

    single = tmp_path_factory.mktemp("single")
    train_script.main(flags + ["--batch-size", "8", "--threads", "1", "--checkpoint", str(single / "Best_AE.pth")])
    one = torch.load(single / "last_AE.pth", weights_only=True)["state"]["history"]
    assert [h["train_loss"] for h in two] == pytest.approx([h["train_loss"] for h in one], rel=1e-4)
    assert [h["valid_loss"] for h in two] == pytest.approx([h["valid_loss"] for h in one], rel=1e-4)
