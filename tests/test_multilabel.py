"""Multi-label conditions: label files, the multi-hot data, guidance that drops the whole set, the commands."""
import json

import pytest
import torch

import diffusion
import evaluate
import random_generation
from diffusion import Diffuser, diffusion_loss_fn
from utils.sampling.driver import guided_denoiser
from utils.sampling.paths import make_betas
from utils.sampling.paths import Discrete
from utils.data.dataset import load_dataset
from utils.errors import UserError
from utils.data.multilabel import label_set_scores, parse_label_set, read_labels
from utils.data.shapes import OBJECTS, write_shapes_folder

@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """A flat folder of coloured-shape PNGs with its labels.json and objects.json."""
    return write_shapes_folder(tmp_path_factory.mktemp("shapes"), n=400)


def test_label_files(tmp_path):
    (tmp_path / "labels.json").write_text(json.dumps({"a.png": ["red cube"], "b.png": ["gray sphere", "red cube"]}))
    files, multi_hot, objects = read_labels(tmp_path / "labels.json")
    assert files == ["a.png", "b.png"] and objects == ["gray sphere", "red cube"]        # the sorted union
    assert multi_hot.tolist() == [[0, 1], [1, 1]]
    (tmp_path / "objects.json").write_text(json.dumps({"red cube": 0, "gray sphere": 1, "blue cylinder": 2}))
    _, multi_hot, objects = read_labels(tmp_path / "labels.json")                         # found beside labels.json
    assert objects == ["red cube", "gray sphere", "blue cylinder"] and multi_hot.tolist() == [[1, 0, 0], [1, 1, 0]]
    assert parse_label_set(" gray sphere,red cube ", objects).tolist() == [1, 1, 0]
    with pytest.raises(UserError, match="unknown object 'pink cone' \\(choose from red cube, gray sphere, blue"):
        parse_label_set("red cube,pink cone", objects)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        read_labels(tmp_path / "bad.json")


def test_label_set_scores():
    target = torch.tensor([[1, 0, 1], [0, 1, 0]])
    predicted = torch.tensor([[1, 0, 0], [0, 1, 0]])
    scores = label_set_scores(predicted, target)
    assert scores["exact_set_accuracy"] == 0.5
    assert scores["label_f1"] == pytest.approx(2 * 2 / (2 + 3))       # 2 true positives, 2 predicted, 3 present


def test_dataset_with_a_label_file(shapes, workdir):
    data = load_dataset(str(shapes), 24, labels_file=shapes / "labels.json")
    assert data.multi_label and data.images.shape == (400, 3, 24, 24) and data.labels.shape == (400, 6)
    assert set(data.labels.sum(1).tolist()) == {1.0, 2.0}
    assert len(set(data.train_idx.tolist()) & set(data.valid_idx.tolist())) == 0 and len(data.valid_idx) == 40
    again = load_dataset(str(shapes), 24, labels_file=shapes / "labels.json")             # from the cache
    assert torch.equal(again.images, data.images) and torch.equal(again.labels, data.labels)


def test_guidance_drops_the_whole_object_set():
    torch.manual_seed(0)
    model = Diffuser(8, 3, num_classes=4, base=8, mults=(1, 2), multi_label=True).eval()
    torch.nn.init.normal_(model.head[-1].weight, std=0.1)
    alpha_bar = Discrete(torch.cumprod(1 - make_betas("cosine", 100), 0))
    x, labels = torch.randn(2, 3, 8, 8), torch.tensor([[1.0, 0, 1, 0], [0, 1, 0, 0]])
    t = torch.full((2,), 40)
    with torch.no_grad():
        assert torch.equal(model(x, t), model(x, t, torch.zeros(2, 4)))      # no labels = the empty set
        assert not torch.allclose(model(x, t, labels), model(x, t))
        unconditional = guided_denoiser(model, alpha_bar, "v", None)(x, 40)[1]
        assert torch.allclose(guided_denoiser(model, alpha_bar, "v", labels, 0.0)(x, 40)[1], unconditional)
        losses = []
        for given in (labels, None):   # label dropout 1: every vector dropped, the unconditional loss
            torch.manual_seed(3)
            losses.append(diffusion_loss_fn(model, x, given, alpha_bar, p_uncond=1.0))
    assert torch.allclose(losses[0], losses[1])


def test_multi_label_commands(shapes, workdir):
    diffusion.main(["--data", str(shapes), "--labels", str(shapes / "labels.json"), "--minutes", "0",
                    "--epochs", "1", "--steps", "2", "--film-steps", "2", "--base", "8", "--threads", "1"])
    _, ckpt = diffusion.load()
    assert ckpt["config"]["multi_label"] and ckpt["config"]["classes"] == OBJECTS
    assert (workdir / "vis/random_images_diffusion.png").exists()
    random_generation.main(["--model", "diffusion", "--labels", "red square,blue triangle", "--steps", "2",
                            "--n", "3", "--out-dir", "set", "--threads", "1"])
    assert len(list((workdir / "set").glob("*.png"))) == 3
    with pytest.raises(UserError, match="unknown object 'pink cone'"):
        random_generation.main(["--model", "diffusion", "--labels", "pink cone", "--threads", "1"])
    with pytest.raises(UserError, match="conditioned on object sets"):
        random_generation.main(["--model", "diffusion", "--class", "red square", "--threads", "1"])
    evaluate.main(["--model", "diffusion", "--n", "12", "--steps", "2", "--threads", "1"])
    rows = {row["row"]: row for row in json.loads((workdir / "vis/report.json").read_text())["rows"]}
    # The classifier, trained as a multi-label one, recognises the object sets of held-out real images ...
    assert rows["real (held-out)"]["exact_set_accuracy"] >= 0.9 and rows["real (held-out)"]["label_f1"] >= 0.95
    # ... and scores the one-epoch model's samples against the object sets they were asked for.
    assert 0 <= rows["diffusion"]["label_f1"] <= 1 and 0 <= rows["diffusion"]["exact_set_accuracy"] <= 1
    assert "class_accuracy" not in rows["diffusion"]
