"""Hostile recipes and a clean stderr, through real `zoo` processes: a run directory or a split
that escapes its folder, a recipe that expands without bound, error lines of any length, and
TensorFlow's start-up lines in front of the zoo's own."""
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zoo.errors import RecipeError
from zoo.recipe import RECIPES_DIR, load_recipe
from zoo.tf_logs import TF_LOG_LINE, filtered_stderr, kept

ROOT = Path(__file__).resolve().parents[1]
DIGITS = RECIPES_DIR / "classification" / "digits_cnn.yaml"


def zoo_env(**extra):
    """The environment a user's shell gives `zoo`: none of the log settings the test suite sets."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "ZOO_TF_LOGS")}
    return {**env, **extra}


def zoo_run(cwd, *args, env=None, timeout=120, memory_bytes=None):
    """`zoo ARGS...` in a fresh process in `cwd`, in `env` (default: `zoo_env()`): (exit status,
    stdout, stderr lines)."""
    limit = (lambda: resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))) if memory_bytes else None
    proc = subprocess.run([sys.executable, "-m", "zoo.cli", *args], cwd=cwd, text=True, capture_output=True,
                          timeout=timeout, preexec_fn=limit,
                          env={**(zoo_env() if env is None else env), "PYTHONPATH": str(ROOT)})
    return proc.returncode, proc.stdout, proc.stderr.splitlines()


def assert_one_error(rc, err, *words):
    assert rc == 2, err
    assert len(err) == 1 and err[0].startswith("zoo: error: "), err
    assert len(err[0]) < 300, err[0][:300]
    for word in words:
        assert word in err[0], err[0]


def files_under(path: Path) -> list:
    return sorted(p.relative_to(path) for p in path.rglob("*"))


# ---------------------------------------------------------------- defect 5: paths stay inside


@pytest.mark.parametrize("name", ["../../escaped", "/ABS/escaped", "a\\b", ".."])
def test_a_recipe_name_is_a_name_not_a_path(tmp_path, name):
    """`name=../../escaped` wrote runs/../../escaped/<ts>, `name: /tmp/x` wrote /tmp/x/<ts>."""
    cwd = tmp_path / "a" / "b"
    cwd.mkdir(parents=True)
    name = name.replace("/ABS", str(tmp_path))
    recipe = cwd / "named.yaml"
    recipe.write_text(f"extends: {os.path.relpath(DIGITS, cwd)}\nname: '{name}'\ntrain: {{epochs: 1, verbose: 0}}\n")
    for args in ([str(recipe)], ["digits_cnn", f"name={name}", "train.epochs=1"]):
        rc, _, err = zoo_run(cwd, "train", *args)
        assert_one_error(rc, err, "name:")
        assert files_under(tmp_path) == [Path("a"), Path("a/b"), Path("a/b/named.yaml")]


def test_a_run_of_a_nested_name_still_loads(tmp_path):
    """The name is checked where it becomes a folder (a run without --output), not where a recipe is
    read: a run recorded with `name: exp/v1` (or trained with --output) still loads back."""
    assert load_recipe("digits_cnn", ["name=exp/v1"]).name == "exp/v1"
    rc, out, err = zoo_run(tmp_path, "train", "digits_cnn", "name=exp/v1", "train.epochs=1", "train.verbose=0",
                           "--output", "run")
    assert rc == 0 and err == [], err
    rc, _, err = zoo_run(tmp_path, "evaluate", "run/recipe.yaml", "--weights", "run/model.keras")
    assert rc == 0, err


@pytest.mark.parametrize("source,split", [("folder", "../../../etc"), ("folder", "/etc"),
                                          ("tfrecord", "../outside")])
def test_a_split_stays_inside_data_path(tmp_path, source, split):
    """A folder source's `data.train_split: ../../../etc` listed /etc."""
    (tmp_path / "data" / "train" / "a").mkdir(parents=True)
    for key in ("train_split", "eval_split"):
        rc, _, err = zoo_run(tmp_path, "train", "digits_cnn", f"data.source={source}", "data.path=data",
                             f"data.{key}={split}", "train.epochs=1")
        assert_one_error(rc, err, f"data.{key}:")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("recipe,source", [("shapes_unet", "folder"), ("shapes_retinanet", "coco"),
                                           ("moving_shapes_cnn_lstm", "folder"), ("shapes_unet", "tfrecord")])
def test_every_source_under_data_path_keeps_its_splits_inside(recipe, source):
    for key, split in (("train_split", "a/../../b"), ("eval_split", "/etc")):
        with pytest.raises(RecipeError, match=f"^data.{key}: expected a split name inside data.path"):
            load_recipe(recipe, [f"data.source={source}", "data.path=/data", f"data.{key}={split}"])


def test_split_strings_of_tfds_and_subfolders_still_load():
    assert load_recipe("mnist_cnn", ["data.train_split=train[:90%]+test[:10%]"]).data.train_split.startswith("train[")
    recipe = load_recipe("digits_cnn", ["data.source=folder", "data.path=/x", "data.train_split=2024/train..v2"])
    assert recipe.data.train_split == "2024/train..v2"


# ---------------------------------------------------------------- defect 8: bounded recipes


def billion_laughs(levels: int, indent: str, width=9) -> str:
    """The classic YAML alias bomb: `width`**`levels` values from a few hundred bytes."""
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "".join(f"{indent}{line}\n" for line in lines)


def test_a_yaml_alias_bomb_is_refused_quickly_in_bounded_memory(tmp_path):
    """A 564-byte bomb in `train.loss` (a mapping taken as it is) grew past 4 GB when the run's
    recipe.yaml was written. Here: refused within seconds, under a 2 GiB address-space limit
    (RLIMIT_AS in the child), so that a regression fails instead of eating the machine."""
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(f"extends: {os.path.relpath(DIGITS, tmp_path)}\ntrain:\n  loss:\n" + billion_laughs(9, "    "))
    assert len(bomb.read_bytes()) < 700
    start = time.monotonic()
    rc, _, err = zoo_run(tmp_path, "train", str(bomb), "train.epochs=1", timeout=60, memory_bytes=2 << 30)
    assert time.monotonic() - start < 15
    assert_one_error(rc, err, "bomb.yaml: more than 100000 values")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("text,words", [
    ("a: &a [*a]\n", "nested deeper than 32 levels"),  # an alias inside itself
    ("a: " + "[" * 200 + "]" * 200 + "\n", "nested deeper than 32 levels"),
    ("a: &a " + "[" * 30 + "1" + "]" * 30 + "\nb: [*a, [*a]]\n", "32 levels once its aliases are expanded"),
    ("a: &a " + "x" * 20_000 + "\nb: [" + ", ".join(["*a"] * 60) + "]\n", "1000000 characters"),
    ("train: {epochs: " + "9" * 5000 + "}\n", "an integer of 5000 digits"),
])
def test_nesting_size_and_numbers_are_bounded(tmp_path, text, words):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(RecipeError, match=words):
        load_recipe(path)


def test_long_values_are_cut_in_the_error_line(tmp_path):
    """A 500-byte recipe made an 80 MB error line: the value quoted, its aliases expanded."""
    recipe = tmp_path / "long.yaml"
    recipe.write_text(f"extends: {os.path.relpath(DIGITS, tmp_path)}\ntrain:\n  loss:\n" + billion_laughs(4, "    ")
                      + "data:\n  augment:\n    crop_scale: *l3\n")
    assert len(recipe.read_bytes()) < 500
    rc, _, err = zoo_run(tmp_path, "train", str(recipe))
    assert_one_error(rc, err, "data.augment.crop_scale[0]: expected a number, got [[[")
    rc, _, err = zoo_run(tmp_path, "train", "digits_cnn", "train.epochs=" + "x" * 100_000)
    assert_one_error(rc, err, "train.epochs: expected an integer, got 'xxx")
    rc, _, err = zoo_run(tmp_path, "train", "digits_cnn", "train." + "y" * 100_000 + "=1")
    assert_one_error(rc, err, "unknown key")
    # Paths too long for the OS (ENAMETOOLONG): a pretrained file, a data folder.
    rc, _, err = zoo_run(tmp_path, "train", "digits_cnn", "model.pretrained=" + "q" * 5000)
    assert_one_error(rc, err, "model.pretrained:")
    rc, _, err = zoo_run(tmp_path, "train", "digits_cnn", "data.source=folder", "data.path=" + "p" * 5000,
                         "--output", "run")
    assert_one_error(rc, err, "file name too long: ", "ppp")


def test_a_long_extends_chain_is_one_line(tmp_path):
    """2,000 chained `extends` ended in a RecursionError."""
    for i in range(2000):
        (tmp_path / f"r{i}.yaml").write_text(f"extends: r{i + 1}.yaml\n" if i < 1999 else
                                             f"extends: {os.path.relpath(DIGITS, tmp_path)}\n")
    rc, _, err = zoo_run(tmp_path, "train", "r0.yaml")
    assert_one_error(rc, err, "r0.yaml: extends: a chain of more than 32 recipes")


# ---------------------------------------------------------------- start-up noise


def test_a_training_run_prints_only_the_zoos_lines_on_stderr(tmp_path):
    """TensorFlow's C++ runtime wrote 4-5 lines (absl, oneDNN, cuda drivers, cuInit) first."""
    rc, out, err = zoo_run(tmp_path, "train", "digits_cnn", "train.epochs=1", "train.verbose=2",
                           "--output", str(tmp_path / "run"), env=zoo_env())
    assert rc == 0, err
    assert "run directory:" in out
    assert all(line.startswith(("zoo:", "warning:")) for line in err), err
    # Images read from files: TensorFlow's C++ E line about a oneDNN uint8 fallback, absl's about a
    # replaced tf.data option (a TFRecord stream) came after start-up.
    from PIL import Image

    for split in ("train", "test"):
        for label in "ab":
            (tmp_path / "data" / split / label).mkdir(parents=True)
            for i in range(8):
                Image.new("RGB", (8, 8), (200 * (label == "a"), i, 0)).save(tmp_path / "data" / split / label / f"{i}.png")
    rc, out, err = zoo_run(tmp_path, "convert", "digits_cnn", "data.source=folder", "data.path=data", "--output", "tfr")
    assert rc == 0 and err == [], err
    rc, out, err = zoo_run(tmp_path, "train", "digits_cnn", "data.source=tfrecord", "data.path=tfr", "train.epochs=1",
                           "train.verbose=0", "data.batch_size=4", "--output", "run2")
    assert rc == 0 and err == [], err


DRIVER = "import sys, zoo.cli; rc = zoo.cli.main(sys.argv[1:]); print('tensorflow' in sys.modules); sys.exit(rc)"


@pytest.mark.parametrize("command", ["train", "evaluate", "convert"])
def test_a_recipe_typo_is_one_line_before_tensorflow_loads(tmp_path, command):
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", DRIVER, command, "digits_cnn", "train.epochz=1",
                           *(["--output", str(tmp_path / "out")] if command == "convert" else [])],
                          cwd=tmp_path, text=True, capture_output=True, timeout=60,
                          env={**zoo_env(), "PYTHONPATH": str(ROOT)})
    assert_one_error(proc.returncode, proc.stderr.splitlines(), "train.epochz: unknown key")
    assert proc.stdout.strip() == "False"  # TensorFlow was never imported
    assert time.monotonic() - start < 10


def test_tensorflow_start_up_lines_are_filtered_and_the_rest_replayed(capfd):
    """fd 2 itself, as C++ writes it: TensorFlow's lines below the level go, others stay."""
    lines = ["WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
             "I0000 00:00:1796543008.541499    4906 port.cc:153] oneDNN custom operations are on.\n",
             "E0000 00:00:1796543142.533250    9235 cuda_platform.cc:52] failed call to cuInit\n",
             "F0000 00:00:1796543142.533250    9235 cpu_feature_guard.cc:1] this CPU lacks AVX\n",
             "/x/y.py:3: UserWarning: a Python warning\n"]
    assert all(TF_LOG_LINE.match(line) for line in lines[1:4])
    with filtered_stderr(min_level=3):
        os.write(2, "".join(lines).encode())
    assert capfd.readouterr().err == lines[3] + lines[4]
    assert [line for line in lines if kept(line, 0)] == lines
    assert [line for line in lines if kept(line, 2)] == lines[2:]


ABORTS_IN_THE_WINDOW = """
import os
from zoo.tf_logs import filtered_stderr
with filtered_stderr(min_level=3):
    os.write(2, b"I0000 00:00:1796543008.541499    4906 port.cc:153] oneDNN custom operations are on.\\n")
    os.write(2, b"F0000 00:00:1796543142.533250    9235 cpu_feature_guard.cc:1] this CPU lacks AVX\\n")
    os.abort()  # as TensorFlow's LOG(FATAL) does
"""


def test_a_fatal_line_shows_when_tensorflow_aborts_the_import():
    """The window's lines were replayed only after it: an abort inside it showed nothing."""
    proc = subprocess.run([sys.executable, "-c", ABORTS_IN_THE_WINDOW], text=True, capture_output=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == -6  # SIGABRT
    assert proc.stderr.splitlines() == [
        "F0000 00:00:1796543142.533250    9235 cpu_feature_guard.cc:1] this CPU lacks AVX"]
