"""`zoo.load_predictor`: the four shipped weights in Python, every input kind (path, folder,
list, PIL image, uint8 image, batch, grey, RGBA, clips), results as NumPy data with the same
answer as `zoo predict`, pictures, batching, and one-line errors."""
import json

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli

import zoo
from zoo import predictor as predictor_module
from zoo.data.synthetic import generate
from zoo.errors import ZooError

_PREDICTORS = {}


def load(name, **options):
    key = (name, tuple(sorted(options.items())))
    if key not in _PREDICTORS:
        _PREDICTORS[key] = zoo.load_predictor(name, **options)
    return _PREDICTORS[key]


def digit_images(count=3):
    """The first embedded test digits as 8x8 uint8 RGB (white on black, as trained) and labels."""
    import os

    with np.load(os.path.join(os.path.dirname(zoo.__file__), "assets", "digits.npz")) as f:
        images, labels = f["images"][:count], f["labels"][:count]
    pixels = (images.astype(np.float32) * 255 / 16).round().astype(np.uint8)
    return np.repeat(pixels[..., None], 3, -1) if pixels.ndim == 3 else pixels, [str(v) for v in labels]


def count_graph_runs(monkeypatch):
    """Patch the predictor's graph runner to count serving-graph calls (the real graph runs)."""
    calls = []
    real = predictor_module._graph_runner

    def counting(serving):
        run = real(serving)
        return lambda batch: calls.append(len(batch)) or run(batch)

    monkeypatch.setattr(predictor_module, "_graph_runner", counting)
    return calls


def test_classifier_takes_every_input_kind_and_batches(tmp_path, monkeypatch):
    calls = count_graph_runs(monkeypatch)
    predictor = zoo.load_predictor("digits_cnn.digits")
    images, labels = digit_images(3)
    batch = predictor.predict(images)  # (N, H, W, 3): one run of the graph for the batch
    assert calls == [3] and [r.label for r in batch] == labels
    assert [r.source for r in batch] == ["<array 0>", "<array 1>", "<array 2>"]
    first = batch[0]
    assert first.probabilities.shape == (10,) and first.probabilities.dtype == np.float32
    assert first.probabilities.sum() == pytest.approx(1.0, abs=1e-4)
    assert [name for name, _ in first.top_k] == [predictor.names[i] for i in np.argsort(-first.probabilities)[:5]]

    # a path, a list, a folder, a PIL image, grey and RGBA arrays, any size: the same answer
    folder = tmp_path / "digits"
    folder.mkdir()
    paths = []
    for i, image in enumerate(images):
        paths.append(str(folder / f"{i}.png"))
        Image.fromarray(image).save(paths[-1])
    big = np.asarray(Image.fromarray(images[0]).resize((64, 64), Image.NEAREST))
    grey, rgba = images[1][..., 0], np.concatenate([images[2], np.full((8, 8, 1), 255, np.uint8)], -1)
    for inputs, expected in [(paths[0], labels[:1]), (paths, labels), (str(folder), labels),
                             (Image.fromarray(images[0]), labels[:1]), (images[0], labels[:1]),
                             (grey, labels[1:2]), (rgba, labels[2:]), ([big, images[1]], labels[:2])]:
        results = predictor.predict(inputs)
        assert [r.label for r in results] == expected, inputs if isinstance(inputs, str) else type(inputs)
    assert predictor.predict(paths)[1].source == paths[1]
    np.testing.assert_allclose(predictor(paths[0])[0].probabilities, first.probabilities, atol=1e-5)

    # consecutive inputs of one size share a run; a new size starts another
    calls.clear()
    predictor.predict([images[0], images[1], big, images[2]])
    assert calls == [2, 1, 1]


def test_results_plot_save_and_to_dict_like_zoo_predict(tmp_path, capsys):
    """Per task: `.to_dict()` is what `zoo predict --json` prints for the input, `.plot()` the
    picture it saves (the same pixels), `.save` writes it."""
    clip = generate("moving_shapes", 0, 5, (64, 64), num_frames=12, label=1)["video"]
    clip_folder = tmp_path / "clip"
    clip_folder.mkdir()
    for t, frame in enumerate(clip):
        Image.fromarray(frame).save(clip_folder / f"f{t:02d}.png")
    seg = generate("shapes_segmentation", 0, 5, (64, 64))["image"]
    det = generate("shapes_detection", 5, 5, (128, 128))["image"]
    Image.fromarray(seg).resize((96, 80)).save(tmp_path / "seg.png")
    Image.fromarray(det).resize((256, 200)).save(tmp_path / "det.png")
    Image.fromarray(digit_images(1)[0][0]).save(tmp_path / "digit.png")
    cases = [("digits_cnn.digits", tmp_path / "digit.png", "classes"),
             ("cnn_lstm.moving_shapes", clip_folder, "frames"),
             ("unet_small.shapes", tmp_path / "seg.png", "segmentation"),
             ("retinanet_small.shapes", tmp_path / "det.png", "detections")]
    for name, path, kind in cases:
        out = tmp_path / f"predicted_{kind}"
        code, printed, err = run_cli(capsys, "predict", name, path, "--json", "--output", out)
        assert code == 0, err
        row = json.loads(printed.splitlines()[0])
        [result] = load(name).predict(str(path))
        expected = {k: v for k, v in row.items() if k not in ("input", "picture", "mask", "threshold")}
        assert json.loads(json.dumps(result.to_dict())) == expected
        with Image.open(row["picture"]) as saved:
            np.testing.assert_array_equal(result.plot(), np.asarray(saved.convert("RGB")))
        assert result.plot().dtype == np.uint8 and result.plot().shape[-1] == 3
        assert result.save(tmp_path / f"{kind}.png") == tmp_path / f"{kind}.png"
        with Image.open(tmp_path / f"{kind}.png") as written:
            assert written.size == (result.plot().shape[1], result.plot().shape[0])
        if kind == "detections":
            assert len(result) == len(row["objects"]) > 0
        if kind == "segmentation":
            assert result.mask.shape == (80, 96) and result.mask.dtype == np.int32
            assert result.names == ["background", "circle", "square", "triangle"]
        if kind == "frames":
            assert result.label == "right" and len(result.frames) == 8


def test_detector_boxes_are_in_the_input_pixels():
    """Each generated shape found with its class, boxes [x0, y0, x1, y1] in the pixels of an
    input twice the model's size; a batch of two gives two results alike."""
    example = generate("shapes_detection", 5, 5, (128, 128))
    image = np.asarray(Image.fromarray(example["image"]).resize((256, 256)))
    predictor = load("retinanet_small.shapes")
    for result in predictor.predict(np.stack([image, image])):
        assert len(result) == len(example["labels"]) >= 2
        assert result.boxes.shape == (len(result), 4) and np.all(np.diff(result.scores) <= 0)
        for (y0, x0, y1, x1), label in zip(example["boxes"] * 256, example["labels"]):
            overlap = [iou([x0, y0, x1, y1], box) for box in result.boxes]
            best = int(np.argmax(overlap))
            assert overlap[best] > 0.7 and result.names[result.labels[best]] == result.names[label]
    assert len(predictor.predict(image)[0].keep(0.99)) < len(result)


def iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return w * h / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h)


def test_video_predictor_takes_clips_and_batches_of_clips():
    predictor = load("cnn_lstm.moving_shapes")
    left = generate("moving_shapes", 0, 5, (64, 64), num_frames=12, label=0)["video"]
    right = generate("moving_shapes", 1, 5, (64, 64), num_frames=12, label=1)["video"]
    assert [r.label for r in predictor.predict(np.stack([left, right]))] == ["left", "right"]
    assert [r.label for r in predictor.predict([right, left[:10]])] == ["right", "left"]
    with pytest.raises(ZooError, match="PIL image is one frame"):
        predictor.predict(Image.fromarray(left[0]))


def test_bad_inputs_and_options_are_one_line(tmp_path):
    predictor = load("digits_cnn.digits")
    for inputs, message in [
        (np.zeros((8, 8, 3), np.float32), "expected uint8 pixels (0-255), got an array of float32"),
        (np.zeros((2, 2, 8, 8, 3), np.uint8), "expected images (H, W, 3) or a batch of them, got an array of shape"),
        (np.zeros((0, 8, 8, 3), np.uint8), "got an array of shape (0, 8, 8, 3)"),
        (str(tmp_path / "missing.png"), f"cannot read image file: {tmp_path / 'missing.png'}"),
    ]:
        with pytest.raises(ZooError) as caught:
            predictor.predict(inputs)
        assert message in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(ZooError, match=r"^agnostic_nms: not an option of classification models \(they take none\)$"):
        zoo.load_predictor("digits_cnn.digits", agnostic_nms=True)
    with pytest.raises(ZooError, match=r"^nms: not an option of detection models \(they take agnostic_nms, min_score\)$"):
        zoo.load_predictor("retinanet_small.shapes", nms="agnostic")


def test_inputs_of_every_kind_are_named_and_read_as_files_are(tmp_path):
    """Paths (os.PathLike, a generator of them) give NumPy images; a JPEG's EXIF rotation is
    applied alike to its path and to its PIL image; pixels given as arrays or PIL images are
    named by their place; integer arrays of 0..255 are pixels too."""
    import pathlib

    predictor = load("digits_cnn.digits")
    images, labels = digit_images(3)
    tall = np.asarray(Image.fromarray(images[0]).resize((16, 24)))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: shown turned 90 degrees clockwise
    Image.fromarray(tall).save(tmp_path / "turned.jpg", exif=exif, quality=100)
    [by_path] = predictor.predict(pathlib.PurePosixPath(tmp_path / "turned.jpg"))
    with Image.open(tmp_path / "turned.jpg") as opened:
        [by_pil] = predictor.predict(opened)
    assert isinstance(by_path.image, np.ndarray) and by_path.image.shape == by_pil.image.shape == (16, 24, 3)
    assert np.abs(by_pil.image.astype(int) - by_path.image).mean() < 6  # two JPEG decoders, one picture
    assert by_pil.label == by_path.label

    for i, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / f"{i}.png")
    generated = predictor.predict(tmp_path.glob("[0-9].png"))
    assert sorted(r.source for r in generated) == sorted(str(tmp_path / f"{i}.png") for i in range(3))
    mixed = predictor.predict([images[0], Image.fromarray(images[1]), images[2].astype(np.int64)])
    assert [r.source for r in mixed] == ["<array 0>", "<image 1>", "<array 2>"]
    assert [r.label for r in mixed] == labels
    with pytest.raises(ZooError, match=r"^expected pixels 0-255, got an array of int64 from -1 to 255$"):
        predictor.predict(np.full((8, 8, 3), 255, np.int64) - np.eye(8, dtype=np.int64)[..., None] * 256)
    with pytest.raises(ZooError, match=r"^batch_size: expected a positive integer, got 0$"):
        zoo.load_predictor("digits_cnn.digits", batch_size=0)


def test_batches_are_bounded_by_pixels_and_zoo_predict_keeps_no_image(tmp_path, monkeypatch):
    """Inputs of one size share a run of the graph up to BATCH_PIXELS input pixels; `zoo predict`
    lets each input's result (and its decoded image) go once its row is out."""
    import gc
    import weakref

    from zoo.predict import iter_predict
    from zoo.tasks import get_task

    calls = count_graph_runs(monkeypatch)
    images, _ = digit_images(3)
    predictor = zoo.load_predictor("digits_cnn.digits")
    monkeypatch.setattr(predictor_module, "BATCH_PIXELS", 2 * 8 * 8)
    predictor.predict(images)
    assert calls == [2, 1]

    monkeypatch.setattr(predictor_module, "BATCH_PIXELS", 1)  # one input per run
    paths = []
    for i, image in enumerate(images):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(image).save(paths[-1])
    task, alive = get_task("classification"), []
    row = task.prediction_row
    monkeypatch.setattr(task, "prediction_row", lambda result, *rest: alive.append(weakref.ref(result)) or row(result, *rest))
    rows = iter_predict("digits_cnn.digits", paths, tmp_path / "out")
    next(rows), next(rows), next(rows)
    gc.collect()
    assert [ref() is None for ref in alive] == [True, True, False]  # only the last input's result is held

