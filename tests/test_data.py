"""The image-folder loader, its cache, the split, and the synthetic fallback."""
import pytest
import torch
from PIL import Image

import utils.data.dataset as data_module
import train_script
from utils import cli
from utils.data.dataset import list_images, load_dataset, load_folder, stratified_split
from utils.errors import UserError


@pytest.fixture
def messy_folder(tmp_path):
    """Every awkward case of a real download: hidden files, odd modes, a corrupt JPG, an empty class."""
    root = tmp_path / "flowers"
    for name in ("rose", "tulip", "empty"):
        (root / name).mkdir(parents=True)
    (root / ".DS_Store").write_bytes(b"\0\1junk")
    (root / "rose" / ".DS_Store").write_bytes(b"\0\1junk")
    (root / "rose" / "notes.txt").write_text("not an image")
    Image.new("RGB", (64, 48), (255, 0, 0)).save(root / "rose" / "red.jpg")
    Image.new("L", (30, 30), 128).save(root / "rose" / "gray.png")
    Image.new("RGBA", (40, 40), (0, 0, 255, 100)).save(root / "tulip" / "alpha.png")
    Image.new("P", (20, 20), 3).save(root / "tulip" / "palette.gif")
    Image.new("RGB", (50, 50), (0, 255, 0)).save(root / "tulip" / "green.jpg")
    (root / "tulip" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    return root


def test_messy_folder(messy_folder, workdir, capsys):
    images, labels, classes = load_folder(messy_folder, 24)
    assert classes == ["rose", "tulip"]                       # the empty class folder is left out
    assert images.shape == (5, 3, 24, 24) and images.dtype == torch.uint8
    assert labels.tolist() == [0, 0, 1, 1, 1]
    assert torch.all(images[0, :, 5, 5] == images[0, :, 5, 5][0])  # grayscale became equal RGB
    red = images[labels == 0][1]                              # files are sorted: gray.png, red.jpg
    assert red[0].float().mean() > 240 and red[1].float().mean() < 15
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and "1 unreadable" in err


def test_cache_is_used_and_keyed_by_contents(messy_folder, workdir, monkeypatch):
    first = load_folder(messy_folder, 24)
    monkeypatch.setattr(data_module, "load_image", lambda *a: pytest.fail("decoded again despite the cache"))
    second = load_folder(messy_folder, 24)
    assert torch.equal(first[0], second[0]) and first[2] == second[2]
    Image.new("RGB", (8, 8)).save(messy_folder / "tulip" / "new.png")   # a change invalidates the cache
    with pytest.raises(pytest.fail.Exception):
        load_folder(messy_folder, 24)


def test_sizes(messy_folder, workdir):
    for size in (32, 48, 64):
        assert load_folder(messy_folder, size)[0].shape[-2:] == (size, size)


def test_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        list_images(tmp_path / "nope")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(UserError, match="no images"):
        list_images(tmp_path / "empty")


def test_split_is_stratified_disjoint_and_fixed():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    train, valid = stratified_split(labels, 0.1, seed=0)
    assert len(set(train.tolist()) & set(valid.tolist())) == 0 and len(train) + len(valid) == 100
    assert torch.bincount(labels[valid]).tolist() == [5, 3, 2]
    again = stratified_split(labels, 0.1, seed=0)
    assert torch.equal(train, again[0]) and torch.equal(valid, again[1])
    assert not torch.equal(valid, stratified_split(labels, 0.1, seed=1)[1])


def test_synthetic_fallback_when_no_flowers_folder(workdir, capsys):
    data = load_dataset(None, 24)
    assert data.source == "synthetic" and data.classes == ["astilbe", "bellflower", "calendula"]
    assert capsys.readouterr().out.splitlines()[0].startswith("note: ./flowers not found")


def test_real_folder_takes_precedence(workdir, tiny_flowers):
    (workdir / "flowers").symlink_to(tiny_flowers)
    data = load_dataset(None, 24)
    assert data.source == "flowers" and len(data.images) == 30
    x, y = data.split("valid")
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1 and len(x) == len(y) == 3


def test_a_folder_too_small_to_split_is_one_line(tmp_path, workdir, capsys):
    # One class folder: a single good image and a corrupt one. Training used to end in a ZeroDivisionError.
    root = tmp_path / "few"
    (root / "rose").mkdir(parents=True)
    Image.new("RGB", (32, 32), (200, 30, 30)).save(root / "rose" / "good.jpg")
    (root / "rose" / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    with pytest.raises(SystemExit) as exit_info:   # (any other exception would fail the test: a traceback)
        cli.run(lambda: train_script.main(["--model", "AE", "--data", str(root), "--epochs", "1", "--threads", "1"]))
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == 2
    assert "found 1 readable image" in message and "needs at least 2 images" in message
