"""The project's own feature network for FD, KID and precision/recall: a small CNN trained on the user's data.

No pretrained Inception weights can be downloaded on the lab machines, so we train one once on the training
split (12-36 s on two CPU cores at 24 px; 13-35 minutes for the 16-class set at 64 px, by the machine) and reuse
it (models/Evaluator_<data>_<size>px.pth: one per data set and size, so scoring another set never overwrites
this one's), retraining when the data changes; for the course's own sets (flowers at 24 px, flowers16 at 32 and
64 px) it ships trained (SHIPPED below), so that every clone and machine scores the same samples identically.
A classifier alone learns what tells the classes apart and little else: its features scored a blob of the right
colour as well as a detailed flower, and a 3-minute diffusion model above a 15-minute one. So it learns two
things at once: the class, and which two augmented views come from the same training image (contrastive
instance discrimination, SimCLR: Chen et al. 2020), which takes detail, texture and layout.
Its features are pooled from every depth, from edges to shapes, so that blur, noise and missing variety all
move them. bench/evaluator_checks.py checks that it ranks known degradations and longer training right.
"""
import hashlib
import math
import time
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from utils.data.augment import augment
from utils.data.dataset import to_float
from utils.evaluation import metrics
from utils.evaluation.spectrum import colour_detail, spectral_features
from utils.training.checkpoint import load_checkpoint, save_checkpoint

VERSION = 4          # bump when the network, its training or the features change: stored ones are then retrained
WIDTHS = (16, 32, 64)   # channels at full, 1/2 and 1/4 resolution: chosen by bench/evaluator_checks.py
FEATURE_SCALE = 10      # features x 10: FD x 100, so that it reads in units and tens, like the Inception FID
TEMPERATURE = 0.2       # of the contrastive loss
# Weight of the colour-grain features (spectrum.py) beside the network's: the smallest of 2, 3 and 4 with which the
# speckled 2x2-block network at 24 epochs ranks below the smooth v-prediction baseline at 33, as the eye ranks them
# (docs/diffusion.md), and every ladder of bench/evaluator_checks.py stays in order.
SPECTRAL_SCALE = 2.0
# Feature networks trained on the course's data sets, used when the data's fingerprint matches: a fresh clone scores
# at once, and every machine scores with the same network. python bench/ship_evaluators.py writes them.
SHIPPED = Path(__file__).resolve().parent / "shipped"


def conv_block(c_in, c_out):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class FlowerClassifier(nn.Module):
    """Three stages of two convolutions (full, 1/2 and 1/4 resolution); the features are every stage's
    channels averaged over the image, so that edges and textures count as much as shapes."""

    def __init__(self, num_classes, channels=3, input_size=24):
        super().__init__()
        self.input_size = input_size
        widths = [channels, *WIDTHS]
        self.stages = nn.ModuleList()
        for i, (c_in, c_out) in enumerate(zip(widths, widths[1:])):
            downsample = [nn.MaxPool2d(2)] if i else []
            self.stages.append(nn.Sequential(*downsample, conv_block(c_in, c_out), conv_block(c_out, c_out)))
        self.feature_dim = sum(WIDTHS)
        # the training photos' mean fine-detail power per colour channel (spectrum.py), set after training
        self.register_buffer("detail_level", torch.ones(2 if channels == 3 else 0))
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.feature_dim, num_classes))

    def features(self, x):
        """Features of images in [0, 1] of any size (resized to the size the network was trained at)."""
        h, pooled = self.resized(x) * 2 - 1, []
        for stage in self.stages:
            h = stage(h)
            # Divided by sqrt(width): each stage weighs the same in the distances, whatever its width.
            pooled.append(h.mean((2, 3)) * (FEATURE_SCALE / math.sqrt(h.shape[1])))
        return torch.cat(pooled, 1)

    def forward(self, x):
        return self.head(self.features(x))

    def embed(self, x):
        """What FD, KID and precision/recall compare: the features, and the fine detail's power per channel of
        luminance and colour (spectrum.py), which pooled features miss."""
        x = self.resized(x)
        return torch.cat([self.features(x), spectral_features(x, self.detail_level, SPECTRAL_SCALE)], 1)

    def resized(self, x):
        if x.shape[-2:] == (self.input_size, self.input_size):
            return x
        return F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", antialias=True,
                             align_corners=False)


def fingerprint(data):
    """Changes whenever the images, labels or split change: then the classifier is retrained."""
    digest = hashlib.sha1(f"v{VERSION}".encode())
    digest.update(data.images.numpy().tobytes())
    digest.update(data.labels.numpy().tobytes())
    digest.update(data.train_idx.numpy().tobytes())
    return digest.hexdigest()[:16]


@torch.no_grad()
def predict(model, images, batch_size=500, features=False):
    """Logits (or the features that the metrics compare: FlowerClassifier.embed) of float images in [0, 1], batched."""
    model.eval()
    fn = model.embed if features else model
    return torch.cat([fn(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])


def frechet_distances(feats, reference, network_dims):
    """(FD, the network's part of it) of embed()'s features: FD is the network's block plus the spectral block, each
    compared on its own (in one covariance their few dimensions would be lost among the network's, as colour grain
    was)."""
    d = network_dims
    network = metrics.frechet_distance(feats[:, :d], reference[:, :d])
    spectral = metrics.frechet_distance(feats[:, d:], reference[:, d:]) if feats.shape[1] > d else 0.0
    return network + spectral, network


def decide(logits, multi_label=False):
    """Predicted class indices, or (multi-label) multi-hot object sets: every object whose logit is positive."""
    return (logits > 0).float() if multi_label else logits.argmax(1)


def predict_labels(model, images, multi_label=False):
    return decide(predict(model, images), multi_label)


def accuracy(model, images, labels):
    """Class accuracy, or for multi-hot labels the exact-set accuracy."""
    multi_label = labels.dim() == 2
    return (predict_labels(model, images, multi_label) == labels).reshape(len(labels), -1).all(1).float().mean().item()


def criterion(multi_label):
    if multi_label:  # each object present or not: one binary decision per object, summed over the objects
        return lambda logits, labels: F.binary_cross_entropy_with_logits(logits, labels, reduction="none").sum(1).mean()
    return lambda logits, labels: F.cross_entropy(logits, labels, label_smoothing=0.05)


def contrastive_loss(z1, z2, temperature):
    """NT-Xent (SimCLR): each view must pick out the other view of its own image among the 2B - 1 others."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    similarity = z @ z.T / temperature
    similarity.fill_diagonal_(float("-inf"))
    n = len(z1)
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(similarity, partner)


def train_classifier(data, epochs=12, batch_size=None, lr=3e-3, seed=0, log=print):
    """Each step sees two augmented views of every image in the batch: the loss asks for the class of both,
    and (contrastive) for which two views belong together. Batches of 64, smaller for a small data set, so
    that every epoch takes at least 20 steps."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x_train, y_train = data.split("train")
    x_valid, y_valid = data.split("valid")
    batch_size = batch_size or min(64, max(16, len(x_train) // 20))
    model = FlowerClassifier(len(data.classes), data.channels, data.image_size)
    projection = nn.Sequential(nn.Linear(model.feature_dim, 128), nn.ReLU(), nn.Linear(128, 64))  # SimCLR's head
    class_loss = criterion(data.multi_label)
    optimizer = torch.optim.AdamW([*model.parameters(), *projection.parameters()], lr=lr, weight_decay=1e-4)
    steps = epochs * -(-len(x_train) // batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=g)
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            x, y = x_train[idx], y_train[idx]
            feats = model.features(torch.cat([augment(x, g), augment(x, g)]))
            loss = class_loss(model.head(feats), torch.cat([y, y]))
            if len(idx) > 1:   # a lone image has no other to be told apart from
                loss = loss + contrastive_loss(*projection(feats).chunk(2), TEMPERATURE)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
    valid_accuracy = accuracy(model, x_valid, y_valid)
    kind = f"{len(data.classes)}-object multi-label" if data.multi_label else f"{len(data.classes)}-class"
    log(f"evaluator: trained a {kind} classifier in {time.perf_counter() - start:.0f}s, "
        f"validation {'exact-set ' if data.multi_label else ''}accuracy {valid_accuracy:.1%}")
    return model, valid_accuracy


def evaluator_path(data):
    return f"models/Evaluator_{Path(data.source).name}_{data.image_size}px.pth"


def shipped_path(data):
    """Where the evaluator shipped for this data set and size would be (used only if its fingerprint matches)."""
    return SHIPPED / Path(evaluator_path(data)).name


def stored_evaluator(path, key):
    """The classifier stored at path if it was trained on the data of this fingerprint, else None."""
    try:
        ckpt = load_checkpoint(path, model="Evaluator")
    except Exception:
        return None
    if ckpt["config"]["fingerprint"] != key:
        return None
    c = ckpt["config"]
    model = FlowerClassifier(len(c["classes"]), c["channels"], c["input_size"])
    model.load_state_dict(ckpt["model"])
    model.source = str(path)
    return model.eval(), c["valid_accuracy"]


def load_or_train_evaluator(data, path=None, retrain=False, log=print):
    """The stored classifier when it was trained on exactly this data (the shipped one, else one in models/), else
    a freshly trained one. The model's `source` says which file it is."""
    path, key = path or evaluator_path(data), fingerprint(data)
    for candidate in [] if retrain else [shipped_path(data), path]:
        found = stored_evaluator(candidate, key)
        if found is not None:
            return found
    model, valid_accuracy = train_classifier(data, log=log)
    model.detail_level.copy_(colour_detail(model.resized(to_float(data.images[data.train_idx]))).mean(0))
    model.source = str(path)
    config = dict(model="Evaluator", fingerprint=key, classes=data.classes, channels=data.channels,
                  multi_label=data.multi_label, image_size=data.image_size, data=data.source,
                  input_size=model.input_size, valid_accuracy=valid_accuracy)
    save_checkpoint(path, dict(config=config, model=model.state_dict()))
    return model.eval(), valid_accuracy


class Yardstick(NamedTuple):
    """What every score compares against: the evaluator (and its validation accuracy), the training images as
    floats (for memorisation) and their features (the reference distribution)."""
    evaluator: nn.Module
    accuracy: float
    train: torch.Tensor
    reference: torch.Tensor


def yardstick(data, path=None, retrain=False, log=print):
    return measure_with(data, *load_or_train_evaluator(data, path, retrain, log))


def measure_with(data, evaluator, accuracy):
    """The yardstick of a given evaluator (one trained on this data) for this data."""
    train = to_float(data.images[data.train_idx])
    return Yardstick(evaluator, accuracy, train, predict(evaluator, train, features=True))
