"""What training prints and numbers (issue 21, item 4), and `zoo recipes` (item 5): in a file,
one clean line per epoch; in a terminal, Keras' bar while an epoch runs and one line per epoch
after it; epochs numbered from 1 in the log and history.csv, across --resume; the recipes'
table with what data each needs and what to expect."""
import csv
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import history_rows, tiny

import zoo
from zoo.cli import data_needed, main
from zoo.recipe import RECIPES_DIR, expected_comment, shipped_recipes
from zoo.weights_table import ZOO_WEIGHTS

ROOT = Path(__file__).resolve().parents[1]
EPOCH_LINE = re.compile(r"epoch (\d+)/(\d+) - \d+\.\ds - (?:\w+ -?\d+\.\d{4} - )+lr \S+")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def zoo_command(*args):
    return [sys.executable, "-m", "zoo.cli", *map(str, args)]


def zoo_env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}


def train_into_file(tmp_path, log_name, *args) -> str:
    """`zoo train digits_cnn ARGS` with stdout and stderr to a file (not a terminal): the file's text."""
    log = tmp_path / log_name
    with open(log, "w") as f:
        code = subprocess.run(zoo_command("train", "digits_cnn", *args), stdout=f, stderr=subprocess.STDOUT,
                              env=zoo_env(), timeout=300).returncode
    text = log.read_text()
    assert code == 0, text[-3000:]
    return text


def without_table(lines: list[str]) -> list[str]:
    """`lines` without the per-class table printed before `metrics:` (tests/test_report.py)."""
    start = next(i for i, line in enumerate(lines) if line.startswith("per class ("))
    end = next(i for i, line in enumerate(lines) if line.startswith("metrics: "))
    return lines[:start] + lines[end:]


def test_a_log_file_has_one_clean_line_per_epoch_numbered_as_history_csv(tmp_path):
    run = tmp_path / "run"
    text = train_into_file(tmp_path, "train.log", "train.epochs=2", "--output", run)
    assert "\x1b" not in text and "\r" not in text and "\b" not in text
    assert "None" not in text and "epoch_seconds" not in text
    lines = without_table(text.splitlines())
    assert lines[0].startswith("training digits_cnn") and " on digits (embedded UCI 8x8); " in lines[0]
    epochs = [line for line in lines if line.startswith("epoch")]
    assert all(EPOCH_LINE.fullmatch(line) for line in epochs), epochs
    assert [EPOCH_LINE.fullmatch(line).group(1, 2) for line in epochs] == [("1", "2"), ("2", "2")]
    assert " - val_accuracy 0." in epochs[0]
    assert len(lines) == 5 and lines[-2].startswith("metrics: ") and lines[-1] == f"run directory: {run}"
    rows = history_rows(run)
    assert [r["epoch"] for r in rows] == ["1", "2"] and all(float(r["epoch_seconds"]) > 0 for r in rows)
    # Resumed: numbered on from the checkpoint (state.json counts completed epochs, alike).
    text = train_into_file(tmp_path, "resumed.log", "train.epochs=3", "--output", run, "--resume")
    assert "resuming after epoch 2" in text and "\x1b" not in text
    assert [line.split(" - ")[0] for line in text.splitlines() if line.startswith("epoch")] == ["epoch 3/3"]
    assert [r["epoch"] for r in history_rows(run)] == ["1", "2", "3"]


def visible_lines(raw: str) -> list[str]:
    """What a terminal shows of `raw` once it is written: each line from its last carriage
    return on, without the escape sequences (colours, erase-line) and backspaces."""
    shown = []
    for line in raw.replace("\r\n", "\n").split("\n"):
        shown.append(ANSI.sub("", line.rsplit("\r", 1)[-1]).replace("\b", ""))
    return [line for line in shown if line]


def test_a_terminal_shows_the_bar_then_one_line_per_epoch(tmp_path):
    run = tmp_path / "run"
    screen, terminal = pty.openpty()
    proc = subprocess.Popen(zoo_command("train", "digits_cnn", "train.epochs=2", "--output", run),
                            stdout=terminal, stderr=subprocess.PIPE, env=zoo_env())
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(screen, 1 << 16)
        except OSError:  # EIO: the process closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(screen)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    raw = b"".join(chunks).decode()
    assert "━" in raw and "/40" in raw  # Keras' bar over the 40 batches, drawn while an epoch ran
    assert "Epoch 1/2" not in raw and "epoch_seconds" not in raw
    assert "val_accuracy:" not in raw  # no bar of the epoch's end metrics (Keras writes "name: value")
    lines = without_table(visible_lines(raw))
    assert len(lines) == 5, lines  # start, one line per epoch, metrics, run directory
    assert [EPOCH_LINE.fullmatch(line).group(1) for line in lines[1:3]] == ["1", "2"], lines
    assert lines[3].startswith("metrics: ")


def test_a_history_written_before_epochs_counted_from_1_is_renumbered_on_resume(tmp_path):
    zoo.train(tiny("digits_cnn", "train.epochs=2"), output_dir=tmp_path)
    path = tmp_path / "history.csv"
    rows = history_rows(tmp_path)
    with open(path, "w", newline="") as f:  # as the zoo wrote it before: epochs 0 and 1
        writer = csv.DictWriter(f, list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({**r, "epoch": str(int(r["epoch"]) - 1)} for r in rows)
    zoo.train(tiny("digits_cnn", "train.epochs=3"), output_dir=tmp_path, resume=True)
    again = history_rows(tmp_path)
    assert [r["epoch"] for r in again] == ["1", "2", "3"]
    assert [r["loss"] for r in again[:2]] == [r["loss"] for r in rows]


# ------------------------------------------------------------------------------ zoo recipes


def test_recipes_lists_the_data_each_needs_and_what_to_expect(capsys, tmp_path):
    assert main(["recipes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "TASK", "MODEL", "DATA", "EXPECTED"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert len(rows) == len(lines) - 1 == len(shipped_recipes())
    digits = next(w for w in ZOO_WEIGHTS if w["recipe"] == "digits_cnn")
    assert rows["digits_cnn"].split()[1:4] == ["classification", "digits_cnn", "embedded"]
    assert f"accuracy {digits['metrics']['accuracy']:.4f} (measured: weights digits_cnn.digits)" in rows["digits_cnn"]
    for name in ("shapes_resnet20", "shapes_retinanet", "shapes_unet"):
        assert rows[name].split()[3] == "generated", rows[name]
    # A TFDS recipe names its dataset; its expectation comes from its own "# Expected:" comment.
    assert "TFDS download: cifar10 " in rows["cifar10_resnet20"]
    assert "Expected: test accuracy 0.9125 (" in (RECIPES_DIR / "classification/cifar10_resnet20.yaml").read_text()
    assert rows["cifar10_resnet20"].endswith("test accuracy 0.9125")
    assert rows["voc_retinanet_resnet50"].split()[3:] == ["TFDS", "download:", "voc/2007+voc/2012", "mAP50", "~", "0.77"]
    assert rows["moving_shapes_frame_avg"].split()[3:] == ["generated", "accuracy", "0.496"]
    # Every shipped recipe says what to expect; comments that say nothing give None (a dash).
    assert all(row.split()[4:] and row.split()[4:] != ["—"] for row in rows.values())
    silent = tmp_path / "silent.yaml"
    silent.write_text("# Measured nowhere.\nextends: ../base/classification.yaml\n")
    assert expected_comment(silent) is None


@pytest.mark.parametrize("data, needed", [
    ({"source": "folder", "path": "/data/pets"}, "your folder (folder, data.path)"),
    ({"source": "coco", "path": "/data/coco"}, "your folder (coco, data.path)"),
    ({"name": "mnist"}, "TFDS download: mnist"),  # tfds: the default source
])
def test_data_needed_names_the_users_own_files(data, needed):
    assert data_needed(data) == needed
