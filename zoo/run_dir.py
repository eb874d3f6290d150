"""A run directory that is never lost or poisoned.

* A lock (`.lock`, holding the trainer's pid) while a process trains in it: a second trainer is
  refused at once; the OS releases the lock of a process that dies, so a killed run is taken over.
* Files are written atomically (a temporary file, then a rename): a kill leaves the old or the
  new version, never half of one. A full disk stops the run with one line naming the file; the
  temporary file is removed and the previous checkpoint stays, for --resume.
* Checkpoints (weights + optimizer state, after every epoch) only ever hold finite weights, and
  the previous one is kept as a backup copy.
* `history.csv` has one header and one row per completed epoch, whatever was resumed or re-run.
* `best.keras` holds the epoch with the best main metric; a resumed run knows the best so far
  (from history.csv), so a worse epoch never replaces it, and early stopping counts on.
* `--resume` refuses, before anything is written, a recipe whose model or data shapes differ
  from the run's (zoo/resume.py).
* In a multi-worker job only the chief writes the run directory; every other worker writes its
  own temporary directory, removed at the end.
"""
from __future__ import annotations

import collections
import contextlib
import csv
import errno
import fcntl
import io
import json
import math
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from zoo.errors import ZooError, cannot_write, make_folder

LOCK_NAME = ".lock"
STATE_NAME = "state.json"
# Recipe keys that fix the model or the shapes of its data: a resumed run cannot change them.
# What a full disk raises: ENOSPC; EDQUOT past a quota; EFBIG past a file size limit (RLIMIT_FSIZE).
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class DiskFull(ZooError):
    """A file could not be written for lack of space; the message names it."""


def os_error(err: BaseException, codes) -> OSError | None:
    """`err` as an OSError if its errno is one of `codes`, else None: an OSError, or a tf.io error
    (TensorBoard, TFRecordWriter, GFile, SavedModel), whose message reads "<file>; <the OS reason>"."""
    if isinstance(err, OSError):
        return err if err.errno in codes else None
    if isinstance(err, tf.errors.OpError):
        for code in codes:
            if where := re.search(rf"(\S+); {re.escape(os.strerror(code))}", err.message):
                return OSError(code, os.strerror(code), where[1])
    return None


def disk_full(err: BaseException) -> OSError | None:
    """`err` as an OSError if it is a full disk (DISK_FULL), else None (`os_error`)."""
    return os_error(err, DISK_FULL)


@contextlib.contextmanager
def writing(path: Path | str, tmp: Path | None = None):
    """The block writes `path` (via the temporary file `tmp`): if it fails, `tmp` is removed, and
    a full disk is a DiskFull naming `path`."""
    try:
        yield
    except BaseException as err:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        if (full := disk_full(err)) is not None:
            raise DiskFull(str(cannot_write(path, full))) from None
        raise


def _fsync(path: Path):
    """Flush `path` to the disk: a write error the OS delayed (a full disk) shows here."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: str | bytes):
    """Write via a temporary file and rename, so a kill or a full disk never leaves half a file
    (nor the temporary file): the old version stays until the new one is complete."""
    tmp = path.with_name(path.name + ".tmp")
    with writing(path, tmp):
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
        _fsync(tmp)
        os.replace(tmp, path)


def save_model_atomic(model, path: Path):
    """`model` as a `.keras` file (a zip holding HDF5), built in memory as `weights_file` is and
    written with `write_atomic`."""
    from keras.src.saving import saving_lib  # what model.save writes with; it takes a buffer

    buffer = io.BytesIO()
    saving_lib.save_model(model, buffer)
    write_atomic(path, buffer.getvalue())


def weights_file(model) -> bytes:
    """The file `model.save_weights` writes (weights and optimizer state), built in memory: HDF5
    writing straight to a full disk can crash the process (a segmentation fault) instead of
    raising, so the disk only sees plain writes (`write_atomic`)."""
    from keras.src.saving import saving_lib  # what save_weights writes with; no public API takes a buffer

    buffer = io.BytesIO()
    store = saving_lib.H5IOStore(buffer, mode="w")
    try:
        saving_lib._save_state(model, weights_store=store, assets_store=None, inner_path="",
                               visited_saveables=set())
    finally:
        store.close()
    return buffer.getvalue()


@contextlib.contextmanager
def disk_full_hint(out: Path):
    """A run stopped by a full disk: DiskFull's line (or the same line for a write elsewhere: an
    OSError or a tf.io error naming its file: `disk_full`), then what its checkpoints keep
    and how to go on."""
    try:
        yield
    except (DiskFull, OSError, tf.errors.OpError) as failure:
        line = str(failure)
        if not isinstance(failure, DiskFull):
            if (full := disk_full(failure)) is None or not full.filename:
                raise
            line = str(cannot_write(full.filename, full))
        state = out / "checkpoints" / STATE_NAME
        epoch = json.loads(state.read_text())["epoch"] if state.is_file() else 0
        kept = (f"{out / 'checkpoints'} keeps epoch {epoch}: free some space, then train again with "
                f"--resume" if epoch else "no epoch was checkpointed: free some space and train again")
        raise ZooError(f"{line}; {kept}") from None


# ------------------------------------------------------------------------------ lock


@contextlib.contextmanager
def locked(path: Path, doing: str = "training in it", what: str = "run directory"):
    """Hold the run directory's lock (creating the directory) while the block runs; a directory
    this call created and nothing else wrote to is removed again when the block fails. `doing`,
    `what`: the holder's work and the directory, as the messages name them (`zoo convert`:
    "converting into it", "output folder")."""
    created = not path.exists()
    make_folder(path)
    lock_path = path / LOCK_NAME
    try:
        handle = open(lock_path, "a+")
    except OSError as err:  # a read-only or full disk, no permission: named as the user gave it
        raise cannot_write(path, err) from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise ZooError(f"{path} is in use: process {holder} is {doing} "
                       f"(wait for it to finish, or choose another --output)") from None
    handle.seek(0)
    previous = handle.read().strip()
    if previous:
        print(f"note: process {previous} ended without releasing {lock_path} (killed?); "
              f"taking the {what} over", flush=True)
    handle.seek(0)
    handle.truncate()
    with writing(lock_path):
        handle.write(f"{os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
    try:
        yield
    except BaseException:
        if created and [p.name for p in path.iterdir()] == [LOCK_NAME]:
            lock_path.unlink()
            path.rmdir()
        raise
    finally:
        if not handle.closed and lock_path.exists():
            handle.truncate(0)  # a released lock is empty; a pid left in it means its holder died
        handle.close()


@contextlib.contextmanager
def worker_directory(rank: int, resumed_run: Path | None):
    """A non-chief worker's own temporary directory, removed at the end: it writes there what the
    chief writes to the run directory (saving takes every worker of a multi-worker job, as in
    Keras' multi-worker guide). On --resume it starts with a copy of what resuming reads from
    `resumed_run` (checkpoints/, history.csv), so that every worker continues from the same state."""
    path = Path(tempfile.mkdtemp(prefix=f"zoo-worker{rank}-"))
    try:
        if resumed_run is not None and (resumed_run / "checkpoints").is_dir():
            shutil.copytree(resumed_run / "checkpoints", path / "checkpoints")
        if resumed_run is not None and (resumed_run / "history.csv").is_file():
            shutil.copy2(resumed_run / "history.csv", path / "history.csv")
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------------------ resume


# ------------------------------------------------------------------------------ divergence


def weights_finite(model) -> bool:
    variables = list(model.weights) + (list(model.optimizer.variables) if model.optimizer else [])
    return all(np.isfinite(keras.ops.convert_to_numpy(v)).all() for v in variables
               if keras.backend.is_float_dtype(v.dtype))


class DivergenceGuard(keras.callbacks.Callback):
    """Stops training at the first non-finite loss (NaN or infinite), or at an epoch that ends
    with non-finite weights, and keeps what an honest message needs: where, the learning rate
    then, and how the loss moved before."""

    def __init__(self):
        super().__init__()
        self.report = None
        self.recent = collections.deque(maxlen=200)  # per-step training losses, oldest first

    @property
    def tripped(self) -> bool:
        return self.report is not None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.steps, self.mean = epoch, 0, 0.0

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or self.tripped:
            return
        loss, steps = float(loss), batch + 1
        if math.isfinite(loss):  # the logs hold the epoch's running mean: recover these steps' loss
            self.recent.append((steps * loss - self.steps * self.mean) / max(steps - self.steps, 1))
            self.steps, self.mean = steps, loss
            return
        self._trip(f"the training loss became {loss} at epoch {self.epoch + 1}, batch {steps}")

    def on_epoch_end(self, epoch, logs=None):
        if not self.tripped and not weights_finite(self.model):
            self._trip(f"the weights became non-finite at the end of epoch {epoch + 1} "
                       f"(the loss was still finite)")

    def _trip(self, where: str):
        lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self.report = {"where": where, "learning_rate": lr, "recent": list(self.recent)}
        self.model.stop_training = True

    def message(self, policy: str, checkpoint_epoch: int, checkpoints: Path) -> str:
        report, lr = self.report, self.report["learning_rate"]
        recent = report["recent"]
        if not recent:
            cause = ("no step of this run had a finite loss, so no update is to blame: check the "
                     "data (labels, pixel values) and the model's settings")
        else:
            low, last = min(recent), recent[-1]
            rise = next((i for i in range(len(recent)) if recent[i] == low), 0)
            if last > 10 * max(low, 1e-12) or "weights" in report["where"]:
                cause = (f"the loss had risen from {low:.4g} to {last:.4g} over the last "
                         f"{len(recent) - rise} step(s): the updates diverged, so lower "
                         f"train.optimizer.learning_rate (or the schedule's peak), or set "
                         f"train.optimizer.clipnorm")
            else:
                cause = (f"the loss was steady until then (last {last:.4g}, lowest {low:.4g}): a sudden "
                         f"non-finite loss points at that batch's data or at a numerical overflow in "
                         f"the model{' under ' + policy if 'float16' in policy else ''}, not at the "
                         f"learning rate")
        if checkpoint_epoch:
            saved = (f"{checkpoints} keeps epoch {checkpoint_epoch}, the last with finite weights: "
                     f"change the recipe, then train again with --resume")
        else:
            saved = "no epoch ended with finite weights, so there is no checkpoint to resume from"
        return f"training diverged: {report['where']} (learning rate {lr:.4g} then); {cause}; {saved}"


# ------------------------------------------------------------------------------ history


class HistoryLog(keras.callbacks.Callback):
    """`history.csv`: one header, one row per completed epoch (its logs and `learning_rate`),
    rewritten atomically at each epoch's end (a resumed or re-run epoch replaces its row; a
    diverged epoch adds none)."""

    def __init__(self, path: Path, initial_epoch: int, guard: DivergenceGuard):
        super().__init__()
        self.path, self.guard = Path(path), guard
        self.rows = [r for r in self._read() if int(r["epoch"]) <= initial_epoch]

    def _read(self) -> list[dict]:
        if not self.path.is_file():
            return []
        with open(self.path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if (r.get("epoch") or "").isdigit()]
        if any(r["epoch"] == "0" for r in rows):  # written before epochs were numbered from 1
            for r in rows:
                r["epoch"] = str(int(r["epoch"]) + 1)
        return rows

    def on_epoch_end(self, epoch, logs=None):
        if self.guard.tripped:
            return
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}  # from 1, as state.json
        # The schedule's rate after the epoch, as the log's `lr` and TensorBoard's learning_rate show it.
        row["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self.rows = [r for r in self.rows if int(r["epoch"]) != epoch + 1] + [row]
        columns = list(dict.fromkeys(k for r in self.rows for k in r))
        text = io.StringIO()
        writer = csv.DictWriter(text, columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        write_atomic(self.path, text.getvalue())


# ------------------------------------------------------------------------------ checkpoints


class Checkpoint(keras.callbacks.Callback):
    """`checkpoints/`: the training state (weights and optimizer) after each epoch that ended
    with finite weights, written to a temporary file and renamed; `state.json` names the latest
    and the previous (backup) file. `restore` continues from them."""

    def __init__(self, directory: Path, guard: DivergenceGuard):
        super().__init__()
        self.directory, self.guard = Path(directory), guard
        self.state = self._read_state()

    @property
    def epoch(self) -> int:
        """Epochs completed in the latest checkpoint (0: none)."""
        return self.state["epoch"] if self.state else 0

    def _read_state(self) -> dict | None:
        path = self.directory / STATE_NAME
        if path.is_file():
            return json.loads(path.read_text())
        legacy = self.directory / "training_metadata.json"  # written by keras' BackupAndRestore
        if legacy.is_file() and (self.directory / "latest.weights.h5").is_file():
            return {"epoch": json.loads(legacy.read_text())["epoch"], "weights": "latest.weights.h5"}
        return None

    def restore(self, model) -> int:
        """Load the latest readable checkpoint into `model`; the completed epochs (0: none)."""
        if self.state is None:
            return 0
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        latest = (self.state["epoch"], self.state["weights"])
        failure = None
        for epoch, name in [latest] + ([tuple(self.state["previous"])] if self.state.get("previous") else []):
            try:
                model.load_weights(self.directory / name)
            except OSError as err:  # unreadable (e.g. damaged on disk): try the backup copy
                failure = failure or f"{name} ({str(err).splitlines()[0]})"
                continue
            except ValueError as err:
                raise ZooError(f"--resume: the checkpoint {self.directory / name} does not fit the model "
                               f"this recipe builds ({str(err).strip().splitlines()[0]})") from None
            if failure:
                print(f"warning: checkpoint {failure} could not be read; resumed from the backup "
                      f"copy {name} (epoch {epoch})", flush=True)
            self.state = {"epoch": epoch, "weights": name}
            return epoch
        raise ZooError(f"--resume: no readable checkpoint in {self.directory}: {failure}")

    def on_epoch_end(self, epoch, logs=None):
        if self.guard.tripped:
            return
        with writing(self.directory):
            self.directory.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{epoch + 1:04d}.weights.h5"
        write_atomic(self.directory / name, weights_file(self.model))
        previous = [self.state["epoch"], self.state["weights"]] if self.state else None
        self.state = {"epoch": epoch + 1, "weights": name, "previous": previous}
        write_atomic(self.directory / STATE_NAME, json.dumps(self.state))
        keep = {name, STATE_NAME} | ({previous[1]} if previous else set())
        for path in self.directory.iterdir():
            if path.name not in keep:
                path.unlink(missing_ok=True)


# ------------------------------------------------------------------------------ best epoch


class BestModel(keras.callbacks.Callback):
    """`best.keras`: the model of the epoch with the best `monitor` (the task's main metric on the
    validation split, data.val_split: `val_<metric>`, higher is better), written atomically by
    `save` when it improves; with `patience`, training stops after that many evaluations without
    improvement. Epochs without an evaluation (train.eval_every) do not count. `rows` (history.csv's
    rows of the epochs a resumed run keeps) restore the best so far, so a worse epoch never
    replaces it."""

    def __init__(self, monitor: str, save, guard: DivergenceGuard, patience: int | None = None, rows=()):
        super().__init__()
        self.monitor, self.save, self.guard, self.patience = monitor, save, guard, patience
        self.best, self.best_epoch, self.wait, self.last_epoch = None, None, 0, None
        for row in rows:
            value = row.get(monitor)
            if value not in (None, "", "NA"):
                self._see(int(row["epoch"]), float(value))

    @property
    def stopped(self) -> bool:
        """The main metric has not improved for `patience` evaluations: no more training."""
        return self.patience is not None and self.wait >= self.patience

    def _see(self, epoch: int, value: float) -> bool:
        self.last_epoch = epoch
        if self.best is None or value > self.best:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            return True
        self.wait += 1
        return False

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if self.guard.tripped or value is None:
            return
        if self._see(epoch + 1, float(value)):
            self.save()
        if self.stopped:
            self.model.stop_training = True

    def message(self) -> str:
        return (f"stopped early after epoch {self.last_epoch}: {self.monitor} has not improved for "
                f"{self.wait} evaluation(s) (train.early_stopping.patience {self.patience}); best "
                f"{self.best:.4g} at epoch {self.best_epoch}, saved as best.keras")
