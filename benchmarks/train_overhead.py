"""Pipeline overhead: zoo.train against a plain `model.fit` on the same model and data.

Both sides train `zoo.create_model(--model)` on the same images (the generated `shapes` set,
in memory) with the same optimizer, loss, metrics, batch size, epochs, seed, float32 policy
and threads (one process). Each is what a user would write: the zoo side is a whole
`zoo.train` of a recipe (its pipeline caches the decoded uint8 images and maps the task's
`prepare` per example; divergence guard, history.csv, checkpoints, TensorBoard, summary
line); the plain side is float32 arrays -> shuffle -> batch -> `model.fit`, no callbacks.

Timing, the same on both sides: Keras' `CallbackList` is wrapped in this process (zoo code is
unchanged), so an epoch is the full cycle from one `on_epoch_begin` to the next (the last
one: to `fit` returning), every end-of-epoch callback included. The first epoch of each run
(tracing, cache fill) is left out. A run's typical epoch: per piece of an epoch (the turns
below, then the end-of-epoch work) the median over its other epochs, summed, so a stall in
one epoch drops out and what every epoch does stays in. Reported per run:
  full    images/s of the typical epoch;
  steady  the same without its first step: on this VM the first step of an epoch can stall
          0-10 s with the CPUs idle (making the epoch's fresh tf.data iterator; an iterator
          kept across epochs never stalls), on whichever side starts an epoch first, alike;
  cpu     this process's CPU-seconds in the typical epoch (hardly moved by other processes).
Alongside: the first step's seconds per side, the share of the CPUs that other processes
used meanwhile (/proc/stat), and the active seconds of each whole `fit`.

Design: `--pairs` pairs of runs, one run of each side per pair, the side that goes first
alternating from pair to pair (ABBA...), so a linear drift cancels. Both runs of a pair run
in this process, each in its own thread, exactly one at a time: with `--interleave steps`
(default) they take turns every `--slice` steps and at every epoch start, so both sides see
the same machine within seconds (this VM's speed drifts by 20% on that scale); `epoch`:
turns at epoch starts only; `run`: one run after the other. Per pair, the ratio zoo/plain of
images/s; over pairs: median, geometric mean, min-max and 95% confidence intervals
(bootstrap over pairs, and Student's t) of the geometric mean; a verdict against `--budget`
(3%). `--sides plain,plain` (an A/A run) measures the method's own bias and resolution.

    python benchmarks/train_overhead.py [--pairs 8] [--epochs 4] [--examples 4096] [--model resnet20]
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import io
import math
import os
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import zoo  # noqa: E402
from zoo.data import synthetic  # noqa: E402

_local = threading.local()  # .recorder: the Recorder of the side that this thread runs


# ------------------------------------------------------------------------------ turns and timing


class Turns:
    """Cooperative turns between the sides' threads: exactly one runs at a time. `hand_over`
    gives the turn to another side still running and blocks until it comes back."""

    def __init__(self, order):
        self.cond = threading.Condition()
        self.order, self.running, self.turn = list(order), set(order), order[0]

    def _next(self, side):
        others = [s for s in self.order if s in self.running and s != side]
        return others[0] if others else None

    def wait(self, side):
        with self.cond:
            self.cond.wait_for(lambda: self.turn == side)

    def hand_over(self, side):
        with self.cond:
            other = self._next(side)
            if other is not None:
                self.turn = other
                self.cond.notify_all()
                self.cond.wait_for(lambda: self.turn == side)

    def finish(self, side):
        with self.cond:
            self.running.discard(side)
            other = self._next(side)
            if other is not None:
                self.turn = other
                self.cond.notify_all()


def machine_busy_seconds() -> float:
    """CPU-seconds the whole machine has been busy (every process, steal included; /proc/stat),
    NaN without /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return float("nan")
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait


def snapshot():
    return time.perf_counter(), time.process_time(), machine_busy_seconds()


class Recorder:
    """One run's epoch cycles, each as the segments this side ran between its turns (one with
    --interleave epoch or run; with steps: every `slice` steps, then the end-of-epoch work):
    active wall seconds, this process's CPU-seconds, the machine's busy CPU-seconds; and per
    cycle the active seconds to the end of its first step. Also the active wall seconds of the
    whole `fit` (waits for the other side's turns left out)."""

    def __init__(self, side, turns, interleave: str, slice_steps: int = 0):
        self.side, self.turns = side, turns
        self.per_epoch = interleave in ("epoch", "steps")
        self.slice = slice_steps if interleave == "steps" else 0
        self.cycles, self.first = [], []  # per cycle: [(wall, cpu, busy) per segment]; first-step seconds
        self.segments = None  # the open cycle's segments (None: no cycle open)
        self.start = None  # snapshot at the start of the current segment
        self.steps, self.first_seconds, self.waited = 0, None, 0.0
        self.fit_start = self.fit_seconds = None

    def _end_segment(self):
        """Close the current segment; the current perf_counter."""
        now = snapshot()
        if self.start is not None and self.segments is not None:
            self.segments.append(tuple(b - a for a, b in zip(self.start, now)))
        self.start = None
        return now[0]

    def _hand_over(self, now):
        self.turns.hand_over(self.side)
        self.waited += time.perf_counter() - now

    def _close_cycle(self):
        now = self._end_segment()
        if self.segments is not None:
            self.cycles.append(self.segments)
            self.first.append(self.first_seconds if self.first_seconds is not None
                              else sum(seg[0] for seg in self.segments))
            self.segments = None
        return now

    def epoch_begin(self):
        now = self._close_cycle()
        if self.per_epoch:
            self._hand_over(now)
        self.segments, self.steps, self.first_seconds = [], 0, None
        self.start = snapshot()

    def train_batch_end(self):
        if self.segments is None or self.start is None:
            return
        self.steps += 1
        if self.first_seconds is None:
            self.first_seconds = sum(seg[0] for seg in self.segments) + time.perf_counter() - self.start[0]
        if self.slice and self.steps % self.slice == 0:
            self._hand_over(self._end_segment())
            self.start = snapshot()

    def fit_begin(self):
        self.fit_start, self.waited = time.perf_counter(), 0.0

    def fit_end(self):  # the last epoch: its end-of-epoch work and on_train_end included
        self.fit_seconds = self._close_cycle() - self.fit_start - self.waited

    def typical(self, index: int) -> float:
        """A typical epoch's total of segment field `index` (0 wall, 1 CPU, 2 machine busy) over
        the epochs after the first: per segment position the median over epochs, summed, so a
        stall in one epoch's segment drops out while what every epoch does stays in."""
        cycles = self.cycles[1:]
        if len({len(c) for c in cycles}) == 1:
            return float(sum(np.median([c[j][index] for c in cycles]) for j in range(len(cycles[0]))))
        return float(np.median([sum(seg[index] for seg in c) for c in cycles]))

    def totals(self, index: int) -> list:
        return [sum(seg[index] for seg in c) for c in self.cycles[1:]]


def _recorder():
    return getattr(_local, "recorder", None)


def _wrap_epoch_begin(method):
    def on_epoch_begin(self, epoch, logs=None):
        if _recorder() is not None:
            _recorder().epoch_begin()  # before any callback's on_epoch_begin
        return method(self, epoch, logs)
    return on_epoch_begin


def _wrap_train_batch_end(method):
    def on_train_batch_end(self, batch, logs=None):
        result = method(self, batch, logs)
        if _recorder() is not None:
            _recorder().train_batch_end()  # after every callback's on_train_batch_end
        return result
    return on_train_batch_end


def _wrap_fit(fit):
    def timed_fit(self, *args, **kwargs):
        recorder = _recorder()
        if recorder is None:
            return fit(self, *args, **kwargs)
        recorder.fit_begin()
        try:
            return fit(self, *args, **kwargs)
        finally:
            recorder.fit_end()
    return timed_fit


# In this process only, for the threads that run a side: every `fit` (zoo.train's and the plain
# one) is timed at the same points, by the CallbackList that Keras' fit loop calls.
keras.callbacks.CallbackList.on_epoch_begin = _wrap_epoch_begin(keras.callbacks.CallbackList.on_epoch_begin)
keras.callbacks.CallbackList.on_train_batch_end = _wrap_train_batch_end(keras.callbacks.CallbackList.on_train_batch_end)
keras.Model.fit = _wrap_fit(keras.Model.fit)


# ------------------------------------------------------------------------------ the two sides


def recipe_for(args):
    return zoo.load_recipe({
        "name": "overhead", "task": "classification", "model": {"name": args.model},
        "data": {"source": "synthetic", "name": "shapes", "image_size": [args.size, args.size],
                 "batch_size": args.batch_size, "train_size": args.examples, "eval_size": 256},
        "train": {"epochs": args.epochs, "validate": False, "verbose": 0,
                  "optimizer": {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9}},
        "runtime": {"seed": 0, "mixed_precision": "float32", "distribution": "none"},
    })


def run_zoo(args, data):
    with tempfile.TemporaryDirectory() as out:
        zoo.train(recipe_for(args), output_dir=out)


def plain_data(args):
    """The training split of `recipe_for` (synthetic seed 1) as float32 arrays, made once."""
    examples = [synthetic.generate("shapes", i, 1, (args.size, args.size)) for i in range(args.examples)]
    return (np.stack([e["image"] for e in examples]).astype("float32"),
            np.array([e["label"] for e in examples]))


def run_plain(args, data):
    images, labels = data
    keras.utils.set_random_seed(0)
    keras.config.set_dtype_policy("float32")
    dataset = (tf.data.Dataset.from_tensor_slices((images, labels)).shuffle(len(images), seed=0)
               .batch(args.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE))
    classes = len(synthetic.GENERATORS["shapes"].class_names)
    model = zoo.create_model(args.model, num_classes=classes, input_shape=(args.size, args.size, 3))
    metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    if classes > 5:  # as the zoo's classification task
        metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(5, name="top5_accuracy"))
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9), "sparse_categorical_crossentropy", metrics=metrics)
    # steps_per_epoch as zoo.train passes it: Keras then makes the next epoch's iterator at the
    # end of an epoch and keeps it; without it, it makes another one at every epoch's start.
    model.fit(dataset, epochs=args.epochs, steps_per_epoch=len(images) // args.batch_size, verbose=0)


SIDES = {"zoo": run_zoo, "plain": run_plain}


def run_pair(args, data, order):
    """One run of each side (`order`: the labels "A", "B", the first one first); their Recorders."""
    keras.backend.clear_session()
    gc.collect()
    turns = Turns(order)
    recorders = {label: Recorder(label, turns, args.interleave, args.slice) for label in order}
    errors = []

    def body(label):
        _local.recorder = recorders[label]
        turns.wait(label)
        try:
            SIDES[args.sides[label]](args, data)
        except BaseException as err:  # noqa: BLE001  (re-raised in the main thread)
            errors.append(err)
        finally:
            turns.finish(label)

    threads = [threading.Thread(target=body, args=(label,), name=f"side-{label}") for label in order]
    with contextlib.redirect_stdout(io.StringIO()):  # zoo.train's lines; one redirect for both threads
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    for label, recorder in recorders.items():
        if len(recorder.cycles) != args.epochs:
            raise RuntimeError(f"side {label} ({args.sides[label]}): timed {len(recorder.cycles)} epochs, "
                               f"expected {args.epochs}")
    return recorders


# ------------------------------------------------------------------------------ statistics

T975 = {1: 12.71, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
        10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110,
        18: 2.101, 19: 2.093, 20: 2.086, 25: 2.060, 30: 2.042}


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with `df` degrees of freedom (the row at or below)."""
    return T975[max(k for k in T975 if k <= df)] if df <= 30 else 1.96


def bootstrap_ci(logs, statistic, resamples=20000, seed=0):
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(logs), size=(resamples, len(logs)))
    return tuple(np.percentile(statistic(np.asarray(logs)[picks], axis=1), [2.5, 97.5]))


def overhead(ratio):
    """Percent of throughput lost (a ratio zoo/plain of images/s of 0.97: +3%)."""
    return 100.0 * (1.0 - ratio)


def summarize(title, ratios, budget) -> str:
    """Print the spread of the per-pair ratios and their 95% confidence intervals; return the
    verdict line against `budget` (percent)."""
    logs = np.log(ratios)
    n, geo = len(logs), math.exp(logs.mean())
    print(f"{title}: median {np.median(ratios):.3f}, geometric mean {geo:.3f}, min {min(ratios):.3f}, "
          f"max {max(ratios):.3f}; per pair {' '.join(f'{r:.3f}' for r in ratios)}")
    if n < 2:
        return f"{title}: one pair, no confidence interval"
    low, high = bootstrap_ci(logs, np.mean)
    med_low, med_high = bootstrap_ci(logs, np.median)
    half = t975(n - 1) * logs.std(ddof=1) / math.sqrt(n)
    print(f"  95% CI of the geometric mean {math.exp(low):.3f}..{math.exp(high):.3f} (bootstrap), "
          f"{math.exp(logs.mean() - half):.3f}..{math.exp(logs.mean() + half):.3f} (t); "
          f"of the median {math.exp(med_low):.3f}..{math.exp(med_high):.3f} (bootstrap)")
    lo_pct, hi_pct = overhead(math.exp(high)), overhead(math.exp(low))  # a higher ratio is less overhead
    if hi_pct < budget:
        verdict = f"the CI excludes a {budget:g}% overhead"
    elif lo_pct > budget:
        verdict = f"the CI lies above {budget:g}%: over budget"
    else:
        verdict = f"the CI includes {budget:g}%: not resolved"
    return (f"{title}: overhead {overhead(geo):+.1f}% (95% CI {lo_pct:+.1f}%..{hi_pct:+.1f}%); "
            f"resolution ±{(hi_pct - lo_pct) / 2:.1f}%; {verdict}")


def run_numbers(recorder, images, batch_size) -> dict:
    """A run's typical epoch (Recorder.typical) as images/s (full; steady: its first step left
    out), CPU-seconds and the median first-step seconds, over the epochs after the first."""
    wall, cpu, first = recorder.typical(0), recorder.typical(1), float(np.median(recorder.first[1:]))
    return {"full": images / wall, "steady": (images - batch_size) / max(wall - first, 1e-9),
            "cpu": cpu, "first": first}


def pair_numbers(recorders, images, batch_size):
    """Each side's run_numbers; the ratios A/B of throughput (full, steady, cpu); the other
    processes' share of the CPUs during the timed epochs."""
    runs = {label: run_numbers(r, images, batch_size) for label, r in recorders.items()}
    ratios = {"full": runs["A"]["full"] / runs["B"]["full"], "steady": runs["A"]["steady"] / runs["B"]["steady"],
              "cpu": runs["B"]["cpu"] / runs["A"]["cpu"]}
    wall = sum(sum(r.totals(0)) for r in recorders.values())
    others = sum(sum(r.totals(2)) - sum(r.totals(1)) for r in recorders.values())
    return runs, ratios, max(others, 0.0) / (wall * (os.cpu_count() or 1))


def report(args, pairs, load_before, load_after):
    a, b = args.sides["A"], args.sides["B"]
    images = args.examples // args.batch_size * args.batch_size
    print(f"model {args.model} {args.size}x{args.size}, batch {args.batch_size}, {images} images/epoch, "
          f"{args.epochs} epochs per run (first excluded), {len(pairs)} pairs, interleave {args.interleave}; "
          f"A = {a}, B = {b}")
    print(f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
          f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} ({os.cpu_count()} CPUs)")
    print("per run: images/s full cycle | steady (first step left out) | CPU-s/epoch | first step s; "
          "[full cycles, s]")
    ratios, shares, firsts, fits, steps = {"full": [], "steady": [], "cpu": []}, [], {"A": [], "B": []}, [], []
    for p, (order, recorders) in enumerate(pairs):
        runs, pair_ratios, share = pair_numbers(recorders, images, args.batch_size)
        for key in ratios:
            ratios[key].append(pair_ratios[key])
        shares.append(share)
        for label in firsts:
            firsts[label].append(runs[label]["first"])
            steps.append(args.batch_size / runs[label]["steady"])
        fits.append(recorders["B"].fit_seconds / recorders["A"].fit_seconds)
        sides = "  ".join(
            f"{args.sides[label]} {runs[label]['full']:5.1f} | {runs[label]['steady']:5.1f} | "
            f"{runs[label]['cpu']:5.2f} | {runs[label]['first']:4.2f} "
            f"[{' '.join(f'{w:.2f}' for w in recorders[label].totals(0))}]" for label in ("A", "B"))
        print(f"pair {p + 1:2d} ({args.sides[order[0]]} first): {sides}  others {100 * share:4.1f}%  "
              f"ratios full {pair_ratios['full']:.3f} steady {pair_ratios['steady']:.3f} cpu {pair_ratios['cpu']:.3f}")
    print(f"first step of an epoch, median s over pairs: {a} {np.median(firsts['A']):.2f}, "
          f"{b} {np.median(firsts['B']):.2f} (max {max(firsts['A']):.2f}, {max(firsts['B']):.2f}); "
          f"the other steps, with the end-of-epoch work: {np.median(steps):.3f} s a step")
    print(f"other processes' share of the CPUs during the timed epochs: median {100 * np.median(shares):.1f}%, "
          f"max {100 * max(shares):.1f}%")
    print(f"whole fit, active seconds (first epoch included; zoo.train's makes the data in it): "
          f"ratio of speed {a}/{b} median {np.median(fits):.3f}")
    verdicts = [summarize(f"{a}/{b} images/s, steady (wall)", ratios["steady"], args.budget),
                summarize(f"{a}/{b} images/s, full cycle (wall)", ratios["full"], args.budget),
                summarize(f"{a}/{b} images per CPU-second", ratios["cpu"], args.budget)]
    quiet = [i for i, share in enumerate(shares) if share < args.quiet_share]
    if 2 <= len(quiet) < len(shares):
        verdicts.append(summarize(f"{a}/{b} steady, the {len(quiet)} pairs with others < {100 * args.quiet_share:g}%",
                                  [ratios["steady"][i] for i in quiet], args.budget))
    print("verdicts:")
    for line in verdicts:
        print("  " + line)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=4, help="per run, the first one excluded")
    parser.add_argument("--examples", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--pairs", type=int, default=8, help="runs of each side; the first side alternates")
    parser.add_argument("--interleave", choices=("steps", "epoch", "run"), default="steps",
                        help="within a pair, take turns every --slice steps and at every epoch start, "
                             "at epoch starts only, or run one side after the other")
    parser.add_argument("--slice", type=int, default=8, help="steps per turn with --interleave steps")
    parser.add_argument("--sides", default="zoo,plain",
                        help=f"A,B compared as A/B, from {', '.join(SIDES)}; plain,plain for an A/A check")
    parser.add_argument("--budget", type=float, default=3.0, help="the overhead budget in percent")
    parser.add_argument("--quiet-share", type=float, default=0.10,
                        help="also summarize the pairs where other processes used less than this share of the CPUs")
    args = parser.parse_args(argv)
    names = args.sides.split(",")
    if len(names) != 2 or any(n not in SIDES for n in names):
        parser.error(f"--sides: two of {', '.join(SIDES)}, comma-separated")
    if args.epochs < 2:
        parser.error("--epochs: at least 2 (the first is excluded)")
    if args.examples < 2 * args.batch_size:
        parser.error("--examples: at least two batches")
    args.sides = {"A": names[0], "B": names[1]}
    data = plain_data(args)
    load_before = os.getloadavg()
    pairs = []
    for p in range(args.pairs):
        order = ("A", "B") if p % 2 == 0 else ("B", "A")  # ABBA: a linear drift cancels
        pairs.append((order, run_pair(args, data, order)))
        _, pair_ratios, share = pair_numbers(pairs[-1][1], args.examples // args.batch_size * args.batch_size,
                                             args.batch_size)
        print(f"  pair {p + 1}/{args.pairs}: ratios full {pair_ratios['full']:.3f} steady {pair_ratios['steady']:.3f} "
              f"cpu {pair_ratios['cpu']:.3f}; others {100 * share:.0f}%, load {os.getloadavg()[0]:.2f}", flush=True)
    report(args, pairs, load_before, os.getloadavg())


if __name__ == "__main__":
    main()
