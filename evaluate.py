"""Measure every model in one report: python evaluate.py --model all

Rows: each model, plus a calibration ladder computed the same way: held-out real images (the floor), the same
images blurred, resampled down and up, and with noise added, each by growing amounts, and samples of a
Gaussian fitted to the training pixels (the baseline any generator must beat). Features for FD, KID and
precision/recall come from the project's own feature network (utils/evaluation/evaluator.py, models/Evaluator_*.pth),
trained once on the training split. Writes vis/report.md, vis/report.json and vis/compare.png.

    python evaluate.py --samples DIR       # score any folder of generated images on the same scale
"""
import datetime
import json
import sys
from pathlib import Path

import torch

from utils import cli
from utils.data.dataset import load_dataset, resolve_source, to_float
from utils.data.images import load_image
from utils.data.multilabel import label_set_scores
from utils.errors import UserError
from utils.evaluation import metrics
from utils.evaluation.evaluator import VERSION as EVALUATOR_VERSION, decide, frechet_distances, predict, yardstick
from utils.evaluation.ladder import ladder
from utils.evaluation.spectrum import colour_grain
from utils.evaluation.table import markdown_table
from utils.figures import image_rows
from utils.generators import GENERATORS, reported
from utils.training.checkpoint import load_checkpoint

def report_settings(args, kinds):
    """Data, size, split and label files: as given, else those of the first trained model, else the defaults."""
    # image_size: a model trained at another size is refused now, not after minutes of decoding the data at this one.
    trained = [load_checkpoint(kind.checkpoint, model=kind.name, image_size=args.image_size)["config"]
               for kind in kinds if kind.trained()]
    first = trained[0] if trained else {}
    own = not args.data   # the label files and the split of the models' own data
    return dict(data=args.data or first.get("data") or resolve_source(None),
                image_size=args.image_size or first.get("image_size", 24),
                labels_file=args.labels or (first.get("labels_file") if own else None),
                objects_file=args.objects or (first.get("objects_file") if own else None),
                split_seed=first.get("split_seed", 0) if own else 0,
                valid_fraction=first.get("valid_fraction", 0.1) if own else 0.1)


def same_source(a, b):
    return a == b or (Path(a).exists() and Path(b).exists() and Path(a).resolve() == Path(b).resolve())


def check_trained_on(kind, config, data, settings):
    """A model scored against the report's data must have been trained on it: the same images, classes, split and
    size (its FD reference, class indices and validation images are the report's). Otherwise a one-line error."""
    mine = (config["data"], config["classes"], config["split_seed"], config["valid_fraction"], config["image_size"])
    report = (data.source, data.classes, settings["split_seed"], settings["valid_fraction"], data.image_size)
    if same_source(mine[0], report[0]) and mine[1:] == report[1:]:
        return
    described = "{} ({}, split seed {}, valid fraction {:g}, {}px)".format
    raise UserError(f"{kind.checkpoint} was trained on {described(mine[0], ', '.join(mine[1]), *mine[2:])}, not the "
                    f"report's {described(report[0], ', '.join(report[1]), *report[2:])}: evaluate it alone "
                    f"(python evaluate.py --model {kind.name}) or retrain it on the report's data")


def precision_recall(feats, reference):
    """k=3 precision and recall against the reference features; None for fewer than 4 images (only tiny test
    sets have fewer), where k=3 neighbourhoods do not exist."""
    return metrics.precision_recall(reference, feats, k=3) if len(feats) > 3 else None


def sample_quality(images, stick, labels=None):
    """FD (and the network's part of it), KID, precision/recall against the yardstick's reference features; colour
    grain; memorisation; class accuracy if labelled. KID and precision/recall use the network's features alone."""
    evaluator, reference, d = stick.evaluator, stick.reference, stick.evaluator.feature_dim
    feats = predict(evaluator, images, features=True)
    kid, kid_std = metrics.kernel_inception_distance(feats[:, :d], reference[:, :d], subsets=50)
    fd, fd_network = frechet_distances(feats, reference, d)
    row = dict(n=len(images), fd=fd, fd_network=fd_network, kid=kid, kid_std=kid_std,
               nn_distance=metrics.nearest_neighbour_distance(images, stick.train))
    grain = colour_grain(images, evaluator.detail_level)   # against the training photos' level, kept by the evaluator
    if grain is not None:
        row["grain"] = grain
    coverage = precision_recall(feats[:, :d], reference[:, :d])
    if coverage:
        row["precision"], row["recall"] = coverage
    if labels is None:
        return row
    with torch.no_grad():  # the classifier's head on the features already computed: no second pass
        predicted = decide(evaluator.head(feats[:, :d]), multi_label=labels.dim() == 2)
    if labels.dim() == 2:   # object sets: per-object F1 and exact-set accuracy
        row.update(label_set_scores(predicted, labels))
    else:
        row["class_accuracy"] = (predicted == labels).float().mean().item()
    return row


def reconstruction_quality(kind, model, valid_images, stick, n, seed):
    """Pixel errors of the reconstructions of the validation images, and the FD and recall of (up to n of) them:
    the floor and the ceiling of anything decoded from these codes, comparable with the calibration rungs of as
    many images."""
    recon = kind.api.reconstruct(model, valid_images)
    some = torch.randperm(len(recon), generator=torch.Generator().manual_seed(seed))[:n]
    feats, d = predict(stick.evaluator, recon[some].cpu(), features=True), stick.evaluator.feature_dim
    row = dict(mse=torch.mean((recon - valid_images) ** 2).item(),
               psnr=metrics.psnr(recon, valid_images).mean().item(),
               ssim=metrics.ssim(recon, valid_images).mean().item(),
               recon_fd=frechet_distances(feats, stick.reference, d)[0],
               compression=metrics.compression_ratio(valid_images.shape[1:], model.encoding_dim))
    coverage = precision_recall(feats[:, :d], stick.reference[:, :d])
    if coverage:
        row["recon_recall"] = coverage[1]
    return row


def model_row(kind, data, stick, n, seed, device, options):
    if not kind.trained():
        return dict(row=kind.name, status="not trained yet — run " + kind.train_command), None
    try:
        model, ckpt = kind.load(device=device, image_size=data.image_size)
    except UserError as e:
        return dict(row=kind.name, status=str(e)), None
    row = dict(row=kind.name, status=f"epoch {ckpt['epoch']}")
    if kind.reconstructs:  # on the validation images (the model's own split): never ones it was trained on
        row.update(reconstruction_quality(kind, model, to_float(data.images[data.valid_idx]).to(device), stick, n,
                                          seed))
    samples = None
    if kind.samples:  # a multi-label model draws the validation split's object sets
        samples, labels = kind.api.evaluation_samples(model, ckpt["config"], n, seed, device,
                                                      data.labels[data.valid_idx], options)
        row["sampling"] = kind.api.sampling(ckpt["config"], options)
        row.update(sample_quality(samples.cpu(), stick, labels))
    return row, samples


def calibration_rows(data, stick, n, generator):
    held_out = data.valid_idx[torch.randperm(len(data.valid_idx), generator=generator)[:n]]  # all classes
    valid, labels = to_float(data.images[held_out]), data.labels[held_out]
    rows = []
    for name, kind, rung, images in ladder(valid, stick.train, n, generator):
        quality = sample_quality(images, stick, labels if name != "Gaussian fit to pixels" else None)
        rows.append(dict(row=name, status="calibration", ladder=kind, rung=rung, **quality))
    return rows, valid


MIN_SCORED = 100   # samples below which FD and KID are mostly noise (their covariances and kernels need many)


def read_samples(folder, data, warn=print):
    """PNG/JPG files under a folder, resized to the data's size; labels when sub-folders are named as its classes.
    Unreadable files are skipped and counted; what makes the scores meaningless is said, not hidden."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    images, kept = [], []
    for f in files:
        try:
            images.append(load_image(f, data.image_size))
            kept.append(f)
        except Exception:   # empty, truncated, a folder or a broken link named .png: PIL raises several types
            pass
    unreadable = f"{len(files) - len(kept)} unreadable image file(s)"
    if not images:
        raise UserError(f"--samples {folder}: no readable PNG or JPG images found" + f" ({unreadable})" * bool(files))
    if len(kept) < len(files):
        warn(f"warning: --samples {folder}: skipped {unreadable}")
    images = torch.stack(images)[:, :data.channels]   # decoded as RGB: a gray set keeps one of its equal channels
    names = [f.relative_to(folder).parts[0] if len(f.relative_to(folder).parts) > 1 else None for f in kept]
    labelled = not data.multi_label and all(name in data.classes for name in names)
    labels = torch.tensor([data.classes.index(name) for name in names]) if labelled else None
    if not labelled and any(names) and not data.multi_label:
        warn(f"warning: --samples {folder}: its sub-folders ({', '.join(sorted(set(filter(None, names))))}) are not "
             f"the data's classes ({', '.join(data.classes)}), so no class accuracy")
    if len(images) < MIN_SCORED:
        warn(f"warning: --samples {folder}: {len(images)} images; FD and KID need at least {MIN_SCORED} to mean much")
    if images.float().std(dim=(1, 2, 3)).max() < 1:
        warn(f"warning: --samples {folder}: every image is one flat colour; its precision and recall mean nothing")
    return to_float(images), labels


def samples_row(folder, samples, stick):
    images, labels = samples
    return dict(row=str(folder), status="samples folder", **sample_quality(images, stick, labels))


def markdown(rows, settings):
    return "\n".join(["# Evaluation report", "", *(f"- {k}: {v}" for k, v in settings.items()), "",
                      markdown_table(rows)]) + "\n"


def get_args(argv=None):
    """The flags, checked: (args, the kinds to report)."""
    p = cli.parser(__doc__)
    p.add_argument("--model", nargs="+", default=None, metavar="MODEL",
                   help=f"one or more of {', '.join(GENERATORS)}; or all or none (default: all: the "
                        "handout's models and any other trained here; none when --samples is given)")
    p.add_argument("--samples", action="append", default=[], metavar="DIR",
                   help="also score a folder of generated images (any tool's; sub-folders named as the data's "
                        "classes add class accuracy); repeat for several folders")
    p.add_argument("--json", action="store_true", help="print each row as one JSON line instead of the table")
    p.add_argument("--n", type=int, default=1000, help="samples per generative model")
    p.add_argument("--retrain-evaluator", action="store_true", help="retrain the classifier even if it is stored")
    cli.add_sampling_flags(p, "the diffusion model's samples")
    cli.add_label_flags(p)
    args = p.parse_args(argv)
    names = args.model or ["none" if args.samples else "all"]
    for name in names:
        if name not in [*GENERATORS, "all", "none"]:
            cli.fail(f"unknown model {name!r} (choose from {', '.join(GENERATORS)}, all or none)")
    if args.n < 10:
        cli.fail("--n must be at least 10")
    for folder in args.samples:
        if not Path(folder).is_dir():
            cli.fail(f"--samples {folder}: no such folder")
    return args, reported() if "all" in names else [GENERATORS[name] for name in names if name != "none"]


def report_data(args, kinds):
    """(the report's data, the --samples folders read): each model checked against the data, and the
    folders read, before the feature network trains, so that a mismatch or a bad folder is found in seconds."""
    chosen = report_settings(args, kinds)
    data = load_dataset(chosen["data"], chosen["image_size"], chosen["valid_fraction"], chosen["split_seed"],
                        labels_file=chosen["labels_file"], objects_file=chosen["objects_file"], quiet=args.json)
    for kind in kinds:
        if kind.trained():
            check_trained_on(kind, load_checkpoint(kind.checkpoint)["config"], data, chosen)
    sample_sets = [read_samples(folder, data, warn=lambda line: print(line, file=sys.stderr)) for folder in args.samples]
    return data, sample_sets


def score(kinds, data, stick, sample_sets, args, device):
    """(every row: the ladder, the models, the --samples folders; the comparison figure's rows and their labels)."""
    say = (lambda line: None) if args.json else (lambda line: print(line, flush=True))
    rows, real = calibration_rows(data, stick, args.n, torch.Generator().manual_seed(args.seed))
    figure_rows, figure_labels = [real[:10]], ["real"]
    options = cli.sampling_options(args, precision=args.precision)
    for kind in kinds:
        row, samples = model_row(kind, data, stick, args.n, args.seed, device, options)
        rows.append(row)
        if samples is not None:
            figure_rows.append(samples[:10].cpu())
            figure_labels.append(kind.name)
        say(f"{kind.name}: {row['status']}")
    rows += [samples_row(folder, samples, stick) for folder, samples in zip(args.samples, sample_sets)]
    return rows, (figure_rows, figure_labels)


def header(data, stick, seed):
    """The report's header: what was measured, with what, against what."""
    return {"data": f"{data.source} ({len(data.train_idx)} train / {len(data.valid_idx)} valid, "
                    f"{data.image_size}px, {'objects' if data.multi_label else 'classes'} {', '.join(data.classes)})",
            "features": f"{stick.evaluator.feature_dim}-d, pooled from every stage of the project's own classifier "
                        f"(trained on the classes and on telling training images apart), validation "
                        f"{'exact-set ' if data.multi_label else ''}accuracy {stick.accuracy:.1%}, and the "
                        f"log power of fine detail in the two colour channels (colour grain: that power over the "
                        f"training photos')",
            "evaluator": f"{stick.evaluator.source} (version {EVALUATOR_VERSION})",
            "reference": "FD, KID, precision/recall (k=3) against the training split's features; "
                         "reconstruction on the validation split; NN dist: mean L2 pixel distance to "
                         "the nearest training image",
            "seed": seed, "date": str(datetime.date.today())}


def write_report(rows, settings, figure, image_size, seed):
    Path("vis").mkdir(exist_ok=True)
    Path("vis/report.md").write_text(markdown(rows, settings))
    Path("vis/report.json").write_text(json.dumps(dict(settings=settings, rows=rows), indent=2))
    image_rows(*figure, f"samples per model ({image_size}px, seed {seed})", "vis/compare.png")
    print("wrote vis/report.md, vis/report.json, vis/compare.png")


def main(argv=None):
    args, kinds = get_args(argv)
    device = cli.setup(args)
    data, sample_sets = report_data(args, kinds)
    stick = yardstick(data, retrain=args.retrain_evaluator, log=print if not args.json else lambda line: None)
    rows, figure = score(kinds, data, stick, sample_sets, args, device)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return
    settings = header(data, stick, args.seed)
    print(markdown(rows, settings))
    if kinds:   # a folder scored against the ladder alone leaves the models' report files as they are
        write_report(rows, settings, figure, data.image_size, args.seed)


if __name__ == "__main__":
    cli.run(main)
