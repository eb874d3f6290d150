"""ImageNet-scale folder listing: time and memory of `load_folder` and of one shuffled pass.

Builds (once; reused while `<root>/READY` matches) a synthetic ImageFolder of empty files,
`<root>/train/<class>/<class>_<n>.JPEG`, by default 1,281,167 files over 1000 class folders
like ImageNet's training split, then in a fresh subprocess (so the memory numbers start clean,
after TensorFlow is imported and its runtime started) measures:

* listing: wall time of `load_folder(data, task, "train")` (the classification folder source)
  and its peak RSS increase (VmHWM, reset through /proc/self/clear_refs before each phase);
  "held" is the RSS increase still held once it returns;
* pass: one full pass over the *shuffled* records, not decoded (the files are empty), read in
  batches of 8192: time and peak RSS increase. The order comes from `Split.shuffled(seed, n)`, as
  training draws it, or with `--buffer-shuffle` from `records.shuffle(n)` (a buffer of every
  record), for comparison; the table says which.

    python benchmarks/folder_listing.py [--files 1281167] [--classes 1000]
                                        [--root /tmp/zoo_folder_listing] [--buffer-shuffle] [--delete]

Creating 1.28M files takes a minute or two and as many inodes (`df -i`); `--delete` removes the
tree afterwards. To measure another checkout of the zoo, put it first on PYTHONPATH.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

IMAGENET_TRAIN = 1_281_167

CHILD = r"""
import json, os, resource, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from types import SimpleNamespace
import tensorflow as tf
import zoo.data
from zoo.tasks.classification.sources import load_folder

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return None

def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False

def peak():  # MB; the process-lifetime maximum when the peak cannot be reset
    hwm = status("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

root, seed, buffer_shuffle = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
for _ in tf.data.Dataset.from_tensor_slices((["a", "b"], [0, 1])).shuffle(2, seed=0).batch(2):
    pass  # start the eager runtime and tf.data before the baseline
out = {"zoo": os.path.dirname(zoo.data.__file__), "peak_reset": reset_peak()}
base = status("VmRSS")
start = time.perf_counter()
split = load_folder(SimpleNamespace(path=root, skip_corrupt=False, max_pixels=zoo.data.MAX_PIXELS), None, "train")
out["listing_s"] = time.perf_counter() - start
out["listing_peak_mb"] = peak() - base
out["listing_held_mb"] = status("VmRSS") - base
n = split.info.num_examples
if not buffer_shuffle:  # a full permutation of indices, as training draws it
    records, out["order"] = split.shuffled(seed, n), "split.shuffled"
else:
    records, out["order"] = split.records.shuffle(n, seed=seed), "records.shuffle(n)"
reset_peak()
base = status("VmRSS")
start = time.perf_counter()
count = 0
for paths, labels in records.batch(8192):
    count += int(tf.shape(paths)[0])
out["pass_s"] = time.perf_counter() - start
out["pass_peak_mb"] = peak() - base
out.update(files=n, seen=count, classes=split.info.num_classes)

# Checked after the timing: each file once with its folder's label, the listing sorted (classes,
# then files), the shuffled order mixing classes from its start.
train = os.path.join(root, "train")
classes = sorted(os.listdir(train))
want = [os.path.join(train, c, f) for c in classes for f in sorted(os.listdir(os.path.join(train, c)))]
listed = [p.decode() for paths, _ in split.records.batch(8192).as_numpy_iterator() for p in paths]
shuffled = [(p.decode(), int(l)) for paths, labels in records.batch(8192).as_numpy_iterator()
            for p, l in zip(paths, labels)]
out.update(listed_in_order=listed == want, unique=len({p for p, _ in shuffled}),
           all_listed={p for p, _ in shuffled} == set(want),
           wrong_labels=sum(classes[l] != os.path.basename(os.path.dirname(p)) for p, l in shuffled),
           first_classes=len({l for _, l in shuffled[:1000]}))
print("RESULT " + json.dumps(out), flush=True)
"""


def build_tree(root: Path, files: int, classes: int) -> Path:
    """`root/train/<class>/<class>_<n>.JPEG`, empty files; reused when READY says the same sizes."""
    ready = root / "READY"
    want = {"files": files, "classes": classes}
    if ready.exists() and json.loads(ready.read_text()) == want:
        print(f"reusing {root} ({files:,} files, {classes} classes)", flush=True)
        return root
    if root.exists():
        shutil.rmtree(root)
    start = time.perf_counter()
    flags = os.O_CREAT | os.O_WRONLY | os.O_EXCL
    for c in range(classes):
        name = f"n{1440764 + 7919 * c:08d}"  # WordNet-id-like folder names, as in ImageNet
        folder = root / "train" / name
        folder.mkdir(parents=True)
        per_class = files // classes + (c < files % classes)
        for i in range(per_class):
            os.close(os.open(folder / f"{name}_{10026 + 37 * i}.JPEG", flags, 0o644))
    ready.write_text(json.dumps(want))
    print(f"built {root}: {files:,} empty files in {classes} classes in {time.perf_counter() - start:.1f}s",
          flush=True)
    return root


def measure(root: Path, seed: int, buffer_shuffle: bool = False) -> dict:
    """One fresh interpreter: list the tree, then one pass over the shuffled records."""
    spec = importlib.util.find_spec("zoo")  # the zoo this script sees (PYTHONPATH first), not the cwd's
    if spec is None:
        sys.exit("cannot find the zoo package: install it or put its checkout on PYTHONPATH")
    checkout = str(Path(spec.origin).parent.parent)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": os.pathsep.join(filter(None, [checkout, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(root), str(seed), str(int(buffer_shuffle))],
                          capture_output=True, text=True, env=env, cwd=root)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        sys.exit(f"measurement failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=IMAGENET_TRAIN)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--root", type=Path, default=Path("/tmp/zoo_folder_listing"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--buffer-shuffle", action="store_true",
                        help="shuffle through records.shuffle(n) instead of Split.shuffled")
    parser.add_argument("--delete", action="store_true", help="remove the tree afterwards")
    args = parser.parse_args(argv)

    root = build_tree(args.root, args.files, args.classes)
    try:
        r = measure(root, args.seed, args.buffer_shuffle)
    finally:
        if args.delete:
            shutil.rmtree(root)
    assert r["seen"] == r["files"] == args.files, r
    print(f"zoo: {r['zoo']}   shuffled order: {r['order']}"
          + ("" if r["peak_reset"] else "   (peak RSS not resettable: lifetime maxima)"))
    print(f"{'files':>10} {'classes':>7} | {'listing s':>9} {'peak +MB':>8} {'held +MB':>8} | "
          f"{'pass s':>6} {'peak +MB':>8}")
    print(f"{r['files']:>10,} {r['classes']:>7} | {r['listing_s']:>9.2f} {r['listing_peak_mb']:>8.0f} "
          f"{r['listing_held_mb']:>8.0f} | {r['pass_s']:>6.2f} {r['pass_peak_mb']:>8.0f}")
    print("RESULT " + json.dumps(r))
    return r


if __name__ == "__main__":
    main()
