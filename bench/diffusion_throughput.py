"""Training images per second of diffusion networks, side by side in one process, and where a step's time goes.

    python bench/diffusion_throughput.py                                  # the default against the patch-2 network
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python bench/diffusion_throughput.py   # as on an AVX2-only CPU
    python bench/diffusion_throughput.py --profile                        # and the operators that take the time

Each configuration is diffusion.py's flags; each round times every configuration once (a full training step: the
loss, backward and Adam, on random 24 px images, fp32 unless --precision says otherwise), in turn, so that a
machine's drift hits them all alike; the table gives the median over rounds.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import diffusion  # noqa: E402
from utils.training.train import autocast, make_optimizer  # noqa: E402

CONFIGS = {
    "default": [],
    "patch2": ["--patch", "2", "--base", "32", "--mults", "1", "2", "3", "--batch-size", "64", "--lr", "2e-3",
               "--upsample", "transposed"],
    "mults1246": ["--mults", "1", "2", "4", "6", "--clip-grad", "0"],   # a 96-channel lowest level, unclipped
    "unclipped": ["--clip-grad", "0"],
    "channels-last": ["channels-last"],
    "compiled": ["--compile"],
}


def step_function(flags, precision):
    """One training step of this configuration, and its batch size. "--compile" compiles the network
    (torch.compile, as diffusion.py --compile; the compiling happens here, before the timing, and is reported);
    "channels-last" (not a diffusion.py flag) lays the network's weights and the batch out channels-last."""
    channels_last = "channels-last" in flags
    args = diffusion.get_args([f for f in flags if f != "channels-last"])
    config = dict(vars(args), channels=3, classes=["a", "b", "c"], conditional=True, multi_label=False, latent=None)
    model = diffusion.build(config)
    optimizer = make_optimizer("adam", model.parameters(), args.lr)   # diffusion.py's (fused on the CPU)
    path = diffusion.make_path(config)
    x = torch.rand(args.batch_size, 3, args.image_size, args.image_size) * 2 - 1
    labels = torch.randint(0, 3, (args.batch_size,))
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    network = torch.compile(model) if args.compile else model
    network.num_classes, network.null_labels = model.num_classes, model.null_labels

    def step():
        with autocast("cpu", precision):
            loss = diffusion.diffusion_loss_fn(network, x, labels, path, config["objective"], config["min_snr"],
                                               config["p_uncond"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if args.clip_grad:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad)
        optimizer.step()
    if args.compile:
        start = time.perf_counter()
        step(), step()
        print(f"compiled in {time.perf_counter() - start:.0f} s (the first two steps)", flush=True)
    return step, args.batch_size, sum(p.numel() for p in model.parameters())


def images_per_second(step, batch_size, seconds):
    step()   # warm-up: the first call allocates and picks kernels
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        n += 1
    return n * batch_size / (time.perf_counter() - start)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=10, help="timed per configuration and round")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--profile", action="store_true", help="also print the operators that take each step's time")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    steps = {name: step_function(CONFIGS[name], args.precision) for name in args.configs}
    rates = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, (step, batch_size, _) in steps.items():
            rates[name].append(images_per_second(step, batch_size, args.seconds))
    print(f"# diffusion training throughput: torch {torch.__version__}, {torch.get_num_threads()} threads, CPU "
          f"capability {torch.backends.cpu.get_cpu_capability()}, {args.precision}, median of {args.rounds} rounds "
          f"of {args.seconds:g} s\n")
    first = statistics.median(rates[args.configs[0]])
    print("| configuration | parameters | batch | images/s | relative |\n|---|---|---|---|---|")
    for name, (_, batch_size, parameters) in steps.items():
        rate = statistics.median(rates[name])
        print(f"| {name} | {parameters:,} | {batch_size} | {rate:.0f} | {rate / first:.2f} |")
    if args.profile:
        for name, (step, _, _) in steps.items():
            with torch.profiler.profile() as prof:
                for _ in range(5):
                    step()
            print(f"\n## {name}: 5 steps\n")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
