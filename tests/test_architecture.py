"""The architecture's rules, checked: no import circle in zoo/, no TensorFlow for the commands
that need none, and a new task family plugs in without editing the pipeline, the recipe schema,
the registry, the CLI or the data package (docs/architecture.md)."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ZOO = Path(__file__).resolve().parent.parent / "zoo"
MODULE_STRING = r"zoo(\.\w+)+(:\w+)?"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ZOO.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _known(name: str, modules: set) -> str | None:
    """The zoo module `name` refers to: itself, or the longest known prefix (a `from` import of a name)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """Edges module -> zoo modules it imports anywhere (function-level imports included), or names
    as a string to import later (`LazyModule("zoo.x")`, `Source("zoo.x:f")`), or imports all of
    (a package that walks its own sub-modules with pkgutil)."""
    import re

    files = {_module_name(p): p for p in ZOO.rglob("*.py")}
    modules = set(files)
    graph = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text())
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(MODULE_STRING, node.value):
                targets = [node.value.partition(":")[0]]
            elif isinstance(node, ast.Attribute) and node.attr == "iter_modules":
                targets = [m for m in modules if m.rpartition(".")[0] == name]
            for target in targets:
                known = _known(target, modules) if target.startswith("zoo") else None
                if known and known != name:
                    edges.add(known)
        graph[name] = edges
    return graph


def find_cycle(graph) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_there_is_no_import_circle_in_zoo():
    graph = import_graph()
    assert "zoo.registry" in graph["zoo.models.simple_cnn"]  # the graph sees imports
    assert "zoo.models.layers" in graph["zoo.models.unet"]  # ... and lazily imported modules
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def _run(code: str, **env):
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            env={**os.environ, **env}, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_import_list_recipes_and_help_load_no_tensorflow():
    result = _run("""
        import contextlib, io, sys
        import zoo
        from zoo.cli import main
        zoo.list_models(); zoo.list_pretrained(); zoo.load_recipe("digits_cnn")
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            for argv in (["list"], ["list", "--pretrained"], ["list", "--task", "video"], ["recipes"]):
                assert main(argv) == 0, argv
            try:
                main(["--help"])
            except SystemExit as exit:
                assert exit.code == 0
        loaded = sorted(m for m in ("tensorflow", "keras", "tensorflow_datasets") if m in sys.modules)
        print(loaded, len(out.getvalue().splitlines()))
    """)
    loaded, lines = result.stdout.split("]")
    assert loaded == "[", f"loaded: {loaded}]"
    assert int(lines) > 50  # the commands did print their listings


PLUGIN = '''
"""A multi-label task: one sigmoid per class, several classes per image."""
from dataclasses import dataclass

import numpy as np

from zoo.config import DataConfig
from zoo.data import DatasetInfo, Split
from zoo.lazy import keras, layers, tf
from zoo.registry import register
from zoo.tasks.base import Source, Task, predict_all, register_task


@dataclass
class MultiLabelData(DataConfig):
    threshold: float = 0.5  # a class is predicted when its probability reaches this


def load_quadrants(data, task, split, truth=None):
    """16x16 images; class k is present when quadrant k is bright."""
    rng = np.random.default_rng(0 if split == data.train_split else 1)
    size = data.train_size if split == data.train_split else data.eval_size
    labels = rng.integers(0, 2, (size, 4)).astype("float32")
    images = rng.integers(0, 60, (size, 16, 16, 3)).astype("float32")
    for k, (r, c) in enumerate([(0, 0), (0, 8), (8, 0), (8, 8)]):
        images[:, r:r + 8, c:c + 8] += 150 * labels[:, k, None, None, None]
    dataset = tf.data.Dataset.from_tensor_slices({"image": images.astype("uint8"), "labels": labels})
    return Split(dataset, DatasetInfo(4, ["top_left", "top_right", "bottom_left", "bottom_right"], size))


@register_task
class MultiLabel(Task):
    name = "multilabel"
    sources = {"quadrants": Source(__name__ + ":load_quadrants")}
    data_config = MultiLabelData
    min_classes = 1

    def prepare(self, example, recipe, info, training):
        return tf.image.resize(example["image"], recipe.data.image_size), example["labels"]

    def loss(self, info, **kwargs):
        return keras.losses.BinaryCrossentropy()

    def evaluate(self, model, dataset, info, report=None):  # no per-class report of its own
        scores, labels = predict_all(model, dataset)
        hits = (scores >= 0.5) == (labels > 0.5)
        return {"exact_match": float(hits.all(-1).mean()), "label_accuracy": float(hits.mean()),
                "num_examples": int(len(labels))}


@register(task="multilabel", input_shape=(16, 16, 3), head=("logits",))
def quadrant_net(input_shape=(16, 16, 3), num_classes=4):
    """A two-layer CNN for the test task (not a published architecture)."""
    inputs = keras.Input(input_shape)
    x = layers.Rescaling(1 / 255)(inputs)
    x = layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, layers.Activation("sigmoid", dtype="float32")(x))
'''


def test_a_new_task_family_needs_no_edit_to_the_pipeline(tmp_path):
    """A task family from outside the package: its module registers the task, its model and a
    source; the recipe schema (its own data key), `zoo list --task`, `zoo train` and
    `zoo evaluate` take it as they take the four built-in ones."""
    (tmp_path / "multilabel_task.py").write_text(PLUGIN)
    recipe = tmp_path / "quadrants.yaml"
    recipe.write_text(textwrap.dedent("""
        task: multilabel
        model: {name: quadrant_net}
        data: {source: quadrants, image_size: [16, 16], batch_size: 32, train_size: 512, eval_size: 256,
               threshold: 0.5}
        train: {epochs: 6, optimizer: {name: adam, learning_rate: 0.01}, verbose: 0}
    """))
    result = _run(f"""
        import contextlib, io, json, sys
        sys.path.insert(0, {str(tmp_path)!r})
        import zoo.tasks, multilabel_task
        from zoo.cli import main
        from zoo.errors import RecipeError
        listing = io.StringIO()
        with contextlib.redirect_stdout(listing):
            assert main(["list", "--task", "multilabel"]) == 0
        assert "quadrant_net" in listing.getvalue()
        try:  # the task's own key belongs to it: another task's recipe names the owner
            zoo.load_recipe("digits_cnn", ["data.threshold=0.5"])
            raise AssertionError("no error")
        except RecipeError as err:
            print("ERROR", err)
        assert main(["train", {str(recipe)!r}, "--output", {str(tmp_path / "run")!r}]) == 0
    """, ZOO_HOME=str(tmp_path / "home"))
    assert "data.threshold: a multilabel key" in result.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["num_examples"] == 256
    assert metrics["exact_match"] > 0.6, metrics  # chance: 1/16


@pytest.mark.parametrize("key, task", [("num_frames", "video"), ("max_boxes", "detection")])
def test_a_task_key_in_another_tasks_recipe_names_its_task(key, task):
    import zoo
    from zoo.errors import RecipeError

    with pytest.raises(RecipeError, match=rf"data\.{key}: a {task} key"):
        zoo.load_recipe("digits_cnn", [f"data.{key}=4"])
