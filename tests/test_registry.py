import pytest

import zoo
from zoo.errors import ZooError
from zoo.models import get_entry
from zoo.tasks import TASKS


def test_list_models_pattern_and_task():
    resnets = zoo.list_models("resnet*", task="classification")
    assert {"resnet20", "resnet56", "resnet18", "resnet50"} <= set(resnets)
    assert all(name.startswith("resnet") for name in resnets)
    assert zoo.list_models("*") == sorted(zoo.list_models("*"))
    classification = set(zoo.list_models(task="classification"))
    assert classification == {n for n in zoo.list_models() if get_entry(n).task == "classification"}
    assert "unet_small" in zoo.list_models() and "unet_small" not in classification  # the filter filters


def test_every_entry_has_a_citation_a_shape_and_its_weights():
    from zoo import weights_table

    rows = {(row["model"], row.get("tag", "imagenet"))
            for row in weights_table.ZOO_WEIGHTS + weights_table.KERAS_APPLICATIONS}
    attached = set()
    for name in zoo.list_models():
        entry = get_entry(name)
        assert len(entry.citation) > 10, f"{name} lacks a one-line citation"
        assert len(entry.input_shape) == (4 if entry.task == "video" else 3)
        assert entry.head, f"{name} declares no head layers"
        attached |= {(name, tag) for tag in entry.pretrained}
    assert attached == rows  # every row of the table reaches its model, and nothing else does


def test_registering_for_an_unknown_task_names_the_registered_ones():
    from zoo.registry import register

    with pytest.raises(ValueError, match="unknown task 'audio'; registered tasks: classification"):
        register(task="audio", input_shape=(8, 8, 3))


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

    from zoo import config

    text = (Path(__file__).resolve().parents[1] / "docs" / "recipes.md").read_text()
    for cls in (config.AugmentConfig, config.TrainConfig, config.OptimizerConfig, config.ScheduleConfig,
                config.RuntimeConfig, *{task.data_config for task in TASKS.values()}):
        for f in dataclasses.fields(cls):
            assert re.search(rf"`([\w.]+\.)?{f.name}(\.\w+)?`", text), f"docs/recipes.md lacks {cls.__name__}.{f.name}"
