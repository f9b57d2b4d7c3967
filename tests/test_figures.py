"""The loss figure marks the epoch whose weights the best checkpoint holds."""
from matplotlib.axes import Axes

from utils.figures import loss_curve


def test_the_loss_figure_marks_the_epoch_the_checkpoint_was_chosen_on(tmp_path, monkeypatch):
    """A VAE's checkpoint is chosen on its training objective (valid_objective), which need not fall where the
    reported loss does."""
    marked = []
    real = Axes.axvline
    monkeypatch.setattr(Axes, "axvline", lambda ax, x=0, *a, **k: marked.append(x) or real(ax, x, *a, **k))
    history = [dict(epoch=1, train_loss=3.0, valid_loss=2.0, valid_objective=5.0),
               dict(epoch=2, train_loss=2.5, valid_loss=2.2, valid_objective=4.0),
               dict(epoch=3, train_loss=2.4, valid_loss=2.3, valid_objective=4.5)]
    loss_curve(history, "VAE", tmp_path / "loss.png")
    assert marked == [2] and (tmp_path / "loss.png").exists()
