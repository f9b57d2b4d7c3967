"""The training loop shared by every model: epochs, validation, best-model saving, early stopping."""
import math
import sys
import time

import torch
from tqdm import tqdm

from utils.checkpoint import save_checkpoint


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
        return torch.optim.Adam(params, lr=lr)
    raise ValueError(f"unknown optimizer {name!r}")


def make_scheduler(name, optimizer, epochs):
    if name in (None, "none"):
        return None
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.3)
    raise ValueError(f"unknown scheduler {name!r}")


def batches(images, batch_size, device, generator=None):
    """Float batches sliced from the in-memory uint8 tensor; shuffled when a generator is given."""
    order = torch.randperm(len(images), generator=generator) if generator is not None else None
    for start in range(0, len(images), batch_size):
        chunk = images[order[start:start + batch_size]] if order is not None else images[start:start + batch_size]
        yield chunk.to(device, non_blocking=True).float().div_(255)


def train_epoch(model, loss_fn, images, optimizer, batch_size, device, epoch, generator, desc):
    model.train()
    total, count = 0.0, 0
    bar = tqdm(total=len(images), desc=desc, unit="img", leave=False, file=sys.stderr,
               disable=not sys.stderr.isatty())
    for x in batches(images, batch_size, device, generator):
        objective, reported = loss_fn(model, x, epoch)
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        optimizer.step()
        total += reported.item() * len(x)
        count += len(x)
        bar.update(len(x))
    bar.close()
    return total / count


@torch.no_grad()
def evaluate(model, loss_fn, images, device, epoch, batch_size=500):
    model.eval()
    total = sum(loss_fn(model, x, epoch)[1].item() * len(x) for x in batches(images, batch_size, device))
    return total / len(images)


def fit(model, loss_fn, train_images, valid_images, *, optimizer, epochs, batch_size, device,
        checkpoint_path, config, scheduler=None, early_stopping=None, seed=0, until=None, log=print):
    """Train, validate each epoch, keep the best model (lowest validation loss) at checkpoint_path.

    Returns (per-epoch history, seconds). Ctrl-C ends training early and keeps what was saved.
    `until(history)` ends it once true: benchmarks use it to time reaching a target.
    """
    early_stopping = early_stopping or EarlyStopping(patience=None)
    generator = torch.Generator().manual_seed(seed)
    history, started = [], time.perf_counter()
    try:
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            lr = optimizer.param_groups[0]["lr"]
            train_loss = train_epoch(model, loss_fn, train_images, optimizer, batch_size, device, epoch,
                                     generator, f"epoch {epoch}/{epochs}")
            valid_loss = evaluate(model, loss_fn, valid_images, device, epoch)
            if scheduler is not None:
                scheduler.step()
            seconds = time.perf_counter() - t0
            history.append(dict(epoch=epoch, train_loss=train_loss, valid_loss=valid_loss, lr=lr, seconds=seconds,
                                images_per_s=len(train_images) / seconds))
            improved = early_stopping.step(valid_loss)
            if improved:
                save_checkpoint(checkpoint_path, dict(
                    config=config, model=model.state_dict(), epoch=epoch,
                    train_loss=train_loss, valid_loss=valid_loss, history=history))
            log(f"epoch {epoch:3d}/{epochs}  train {fmt_loss(train_loss)}  valid {fmt_loss(valid_loss)}  lr {lr:.1e}  "
                f"{seconds:5.1f}s  {history[-1]['images_per_s']:6.0f} img/s" + ("  * saved best" if improved else ""))
            if early_stopping.should_stop:
                log(f"early stopping: no improvement for {early_stopping.patience} epochs")
                break
            if until is not None and until(history):
                log("target reached")
                break
    except KeyboardInterrupt:
        log(f"interrupted after {len(history)} epoch(s); the best model so far is kept")
    return history, time.perf_counter() - started
