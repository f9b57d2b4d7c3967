"""Train the evaluators shipped in utils/evaluation/shipped/, one per course data set and size, as evaluate.py does.

    python bench/ship_evaluators.py --data ../shared/flowers --image-size 24      # the lab (~20-40 s)
    python bench/ship_evaluators.py --data ../shared/flowers16 --image-size 32    # the sixteen (~4 minutes on E)
    python bench/ship_evaluators.py --data ../shared/flowers16 --image-size 64    # the bonus (13-35 minutes)

A classifier already in models/ for exactly this data (the same fingerprint) is shipped as it is; --retrain
trains it anew. evaluate.py uses a shipped one only when its fingerprint matches the user's data;
python bench/evaluator_checks.py --data DIR --image-size N --shipped checks its ladders.
"""
import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.data.dataset import load_dataset  # noqa: E402
from utils.evaluation.evaluator import (evaluator_path, fingerprint, load_or_train_evaluator,  # noqa: E402
                                        shipped_path, stored_evaluator)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--image-size", type=int, default=24)
    p.add_argument("--retrain", action="store_true", help="train anew even if models/ holds one for this data")
    args = p.parse_args(argv)
    data = load_dataset(args.data, args.image_size)
    path, shipped = Path(evaluator_path(data)), shipped_path(data)
    if args.retrain or stored_evaluator(path, fingerprint(data)) is None:
        load_or_train_evaluator(data, path=path, retrain=True)   # trains, and stores it at path
    shipped.parent.mkdir(exist_ok=True)
    shutil.copy(path, shipped)
    _, accuracy = stored_evaluator(shipped, fingerprint(data))
    # evaluate.py looks in the shipped folder first: a copy left in models/ would only shadow a later retrained one
    print(f"shipped {shipped} ({shipped.stat().st_size // 1024} KB, fingerprint {fingerprint(data)}, "
          f"validation accuracy {accuracy:.1%})")


if __name__ == "__main__":
    main()
