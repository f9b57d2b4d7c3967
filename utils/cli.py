"""The flags every script shares, device and thread set-up, and one-line errors."""
import argparse
import errno
import math
import os
import random
import sys

import numpy as np
import torch

from utils.training import distributed
from utils.errors import UserError
from utils.generators import SamplingOptions
from utils.sampling.samplers import SAMPLERS, sampler_help


class Parser(argparse.ArgumentParser):
    def error(self, message):
        # One line, not argparse's usage block: the mistake is what the user needs to see.
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")

    def parse_known_args(self, args=None, namespace=None):
        # float() reads "nan" happily, and a NaN flag poisons whatever it touches without an error: refused here.
        parsed, extras = super().parse_known_args(args, namespace)
        for action in self._actions:
            value = getattr(parsed, action.dest, None)
            if isinstance(value, float) and math.isnan(value) and action.option_strings:
                self.error(f"argument {action.option_strings[-1]}: must be a number, got nan")
        return parsed, extras


def at_least(minimum, kind=int, finite=False):
    """An argparse type: a number >= minimum (finite=True: and not inf), else argparse's one-line error."""
    def parse(text):
        value = kind(text)
        if not value >= minimum or (finite and math.isinf(value)):
            raise argparse.ArgumentTypeError(f"must be {'a finite number ' * finite}at least {minimum}, got {text}")
        return value
    parse.__name__ = kind.__name__   # argparse names the type in "invalid int value"
    return parse


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Defaults shown in each flag's help; the script's docstring as written (its commands one per line)."""
    def _get_help_string(self, action):
        # "(default: None)" says nothing; such flags explain their default in their own help.
        return action.help if action.default is None else super()._get_help_string(action)


def parser(description, epilog=None):
    p = Parser(description=description, epilog=epilog, formatter_class=HelpFormatter)
    p.add_argument("--data", default=None,
                   help="image folder with one sub-folder per class, or a torchvision dataset: mnist, "
                        "fashion-mnist, cifar10 or flowers102 (files in ./data/NAME/, downloaded on first use); "
                        "default ./flowers, or the built-in synthetic set when that is missing ('synthetic' forces it)")
    p.add_argument("--image-size", type=int, default=None,
                   help="square size images are resized to: 24 when training (LatentAE: 64); other scripts take the "
                        "checkpoint's and refuse a different one")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda or mps")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    return p


def add_label_flags(p):
    """--labels/--objects: multi-label conditions (iCLEVR style) for the scripts that load training data."""
    p.add_argument("--labels", default=None, metavar="LABELS_JSON",
                   help="labels.json: image file name (relative to --data) -> list of object names; the diffusion "
                        "model conditions on these object sets (the autoencoders train on the listed images and "
                        "ignore the labels)")
    p.add_argument("--objects", default=None, metavar="OBJECTS_JSON",
                   help="objects.json: object name -> index, fixing the vocabulary (default: objects.json beside "
                        "--labels when present, else the union of the names)")


def add_training_flags(p):
    """--augment, --precision and --compile: the flags every trainer shares."""
    p.add_argument("--augment", nargs="?", const="crop", choices=["none", "flip", "crop"], default=None,
                   help="augment the training batches (validation stays as it is): flip mirrors half of them, crop "
                        "(a bare --augment) also crops them at random; default: flip for a latent diffusion model "
                        "(it sees a small set hundreds of times), none for the others")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="bf16: train under bfloat16 autocast; auto is bf16 on CUDA and on a CPU that multiplies "
                        "bfloat16 in hardware (AMX or AVX512-BF16), fp32 elsewhere (there bf16 is emulated, slowly)")
    p.add_argument("--compile", action="store_true",
                   help="run the training step through torch.compile (off by default everywhere: compiling "
                        "takes a minute and, on the CPU, a C compiler)")


def add_sampling_flags(p, what, precision=True):
    """--guidance, --sampler, --steps and --precision: how a diffusion model draws its samples (precision=False: a
    trainer's --precision already covers its samples)."""
    defaults = SamplingOptions()
    p.add_argument("--guidance", type=at_least(0.0, float, finite=True), default=None,
                   help=f"classifier-free guidance weight of {what} (0 unconditional, 1 conditional, more is sharper; "
                        "default: the model's, 1.5 on pixels below 64 px, 3 on codes and at 64 px)")
    p.add_argument("--guidance-max-noise", type=at_least(0.0, float), default=None, metavar="S/A",
                   help="guide only the steps whose noise-to-signal ratio is at most this, the noisier ones purely "
                        "conditionally (more variety; default: the model's, inf (every step) on pixels below 64 px, "
                        "7/3 = 2.333... (t <= 0.7 on the straight path) on codes and at 64 px: 2.33 guides one step "
                        "fewer)")
    p.add_argument("--sampler", choices=sorted(SAMPLERS), default=None,
                   help=f"{sampler_help()}; default: the model's, dpm on pixels below 64 px, heun on codes and at 64 px")
    p.add_argument("--steps", type=at_least(1), default=defaults.steps,
                   help="steps of the deterministic samplers (and of ddpm for flow); default: the model's, 20, or 2 "
                        "for a model trained to jump (--objective distill or shortcut)")
    if precision:
        p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default=None,
                       help="the diffusion network's arithmetic: bf16 autocast, or auto (bf16 where the hardware "
                            "multiplies bfloat16 natively, else fp32); default: the model's, auto at 64 px and on codes "
                            "(twice as fast there), fp32 below 64 px (where bf16 was no faster)")


def sampling_options(args, **more):
    """The SamplingOptions that add_sampling_flags' flags ask for (`more`: --prior, a script's own --precision)."""
    return SamplingOptions(args.guidance, args.sampler, args.steps, guidance_max_noise=args.guidance_max_noise, **more)


def native_bf16_cpu():
    """Whether this CPU multiplies bfloat16 in hardware (Intel AMX, or AVX512-BF16 as on AMD Zen 4) and torch uses
    it: ATEN_CPU_CAPABILITY=avx2 (with ONEDNN_MAX_CPU_ISA=AVX2) makes such a CPU behave as an AVX2-only one."""
    if torch.backends.cpu.get_cpu_capability() in ("DEFAULT", "AVX2", "NO AVX"):
        return False
    return any(getattr(torch.cpu, check, lambda: False)()
               for check in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"))


def precision_for(flag, device):
    """--precision auto -> bf16 where the hardware does bfloat16 natively (CUDA; an AMX or AVX512-BF16 CPU, where
    it measured 1.16x the diffusion model's images/s and 1.39x the AE's at batch 32, at equal quality:
    docs/training_options.md), else fp32."""
    if flag != "auto":
        return flag
    return "bf16" if device.type == "cuda" or (device.type == "cpu" and native_bf16_cpu()) else "fp32"


def speed_description(args):
    """What the header's device line adds to '<device>, N threads': nothing for a plain one-process fp32 run."""
    n = distributed.world_size()
    processes = f" x {n} processes ({distributed.backend()})" if n > 1 else ""
    extras = ["bf16 autocast"] * (args.precision == "bf16") + ["torch.compile"] * args.compile
    return processes + "".join(", " + extra for extra in extras)


def pick_device(name):
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name not in ("cpu", "cuda", "mps"):
        raise UserError(f"unknown device {name!r} (use auto, cpu, cuda or mps)")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but no CUDA GPU is available")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("--device mps asked for, but no Apple GPU is available")
    return torch.device(name)


def setup(args):
    """Seed everything, set the thread count deliberately, and return the device."""
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be at least 1, got {args.threads}")
    # Under torchrun the processes share the cores (torchrun sets LOCAL_WORLD_SIZE; a plain run has none).
    per_process = (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    torch.set_num_threads(args.threads or max(1, per_process))
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    return pick_device(args.device)


def fail(message):
    raise UserError(message)


def run(main):
    """Run a script's main(); a UserError becomes one line on stderr and exit status 2."""
    try:
        main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C); checkpoints already written are kept", file=sys.stderr)
        sys.exit(130)
    except OSError as e:   # a figure or cache written into a full disk or a read-only folder
        if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        print(f"error: cannot write {e.filename or 'a file'}: {e.strerror} (free some space, or make the folder "
              "writable, and rerun)", file=sys.stderr)
        sys.exit(2)
    except RuntimeError as e:   # torch.save's writer reports a full disk as "[enforce fail at inline_container.cc]"
        if "inline_container" not in str(e) and "file write failed" not in str(e):
            raise
        print("error: a file could not be written (is the disk full? free some space and rerun)", file=sys.stderr)
        sys.exit(2)
