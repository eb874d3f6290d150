"""best.keras chosen on the test split (the zoo before data.val_split) against chosen on a held-out
10% of train, both scored on test.

On the class-sorted ImageFolder of benchmarks/sorted_folder.py (jittered 28x28 PNGs of the embedded
8x8 UCI digits, train and test from disjoint digits), per seed:

* new: `mnist_cnn` on the folder with data.val_split null: a seeded, stratified 10% of `train`
  validates (chooses best.keras), the other 90% trains, metrics.json reports `test`;
* old: the same 90% of the files (a folder of links to exactly the carve-out's training part, in
  the same listed order, so with the same seed the two runs train alike) with
  data.val_split=test: best.keras is chosen on the split it is then scored on.

Both runs' `best/accuracy` is best.keras on test. The old number is the best of every epoch's test
accuracy, so it is biased upwards; the new one is an honest estimate of the model a user keeps.
A small training set, a constant learning rate and small batches make the epochs differ.

    python benchmarks/validation_split.py [--data /tmp/zoo_sorted_digits_val] [--seeds 0 1 2 3 4]
                                          [--epochs 15] [--copies 1]
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import zoo  # noqa: E402
from sorted_folder import build_folder  # noqa: E402
from zoo.data import load_split  # noqa: E402
from zoo.data.holdout import DEFAULT_FRACTION, carve  # noqa: E402
from zoo.tasks import get_task  # noqa: E402


def overrides(root: Path, epochs: int, seed: int, *extra) -> list[str]:
    return ["data.source=folder", "data.name=null", f"data.path={root}", "data.train_split=train",
            "data.val_split=null", "data.batch_size=32",
            "data.cache=true", f"train.epochs={epochs}", "train.schedule.name=constant",
            "train.schedule.warmup_epochs=0", "train.optimizer.learning_rate=0.003", "train.verbose=0",
            "runtime.mixed_precision=float32", f"runtime.seed={seed}", *extra]


def link_training_part(root: Path, seed: int) -> str:
    """`root/train90_s<seed>/<class>/`: links to the files the carve-out of `train` trains on."""
    recipe = zoo.load_recipe("mnist_cnn", overrides(root, 1, seed))
    kept, _, _ = carve(load_split(recipe, get_task("classification"), "train"), DEFAULT_FRACTION, seed, "train")
    name = f"train90_s{seed}"
    for path, _ in kept.records.as_numpy_iterator():
        source = Path(path.decode())
        target = root / name / source.parent.name / source.name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(source)
    return name


def history(run_dir: Path) -> list[dict]:
    with open(run_dir / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def train(recipe_overrides) -> tuple[dict, list[dict], float]:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        run = zoo.train(zoo.load_recipe("mnist_cnn", recipe_overrides), output_dir=out)
        rows = history(Path(out))
    return run.metrics, rows, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/zoo_sorted_digits_val"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--copies", type=int, default=1, help="jittered PNGs per training digit")
    args = parser.parse_args()

    counts = build_folder(args.data, args.copies, 1)
    print(f"{sum(counts['train'].values())} train / {sum(counts['test'].values())} test images, "
          f"class-sorted folders; {args.epochs} epochs", flush=True)
    results = []
    for seed in args.seeds:
        part = link_training_part(args.data, seed)
        new, new_rows, new_s = train(overrides(args.data, args.epochs, seed))
        old, old_rows, old_s = train(overrides(args.data, args.epochs, seed, f"data.train_split={part}",
                                               "data.val_split=test"))
        # The same training data and seed: the runs train alike (multi-threaded CPU kernels aside).
        drift = max(abs(float(a["loss"]) - float(b["loss"])) for a, b in zip(new_rows, old_rows))
        test_by_epoch = [float(r["val_accuracy"]) for r in old_rows]  # the old run validated on test
        results.append({"seed": seed, "old_epoch": old["best_epoch"], "old": old["best/accuracy"],
                        "new_epoch": new["best_epoch"], "new": new["best/accuracy"],
                        "last": new["accuracy"], "test_at_new_epoch": test_by_epoch[new["best_epoch"] - 1],
                        "loss_drift": drift, "seconds": new_s + old_s})
        print(results[-1], flush=True)

    print(f"\nbest.keras on test ({args.epochs} epochs, mnist_cnn on the class-sorted digits folder)")
    print(f"{'seed':>4} {'chosen on test':>16} {'chosen on 10% val':>19} {'last epoch':>11} {'old - new':>10}"
          f" {'loss drift':>11}")
    for r in results:
        print(f"{r['seed']:>4} {r['old']:>9.4f} (ep {r['old_epoch']:>2}) {r['new']:>12.4f} (ep {r['new_epoch']:>2})"
              f" {r['last']:>11.4f} {r['old'] - r['new']:>+10.4f} {r['loss_drift']:>11.2g}")
    mean = {k: sum(r[k] for r in results) / len(results) for k in ("old", "new", "last")}
    print(f"mean {mean['old']:>21.4f} {mean['new']:>19.4f} {mean['last']:>11.4f} {mean['old'] - mean['new']:>+10.4f}")


if __name__ == "__main__":
    main()
