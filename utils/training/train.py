"""The training loop shared by every model: epochs, validation, best-model saving, early stopping."""
import contextlib
import copy
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn
from tqdm import tqdm

from utils.data.augment import apply_transforms, random_transforms
from utils.seeds import stable_seed
from utils.training import distributed
from utils.errors import UserError
from utils.training.checkpoint import save_checkpoint

# The resume file holds weights and optimizer moments (~13 MB for the autoencoders, ~25 ms to write): after
# every one of the MLP's 0.3-s epochs that was 7 % of its run. So it is written after the first epoch, then
# when RESUME_EVERY_S have passed since the last write, and always when training ends or is interrupted.
RESUME_EVERY_S = 30.0
RESUME_SCHEDULE = f"after the first epoch, every {RESUME_EVERY_S:g} s, at the end and on Ctrl-C"  # for --help


def fmt_loss(loss):
    return f"{loss:.5f}" if abs(loss) < 1 else f"{loss:.2f}"


class EarlyStopping:
    """Stop when the validation loss has not improved by more than min_delta for `patience` epochs."""

    def __init__(self, patience=5, min_delta=0.0):
        self.patience, self.min_delta = patience, min_delta
        self.best = math.inf
        self.bad_epochs = 0

    def step(self, loss):
        """Record one epoch's validation loss; True when it is a new best."""
        if loss < self.best - self.min_delta:
            self.best, self.bad_epochs = loss, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self):
        return self.patience is not None and self.patience > 0 and self.bad_epochs >= self.patience


def make_optimizer(name, params, lr, momentum=0.9):
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=momentum)
    if name == "adam":
        # PyTorch's fused kernel where it has one (CPU, CUDA): the same update, but on two cores the default
        # per-tensor loop took 3 ms a step for the VAE and 7 ms for the diffusion U-Net, the fused one 1 and 1.8.
        params = list(params)
        return torch.optim.Adam(params, lr=lr, fused=all(p.device.type in ("cpu", "cuda") for p in params))
    raise ValueError(f"unknown optimizer {name!r}")


def make_scheduler(name, optimizer, epochs):
    if name in (None, "none"):
        return None
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.3)
    raise ValueError(f"unknown scheduler {name!r}")


class EMA:
    """An exponential moving average of a model's weights, which diffusion samples from (decay 0: the last weights)."""

    def __init__(self, model, decay=0.999):
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.steps = decay, 0

    @torch.no_grad()
    def update(self, model):
        self.steps += 1
        # Warm-up: early on the average would be dominated by the random initialisation.
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        torch._foreach_lerp_(list(self.model.parameters()), list(model.parameters()), 1 - decay)
        for mine, theirs in zip(self.model.buffers(), model.buffers()):
            mine.copy_(theirs)

    def state_dict(self):
        return dict(model=self.model.state_dict(), steps=self.steps, decay=self.decay)

    def load_state_dict(self, state):
        self.model.load_state_dict(state["model"])
        self.steps, self.decay = state["steps"], state["decay"]


def batches(images, labels, batch_size, device, generator=None):
    """(float images in [0, 1], labels) sliced from the in-memory uint8 tensor; shuffled when given a generator."""
    order = torch.randperm(len(images), generator=generator) if generator is not None else torch.arange(len(images))
    for start in range(0, len(images), batch_size):
        idx = order[start:start + batch_size]
        yield images[idx].to(device, non_blocking=True).float().div_(255), labels[idx].to(device)


def training_batches(images, labels, batch_size, device, generator, augment="none"):
    """Shuffled training batches (x, y, size of the global batch); `augment` "flip": flipped, "crop": flipped and
    cropped, "none": as they are (utils/data/augment.py).

    Under torchrun batch_size is per process: every process draws the same order from the same seeded
    generator, cuts the same global batches of world_size * batch_size images and keeps its own share, so
    one step sees exactly the batch one process with the global batch size would see.
    """
    order = torch.randperm(len(images), generator=generator)
    global_batch = batch_size * distributed.world_size()
    for start in range(0, len(images), global_batch):
        idx = order[start:start + global_batch]
        # Drawn for the whole global batch, so that every process's generator stays in step.
        transforms = random_transforms(len(idx), generator, augment == "crop") if augment != "none" else None
        if len(idx) < distributed.world_size():
            continue  # a last batch too small to give every process an image is left out
        mine = distributed.shard(len(idx))
        x = images[idx[mine]].to(device, non_blocking=True).float().div_(255)
        if transforms is not None:
            flip, theta = transforms
            x = apply_transforms(x, flip[mine], theta if theta is None else theta[mine])
        yield x, labels[idx[mine]].to(device), len(idx)


class TrainingStep(nn.Module):
    """The loss as a module with the model inside: what DDP and torch.compile wrap, so that both see the whole
    step (the VAE's loss calls model.moments and model.decode, which a wrapped model's forward would miss)."""

    def __init__(self, model, loss_fn):
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, x, y, epoch):
        return self.loss_fn(self.model, x, y, epoch)


def make_step(model, loss_fn, device, compile=False):
    step = distributed.wrap(TrainingStep(model, loss_fn), torch.device(device))
    return torch.compile(step) if compile else step


def autocast(device, precision):
    """--precision bf16: matrix products and convolutions in bfloat16, losses and reductions in float32."""
    if precision != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def steps_per_epoch(n_images, batch_size):
    """Optimizer steps in one epoch (a global batch is batch_size images from every process)."""
    return math.ceil(n_images / (batch_size * distributed.world_size()))


def set_learning_rate(recipe, step, progress):
    """Linear warm-up over the first recipe.warmup steps, then recipe.decay ("cosine" or "linear") towards zero
    at progress 1, the end of the budget (of --minutes, counted in wall-clock time, else of --epochs)."""
    factor = min(1.0, (step + 1) / recipe.warmup) if recipe.warmup else 1.0
    progress = min(progress, 1.0)
    factor *= {"none": 1.0, "cosine": 0.5 * (1 + math.cos(math.pi * progress)), "linear": 1 - progress}[recipe.decay]
    for group in recipe.optimizer.param_groups:
        group["lr"] = recipe.lr * factor


def train_epoch(model, step, images, labels, recipe, device, epoch, generator, progress=lambda i: 0.0):
    """One pass over the training images; the mean reported loss (over every process under torchrun).
    progress(i) -> the share of the training budget used at the epoch's i-th step (the learning-rate schedule)."""
    model.train()
    total, count = 0.0, 0
    bar = tqdm(total=len(images), desc=f"epoch {epoch}/{recipe.epochs}", unit="img", leave=False, file=sys.stderr,
               disable=not sys.stderr.isatty() or not distributed.is_main())
    steps = steps_per_epoch(len(images), recipe.batch_size)
    for i, (x, y, global_n) in enumerate(training_batches(images, labels, recipe.batch_size, device, generator,
                                                          recipe.augment)):
        if recipe.warmup or recipe.decay != "none":
            set_learning_rate(recipe, (epoch - 1) * steps + i, progress(i))
        with autocast(device, recipe.precision):
            objective, reported = step(x, y, epoch)
        recipe.optimizer.zero_grad(set_to_none=True)
        # DDP averages the processes' gradients; weighting each by its share makes that the global batch's
        # mean even when the last batch splits unevenly (the weight is exactly 1 for a single process).
        (objective * (len(x) * distributed.world_size() / global_n)).backward()
        if recipe.clip_grad:
            torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.clip_grad)
        recipe.optimizer.step()
        if recipe.ema is not None:
            recipe.ema.update(model)
        total += reported.item() * len(x)
        count += len(x)
        bar.update(global_n)
    bar.close()
    total, count = distributed.total(total, count)
    return total / count


@torch.no_grad()
def evaluate(model, loss_fn, images, labels, device, epoch, batch_size=500):
    """(mean objective, mean reported loss); any noise the loss draws is the same at every call (a fixed, seeded
    draw). The best checkpoint is chosen on the objective, what training minimises; the log shows the reported."""
    model.eval()
    on_cuda = torch.device(device).type == "cuda"
    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if on_cuda else []):
        torch.manual_seed(0)
        totals = torch.tensor([0.0, 0.0])
        for x, y in batches(images, labels, batch_size, device):
            totals += torch.stack([loss.detach().float().cpu() for loss in loss_fn(model, x, y, epoch)]) * len(x)
    return (totals / len(images)).tolist()


def training_state(model, recipe, history, generator):
    """Everything --resume needs to continue as if never stopped."""
    r = recipe
    return dict(model=model.state_dict(), optimizer=r.optimizer.state_dict(),
                scheduler=r.scheduler.state_dict() if r.scheduler else None, ema=r.ema.state_dict() if r.ema else None,
                best=r.early_stopping.best, bad_epochs=r.early_stopping.bad_epochs, history=history,
                generator=generator.get_state(), torch_rng=torch.get_rng_state(),
                cuda_rng=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)


def restore_state(state, model, recipe, generator):
    model.load_state_dict(state["model"])
    recipe.optimizer.load_state_dict(state["optimizer"])
    if recipe.scheduler and state["scheduler"]:
        recipe.scheduler.load_state_dict(state["scheduler"])
    if recipe.ema and state["ema"]:
        recipe.ema.load_state_dict(state["ema"])
    recipe.early_stopping.best, recipe.early_stopping.bad_epochs = state["best"], state["bad_epochs"]
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return list(state["history"])


def copied(state, into=None):
    """A copy of nested dicts and lists of tensors, written into the tensors of an earlier copy where they fit:
    fresh 13-MB buffers each epoch cost more in page faults than the copy itself."""
    if isinstance(state, torch.Tensor):
        fits = isinstance(into, torch.Tensor) and into.shape == state.shape and into.dtype == state.dtype
        return into.copy_(state) if fits else state.clone()
    if isinstance(state, dict):
        into = into if isinstance(into, dict) else {}
        return {key: copied(value, into.get(key)) for key, value in state.items()}
    if isinstance(state, (list, tuple)):
        into = into if isinstance(into, (list, tuple)) and len(into) == len(state) else [None] * len(state)
        return type(state)(copied(value, old) for value, old in zip(state, into))
    return state


class ResumeWriter:
    """Writes the resume state at most every RESUME_EVERY_S, keeping an in-memory copy of the newest unwritten one
    so that Ctrl-C or the end of training still saves the last finished epoch (SIGKILL loses at most the interval)."""

    def __init__(self, path, config):
        self.path, self.config = path, config
        self.last_write, self.pending, self.copy = None, None, None

    def epoch_done(self, epoch, state):
        if self.last_write is not None and time.perf_counter() - self.last_write < RESUME_EVERY_S:
            self.copy = copied(state, into=self.copy)   # a copy: training goes on changing the live tensors
            self.pending = (epoch, self.copy)
            return
        self.write(epoch, state)

    def write(self, epoch, state):
        save_checkpoint(self.path, dict(config=self.config, epoch=epoch, state=state))
        self.last_write, self.pending = time.perf_counter(), None

    def flush(self):
        if self.pending is not None:
            self.write(*self.pending)


def steady(history):
    """The epochs that show the training's pace: all but the first of each run, fresh or resumed, which carries
    one-time costs (a teacher's trajectories, compiling). Entries without the mark: only the first."""
    return [h for i, h in enumerate(history) if not h.get("starts_run", i == 0)]


def eta(history, epochs, minutes, started):
    if minutes is not None:
        return max(0.0, minutes * 60 - (time.perf_counter() - started))
    paced = steady(history) or history   # after one epoch there is nothing else to go by
    return (epochs - len(history)) * sum(h["seconds"] for h in paced) / len(paced)


def budget_progress(history, epochs, minutes, started, steps):
    """progress(i): the share of the budget used at this epoch's i-th step. With --epochs, the share of epochs done
    (it moves once per epoch). With --minutes it is agreed by every process at the epoch's start and advanced by
    steps at the last epoch's pace, so that under torchrun all processes take the same learning rate (their clocks
    differ). Not at the first epoch's (see steady): at its pace the second epoch's learning rate would fall too far
    and then jump back up; it holds still instead."""
    if minutes is None:
        return lambda i: len(history) / epochs
    budget = minutes * 60
    paced = steady(history)
    used, pace, n = distributed.total(time.perf_counter() - started,
                                      paced[-1]["seconds"] / steps if paced else 0.0, 1.0)
    return lambda i: (used + i * pace) / n / budget


@dataclass
class Recipe:
    """How to train: the optimizer and what steps with it. `minutes` is a wall-clock budget (no epoch starts that
    would overrun it, counted across --resume); `augment` ("flip", "crop") flips (and crops) the training batches,
    `precision` "bf16" trains under bf16 autocast, `compile` runs the step through torch.compile. With `ema`,
    validation and the best checkpoint use the averaged weights."""
    optimizer: torch.optim.Optimizer
    epochs: int
    batch_size: int
    scheduler: object = None
    early_stopping: EarlyStopping = None
    ema: EMA = None
    minutes: float = None
    augment: str = "none"
    precision: str = "fp32"
    compile: bool = False
    seed: int = 0
    warmup: int = 0        # steps of linear learning-rate warm-up
    decay: str = "none"    # "cosine" or "linear": the learning rate falls to zero at the end of the budget
    clip_grad: float = 0.0  # the gradients' largest global norm (0: not clipped)

    def __post_init__(self):
        self.early_stopping = self.early_stopping or EarlyStopping(patience=None)
        self.lr = self.optimizer.param_groups[0]["lr"]


@dataclass
class Run:
    """Where training goes: the best checkpoint (with the configuration that rebuilds it), the resume file (see
    ResumeWriter for when it is written) and `resume`, a saved state to continue from; the log; `on_epoch_end(epoch)`
    after each epoch (previews); `until(history)` ends training once true (benchmarks time reaching a target)."""
    checkpoint_path: str
    config: dict
    resume_path: str = None
    resume: dict = None
    log: Callable[[str], None] = print
    on_epoch_end: Callable[[int], None] | None = None
    until: Callable[[list], bool] | None = None
    history: list = field(default_factory=list)
    best: dict = None   # what the Best file records (objective, epoch, valid_loss): a new best must beat it


def diverged(epoch, train_loss, valid_objective, run):
    """The one line that ends a run whose loss is no longer a number, saying what the Best file holds."""
    what, value = ("training", train_loss) if not math.isfinite(train_loss) else ("validation", valid_objective)
    kept = (f"{run.checkpoint_path} keeps epoch {run.best['epoch']} (valid {fmt_loss(run.best['valid_loss'])})"
            if run.best else "nothing was saved")
    return UserError(f"epoch {epoch}: the {what} loss is {value}, training diverged (try a smaller --lr); {kept}")


def with_labels(images, labels):
    """(images, labels), an unlabelled set given label 0 throughout."""
    return images, labels if labels is not None else torch.zeros(len(images), dtype=torch.long)


class Loop:
    """The state of one fit(): the model and its step, the data, the budget's clock and what the run writes (the main
    process alone saves and logs)."""

    def __init__(self, model, loss_fn, train, valid, recipe, run, device):
        self.model, self.loss_fn, self.recipe, self.run, self.device = model, loss_fn, recipe, run, device
        self.train, self.valid = with_labels(*train), with_labels(*valid)
        self.generator = torch.Generator().manual_seed(recipe.seed)
        if run.resume:
            run.history[:] = restore_state(run.resume, model, recipe, self.generator)
        self.resumed_at = len(run.history)   # the next epoch starts this run (steady: its pace is not the run's)
        # After the restore: DDP starts from those weights.
        self.step = make_step(model, loss_fn, device, recipe.compile)
        self.main = distributed.is_main()
        self.log = run.log if self.main else (lambda line: None)
        self.started = time.perf_counter() - sum(h["seconds"] for h in run.history)
        self.resume_writer = ResumeWriter(run.resume_path, run.config) if run.resume_path and self.main else None
        self.steps = steps_per_epoch(len(self.train[0]), recipe.batch_size)

    def out_of_time(self):
        """With a --minutes budget: no epoch starts that would overrun it. Clocks differ between processes: all stop
        when one would (a lone process decides alone)."""
        r, history = self.recipe, self.run.history
        if r.minutes is None or not history or not distributed.any_process(
                eta(history, r.epochs, r.minutes, self.started) < history[-1]["seconds"]):
            return False
        self.log(f"time budget of {r.minutes:g} minutes reached")
        return True

    def epoch(self, epoch):
        """Train one epoch, validate, keep the best model, hand the state to the resume writer, log."""
        entry = self.train_and_validate(epoch)
        improved = self.keep_best(entry)
        if self.resume_writer:
            self.resume_writer.epoch_done(epoch, training_state(self.model, self.recipe, self.run.history,
                                                                self.generator))
        self.log_epoch(entry, improved)
        if self.run.on_epoch_end is not None and self.main:
            self.run.on_epoch_end(epoch)

    def train_and_validate(self, epoch):
        """One epoch's history entry; a loss that is no longer a number ends the run (diverged)."""
        r, history = self.recipe, self.run.history
        if distributed.world_size() > 1:
            # Each process draws its own noise (the VAE's z, diffusion's t and eps), seeded by (seed, epoch,
            # rank) alone, so --resume replays it without saving every process's RNG state.
            torch.manual_seed(stable_seed(r.seed, epoch, distributed.rank()))
        t0, lr = time.perf_counter(), r.optimizer.param_groups[0]["lr"]
        train_loss = train_epoch(self.model, self.step, *self.train, r, self.device, epoch, self.generator,
                                 budget_progress(history, r.epochs, r.minutes, self.started, self.steps))
        valid_objective, valid_loss = evaluate(r.ema.model if r.ema is not None else self.model, self.loss_fn,
                                               *self.valid, self.device, epoch)
        if not (math.isfinite(train_loss) and math.isfinite(valid_objective)):
            raise diverged(epoch, train_loss, valid_objective, self.run)
        if r.scheduler is not None:
            r.scheduler.step()
        seconds = time.perf_counter() - t0
        history.append(dict(epoch=epoch, train_loss=train_loss, valid_loss=valid_loss, valid_objective=valid_objective,
                            lr=lr, seconds=seconds, images_per_s=len(self.train[0]) / seconds,
                            starts_run=len(history) == self.resumed_at))
        return history[-1]

    def keep_best(self, entry):
        """Whether this epoch is a new best (then saved). After --resume the Best file may hold a later, better epoch
        than the resume file knew of (a kill between their writes): only a model better than that one replaces it."""
        run, ema, objective = self.run, self.recipe.ema, entry["valid_objective"]
        improved = self.recipe.early_stopping.step(objective)
        improved = improved and (run.best is None or objective < run.best["objective"])
        if improved and self.main:  # the unwrapped model's weights: no DDP or torch.compile prefixes
            save_checkpoint(run.checkpoint_path, dict(
                config=run.config, model=self.model.state_dict(), ema=ema.model.state_dict() if ema else None,
                epoch=entry["epoch"], train_loss=entry["train_loss"], valid_loss=entry["valid_loss"],
                valid_objective=objective, history=run.history))
        if improved:
            run.best = dict(objective=objective, epoch=entry["epoch"], valid_loss=entry["valid_loss"])
        return improved

    def log_epoch(self, entry, improved):
        r, epoch = self.recipe, entry["epoch"]
        counter = f"{epoch:3d}" if r.minutes is not None else f"{epoch:3d}/{r.epochs}"  # a budget has no epoch count
        self.log(f"epoch {counter}  train {fmt_loss(entry['train_loss'])}  valid {fmt_loss(entry['valid_loss'])}  "
                 f"lr {entry['lr']:.1e}  {entry['seconds']:5.1f}s  {entry['images_per_s']:6.0f} img/s  "
                 f"ETA {eta(self.run.history, r.epochs, r.minutes, self.started):4.0f}s"
                 + ("  * saved best" if improved else ""))

    def finished(self):
        """Early stopping, or the run's own target (benchmarks time reaching one), ends training after this epoch."""
        if self.recipe.early_stopping.should_stop:
            self.log(f"early stopping: no improvement for {self.recipe.early_stopping.patience} epochs")
            return True
        if self.run.until is not None and self.run.until(self.run.history):
            self.log("target reached")
            return True
        return False

    def stopped(self, error):
        """The state at the last epoch's end is the one to resume from: a half-done (or diverged) epoch is not."""
        if self.resume_writer:
            self.resume_writer.flush()
        done, run = len(self.run.history), self.run
        if isinstance(error, KeyboardInterrupt):
            self.log(f"interrupted after {done} epoch(s); the best model so far is kept in {run.checkpoint_path}"
                     + (f", and {run.resume_path} resumes from epoch {done} (--resume)" if run.resume_path and done
                        else ""))


def fit(model, loss_fn, train, valid, recipe, run, device="cpu"):
    """Train on `train` = (uint8 images, labels or None), validate on `valid` each epoch, keep the best model.

    loss_fn(model, x, y, epoch) -> (objective, reported loss). Under torchrun (utils/training/distributed.py) every process
    trains its share of each batch through DDP and validates the whole (small) validation set, so all processes
    take the same early-stopping decisions; only the main one saves, logs and runs on_epoch_end.
    Returns (per-epoch history, seconds).
    """
    loop = Loop(model, loss_fn, train, valid, recipe, run, device)
    try:
        for epoch in range(len(run.history) + 1, recipe.epochs + 1):
            if loop.out_of_time():
                break
            loop.epoch(epoch)
            if loop.finished():
                break
    except (KeyboardInterrupt, UserError) as error:
        loop.stopped(error)
        raise
    if loop.resume_writer:
        loop.resume_writer.flush()
    return run.history, time.perf_counter() - loop.started
