"""diffusion_report.md counts the whole run: every epoch and minute, not those up to the best one."""
import torch

from utils.lab_report import training_summary
from utils.training.checkpoint import save_checkpoint


def epoch(n, valid):
    return dict(epoch=n, train_loss=1.0, valid_loss=valid, valid_objective=valid, seconds=30.0, images_per_s=100.0)


def test_the_summary_counts_the_epochs_after_the_best_one(workdir):
    history = [epoch(1, 0.5), epoch(2, 0.3), epoch(3, 0.4), epoch(4, 0.35)]
    config = dict(model="diffusion", image_size=8)
    weights = {"w": torch.zeros(3)}
    # The best model was saved at epoch 2 with the history so far; the resume file holds all four.
    save_checkpoint("models/Best_diffusion.pth", dict(config=config, model=weights, epoch=2, history=history[:2]))
    save_checkpoint("models/last_diffusion.pth", dict(config=config, epoch=4, state=dict(history=history)))
    summary = training_summary("models/Best_diffusion.pth")
    assert summary["epochs"] == 4 and summary["minutes"] == 2.0 and summary["best_valid"] == 0.3
    assert summary["parameters"] == 3
