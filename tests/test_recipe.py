from pathlib import Path

import pytest
import yaml

import zoo
from zoo.cli import main
from zoo.errors import RecipeError
from zoo.recipe import RECIPES_DIR, apply_overrides, shipped_recipes

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", shipped_recipes(), ids=lambda p: p.stem)
def test_every_shipped_recipe_validates(path):
    recipe = zoo.load_recipe(path)
    assert recipe.name == path.stem
    # The resolved recipe round-trips through YAML unchanged.
    assert zoo.load_recipe(yaml.safe_load(recipe.to_yaml())).to_dict() == recipe.to_dict()


def test_recipe_header_states_expected_metric():
    for path in shipped_recipes():
        header = path.read_text().split("\n\n")[0].lower()
        assert "expected" in header or "measured" in header, f"{path.name}: no expected metric"


def test_a_wheel_ships_every_package_and_the_recipes():
    """pyproject lists the packages and maps recipes/ to zoo/recipes, so `pip install .` (not
    only `pip install -e .`) can train a shipped recipe."""
    tomllib = pytest.importorskip("tomllib")
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = {".".join(p.relative_to(ROOT).parts) for p in [ROOT / "zoo", *(ROOT / "zoo").rglob("*")]
                if p.is_dir() and p.name != "__pycache__"}
    recipe_folders = {f"zoo.recipes.{p.parent.name}" for p in RECIPES_DIR.rglob("*.yaml")}
    assert set(setuptools["packages"]) == packages | recipe_folders
    assert setuptools["package-dir"] == {"zoo.recipes": "recipes"}
    assert setuptools["package-data"]["*"] == ["*.yaml"]
    assert all(len(p.relative_to(RECIPES_DIR).parts) == 2 for p in RECIPES_DIR.rglob("*.yaml"))


def test_the_version_is_the_packages():
    tomllib = pytest.importorskip("tomllib")
    assert zoo.__version__ == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_extends_deep_merges_relative_to_the_file(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "b.yaml").write_text(
        "task: classification\nmodel: {name: simple_cnn}\n"
        "data: {source: digits, image_size: [8, 8], augment: {flip: true}}\ntrain: {epochs: 7}\n")
    (tmp_path / "child.yaml").write_text(
        "extends: base/b.yaml\ndata: {batch_size: 16}\ntrain: {optimizer: {name: adam}}\n")
    recipe = zoo.load_recipe(tmp_path / "child.yaml")
    assert recipe.name == "child"
    assert recipe.data.batch_size == 16 and recipe.data.augment.flip and recipe.data.image_size == [8, 8]
    assert recipe.train.epochs == 7 and recipe.train.optimizer.name == "adam"


def test_dotted_overrides_parse_as_yaml():
    recipe = zoo.load_recipe("digits_cnn", ["train.epochs=3", "data.image_size=[16, 16]",
                                            "model.dropout=0.25", "data.augment.flip=true"])
    assert recipe.train.epochs == 3 and recipe.data.image_size == [16, 16]
    assert recipe.model.params == {"dropout": 0.25} and recipe.data.augment.flip is True


@pytest.mark.parametrize("override, message", [
    ("data.image_size=[32]", "data.image_size: expected two positive integers, got [32]"),
    ("data.colour=red", "data.colour: unknown key"),
    ("train.epochs=many", "train.epochs: expected an integer, got 'many'"),
    ("train.optimizer.name=lion", "train.optimizer.name: expected one of sgd, adam, adamw"),
    ("data.source=ftp", "data.source: ftp is not available for task classification (available: digits, folder, synthetic, tfds, tfrecord)"),
    ("model.name=resnet2O", "model.name: unknown model 'resnet2O'; did you mean"),
    ("model.depth=3", "model.depth: unknown key"),
    ("model.num_classes=3", "model.num_classes: set data.num_classes instead"),
    ("train.epochs=0", "train.epochs: expected a positive number"),
    ("epochs", "expected KEY=VALUE"),
])
def test_bad_recipes_name_the_key(override, message):
    with pytest.raises(RecipeError) as err:
        zoo.load_recipe("digits_cnn", [override])
    assert message in str(err.value)


def test_unknown_recipe_and_bad_yaml(tmp_path):
    with pytest.raises(RecipeError, match="did you mean digits_cnn"):
        zoo.load_recipe("digit_cnn")
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: [classification\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        zoo.load_recipe(bad)
    loop = tmp_path / "loop.yaml"
    loop.write_text("extends: loop.yaml\n")
    with pytest.raises(RecipeError, match="cycle"):
        zoo.load_recipe(loop)


@pytest.mark.parametrize("raw, value", [
    ("1e-3", 0.001), ("3e-4", 3e-4), ("1E-3", 0.001), ("5e+2", 500.0), ("-2e-5", -2e-5),
    ("1.0e3", 1000.0), ("1.0e-3", 0.001), ("0.1", 0.1), ("3", 3), ("1_000", 1000),
    ("voc/2007", "voc/2007"), ("train[:10%]", "train[:10%]"), ("2007-01-01", "2007-01-01"), ("1e", "1e"),
])
def test_override_values_read_yaml_1_2_numbers(raw, value):
    parsed = apply_overrides({}, [f"x={raw}"])["x"]
    assert parsed == value and type(parsed) is type(value)
    assert yaml.safe_load("1e-3") == "1e-3"  # the global SafeLoader is left alone


def test_learning_rate_without_a_dot_in_a_file_and_an_override(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("task: classification\nmodel: {name: digits_cnn}\n"
                    "data: {source: digits, train_split: 2007-01-01}\n"
                    "train: {optimizer: {learning_rate: 3e-4, weight_decay: 5E-5},"
                    " schedule: {warmup_epochs: 1e0}}\n")
    recipe = zoo.load_recipe(path)
    assert recipe.train.optimizer.learning_rate == 3e-4 and recipe.train.optimizer.weight_decay == 5e-5
    assert recipe.train.schedule.warmup_epochs == 1.0 and recipe.data.train_split == "2007-01-01"
    assert zoo.load_recipe(path, ["train.optimizer.learning_rate=1e-3"]).train.optimizer.learning_rate == 0.001


def test_to_yaml_round_trips_floats_and_float_like_strings(tmp_path):
    text = zoo.load_recipe("digits_cnn", ["train.optimizer.learning_rate=1e-3"]).to_yaml()
    assert "learning_rate: 0.001\n" in text
    (tmp_path / "a.yaml").write_text(text)
    assert zoo.load_recipe(tmp_path / "a.yaml").train.optimizer.learning_rate == 0.001
    # A string that reads as a float without quotes is written quoted.
    recipe = zoo.load_recipe({"task": "classification", "model": "digits_cnn", "data": {"name": "1e3"}})
    (tmp_path / "b.yaml").write_text(recipe.to_yaml())
    assert zoo.load_recipe(tmp_path / "b.yaml").data.name == "1e3"


def test_cli_trains_with_a_learning_rate_without_a_dot(tmp_path):
    assert main(["train", "digits_cnn", "train.optimizer.learning_rate=1e-3", "train.epochs=1",
                 "train.verbose=0", "--output", str(tmp_path / "run")]) == 0
    assert zoo.load_recipe(tmp_path / "run" / "recipe.yaml").train.optimizer.learning_rate == 0.001


@pytest.mark.parametrize("override, message", [
    ("train.optimizer.learning_rate=.nan", "train.optimizer.learning_rate: expected a finite number, got nan"),
    ("train.optimizer.clipnorm=.inf", "train.optimizer.clipnorm: expected a finite number, got inf"),
    ("train.epochs=.inf", "train.epochs: expected a finite number, got inf"),
    ("data.num_classes=.nan", "data.num_classes: expected a finite number, got nan"),
    ("data.augment.crop_scale=[0.1, .inf]", "data.augment.crop_scale[1]: expected a finite number, got inf"),
    ("train.schedule.milestones=[-.inf]", "train.schedule.milestones[0]: expected a finite number, got -inf"),
    ("train.verbose=5", "train.verbose: expected one of 0, 1, 2, got 5"),
    ("train.optimizer.momentum=1", "train.optimizer.momentum: expected a number in [0, 1), got 1.0"),
    ("train.optimizer.momentum=-0.1", "train.optimizer.momentum: expected a number in [0, 1), got -0.1"),
    ("train.optimizer.clipnorm=0", "train.optimizer.clipnorm: expected a positive number, got 0.0"),
    ("train.schedule.warmup_epochs=-1", "train.schedule.warmup_epochs: expected a non-negative number, got -1.0"),
    ("train.schedule.decay_rate=0", "train.schedule.decay_rate: expected a positive number, got 0.0"),
    ("train.schedule.min_learning_rate=-1e-5",
     "train.schedule.min_learning_rate: expected a non-negative number, got -1e-05"),
    ("train.schedule.milestones=[30, 10]",
     "train.schedule.milestones: expected sorted non-negative epochs, got [30.0, 10.0]"),
    ("train.schedule.milestones=[-1, 10]",
     "train.schedule.milestones: expected sorted non-negative epochs, got [-1.0, 10.0]"),
    ("runtime.seed=-1", "runtime.seed: expected an integer in [0, 2**32), got -1"),
    ("runtime.seed=4294967296", "runtime.seed: expected an integer in [0, 2**32), got 4294967296"),
    ("data.shuffle_buffer=0", "data.shuffle_buffer: expected a positive number, got 0"),
    ("data.augment.crop_scale=[0.5, 2]", "data.augment.crop_scale: expected [min, max] with 0 < min <= max <= 1"),
])
def test_non_finite_and_out_of_range_numbers_name_the_key(override, message):
    with pytest.raises(RecipeError) as err:
        zoo.load_recipe("digits_cnn", [override])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_range_limits_themselves_are_accepted():
    recipe = zoo.load_recipe("digits_cnn", [
        "train.verbose=2", "train.optimizer.momentum=0", "train.schedule.milestones=[0, 10, 10]",
        "train.schedule.warmup_epochs=0", "runtime.seed=4294967295", "data.augment.scale_jitter=[0.5, 2]"])
    assert recipe.train.verbose == 2 and recipe.runtime.seed == 2**32 - 1


@pytest.mark.parametrize("content, where", [
    (b"\xff\xfet\x00a\x00s\x00k\x00", "byte 0xff at offset 0"),  # UTF-16
    ("name: caf\xe9\n".encode("latin-1"), "byte 0xe9 at offset 9"),
])
def test_a_recipe_that_is_not_utf8_is_one_line(tmp_path, capsys, content, where):
    path = tmp_path / "r.yaml"
    path.write_bytes(content)
    with pytest.raises(RecipeError) as err:
        zoo.load_recipe(path)
    assert str(err.value) == f"{path}: not UTF-8 text ({where})"
    assert main(["train", str(path)]) == 2
    assert capsys.readouterr().err == f"zoo: error: {path}: not UTF-8 text ({where})\n"


def test_a_recipe_path_that_is_a_directory_or_unreadable_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "d.yaml").mkdir()
    for path in (tmp_path, tmp_path / "d.yaml"):
        with pytest.raises(RecipeError) as err:
            zoo.load_recipe(path)
        assert str(err.value) == f"{path}: a directory, not a recipe file"
    path = tmp_path / "r.yaml"
    path.write_text("task: classification\n")

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(RecipeError, match=r"r\.yaml: cannot read \(Permission denied\)$"):
        zoo.load_recipe(path)


@pytest.mark.parametrize("distribution", ["mirrored", "multi_worker"])
def test_steps_per_execution_above_1_under_a_strategy_is_refused(distribution):
    with pytest.raises(RecipeError, match=f"runtime.steps_per_execution: must be 1 with runtime.distribution "
                                          f"{distribution}"):
        zoo.load_recipe("digits_cnn", ["runtime.steps_per_execution=4", f"runtime.distribution={distribution}"])
    assert zoo.load_recipe("digits_cnn", ["runtime.steps_per_execution=4"]).runtime.steps_per_execution == 4
