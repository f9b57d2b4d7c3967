"""--data mnist and friends: torchvision's raw files -> cached 1-channel tensors, end to end, offline errors.

Nothing is downloaded: a tiny fake MNIST is written in torchvision's raw idx format where it looks for it.
"""
import json
import struct
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torchvision.datasets.utils
import torchvision.transforms.functional as TF
from PIL import Image

import data_analysis
import diffusion
import evaluate
import random_generation
import train_script
import visualization
from utils import cli
from utils.data.dataset import load_dataset
from utils.errors import UserError

RAW = "data/mnist/MNIST/raw"


def write_idx(path, array):
    """torchvision's idx format: magic 0x0000 08 NN (uint8, NN dims), big-endian dims, then the bytes."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def fake_digits(n, seed):
    """n 28 x 28 images, label i % 10; class c is a bright bar at row 2c + 3 over faint noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    images = rng.integers(0, 40, (n, 28, 28))
    for image, label in zip(images, labels):
        image[2 * label + 3: 2 * label + 7, 4:24] = 230
    return images, labels


@pytest.fixture
def fake_mnist(workdir):
    """40 training + 20 test images in ./data/mnist/MNIST/raw/, with the four file names torchvision expects."""
    raw = workdir / RAW
    raw.mkdir(parents=True)
    for part, n, seed in (("train", 40, 0), ("t10k", 20, 1)):
        images, labels = fake_digits(n, seed)
        write_idx(raw / f"{part}-images-idx3-ubyte", images)
        write_idx(raw / f"{part}-labels-idx1-ubyte", labels)
    return workdir


def no_download(*args, **kwargs):
    raise URLError("offline (test)")


def test_mnist_is_one_channel_split_and_cached(fake_mnist, monkeypatch):
    monkeypatch.setattr(torchvision.datasets.utils, "download_url", no_download)   # files present: no download
    data = load_dataset("mnist", 24)
    assert data.images.shape == (60, 1, 24, 24) and data.images.dtype == torch.uint8
    assert data.classes == [str(d) for d in range(10)] and data.source == "mnist" and data.channels == 1
    assert torch.bincount(data.labels).tolist() == [6] * 10
    assert torch.bincount(data.labels[data.valid_idx]).tolist() == [1] * 10       # the project's stratified split
    assert sorted(data.train_idx.tolist() + data.valid_idx.tolist()) == list(range(60))
    raw = torch.from_numpy(fake_digits(40, 0)[0].astype(np.uint8))[:1, None]     # the first training image
    assert torch.equal(data.images[:1], TF.resize(raw, [24, 24], antialias=True))   # the folder loader's resize
    monkeypatch.setattr(torchvision.datasets, "MNIST", lambda *a, **k: pytest.fail("read again despite the cache"))
    again = load_dataset("mnist", 24)
    assert torch.equal(again.images, data.images) and torch.equal(again.valid_idx, data.valid_idx)


def test_offline_error_says_where_the_files_go(workdir, monkeypatch, capsys):
    monkeypatch.setattr(torchvision.datasets.utils, "download_url", no_download)
    with pytest.raises(UserError) as error:
        load_dataset("mnist", 24)
    message = str(error.value)
    assert "\n" not in message and "downloading it failed" in message and "offline (test)" in message
    assert f"{RAW}/" in message and "train-images-idx3-ubyte" in message and "t10k-labels-idx1-ubyte" in message
    with pytest.raises(SystemExit) as stop:   # a script turns it into one line and exit status 2
        cli.run(lambda: train_script.main(["--model", "AE", "--data", "fashion-mnist", "--threads", "1"]))
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and err[-1].startswith("error: fashion-mnist is not in data/fashion-mnist/")
    assert "data/fashion-mnist/FashionMNIST/raw/" in err[-1]


def test_unknown_name_lists_the_datasets(workdir):
    with pytest.raises(UserError, match=r"^data folder not found: mnsit \(or name a dataset: mnist, fashion-mnist, "
                                        r"cifar10, flowers102 or synthetic\)$"):
        load_dataset("mnsit", 24)


def is_gray(path):
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    return (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()


def test_autoencoder_and_report_on_one_channel(fake_mnist, monkeypatch, capsys, quick_evaluator):
    train_script.main(["--model", "AE", "--data", "mnist", "--epochs", "1", "--threads", "1"])
    ckpt = torch.load("models/Best_AE.pth", weights_only=True)
    assert ckpt["config"]["channels"] == 1 and ckpt["model"]["encoder.0.0.weight"].shape[1] == 1
    visualization.main(["--model", "AE", "--n", "4", "--threads", "1"])
    random_generation.main(["--model", "AE", "--n", "3", "--out-dir", "out", "--threads", "1"])
    for figure in ("vis/train_AE.png", "vis/valid_AE.png", "vis/random_images_AE.png"):
        assert is_gray(fake_mnist / figure), figure             # gray images, not a colormap
    assert len(list((fake_mnist / "out").iterdir())) == 3
    data_analysis.main(["--data", "mnist", "--threads", "1"])
    assert is_gray(fake_mnist / "vis/samples_per_class.png") and is_gray(fake_mnist / "vis/mean_images.png")
    # One evaluation row: the evaluator, the blurred and Gaussian calibration rows, all on 1 channel.
    evaluate.main(["--model", "AE", "--n", "10", "--threads", "1"])
    rows = {r["row"]: r for r in json.loads((fake_mnist / "vis/report.json").read_text())["rows"]}
    assert rows["AE"]["n"] == 10 and rows["AE"]["fd"] > 0 and rows["Gaussian fit to pixels"]["n"] == 10
    assert rows["AE"]["compression"] == 24 * 24 / 64
    assert is_gray(fake_mnist / "vis/compare.png")


def test_diffusion_on_one_channel(fake_mnist):
    diffusion.main(["--data", "mnist", "--minutes", "0", "--epochs", "1", "--steps", "2", "--film-steps", "2",
                    "--base", "8", "--threads", "1", "--batch-size", "32"])
    model, ckpt = diffusion.load()
    patch = ckpt["config"]["patch"]   # blocks of patch x patch pixels stacked as channels
    assert ckpt["config"]["channels"] == 1 and model.stem.in_channels == model.head[-1].out_channels == patch ** 2
    assert model(torch.zeros(2, 1, 24, 24), torch.zeros(2)).shape == (2, 1, 24, 24)
    assert ckpt["config"]["classes"] == [str(d) for d in range(10)]
    assert is_gray(fake_mnist / "vis/random_images_diffusion.png")
    random_generation.main(["--model", "diffusion", "--class", "7", "--steps", "2", "--n", "2", "--out-dir", "out",
                            "--threads", "1"])
    assert len(list((fake_mnist / "out" / "7").iterdir())) == 2
