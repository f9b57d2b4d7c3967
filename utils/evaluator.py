"""The project's own flower classifier: its penultimate layer is the feature space of FD, KID and precision/recall.

No pretrained Inception weights can be downloaded on the lab machines, so, like the course's evaluator
for conditional generation, we train a small CNN once on the training split and reuse it
(models/Evaluator.pth), retraining only when the data changes.
"""
import hashlib
import time

import torch
import torch.nn.functional as F
from torch import nn

from utils.augment import augment
from utils.checkpoint import load_checkpoint, save_checkpoint

INPUT_SIZE = 32      # every input is resized to this, so one classifier scores models of any size
FEATURE_DIM = 128
EVALUATOR_PATH = "models/Evaluator.pth"
VERSION = 2          # bump when the network or its training changes: stored classifiers are then retrained


def conv_block(c_in, c_out):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class FlowerClassifier(nn.Module):
    def __init__(self, num_classes, channels=3):
        super().__init__()
        self.trunk = nn.Sequential(
            # Narrow on purpose: it trains in well under a minute on two CPU cores.
            conv_block(channels, 16), nn.MaxPool2d(2),          # 16 x 16
            conv_block(16, 32), nn.MaxPool2d(2),                # 8 x 8
            conv_block(32, 64), conv_block(64, 64),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(64, FEATURE_DIM), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(FEATURE_DIM, num_classes))

    def features(self, x):
        """Penultimate-layer features of images in [0, 1] of any size."""
        if x.shape[-1] != INPUT_SIZE or x.shape[-2] != INPUT_SIZE:
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", antialias=True, align_corners=False)
        return self.trunk(x * 2 - 1)

    def forward(self, x):
        return self.head(self.features(x))


def fingerprint(data):
    """Changes whenever the images, labels or split change: then the classifier is retrained."""
    digest = hashlib.sha1(f"v{VERSION}".encode())
    digest.update(data.images.numpy().tobytes())
    digest.update(data.labels.numpy().tobytes())
    digest.update(data.train_idx.numpy().tobytes())
    return digest.hexdigest()[:16]


@torch.no_grad()
def predict(model, images, batch_size=500, features=False):
    """Logits (or features) of float images in [0, 1], batched."""
    model.eval()
    fn = model.features if features else model
    return torch.cat([fn(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])


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
    if multi_label:  # each object present or not: one binary decision per object
        return F.binary_cross_entropy_with_logits
    return lambda logits, labels: F.cross_entropy(logits, labels, label_smoothing=0.05)


def train_classifier(data, epochs=25, batch_size=64, lr=3e-3, seed=0, log=print):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x_train, y_train = data.split("train")
    x_valid, y_valid = data.split("valid")
    model = FlowerClassifier(len(data.classes), data.channels)
    loss_fn = criterion(data.multi_label)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * -(-len(x_train) // batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=g)
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            loss = loss_fn(model(augment(x_train[idx], g)), y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
    valid_accuracy = accuracy(model, x_valid, y_valid)
    kind = f"{len(data.classes)}-object multi-label" if data.multi_label else f"{len(data.classes)}-class"
    log(f"evaluator: trained a {kind} classifier in {time.perf_counter() - start:.0f}s, "
        f"validation {'exact-set ' if data.multi_label else ''}accuracy {valid_accuracy:.1%}")
    return model, valid_accuracy


def load_or_train_evaluator(data, path=EVALUATOR_PATH, retrain=False, log=print):
    """The stored classifier when it was trained on exactly this data, else a freshly trained one."""
    key = fingerprint(data)
    try:
        ckpt = None if retrain else load_checkpoint(path, model="Evaluator")
    except Exception:
        ckpt = None
    if ckpt is not None and ckpt["config"]["fingerprint"] == key:
        model = FlowerClassifier(len(ckpt["config"]["classes"]), ckpt["config"]["channels"])
        model.load_state_dict(ckpt["model"])
        return model.eval(), ckpt["config"]["valid_accuracy"]
    model, valid_accuracy = train_classifier(data, log=log)
    config = dict(model="Evaluator", fingerprint=key, classes=data.classes, channels=data.channels,
                  multi_label=data.multi_label,
                  image_size=data.image_size, data=data.source, input_size=INPUT_SIZE, valid_accuracy=valid_accuracy)
    save_checkpoint(path, dict(config=config, model=model.state_dict()))
    return model.eval(), valid_accuracy
