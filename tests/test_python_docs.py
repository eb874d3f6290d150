"""docs/python.md runs as written: every ```python block is its own script, run in a fresh
process; the blocks of one section share a folder (a reload block reads what the block before it
saved). The blocks assert on their own results (the digit read, the objects found, the mask's
size, reloaded outputs equal to the saved ones)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "python.md"
BLOCK_SECONDS = 240  # one block: a fresh TensorFlow, a model or two, a few training steps
FAMILIES = {"Classification": "digits_cnn.digits", "Detection": "retinanet_small.shapes",
            "Segmentation": "unet_small.shapes", "Video": "cnn_lstm.moving_shapes"}


def sections() -> dict[str, list[str]]:
    """{"## " heading: [the source of each ```python block under it, in page order]}."""
    found, heading = {}, None
    for part in re.split(r"^(## .*)$", PAGE.read_text(), flags=re.MULTILINE):
        if part.startswith("## "):
            heading = part[3:].strip()
        elif heading is not None:
            found[heading] = re.findall(r"^```python\n(.*?)^```$", part, flags=re.MULTILINE | re.DOTALL)
    return found


def test_every_family_has_a_run_and_a_reload_in_a_fresh_process():
    found = sections()
    for family, weights in FAMILIES.items():
        heading = next((h for h in found if h.startswith(family)), None)
        assert heading and weights in heading, f"docs/python.md: no section for {family} ({weights})"
        first, *rest = found[heading]
        assert f'"{weights}"' in first and "model.fit(" in first and "model.save(" in first, heading
        assert len(rest) == 1 and "keras.saving.load_model(" in rest[0], heading
        imports = re.findall(r"^(?:from|import) (\S+)", rest[0], flags=re.MULTILINE)
        assert [name for name in imports if name.startswith("zoo")] == ["zoo"], heading
    run = sum(len(found[h]) for h in found if h.startswith(tuple(FAMILIES)))
    assert run == PAGE.read_text().count("```python"), "a ```python block outside the sections the tests run"


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_section_runs(family, tmp_path):
    heading, blocks = next((h, b) for h, b in sections().items() if h.startswith(family))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    for number, source in enumerate(blocks, start=1):
        script = tmp_path / f"block_{number}.py"
        script.write_text(source)
        proc = subprocess.run([sys.executable, script.name], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=BLOCK_SECONDS, check=False)
        assert proc.returncode == 0, f"{heading}, block {number}:\n{proc.stdout}\n{proc.stderr[-4000:]}"


def test_detection_targets_are_what_training_feeds_the_model():
    """`detection_targets` (docs/python.md's fine-tuning) gives the images and anchor targets
    `zoo train` makes of the same examples (`Detection.prepare`, without augmentation)."""
    import numpy as np

    import zoo
    from zoo.data.synthetic import generate
    from zoo.tasks import get_task
    from zoo.tasks.detection.targets import detection_targets

    model = zoo.create_model("retinanet_small", num_classes=3)
    recipe = zoo.load_recipe("shapes_retinanet")
    task = get_task("detection")
    task.attach(model)
    examples = [generate("shapes_detection", index=i, seed=3, image_size=size)
                for i, size in enumerate([(96, 160), (128, 128), (200, 120)])]
    pixels = [e["boxes"][:, [1, 0, 3, 2]] * np.tile(e["image"].shape[1::-1], 2) for e in examples]
    images, targets = detection_targets(model, [e["image"] for e in examples], pixels,
                                        [e["labels"] for e in examples])
    assert images.shape == (3, 128, 128, 3) and images.dtype == np.float32
    assert targets.shape == (3, model.output_shape[1], 5)
    for example, image, target in zip(examples, images, targets):
        expected_image, expected_target = task.prepare(example, recipe, None, training=False)
        np.testing.assert_allclose(image, expected_image.numpy(), atol=1e-3)
        np.testing.assert_array_equal(target[:, 4], expected_target.numpy()[:, 4])  # class, background, ignored
        np.testing.assert_allclose(target[:, :4], expected_target.numpy()[:, :4], atol=1e-3)
        assert (target[:, 4] >= 0).sum() >= len(example["labels"])  # every object has an anchor


def test_detection_targets_name_what_does_not_fit():
    import numpy as np

    import zoo
    from zoo.errors import DataError
    from zoo.tasks.detection.targets import detection_targets

    model = zoo.create_model("retinanet_small", num_classes=3)
    image = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(DataError, match="2 images, 1 box lists and 2 label lists"):
        detection_targets(model, [image, image], [np.zeros((0, 4))], [[], []])
    with pytest.raises(DataError, match=r"image 0: image \(64, 64, 3\), boxes \(1, 4\), labels \(2,\)"):
        detection_targets(model, [image], [[[0, 0, 10, 10]]], [[0, 1]])
    with pytest.raises(DataError, match=r"image 1: image \(64, 64, 3\), boxes \(1, 5\)"):
        detection_targets(model, [image, image], [np.zeros((0, 4)), np.ones((1, 5))], [[], [0]])
    with pytest.raises(DataError, match=r"labels \[3\]; the model has 3 classes, 0..2"):
        detection_targets(model, [image], [[[0, 0, 10, 10]]], [[3]])
    _, targets = detection_targets(model, [image], [np.zeros((0, 4))], [[]])  # no objects: all background
    assert (targets[0, :, 4] == -1).all()
