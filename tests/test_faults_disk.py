"""A full disk during training, for real: a size-limited tmpfs (mounted as root, as in CI) that
fills up after a couple of epochs; and a file size limit (RLIMIT_FSIZE, EFBIG) for the atomic
writer. Either ends in one line naming the file, exit 2, the last complete checkpoint intact and
no temporary file left; after space is freed, --resume continues from that checkpoint."""
import errno
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import history_rows
from zoo import run_dir
from zoo.errors import ZooError

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}


def zoo(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "zoo.cli", *map(str, args)], env=ENV, capture_output=True,
                          text=True, timeout=300, **kwargs)


def zoo_lines(stderr: str) -> list[str]:
    """The lines the zoo wrote, without TensorFlow's start-up lines."""
    return [line for line in stderr.splitlines() if line.startswith("zoo:")]


def limit_file_size(size: int):
    """A preexec_fn: files of at most `size` bytes (RLIMIT_FSIZE), a write past it failing with
    EFBIG (SIGXFSZ ignored) as on a full disk; no root needed."""
    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    return preexec


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of 700 KiB, and a function to resize it (`mount -o remount,size=`)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=700k", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"a size-limited tmpfs needs root (mount): {mounted.stderr.strip()}")

    def resize(size: str):
        subprocess.run(["mount", "-o", f"remount,size={size}", str(mount_point)], check=True)

    try:
        yield mount_point, resize
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_full_disk_stops_training_with_one_line_and_resume_continues(small_disk):
    disk, resize = small_disk
    run = disk / "run"
    # digits_cnn checkpoints take ~300 KB each (weights and optimizer state); the latest two are
    # kept and a new one is complete before the oldest goes: epoch 3's does not fit in 700 KiB.
    args = ["train", "digits_cnn", "train.epochs=4", "train.validate=false", "train.verbose=0", "--output", run]
    done = zoo(*args)
    assert done.returncode == 2, done.stderr[-3000:]  # before: h5py tracebacks, then a segfault (139)
    assert "Traceback" not in done.stderr
    checkpoint = run / "checkpoints" / "epoch-0003.weights.h5"
    assert zoo_lines(done.stderr) == [
        f"zoo: error: cannot write {checkpoint}: No space left on device; {run / 'checkpoints'} keeps "
        f"epoch 2: free some space, then train again with --resume"]
    state = json.loads((run / "checkpoints" / "state.json").read_text())
    assert state == {"epoch": 2, "weights": "epoch-0002.weights.h5", "previous": [1, "epoch-0001.weights.h5"]}
    with h5py.File(run / "checkpoints" / state["weights"]) as saved:  # complete: every array reads back
        arrays = []
        saved.visititems(lambda name, item: arrays.append(item[()]) if isinstance(item, h5py.Dataset) else None)
        assert len(arrays) > 10
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "epoch-0001.weights.h5", "epoch-0002.weights.h5", "state.json"]  # no half-written temporary file
    assert not [p for p in run.rglob("*") if "tmp" in p.name]
    assert [int(r["epoch"]) for r in history_rows(run)] == [1, 2, 3]  # epoch 3's row; its checkpoint failed

    resize("4m")
    done = zoo(*args, "--resume")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming after epoch 2" in done.stdout and "warning" not in done.stdout
    assert [int(r["epoch"]) for r in history_rows(run)] == [1, 2, 3, 4]
    assert json.loads((run / "checkpoints" / "state.json").read_text())["epoch"] == 4
    assert (run / "model.keras").is_file() and (run / "metrics.json").is_file()


def test_a_file_size_limit_is_one_line_and_leaves_the_old_file(tmp_path):
    """RLIMIT_FSIZE in a child process (SIGXFSZ ignored, so a write past it fails with EFBIG)."""
    target = tmp_path / "history.csv"
    target.write_text("the previous version\n")
    script = (f"from pathlib import Path; from zoo import run_dir\n"
              f"run_dir.write_atomic(Path({str(target)!r}), {'x' * 20000!r})\n")

    done = subprocess.run([sys.executable, "-c", script], env=ENV, capture_output=True, text=True,
                          timeout=120, preexec_fn=limit_file_size(8192))
    assert done.returncode == 1
    assert f"DiskFull: cannot write {target}: File too large" in done.stderr
    assert target.read_text() == "the previous version\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.csv"]


def test_an_unwritable_run_file_other_than_space_keeps_its_error(tmp_path):
    """Only a full disk becomes DiskFull: other OSErrors pass unchanged (their own handlers name them)."""
    missing = tmp_path / "absent" / "history.csv"
    with pytest.raises(FileNotFoundError):
        run_dir.write_atomic(missing, "x")


def test_a_full_disk_elsewhere_in_a_run_gets_the_same_line(tmp_path):
    """TensorBoard's event writer reports a full disk as ResourceExhaustedError; other writes as an
    OSError naming the file. Anything else (memory exhausted, no permission) passes unchanged."""
    events = tmp_path / "logs" / "train" / "events.out.tfevents.1.v2"
    hint = "no epoch was checkpointed: free some space and train again"
    for failure in (tf.errors.ResourceExhaustedError(None, None, "{{function_node __wrapped__WriteSummary}} "
                                                                 f"{events}; No space left on device"),
                    OSError(errno.ENOSPC, "No space left on device", str(events))):
        with pytest.raises(ZooError) as caught, run_dir.disk_full_hint(tmp_path):
            raise failure
        assert str(caught.value) == f"cannot write {events}: No space left on device; {hint}"
    for failure in (tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor"),
                    PermissionError(errno.EACCES, "Permission denied", str(events))):
        with pytest.raises(type(failure)), run_dir.disk_full_hint(tmp_path):
            raise failure


def test_a_first_checkpoint_past_the_file_size_limit_is_one_line(tmp_path):
    """digits_cnn's checkpoint takes ~300 KB: under a 100 KiB limit the first one fails."""
    run = tmp_path / "run"
    done = zoo("train", "digits_cnn", "train.epochs=2", "train.validate=false", "train.verbose=0",
               "--output", run, preexec_fn=limit_file_size(100 * 1024))
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert zoo_lines(done.stderr) == [
        f"zoo: error: cannot write {run / 'checkpoints' / 'epoch-0001.weights.h5'}: File too large; "
        f"no epoch was checkpointed: free some space and train again"]
    assert not [p for p in run.rglob("*") if "tmp" in p.name or p.suffix in (".h5", ".keras")]


def test_a_model_file_is_built_in_memory_and_past_the_limit_leaves_the_old_one(tmp_path):
    """model.keras / best.keras go to disk through write_atomic only, even where Keras finds memory
    short (before: h5py wrote a temporary HDF5 file beside it, and failed with a multi-line error)."""
    target = tmp_path / "model.keras"
    target.write_text("the previous version\n")
    script = (f"from pathlib import Path; from zoo import run_dir; from zoo.models.simple_cnn import digits_cnn\n"
              f"from keras.src.saving import saving_lib; saving_lib.is_memory_sufficient = lambda model: False\n"
              f"run_dir.save_model_atomic(digits_cnn(), Path({str(target)!r}))\n")
    done = subprocess.run([sys.executable, "-c", script], env=ENV, capture_output=True, text=True,
                          timeout=120, preexec_fn=limit_file_size(64 * 1024))
    assert done.returncode == 1
    assert f"DiskFull: cannot write {target}: File too large" in done.stderr
    assert target.read_text() == "the previous version\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]
    # Without a limit: the archive model.save writes, loadable by the zoo and by Keras.
    from zoo.models import load_model_file
    from zoo.models.simple_cnn import digits_cnn

    model = digits_cnn()
    run_dir.save_model_atomic(model, target)
    image = np.random.default_rng(0).random((2, 8, 8, 3), np.float32)
    for loaded in (load_model_file(target), keras.saving.load_model(target)):
        np.testing.assert_allclose(loaded.predict(image, verbose=0), model.predict(image, verbose=0), rtol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]
