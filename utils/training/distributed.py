"""Multi-process training with PyTorch's own engine: `torchrun --nproc_per_node=N script.py ...`.

torchrun starts N copies of the script and tells each its place through WORLD_SIZE, RANK and LOCAL_RANK.
A plain `python script.py` sets none of them: then every function here is a no-op (one process, rank 0).
"""
import os
import sys

import torch
import torch.distributed as dist
from torch import nn


def launched_by_torchrun():
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def world_size():
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank():
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main():
    """Only the main process writes checkpoints, figures and the log."""
    return rank() == 0


def setup(device):
    """Join the process group when started by torchrun; returns this process's device.

    gloo on CPU, nccl on CUDA (one GPU per process: cuda:LOCAL_RANK). The other processes' stdout
    goes to /dev/null, so the log is written once; their errors still reach stderr.
    """
    if not launched_by_torchrun() or dist.is_initialized():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if not is_main():
        sys.stdout = open(os.devnull, "w")
    return device


def backend():
    return dist.get_backend() if world_size() > 1 else None


def teardown():
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap(module, device):
    """DistributedDataParallel: the processes' gradients are averaged in the backward pass."""
    if world_size() == 1:
        return module
    return nn.parallel.DistributedDataParallel(module, device_ids=[device] if device.type == "cuda" else None)


def shard(n):
    """This process's share of a global batch of n: a contiguous slice, the shares differing by at most one."""
    return slice(n * rank() // world_size(), n * (rank() + 1) // world_size())


def total(*values):
    """The sums of the given numbers over all processes (each process's own numbers when alone)."""
    if world_size() == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device="cuda" if backend() == "nccl" else "cpu")
    dist.all_reduce(t)
    return tuple(t.tolist())


def any_process(flag):
    """True on every process when it is true on one: decisions on wall-clock time must not split the processes."""
    return total(float(flag))[0] > 0


def batch_description(per_process):
    """'batch 8', or under torchrun the global batch one optimizer step sees: 'batch 16 (2 processes x 8)'."""
    n = world_size()
    return f"batch {per_process}" if n == 1 else f"batch {n * per_process} ({n} processes x {per_process})"
