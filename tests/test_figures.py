"""The loss figure marks the epoch whose weights the best checkpoint holds; image figures show every image in its
labelled cell."""
import numpy as np
import torch
from matplotlib.axes import Axes

from utils.figures import image_rows, loss_curve


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


def test_each_row_is_one_picture_of_its_images_on_white_with_titles_over_their_cells(tmp_path, monkeypatch):
    shown, titles = [], []
    real_imshow, real_annotate = Axes.imshow, Axes.annotate
    monkeypatch.setattr(Axes, "imshow", lambda ax, a, *args, **k: shown.append(a) or real_imshow(ax, a, *args, **k))
    monkeypatch.setattr(Axes, "annotate", lambda ax, text, xy, *args, **k:
                        titles.append((text, xy)) or real_annotate(ax, text, xy, *args, **k))
    small, large = torch.rand(3, 3, 20, 20), torch.rand(2, 3, 40, 40)   # rows of other sizes and lengths
    image_rows([small, large], ["small", "large"], "two rows", tmp_path / "rows.png", column_labels=["a", "b", "c"])
    assert (tmp_path / "rows.png").exists() and len(shown) == 2
    first, second = shown
    assert first.shape == (20, 3 * 20 + 2 * 1, 3) and second.shape == (40, 3 * 40 + 2 * 2, 3)   # 1 and 2 px gaps
    for j in range(3):
        assert np.array_equal(first[:, j * 21:j * 21 + 20], small[j].permute(1, 2, 0).numpy())
    assert (first[:, 20] == 1).all() and (first[:, 41] == 1).all()                   # white between the images
    assert np.array_equal(second[:, 42:82], large[1].permute(1, 2, 0).numpy())
    assert (second[:, 84:] == 1).all()                                               # no third image: white
    assert titles == [("a", (9.5, -0.5)), ("b", (30.5, -0.5)), ("c", (51.5, -0.5))]  # over each cell's centre
