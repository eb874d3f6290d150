from pathlib import Path

import pytest
import yaml

import zoo
from zoo.errors import RecipeError
from zoo.recipe import RECIPES_DIR, shipped_recipes

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
    ("data.source=ftp", "data.source: expected one of"),
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
