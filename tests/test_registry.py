import pytest

import zoo
from zoo.errors import ZooError
from zoo.registry import TASKS, get_entry


def test_list_models_pattern_and_task():
    resnets = zoo.list_models("resnet*", task="classification")
    assert {"resnet20", "resnet56", "resnet18", "resnet50"} <= set(resnets)
    assert all(name.startswith("resnet") for name in resnets)
    assert zoo.list_models("*") == sorted(zoo.list_models("*"))
    assert set(zoo.list_models(task="classification")) <= set(zoo.list_models())


def test_every_entry_has_a_task_citation_and_shape():
    for name in zoo.list_models():
        entry = get_entry(name)
        assert entry.task in TASKS
        assert len(entry.source) > 10, f"{name} lacks a one-line citation"
        assert len(entry.input_shape) in (3, 4)


def test_unknown_model_suggests_close_names():
    with pytest.raises(ZooError, match="resnet20"):
        zoo.create_model("resnet2O")
    with pytest.raises(ZooError, match="unknown task"):
        zoo.list_models(task="audio")


def test_pretrained_without_weights_is_a_clear_error():
    with pytest.raises(ZooError, match="no pretrained"):
        zoo.create_model("resnet20", pretrained="no-such-tag")


def test_docs_models_table_lists_every_model():
    from pathlib import Path

    table = (Path(__file__).resolve().parents[1] / "docs" / "models.md").read_text()
    missing = [name for name in zoo.list_models() if f"| `{name}` |" not in table]
    assert not missing, f"run `python docs/generate_models.py`; missing: {missing}"


def test_docs_recipes_lists_every_key():
    import dataclasses
    import re
    from pathlib import Path

    from zoo import recipe

    text = (Path(__file__).resolve().parents[1] / "docs" / "recipes.md").read_text()
    for cls in (recipe.DataConfig, recipe.AugmentConfig, recipe.TrainConfig, recipe.OptimizerConfig,
                recipe.ScheduleConfig, recipe.RuntimeConfig):
        for f in dataclasses.fields(cls):
            assert re.search(rf"`([\w.]+\.)?{f.name}(\.\w+)?`", text), f"docs/recipes.md lacks {cls.__name__}.{f.name}"
