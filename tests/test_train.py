"""The shared loop: early stopping and best-checkpoint saving on a scripted loss sequence; real training."""
import time

import pytest
import torch
from torch import nn

from utils.training.checkpoint import load_checkpoint, save_checkpoint
from utils.errors import UserError
from utils.generators import GENERATORS
from utils.models import OPTIMIZER_LR, build_model, loss_fn_for, training_defaults
from utils.training.train import (EarlyStopping, Recipe, Run, budget_progress, eta, fit, make_optimizer,
                                  set_learning_rate)


def test_early_stopping_sequence():
    stopper = EarlyStopping(patience=2, min_delta=0.01)
    marks = []
    for loss in [1.0, 0.9, 0.895, 0.89, 0.5]:
        marks.append((stopper.step(loss), stopper.should_stop))
    # 0.895 and 0.89 are within min_delta of 0.9: two bad epochs -> stop before 0.5 is seen in practice.
    assert marks[:4] == [(True, False), (True, False), (False, False), (False, True)]


class Scripted(nn.Module):
    """A model whose validation loss follows a script, to watch what fit() saves and when it stops."""
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))


def scripted_loss(valid_losses):
    def loss(model, x, y, epoch):
        if model.training:
            objective = (model.w - 1).pow(2).sum()
            return objective, objective
        with torch.no_grad():
            model.w.fill_(epoch)  # tag the weights with the epoch so the saved copy can be identified
        return torch.tensor(valid_losses[epoch - 1]), torch.tensor(valid_losses[epoch - 1])
    return loss


def test_fit_keeps_best_and_stops_early(tmp_path):
    model = Scripted()
    path = tmp_path / "best.pth"
    losses = [5.0, 3.0, 4.0, 2.0, 2.5, 2.6, 2.7, 1.0]
    recipe = Recipe(make_optimizer("sgd", model.parameters(), 0.1), epochs=8, batch_size=2,
                    early_stopping=EarlyStopping(patience=3))
    history, _ = fit(model, scripted_loss(losses), (torch.zeros(4, 3, 2, 2, dtype=torch.uint8), None),
                     (torch.zeros(2, 3, 2, 2, dtype=torch.uint8), None), recipe,
                     Run(path, {"model": "test"}, log=lambda s: None))
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5, 6, 7]   # epoch 8's 1.0 is never reached
    saved = torch.load(path, weights_only=True)
    assert saved["epoch"] == 4 and saved["valid_loss"] == 2.0 and saved["model"]["w"].item() == 4


@pytest.mark.parametrize("name", ["MLPAE", "AE", "VAE"])
def test_training_lowers_the_loss(name, tmp_path):
    torch.manual_seed(0)
    from utils.data.synthetic import synthetic_flowers
    images, _, _ = synthetic_flowers(n_per_class=16, image_size=16)
    config = dict(model=name, image_size=16, channels=3, encoding_dim=8, upsample_kernel=2, recon="mse", beta=1.0,
                  kl_warmup=0)
    model = build_model(config)
    d = training_defaults(name)
    recipe = Recipe(make_optimizer("adam", model.parameters(), d["lr"]), epochs=4, batch_size=8)
    history, _ = fit(model, loss_fn_for(config), (images, None), (images[:8], None), recipe,
                     Run(tmp_path / "m.pth", config, log=lambda s: None))
    assert history[-1]["train_loss"] < 0.8 * history[0]["train_loss"]


def test_defaults_per_optimizer():
    assert training_defaults("AE")["optimizer"] == "adam"
    sgd = training_defaults("AE", "sgd")   # its own entry: the handout's plain-SGD baseline, not Adam's recipe
    own = GENERATORS["AE"].api.DEFAULTS["sgd"]
    assert (sgd["lr"], sgd["batch_size"]) == (own["lr"], own["batch_size"]) != tuple(training_defaults("AE")[k] for k in ("lr", "batch_size"))
    assert training_defaults("MLPAE", "sgd")["lr"] == OPTIMIZER_LR["sgd"]   # a model without an SGD entry
    assert training_defaults("AE", "momentum")["batch_size"] == training_defaults("AE")["batch_size"]


def test_checkpoint_round_trip_and_errors(tmp_path):
    config = dict(model="AE", image_size=24, channels=3, encoding_dim=16, upsample_kernel=2)
    model = build_model(config)
    path = tmp_path / "models" / "Best_AE.pth"
    save_checkpoint(path, dict(config=config, model=model.state_dict(), epoch=3))
    assert [p.name for p in path.parent.iterdir()] == ["Best_AE.pth"]      # no temporary file left
    ckpt = load_checkpoint(path, model="AE", image_size=24)
    rebuilt = build_model(ckpt["config"])
    rebuilt.load_state_dict(ckpt["model"])
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), rebuilt.state_dict().values()))
    with pytest.raises(UserError, match="is a checkpoint of AE, not VAE"):
        load_checkpoint(path, model="VAE")
    with pytest.raises(UserError, match="trained at 24px, not 32px"):
        load_checkpoint(path, model="AE", image_size=32)
    with pytest.raises(UserError, match="not found"):
        load_checkpoint(tmp_path / "missing.pth", model="AE")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "foreign.pth")
    with pytest.raises(UserError, match="not a checkpoint of this project"):
        load_checkpoint(tmp_path / "foreign.pth")
    (tmp_path / "garbage.pth").write_bytes(b"garbage")
    with pytest.raises(UserError, match="cannot read"):
        load_checkpoint(tmp_path / "garbage.pth")


def test_learning_rate_warm_up_and_decay_by_hand():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    recipe = Recipe(optimizer, epochs=10, batch_size=4, warmup=4, decay="cosine")
    lr = lambda step, progress: (set_learning_rate(recipe, step, progress), optimizer.param_groups[0]["lr"])[1]  # noqa: E731
    assert lr(0, 0.0) == pytest.approx(0.025) and lr(1, 0.0) == pytest.approx(0.05)   # (step + 1) / 4 of 0.1
    assert lr(10, 0.5) == pytest.approx(0.05) and lr(10, 1.0) == pytest.approx(0.0, abs=1e-12)  # cos: 1/2, then 0
    recipe.decay = "linear"
    assert lr(10, 0.25) == pytest.approx(0.075) and lr(10, 2.0) == 0.0                 # past the budget: stays 0
    assert recipe.lr == 0.1                                                            # the base is kept


def test_the_eta_goes_at_the_pace_of_the_epochs_after_the_first():
    history = [dict(seconds=50.0)]
    assert eta(history, 12, None, 0.0) == 11 * 50.0   # nothing else to go by yet
    history += [dict(seconds=6.0), dict(seconds=8.0)]   # the first held a one-time wait (a teacher's trajectories)
    assert eta(history, 12, None, 0.0) == 9 * 7.0
    # Resumed: the first epoch of the new run waited again; the first of all, marked or not, is left out too.
    history = [dict(seconds=50.0, starts_run=True), dict(seconds=6.0, starts_run=False),
               dict(seconds=45.0, starts_run=True), dict(seconds=8.0, starts_run=False)]
    assert eta(history, 12, None, 0.0) == 8 * 7.0


def test_budget_progress_advances_by_steps_at_the_last_epochs_pace():
    """With --minutes the share of the budget is read once per epoch and advanced by steps (so that processes with
    different clocks agree); with --epochs it is the share of epochs done."""
    by_epochs = budget_progress([{}] * 2, epochs=4, minutes=None, started=0.0, steps=10)
    assert by_epochs(0) == by_epochs(5) == pytest.approx(0.5)
    started = time.perf_counter() - 30.0                        # 30 s of a 1-minute budget used
    by_time = budget_progress([{"seconds": 20.0}, {"seconds": 6.0}], epochs=100, minutes=1, started=started, steps=12)
    assert by_time(0) == pytest.approx(0.5, abs=0.01) and by_time(6) - by_time(0) == pytest.approx(3.0 / 60)
    # The first epoch's pace carries one-time costs (here 20 s, a teacher's trajectories): the second epoch's
    # learning rate holds at its start's share rather than running ahead of the clock at that pace.
    second = budget_progress([{"seconds": 20.0}], epochs=100, minutes=1, started=time.perf_counter() - 20.0, steps=12)
    assert second(11) == second(0) == pytest.approx(20.0 / 60, abs=0.01)


@pytest.mark.parametrize("clip_grad, moved", [(0.0, 200.0), (1.0, 1.0)])
def test_clipped_gradients_move_the_weights_at_most_their_norm(clip_grad, moved):
    # One plain-SGD step (lr 1) on (w - 100)^2 from w = 0: the gradient is -200, clipped to norm 1 when asked.
    from utils.training.train import make_step, train_epoch
    model = nn.Module()
    model.w = nn.Parameter(torch.zeros(1))
    loss_fn = lambda net, x, labels, epoch: ((net.w - 100) ** 2).sum().repeat(2)  # noqa: E731
    recipe = Recipe(torch.optim.SGD(model.parameters(), lr=1.0), epochs=1, batch_size=4, clip_grad=clip_grad)
    images, labels = torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.zeros(4, dtype=torch.long)
    train_epoch(model, make_step(model, loss_fn, "cpu"), images, labels, recipe, "cpu", 1, torch.Generator())
    assert model.w.item() == pytest.approx(moved)
