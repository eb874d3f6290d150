"""The real TFDS path, unmocked: `builder.download_and_prepare()` then `as_dataset()`.

`tfds.testing.mock_data` (tests/test_pipeline.py) replaces exactly the prepare step, so a module
TFDS imports only there went unnoticed: tensorflow-datasets 4.9.10 imports `importlib_resources`
(undeclared upstream) when `download_and_prepare` looks up the builder's checksums file, and every
TFDS recipe (`zoo train cifar10_resnet20`, ...) failed on a fresh install with
"No module named 'importlib_resources'".

Here a tiny builder prepares local PNG files (no network) into tmp_path, and zoo trains and
evaluates on it. TFDS only takes the failing branch for builders defined in a *package* (as the
shipped ones are); pytest imports this file as a top-level module, so the builder below is
registered from a small dataset package written under tmp_path, as a user's own TFDS dataset
(`tfds new`) would be.
"""
import importlib

import numpy as np
import pytest
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image

import zoo
from zoo.recipe import RECIPES_DIR

from conftest import tiny

CLASSES = ["horizontal", "vertical", "diagonal", "ring"]
SIZE = 8
PER_CLASS = {"train": 20, "test": 10}
PACKAGE = "zoo_tfds_test_datasets"  # written under tmp_path, imported once per process
DATASET = "zoo_tiny_digits"  # TFDS's snake_case of the registered class name ZooTinyDigits


class TinyDigitsBase(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """8x8 RGB PNGs in <data_root>/<split>/<class>/*.png; registered through a subclass."""

    VERSION = tfds.core.Version("1.0.0")
    data_root = None  # set by the test before preparing

    def _info(self):
        # tfds.core.DatasetInfo directly: `dataset_info_from_configs` wants README/citation files.
        return tfds.core.DatasetInfo(
            builder=self,
            description="Noisy 8x8 patterns, one per class (keras-zoo test data).",
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(SIZE, SIZE, 3)),
                "label": tfds.features.ClassLabel(names=CLASSES),
            }),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        root = type(self).data_root
        return {split: self._generate_examples(root / split) for split in PER_CLASS}

    def _generate_examples(self, split_dir):
        for path in sorted(split_dir.glob("*/*.png")):
            yield f"{path.parent.name}/{path.name}", {"image": str(path), "label": path.parent.name}


BUILDER_MODULE = f"""from {__name__} import TinyDigitsBase


class ZooTinyDigits(TinyDigitsBase):
    pass
"""


def pattern(label: int) -> np.ndarray:
    y, x = np.mgrid[:SIZE, :SIZE]
    if label == 0:
        return (y % 2 == 0).astype(float)
    if label == 1:
        return (x % 2 == 0).astype(float)
    if label == 2:
        return ((x + y) % 4 < 2).astype(float)
    return (np.maximum(abs(y - 3.5), abs(x - 3.5)) > 2).astype(float)


def write_pngs(root, seed=0):
    """Each class one pattern under noise, a random contrast and colour tint: learnable, not trivial."""
    rng = np.random.default_rng(seed)
    for split, count in PER_CLASS.items():
        for label, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                tint = rng.uniform(0.5, 1.0, 3)
                image = pattern(label)[..., None] * tint * rng.uniform(120, 200) + rng.uniform(20, 60)
                image = image + rng.normal(0, 25, (SIZE, SIZE, 3))
                Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(folder / f"{i:03d}.png")


@pytest.fixture
def tiny_digits(tmp_path, monkeypatch):
    """The registered builder class reading PNGs written under tmp_path."""
    package = tmp_path / "packages" / PACKAGE
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "zoo_tiny_digits.py").write_text(BUILDER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path / "packages"))
    # Imported once per process (later imports come from sys.modules): a second registration of
    # the same TFDS name would raise "Dataset with name zoo_tiny_digits already registered".
    module = importlib.import_module(f"{PACKAGE}.zoo_tiny_digits")
    assert tfds.builder_cls(DATASET) is module.ZooTinyDigits
    write_pngs(tmp_path / "pngs")
    monkeypatch.setattr(module.ZooTinyDigits, "data_root", tmp_path / "pngs")
    return module.ZooTinyDigits


def test_tfds_source_prepares_trains_and_evaluates_unmocked(tmp_path, tiny_digits):
    data_dir = tmp_path / "tensorflow_datasets"
    default_dir = tfds.core.constants.DATA_DIR
    already_there = sorted(p.name for p in epath.Path(default_dir).glob(f"{DATASET}*"))
    recipe = tiny("digits_cnn", "data.source=tfds", f"data.name={DATASET}", f"data.data_dir={data_dir}",
                  "data.image_size=[8, 8]", "data.batch_size=16", "train.epochs=6")

    run = zoo.train(recipe, output_dir=tmp_path / "run")  # download_and_prepare really runs

    prepared = data_dir / DATASET / "1.0.0"
    assert (prepared / "dataset_info.json").is_file()
    assert list(prepared.glob(f"{DATASET}-train.tfrecord-*")) and list(prepared.glob(f"{DATASET}-test.tfrecord-*"))
    builder = tfds.builder(DATASET, data_dir=str(data_dir))
    assert {s: builder.info.splits[s].num_examples for s in PER_CLASS} == \
        {s: n * len(CLASSES) for s, n in PER_CLASS.items()}
    # Nothing prepared in TFDS's default ~/tensorflow_datasets.
    assert sorted(p.name for p in epath.Path(default_dir).glob(f"{DATASET}*")) == already_there

    n_test = PER_CLASS["test"] * len(CLASSES)
    assert run.metrics["num_examples"] == n_test
    assert {key for key in run.metrics if "accuracy" in key} == {"accuracy", "best/accuracy"}  # 4 classes: no top-5
    assert run.metrics["accuracy"] >= 0.8, run.metrics  # chance is 0.25
    assert run.history["accuracy"][-1] > run.history["accuracy"][0]

    # evaluate() opens the already prepared data (no second prepare) and agrees with train().
    metrics = zoo.evaluate(recipe, weights=run.output_dir / "model.keras")
    assert metrics["num_examples"] == n_test
    assert metrics["accuracy"] == pytest.approx(run.metrics["accuracy"])


def shipped_tfds_datasets():
    names = set()
    for path in sorted(RECIPES_DIR.rglob("*.yaml")):
        if path.parent.name == "base":
            continue
        recipe = zoo.load_recipe(str(path))
        if recipe.data.source == "tfds":
            names.update(part.split("/")[0].split(":")[0] for part in recipe.data.name.split("+"))
    return sorted(names)


def test_shipped_tfds_builders_resolve_their_checksums_offline():
    """The step of download_and_prepare that needed importlib_resources, before any download."""
    names = shipped_tfds_datasets()
    assert {"cifar10", "mnist", "coco", "voc"} <= set(names)
    for name in names:
        cls = tfds.builder_cls(name)
        assert cls.code_path is not None and cls.code_path.exists(), name
        cls.url_infos  # noqa: B018  (reads the shipped checksums file)
