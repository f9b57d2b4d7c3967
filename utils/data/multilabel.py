"""Multi-label conditions, as in the iCLEVR lab: each image carries a set of objects ("red cube", "gray sphere").

labels.json maps an image's file name (relative to the data folder) to its list of object names; the
object vocabulary is objects.json (name -> index) when given, else the sorted union of all names.
A label set is a multi-hot vector over the vocabulary; the all-zero vector means "no condition", which is
what classifier-free guidance drops to.
"""
import json
from pathlib import Path

import torch

from utils.errors import UserError


def read_json(path, what):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{what} not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{what} {path} is not valid JSON ({e})") from None


def vocabulary(labels, objects_file=None):
    """Object names in index order: objects.json's map when given, else the sorted union of the labels."""
    if objects_file is None:
        return sorted({name for names in labels.values() for name in names})
    index = read_json(objects_file, "objects file")
    if not isinstance(index, dict) or sorted(index.values()) != list(range(len(index))):
        raise UserError(f"{objects_file} must map each object name to an index 0..K-1")
    return sorted(index, key=index.get)


def read_labels(labels_file, objects_file=None):
    """(file names, N x K multi-hot float tensor, object names) from a labels.json."""
    labels = read_json(labels_file, "labels file")
    if not isinstance(labels, dict) or not all(isinstance(v, list) for v in labels.values()) or not labels:
        raise UserError(f"{labels_file} must map image file names to lists of object names")
    if objects_file is None and (Path(labels_file).parent / "objects.json").exists():
        objects_file = Path(labels_file).parent / "objects.json"
    objects = vocabulary(labels, objects_file)
    files = sorted(labels)
    return files, torch.stack([multi_hot(labels[f], objects) for f in files]), objects


def multi_hot(names, objects):
    """The multi-hot vector of a list of object names; an unknown name lists the valid ones."""
    vector = torch.zeros(len(objects))
    for name in names:
        if name not in objects:
            raise UserError(f"unknown object {name!r} (choose from {', '.join(objects)})")
        vector[objects.index(name)] = 1
    return vector


def parse_label_set(text, objects):
    """'red cube, gray sphere' -> its multi-hot vector."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise UserError("--labels needs at least one object name, e.g. --labels \"red cube,gray sphere\"")
    return multi_hot(names, objects)


def describe(vector, objects):
    return ", ".join(objects[i] for i in torch.nonzero(vector).flatten().tolist()) or "unconditional"


def random_split(n, valid_fraction=0.1, seed=0):
    """Label sets have no single class to stratify by: a seeded random split, the same for every script."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_valid = max(1, round(valid_fraction * n)) if n > 1 else 0
    return order[n_valid:].sort().values, order[:n_valid].sort().values


def label_set_scores(predicted, target):
    """Per-object F1 (micro-averaged over all objects) and exact-set accuracy of multi-hot predictions."""
    predicted, target = predicted.bool(), target.bool()
    true_positives = (predicted & target).sum().item()
    denominator = predicted.sum().item() + target.sum().item()
    return dict(label_f1=2 * true_positives / denominator if denominator else 1.0,
                exact_set_accuracy=(predicted == target).all(dim=1).float().mean().item())
