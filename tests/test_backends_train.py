"""The smoke set per task family on JAX (issue 22): `zoo train` a tiny run, `--resume` it one epoch
further, evaluate its model and predict with it, all under KERAS_BACKEND=jax with tf.data feeding
it. digits_cnn's jax run (train, resume, export) is in test_backends_runtime.py."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

jax = pytest.importorskip("jax")

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent('''
    import json, sys
    import numpy as np
    import zoo
    from zoo.cli import main
    from zoo.data.synthetic import generate

    recipe, generator, run, *overrides = sys.argv[1:]
    args = ["train", recipe, *overrides, "train.verbose=0", "--output", run]
    assert main([*args, "train.epochs=1"]) == 0
    assert main([*args, "train.epochs=2", "--resume"]) == 0
    metrics = zoo.evaluate(run + "/recipe.yaml", weights=run + "/model.keras")
    key = "video" if generator == "moving_shapes" else "image"
    inputs = np.stack([generate(generator, i, 9, (40, 56))[key] for i in range(2)])
    results = zoo.load_predictor(run).predict(inputs)
    print("SMOKE " + json.dumps({"metrics": metrics, "results": [sorted(r.to_dict()) for r in results]}))
''')

FAMILIES = {  # recipe, its generator, overrides that keep a run to seconds
    "segmentation": ("shapes_unet", "shapes_segmentation", ["data.image_size=[32,32]", "data.batch_size=8"]),
    "detection": ("shapes_retinanet", "shapes_detection", ["data.image_size=[64,64]", "data.batch_size=8"]),
    "video": ("moving_shapes_cnn_lstm", "moving_shapes", ["data.image_size=[32,32]", "data.num_frames=4",
                                                          "data.batch_size=8"]),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_family_trains_resumes_evaluates_and_predicts_on_jax(family, tmp_path):
    recipe, generator, overrides = FAMILIES[family]
    sizes = ["data.train_size=32", "data.eval_size=16", "runtime.mixed_precision=float32"]
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, recipe, generator, str(tmp_path / "run"), *sizes, *overrides],
                          env=env, text=True, capture_output=True, timeout=400, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    smoke = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("SMOKE "))[6:])
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["backend"] == f"jax {jax.__version__}" and saved["best_epoch"] in (1, 2)
    main_metric = {"segmentation": "mIoU", "detection": "mAP", "video": "accuracy"}[family]
    assert 0.0 <= smoke["metrics"][main_metric] <= 1.0 and smoke["metrics"]["num_examples"] == 16
    assert smoke["metrics"][main_metric] == pytest.approx(saved[main_metric], abs=1e-6)  # the same model
    with open(tmp_path / "run" / "history.csv") as f:
        losses = [float(row["loss"]) for row in csv.DictReader(f)]
    assert len(losses) == 2 and losses[1] < losses[0]  # epoch 1, then the resumed epoch 2 learned more
    assert (tmp_path / "run" / "recipe.yaml").read_text().splitlines()[2] == f"# backend: jax {jax.__version__}"
    assert len(smoke["results"]) == 2
