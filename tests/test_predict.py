"""`zoo predict` with shipped weights, standalone model files and runs: class names of the
weights table, pictures (detection labels, class-agnostic NMS, video frame strips) and the
JSON Lines output."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli

import zoo
from zoo.data.synthetic import generate
from zoo.models import get_spec

SHIPPED = ["digits_cnn.digits", "cnn_lstm.moving_shapes", "unet_small.shapes", "retinanet_small.shapes"]




def json_lines(out):
    return [json.loads(line) for line in out.splitlines()]


def save_image(path, array):
    Image.fromarray(np.asarray(array, np.uint8)).save(path)
    return str(path)


def save_clip(folder, video):
    folder.mkdir(parents=True)
    for t, frame in enumerate(video):
        save_image(folder / f"frame_{t:03d}.png", frame)
    return str(folder)


def box_iou(a, b):
    """IoU of two [x0, y0, x1, y1] boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union


# ------------------------------------------------------------------- the weights table


@pytest.mark.parametrize("name", SHIPPED)
def test_class_names_of_each_weight_are_its_recipe_training_split(name):
    from zoo.data import load_split
    from zoo.tasks import get_task

    spec = get_spec(name)
    recipe = zoo.load_recipe(spec.recipe)
    split = load_split(recipe, get_task(recipe.task), recipe.data.train_split)
    assert spec.class_names == tuple(split.info.class_names)
    assert len(spec.class_names) == spec.num_classes
    # the data settings `zoo predict NAME` takes from that recipe fit the weights' input
    assert tuple(recipe.data.image_size) == tuple(spec.input_size[-3:-1])
    assert get_task(recipe.task).model_args(recipe, split.info)["input_shape"] == tuple(spec.input_size)


def test_keras_applications_rows_have_no_class_names_and_imagenet_names_come_from_keras_cache(
        tmp_path, monkeypatch):
    from zoo.model_source import _imagenet_names
    from zoo.registry import pretrained_specs

    specs = [s for s in pretrained_specs() if s.application]
    assert specs and all(s.class_names == () for s in specs)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert _imagenet_names(1000) is None  # not cached: the caller falls back to the indices
    (tmp_path / "models").mkdir()
    index = {str(i): [f"n{i:08d}", f"class_{i}"] for i in range(1000)}
    (tmp_path / "models" / "imagenet_class_index.json").write_text(json.dumps(index))
    names = _imagenet_names(1000)
    assert names[0] == "class_0" and names[999] == "class_999" and len(names) == 1000

    # `zoo predict inception_v3` (no download here): ImageNet's evaluation crop at the weights'
    # input size, the cached class names
    import zoo.models
    from zoo.model_source import load_run

    import zoo.serving

    monkeypatch.setattr(zoo.models, "create_model", lambda name: f"built {name}")
    monkeypatch.setattr(zoo.serving, "float32_model", lambda model: model)
    model, recipe, info, run_dir = load_run("inception_v3")
    assert model == "built inception_v3.imagenet" and run_dir is None
    assert recipe.task == "classification" and recipe.data.image_size == [299, 299]
    assert recipe.data.eval_crop == 0.875 and info.class_names == names


# ------------------------------------------------------------- pretrained names, end to end


def test_predict_with_shipped_weights_by_name(capsys, tmp_path):
    """Each shipped weight predicts its own kind of generated input right, named as
    `zoo list --pretrained` names it, with its class names; --json gives JSON Lines."""
    out_dir = tmp_path / "out"
    # digits: the first embedded test digits, their true labels
    with np.load(os.path.join(os.path.dirname(zoo.__file__), "assets", "digits.npz")) as f:
        images, labels = f["images"][:3], f["labels"][:3]
    digits = [save_image(tmp_path / f"digit{i}.png", (im.astype(np.float32) * 255 / 16).round())
              for i, im in enumerate(images)]
    code, out, err = run_cli(capsys, "predict", "digits_cnn.digits", *digits, "--json", "--output", out_dir)
    assert code == 0, err
    rows = json_lines(out)
    assert [r["input"] for r in rows] == digits
    assert [r["top_k"][0][0] for r in rows] == [str(label) for label in labels]

    # video: a generated clip longer than the model's 8 frames, moving right
    clip = generate("moving_shapes", 0, 5, (64, 64), num_frames=12, label=1)
    path = save_clip(tmp_path / "clip_right", clip["video"])
    code, out, err = run_cli(capsys, "predict", "cnn_lstm.moving_shapes", path, "--output", out_dir)
    assert code == 0, err
    [line] = out.splitlines()
    picture = out_dir / "clip_right_frames.png"
    assert line.startswith(f"{path}: right ") and line.endswith(f"; drawn to {picture}")
    with Image.open(picture) as strip:  # 8 frames of 128 px and their gaps, the labels below
        assert strip.width == 8 * 128 + 9 * 4 and strip.height > 128 + 2 * 18

    # segmentation: classes by pixel fraction, the palette mask at the input's size
    example = generate("shapes_segmentation", 0, 5, (64, 64))
    path = save_image(tmp_path / "seg.png", example["image"])
    code, out, err = run_cli(capsys, "predict", "unet_small.shapes", path, "--json", "--output", out_dir)
    assert code == 0, err
    [row] = json_lines(out)
    names = ["background", "circle", "square", "triangle"]
    truth = np.bincount(example["mask"].ravel(), minlength=4) / example["mask"].size
    assert row["classes"][0][0] == "background" and {n for n, _ in row["classes"]} <= set(names)
    for name, fraction in row["classes"]:
        assert fraction == pytest.approx(truth[names.index(name)], abs=0.03)
    with Image.open(row["mask"]) as mask:
        assert mask.mode == "P" and mask.size == (64, 64)
    assert os.path.isfile(row["picture"])

    # detection: every generated shape found with its class, in original-image pixels (x2)
    example = generate("shapes_detection", 5, 5, (128, 128))  # a circle and a square
    path = save_image(tmp_path / "shapes.png", np.asarray(Image.fromarray(example["image"]).resize((256, 256))))
    code, out, err = run_cli(capsys, "predict", "retinanet_small.shapes", path, "--json", "--output", out_dir)
    assert code == 0, err
    row, last = json_lines(out)
    assert last["input"] is None and last["message"].endswith(str(out_dir / "predictions.json"))
    objects = row["objects"]
    classes = ["circle", "square", "triangle"]
    assert len(objects) == len(example["labels"]) >= 2
    for (y0, x0, y1, x1), label in zip(example["boxes"] * 256, example["labels"]):
        best = max(objects, key=lambda o: box_iou([x0, y0, x1, y1], o["box"]))
        assert best["label"] == classes[label]
    with Image.open(row["picture"]) as drawn:
        assert drawn.size == (256, 256)


def test_pretrained_name_errors_are_one_line(capsys, tmp_path):
    for args, message in [
        (["digitz_cnn.digits"], "digitz_cnn.digits: no such run directory or model file, nor a pretrained "
                                "model; did you mean digits_cnn.digits?"),
        (["resnet20"], "resnet20: model resnet20 has no pretrained weights"),
        (["digits_cnn.mnist"], "digits_cnn: no pretrained tag 'mnist' (tags: digits)"),
        ([str(tmp_path / "no_run")], f"no trained model at {tmp_path / 'no_run'} (expected a run directory"),
        ([str(tmp_path / "model.keras")], "no trained model at"),
    ]:
        code, out, err = run_cli(capsys, "predict", *args, "x.png")
        assert code == 2 and out == "", (args, err)
        assert err.count("\n") == 1 and err.startswith(f"zoo: error: {message}"), err


# ------------------------------------------------------------------ standalone .keras files


def test_standalone_keras_file_predicts_from_the_model_alone(capsys, tmp_path):
    import keras

    # A shipped model saved alone: same predictions as by name, class indices as names.
    model = zoo.create_model("digits_cnn.digits")
    model.save(tmp_path / "digits.keras")
    with np.load(os.path.join(os.path.dirname(zoo.__file__), "assets", "digits.npz")) as f:
        image = (f["images"][5].astype(np.float32) * 255 / 16).round()
    path = save_image(tmp_path / "d.png", image)
    code, out, err = run_cli(capsys, "predict", tmp_path / "digits.keras", path, "--json")
    assert code == 0, err
    [row] = json_lines(out)
    code, out, err = run_cli(capsys, "predict", "digits_cnn.digits", path, "--json", "--output", tmp_path / "p")
    [by_name] = json_lines(out)
    assert [n for n, _ in row["top_k"]] == [n for n, _ in by_name["top_k"]]
    assert [p for _, p in row["top_k"]] == pytest.approx([p for _, p in by_name["top_k"]], abs=1e-5)

    # A video model with its own clip length (4 frames of 16x16), not the task's default 8.
    video_model = zoo.create_model("cnn_lstm", input_shape=(4, 16, 16, 3), num_classes=3,
                                   filters=[4, 8], rnn_units=8, frame_features=8)
    video_model.save(tmp_path / "video.keras")
    clip = save_clip(tmp_path / "clip", np.random.default_rng(0).integers(0, 255, (6, 20, 24, 3)))
    code, out, err = run_cli(capsys, "predict", tmp_path / "video.keras", clip, "--json")
    assert code == 0, err
    [row] = json_lines(out)
    assert sorted(n for n, _ in row["top_k"]) == ["0", "1", "2"]
    assert row["picture"] == str(tmp_path / "predictions" / "clip_frames.png")

    # A model the registry does not know: no task to predict with, one line.
    inputs = keras.Input((8, 8, 3))
    keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs)), name="mine").save(
        tmp_path / "mine.keras")
    code, out, err = run_cli(capsys, "predict", tmp_path / "mine.keras", path)
    assert code == 2 and err.count("\n") == 1
    assert "its model name 'mine' is no registered zoo model" in err


# ------------------------------------------------------------------------------ detection


def test_nms_per_class_and_class_agnostic():
    """Per-class NMS keeps two classes on one place; agnostic NMS keeps the best box of each
    place, whatever its class, at IoU 0.45 (two boxes at IoU 0.496 are one object)."""
    from zoo.data import boxes as bx

    def run(boxes, class_scores, agnostic):
        anchors = np.asarray(boxes, np.float32)  # yxyx; zero deltas decode to the anchors
        logits = np.log(np.asarray(class_scores) / (1 - np.asarray(class_scores)))
        outputs = np.concatenate([np.zeros((len(anchors), 4)), logits], -1)[None].astype(np.float32)
        found = bx.postprocess(outputs, anchors, logits.shape[1], (128, 128), iou_threshold=0.45 if agnostic else 0.5,
                               agnostic=agnostic)
        n = int(found["num_detections"][0])
        return [(int(c), round(float(s), 3)) for c, s in zip(found["classes"][0][:n], found["scores"][0][:n])]

    one_place = [[10, 10, 50, 50], [12, 11, 52, 49], [60, 60, 90, 90]]
    scores = [[0.9, 0.01], [0.02, 0.8], [0.01, 0.7]]  # class 0 and class 1 on the first place
    assert run(one_place, scores, agnostic=False) == [(0, 0.9), (1, 0.8), (1, 0.7)]
    assert run(one_place, scores, agnostic=True) == [(0, 0.9), (1, 0.7)]
    near = [[10.2, 90, 35.6, 114.5], [1.5, 88.4, 28.6, 115.6]]  # IoU 0.496
    assert run(near, [[0.5, 0.01], [0.01, 0.497]], agnostic=True) == [(0, 0.5)]
    assert len(run(near, [[0.5, 0.01], [0.01, 0.497]], agnostic=False)) == 2


def test_detection_nms_option_reaches_the_serving_graph(capsys, tmp_path, monkeypatch):
    """`zoo predict` runs the serving graph with agnostic NMS by default and per class with
    --no-agnostic-nms (as `zoo.load_predictor(agnostic_nms=...)`); the objects listed and drawn
    are the graph's of score >= 0.3, predictions.json has them all."""
    from zoo import predictor as predictor_module
    from zoo.tasks.detection.evaluation import DecodeDetections

    def fake_runner(serving):  # the graph's answer for its NMS mode: [x0, y0, x1, y1] pixels
        [decode] = [layer for layer in serving._flatten_layers() if isinstance(layer, DecodeDetections)]
        keep = [0, 2] if decode.agnostic else [0, 1, 2]
        boxes = np.array([[10, 10, 50, 50], [12, 11, 52, 50], [5, 60, 40, 90]], np.float32)[keep]
        found = {"boxes": boxes, "scores": np.array([0.9, 0.8, 0.2], np.float32)[keep],
                 "classes": np.array([0, 1, 2], np.int32)[keep]}
        return lambda images: {**{k: v[None] for k, v in found.items()}, "num_detections": np.array([len(keep)])}

    monkeypatch.setattr(predictor_module, "_graph_runner", fake_runner)
    path = save_image(tmp_path / "a.png", np.full((100, 120, 3), 90))
    for flag, labels in [(None, ["circle"]), ("--no-agnostic-nms", ["circle", "square"]), ("--agnostic-nms", ["circle"])]:
        args = ["predict", "retinanet_small.shapes", path, "--json", "--output", tmp_path / "out"]
        code, out, err = run_cli(capsys, *args, *([flag] if flag else []))
        assert code == 0, err
        row, last = json_lines(out)
        assert [o["label"] for o in row["objects"]] == labels
        assert row["objects"][0] == {"label": "circle", "class_id": 0, "score": pytest.approx(0.9),
                                     "box": [10.0, 10.0, 50.0, 50.0]}
        results = json.loads((tmp_path / "out" / "predictions.json").read_text())
        assert [r["category"] for r in results] == labels + ["triangle"]
    assert [len(zoo.load_predictor("retinanet_small.shapes", agnostic_nms=agnostic, min_score=0.1).predict(path)[0])
            for agnostic in (True, False)] == [2, 3]


def test_detection_labels_are_filled_boxes_with_contrasting_text():
    from zoo.data import PALETTE, class_color
    from zoo.tasks.detection.drawing import draw_detections, text_color

    assert text_color((255, 225, 25)) == (0, 0, 0) and text_color((255, 255, 255)) == (0, 0, 0)
    assert text_color((0, 0, 128)) == (255, 255, 255) and text_color((0, 0, 0)) == (255, 255, 255)
    assert {text_color(c) for c in PALETTE} == {(0, 0, 0), (255, 255, 255)}

    image = np.full((200, 300, 3), 255, np.uint8)
    image[:, 150:] = 0  # a white half and a black half
    detections = [((20, 60, 120, 150), "circle", 0.91, 0),  # label above the box
                  ((180, 2, 280, 100), "triangle", 0.55, 2)]  # at the top edge: inside the box
    picture = np.asarray(draw_detections(image, detections))
    assert picture.shape == image.shape
    for (x0, y0, x1, y1), _, _, index in detections:
        above = y0 >= 20
        band = picture[y0 - 6:y0 - 1, x0 + 1:x0 + 30] if above else picture[y0 + 2:y0 + 7, x0 + 1:x0 + 30]
        colours = {tuple(int(c) for c in p) for p in band.reshape(-1, 3)}
        ink = np.asarray(text_color(class_color(index)))
        assert class_color(index) in colours  # the filled label box
        assert min(np.abs(np.subtract(c, ink)).max() for c in colours) < 40  # its (antialiased) text
        assert not colours & {(255, 255, 255), (0, 0, 0)} - {tuple(ink)}  # no background shows
    # the box outlines are there, in the class colour
    assert tuple(picture[100, 20]) == class_color(0) and tuple(picture[50, 280]) == class_color(2)


# ------------------------------------------------------------------------ video, JSON, text


def test_frame_strip_picks_frames_evenly_and_writes_the_labels():
    from zoo.tasks.classification.drawing import draw_frame_strip, strip_indices

    assert strip_indices([[3, 4, 5]]) == [3, 4, 5]
    assert strip_indices(np.arange(20)) == [0, 3, 5, 8, 11, 14, 16, 19]
    # two clips at stride 2: 16 distinct frames, 8 of them evenly spaced
    assert strip_indices([[0, 2, 4, 6, 8, 10, 12, 14], [5, 7, 9, 11, 13, 15, 17, 19]]) == [0, 4, 6, 8, 11, 13, 15, 19]
    video = np.zeros((20, 30, 40, 3), np.uint8)
    video[:, :, :, 0] = np.arange(20)[:, None, None] * 10  # frame t is red t * 10
    strip = np.asarray(draw_frame_strip(video, [0, 19], [["left", 0.75], ["right", 0.25]], ["left", "right"]))
    frame_width = round(40 * 128 / 30)  # one height, the aspect kept
    assert strip.shape[:2] == (4 + 128 + 18 + 4 + 2 * 18 + 4, 2 * frame_width + 3 * 4)
    assert np.asarray(draw_frame_strip(video, [0], [["left", 1.0]])).shape[1] == 300  # room for the labels
    assert tuple(strip[60, 4 + 5]) == (0, 0, 0) and tuple(strip[60, 4 + frame_width + 4 + 5]) == (190, 0, 0)


def test_json_lines_and_text_lines_of_the_same_predictions(capsys, tmp_path):
    from zoo.predict import describe, iter_predict, to_json

    paths = [save_image(tmp_path / "a.png", np.full((8, 8, 3), 40)), str(tmp_path / "missing.png")]
    (tmp_path / "bad.png").write_bytes(b"not a png")
    paths.append(str(tmp_path / "bad.png"))
    code, out, err = run_cli(capsys, "predict", "digits_cnn.digits", *paths, "--json", "--output", tmp_path)
    assert code == 2 and err == f"zoo: error: 2 of 3 inputs could not be read (first: {paths[1]})\n"
    rows = json_lines(out)
    assert [r["input"] for r in rows] == paths
    assert rows[1] == {"input": paths[1], "error": f"cannot read image file: {paths[1]}"}
    assert set(rows[0]) == {"input", "top_k", "picture"} and all(isinstance(p, float) for _, p in rows[0]["top_k"])

    # Every task's predictions are plain Python data: json needs no help.
    predictions = list(iter_predict("digits_cnn", paths[:1], tmp_path))  # the default tag
    json.dumps(predictions)
    assert describe(predictions[0])[0].startswith(f"{paths[0]}: ")
    assert to_json({"input": "x", "score": np.float32(0.5), "box": np.arange(2), "path": tmp_path}) == (
        f'{{"input": "x", "score": 0.5, "box": [0, 1], "path": "{tmp_path}"}}')
    assert describe({"input": "c", "top_k": [["left", 0.9]], "picture": "p.png"}) == ["c: left 0.900; drawn to p.png"]
