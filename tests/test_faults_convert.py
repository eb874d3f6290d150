"""`zoo convert` and the `tfrecord` source under faults: two converters into one folder (the second
refused, naming the first), a converter killed mid-write (the earlier conversion intact and
readable, its temporary files removed by the next), a remote --output (no lock, a note), and
shards that don't match `<split>.json` (a count edited, a shard of another conversion, a truncated
or damaged shard): one line naming the shard, status 2. Conversions from before the JSON recorded
its shards still load."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import zoo
from conftest import driven_zoo, run_cli
from zoo.data.tfrecord import shard_name

ROOT = Path(__file__).resolve().parents[1]
# Runs `zoo` with tf.io.TFRecordWriter patched: FAULT=kill-after-shard:N kills the process
# (SIGKILL) once the N-th shard file is closed, FAULT=kill-at-record:N right after the N-th record
# is written (mid-shard), FAULT=hold-after-shard:N creates $HELD once the N-th shard is closed and
# waits for $RELEASE to exist.
DRIVER = """
import os, signal, sys, time
import tensorflow as tf
action, _, at = os.environ.get("FAULT", "").partition(":")
counts = {"record": 0, "shard": 0}
class Writer(tf.io.TFRecordWriter):
    def write(self, record):
        super().write(record)
        counts["record"] += 1
        if action == "kill-at-record" and counts["record"] == int(at):
            os.kill(os.getpid(), signal.SIGKILL)
    def __exit__(self, *exc):
        result = super().__exit__(*exc)
        counts["shard"] += 1
        if action == "kill-after-shard" and counts["shard"] == int(at):
            os.kill(os.getpid(), signal.SIGKILL)
        if action == "hold-after-shard" and counts["shard"] == int(at):
            open(os.environ["HELD"], "w").close()
            while not os.path.exists(os.environ["RELEASE"]):
                time.sleep(0.05)
        return result
tf.io.TFRecordWriter = Writer
from zoo.cli import main
sys.exit(main(sys.argv[1:]))
"""
CONVERT = ["convert", "digits_cnn", "--output"]  # 1437 training and 360 test examples


def zoo_process(tmp_path, *args, fault="", wait=True, **env):
    return driven_zoo(DRIVER, tmp_path, *args, fault=fault, wait=wait, **env)


def zoo_lines(err: str) -> list[str]:
    """The zoo's own lines on stderr (TensorFlow's start-up lines aside)."""
    return [line for line in err.splitlines() if line.startswith("zoo:")]


def files(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.name != ".lock"}


def listing(shards: int) -> list[str]:
    return sorted([shard_name(s, k, shards) for s in ("train", "test") for k in range(shards)]
                  + ["train.json", "test.json"])


@pytest.fixture(scope="module")
def digits_tfrecord(tmp_path_factory):
    """The embedded digits converted once (2 shards per split); tests change their own copy."""
    from zoo.convert import convert

    folder = tmp_path_factory.mktemp("digits") / "tfr"
    convert(zoo.load_recipe("digits_cnn"), folder, shards=2)
    return folder


@pytest.fixture
def tfr(tmp_path, digits_tfrecord):
    folder = tmp_path / "tfr"
    shutil.copytree(digits_tfrecord, folder)
    return folder


def edit_json(path: Path, edit):
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


# ---------------------------------------------------------------- defect 4: one converter at a time, kills


def test_a_second_convert_into_one_output_is_refused_and_the_first_completes(tmp_path, capsys):
    out, held, release = tmp_path / "tfr", tmp_path / "held", tmp_path / "release"
    first = zoo_process(tmp_path, *CONVERT, out, "--shards", "2", fault="hold-after-shard:1", wait=False,
                        HELD=str(held), RELEASE=str(release))
    try:
        deadline = time.time() + 240
        while not held.exists():  # the first has written a shard and holds the folder
            assert first.poll() is None and time.time() < deadline, first.communicate()
            time.sleep(0.1)
        code, stdout, err = zoo_process(tmp_path, *CONVERT, out)
        assert code == 2, err
        assert zoo_lines(err) == [f"zoo: error: {out} is in use: process {first.pid} on {socket.gethostname()} "
                                  f"is converting into it (wait for it to finish, or choose another --output)"]
        assert "examples ->" not in stdout  # refused before reading any data
    finally:
        release.touch()
        stdout, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert "train: wrote 1437 examples" in stdout and "test: wrote 360 examples" in stdout
    assert sorted(files(out)) == listing(2)
    code, _, err = run_cli(capsys, "train", "digits_cnn", "data.source=tfrecord", f"data.path={out}",
                           "train.epochs=1", "train.verbose=0", "--output", tmp_path / "run")
    assert code == 0, err
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["num_examples"] == 360


@pytest.mark.parametrize("fault", ["kill-after-shard:1",  # the first training shard is complete
                                   "kill-at-record:1500"])  # mid-way through the first test shard
def test_a_convert_killed_mid_write_leaves_the_previous_conversion_intact(tmp_path, capsys, tfr, fault):
    before = files(tfr)
    code, _, err = zoo_process(tmp_path, *CONVERT, tfr, "--shards", "3", fault=fault)
    assert code == -signal.SIGKILL, err
    left = files(tfr)
    assert {n: b for n, b in left.items() if not n.endswith(".partial")} == before
    assert any(n.endswith(".partial") for n in left)  # the killed converter's own files
    code, stdout, err = run_cli(capsys, "evaluate", "digits_cnn", "data.source=tfrecord", f"data.path={tfr}")
    assert code == 0 and '"num_examples": 360' in stdout, err
    # The next conversion takes the folder over and removes what the killed one left.
    code, stdout, err = run_cli(capsys, *CONVERT, tfr, "--shards", "3")
    assert code == 0, err
    assert "taking the output folder over" in stdout and "of an unfinished earlier conversion (killed?)" in stdout
    assert sorted(files(tfr)) == listing(3)


def test_a_remote_output_has_no_lock_and_says_so(tmp_path, capsys):
    """An --output with a scheme (gs://...; here file://) goes through tf.io.gfile: no lock, a note;
    a killed conversion's files are still removed, and the shards are checked when read."""
    folder = tmp_path / "tfr"
    folder.mkdir()
    (folder / (shard_name("train", 0, 5) + ".partial")).write_bytes(b"left by a killed convert")
    url = f"file://{folder}"
    code, stdout, err = run_cli(capsys, *CONVERT, url, "--shards", "2")
    assert code == 0, err
    assert f"note: {url} is not a local folder, so nothing stops a second `zoo convert` into it" in stdout
    assert sorted(os.listdir(folder)) == listing(2)  # no .lock, no .partial
    shard = folder / shard_name("test", 0, 2)
    shard.write_bytes(shard.read_bytes()[:1000])
    code, _, err = run_cli(capsys, "evaluate", "digits_cnn", "data.source=tfrecord", f"data.path={url}")
    assert code == 2 and f"TFRecord shard {url}/{shard.name} does not match {url}/test.json: 1000 bytes" in one_line(err)


# ---------------------------------------------------------------- defect 9: shards that don't match the JSON


def test_the_json_records_each_shard(digits_tfrecord):
    import hashlib

    meta = json.loads((digits_tfrecord / "test.json").read_text())
    assert [f["file"] for f in meta["shard_files"]] == [shard_name("test", k, 2) for k in range(2)]
    assert sum(f["examples"] for f in meta["shard_files"]) == meta["num_examples"] == 360
    for f in meta["shard_files"]:
        data = (digits_tfrecord / f["file"]).read_bytes()
        assert (f["bytes"], f["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
        assert f["head_sha256"] == hashlib.sha256(data[:1 << 16]).hexdigest()


def one_line(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("zoo: error: "), err
    return err


def test_an_edited_example_count_is_one_line(tmp_path, capsys, tfr):
    edit_json(tfr / "test.json", lambda meta: meta.update(num_examples=350))
    code, _, err = run_cli(capsys, "evaluate", "digits_cnn", "data.source=tfrecord", f"data.path={tfr}")
    assert code == 2 and f"{tfr}/test.json: num_examples is 350, but its shards hold 360 examples" in one_line(err)


@pytest.mark.parametrize("also_total", [False, True])
def test_an_edited_shard_count_names_the_shard(tmp_path, capsys, tfr, also_total):
    """Found when the JSON doesn't add up; edited consistently, found when training reads the shard."""
    def edit(meta):
        meta["shard_files"][1]["examples"] -= 10
        meta["num_examples"] -= 10 if also_total else 0

    edit_json(tfr / "train.json", edit)
    code, _, err = run_cli(capsys, "train", "digits_cnn", "data.source=tfrecord", f"data.path={tfr}",
                           "train.epochs=1", "train.verbose=0", "--output", tmp_path / "run")
    assert code == 2
    assert (f"TFRecord shard {tfr}/train-00001-of-00002.tfrecord does not match {tfr}/train.json: "
            f"719 examples, 709 recorded") in one_line(err)


def test_a_shard_of_another_conversion_is_named(tmp_path, capsys, tfr):
    from zoo.convert import convert

    convert(zoo.load_recipe("digits_cnn", ["runtime.seed=7"]), tmp_path / "other", shards=3)
    shutil.copy(tmp_path / "other" / shard_name("test", 1, 3), tfr / shard_name("test", 1, 2))
    code, _, err = run_cli(capsys, "evaluate", "digits_cnn", "data.source=tfrecord", f"data.path={tfr}")
    recorded = json.loads((tfr / "test.json").read_text())["shard_files"][1]["bytes"]
    assert code == 2
    assert (f"TFRecord shard {tfr}/test-00001-of-00002.tfrecord does not match {tfr}/test.json: "
            f"{(tfr / shard_name('test', 1, 2)).stat().st_size} bytes, {recorded} recorded") in one_line(err)


@pytest.mark.parametrize("damage", ["truncated", "same size, other bytes"])
def test_a_damaged_shard_is_named_before_reading(tmp_path, capsys, tfr, damage):
    shard = tfr / shard_name("test", 0, 2)
    data = bytearray(shard.read_bytes())
    if damage == "truncated":
        data = data[:len(data) // 2]
    else:  # a bit flipped in the last record's data: the record CRC would only see it at the end
        data[-20] ^= 0x01
    shard.write_bytes(bytes(data))
    code, _, err = run_cli(capsys, "evaluate", "digits_cnn", "data.source=tfrecord", f"data.path={tfr}")
    what = f"{len(data)} bytes" if damage == "truncated" else "the sha256 of its first"
    assert code == 2 and f"TFRecord shard {shard} does not match {tfr}/test.json: {what}" in one_line(err)


def test_a_conversion_without_shard_records_still_loads_and_its_faults_are_named(tmp_path, capsys, tfr):
    """Written before `<split>.json` recorded its shards: loads; a count edited or a damaged record
    is still named when reading fails."""
    for split in ("train", "test"):
        edit_json(tfr / f"{split}.json", lambda meta: meta.pop("shard_files"))
    code, stdout, err = run_cli(capsys, "evaluate", "digits_cnn", "data.source=tfrecord", f"data.path={tfr}")
    assert code == 0 and '"num_examples": 360' in stdout, err
    edit_json(tfr / "test.json", lambda meta: meta.update(num_examples=350))
    code, _, err = run_cli(capsys, "evaluate", "digits_cnn", "data.source=tfrecord", f"data.path={tfr}")
    assert code == 2 and f"{tfr}/test.json: num_examples is 350, but its shards hold 360 examples" in one_line(err)
    edit_json(tfr / "test.json", lambda meta: meta.update(num_examples=360))
    shard = tfr / shard_name("test", 1, 2)
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    code, _, err = run_cli(capsys, "evaluate", "digits_cnn", "data.source=tfrecord", f"data.path={tfr}")
    assert code == 2 and f"corrupt TFRecord file: {shard}" in one_line(err)


# ---------------------------------------------------------------- defect 7: a full disk


def test_a_convert_past_the_file_size_limit_is_one_line_and_keeps_the_previous_conversion(tmp_path, capsys, tfr):
    """RLIMIT_FSIZE in the child (SIGXFSZ ignored: a write past 64 KiB fails with EFBIG, as on a full
    disk, without root); the first training shard (~100 KB) does not fit."""
    import resource

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    before = files(tfr)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-m", "zoo.cli", *CONVERT, str(tfr), "--shards", "2"], env=env,
                          capture_output=True, text=True, timeout=300, preexec_fn=limit_file_size)
    assert done.returncode == 2, done.stderr[-3000:]
    assert zoo_lines(done.stderr) == [f"zoo: error: cannot write {tfr / shard_name('train', 0, 2)}: File too large"]
    assert files(tfr) == before  # no .partial file left; the earlier conversion as it was
    code, stdout, err = run_cli(capsys, "evaluate", "digits_cnn", "data.source=tfrecord", f"data.path={tfr}")
    assert code == 0 and '"num_examples": 360' in stdout, err


def test_a_full_disk_writing_the_json_names_it(tmp_path, capsys, tfr, monkeypatch):
    """tf.io reports ENOSPC as ResourceExhaustedError, its message "<file>; No space left on device"."""
    import tensorflow as tf

    gfile = tf.io.gfile.GFile

    def full_disk_for_json(path, mode="r"):
        if path.endswith(".json.partial"):
            raise tf.errors.ResourceExhaustedError(None, None, f"{path}; No space left on device")
        return gfile(path, mode)

    before = files(tfr)
    monkeypatch.setattr(tf.io.gfile, "GFile", full_disk_for_json)
    code, _, err = run_cli(capsys, *CONVERT, tfr, "--shards", "2")
    assert code == 2 and one_line(err) == f"zoo: error: cannot write {tfr / 'train.json'}: No space left on device\n"
    assert files(tfr) == before
