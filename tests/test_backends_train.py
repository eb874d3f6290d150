"""A recipe per task family on JAX and PyTorch (issue 22): `zoo train` a tiny run, `--resume` it
one epoch further, evaluate its model and predict with it, with tf.data feeding it. One process
per backend runs all the recipes (both backends at once); the tests read what it printed. On
torch it also checks that outputs and losses stay float32 under a mixed policy. The other two
offline recipes, shapes_resnet20 and moving_shapes_frame_avg, passed the same script on both
backends when it was written; they add about 45 s per backend, so CI runs one per family."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent('''
    import json, sys
    import keras
    import numpy as np
    import zoo
    from zoo.cli import main
    from zoo.data.synthetic import generate

    folder, recipes = sys.argv[1], json.loads(sys.argv[2])
    for recipe, (generator, overrides) in recipes.items():
        run = f"{folder}/{recipe}"
        args = ["train", recipe, *overrides, "train.verbose=0", "--output", run]
        assert main([*args, "train.epochs=1"]) == 0
        assert main([*args, "train.epochs=2", "--resume"]) == 0
        metrics = zoo.evaluate(run + "/recipe.yaml", weights=run + "/model.keras")
        key = "video" if generator == "moving_shapes" else "image"
        inputs = np.stack([generate(generator, i, 9, (40, 56))[key] for i in range(2)])
        results = zoo.load_predictor(run).predict(inputs)
        print("SMOKE " + json.dumps({"recipe": recipe, "metrics": metrics,
                                     "results": [sorted(r.to_dict()) for r in results]}), flush=True)
    if keras.backend.backend() == "torch":  # float32 outputs and loss under a bfloat16 policy
        from zoo import pipeline
        from zoo.tasks import get_task
        keras.config.set_dtype_policy("mixed_bfloat16")
        recipe = zoo.load_recipe("digits_cnn")
        task = get_task(recipe.task)
        split = pipeline.load_split(recipe, task, recipe.data.train_split)
        info = pipeline._with_num_classes(recipe, split.info)
        model = pipeline.build_model(recipe, task, info)
        x, y = (t.numpy() for t in next(iter(task.make_dataset(split, recipe, True, False).take(1)))[:2])
        model.compile(optimizer="sgd", loss=task.loss(info))
        y_pred = model(x)
        loss = model.compute_loss(x=x, y=y, y_pred=y_pred)
        compute = sorted({layer.compute_dtype for layer in model.layers})
        print("DTYPES " + json.dumps([str(y_pred.dtype), str(loss.dtype), compute]))
''')

SMALL = ["data.train_size=32", "data.eval_size=16", "data.batch_size=8", "runtime.mixed_precision=float32"]
RECIPES = {  # an offline recipe per family: its generator (for predict inputs), overrides that keep it to seconds
    "digits_cnn": ("shapes", ["data.image_size=[16,16]", "data.batch_size=32"]),  # any picture will do
    "shapes_unet": ("shapes_segmentation", [*SMALL, "data.image_size=[32,32]"]),
    "shapes_retinanet": ("shapes_detection", [*SMALL, "data.image_size=[64,64]"]),
    "moving_shapes_cnn_lstm": ("moving_shapes", [*SMALL, "data.image_size=[32,32]", "data.num_frames=4"]),
}
MAIN_METRIC = {"shapes_unet": "mIoU", "shapes_retinanet": "mAP"}
BACKENDS = ("jax", "torch")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{backend: (its folder, {recipe: what SCRIPT printed}, dtypes or None)} for the installed backends."""
    folder = tmp_path_factory.mktemp("backends")
    started = {}
    for backend in BACKENDS:
        try:
            __import__(backend)
        except ImportError:
            continue
        env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
        argv = [sys.executable, "-c", SCRIPT, str(folder / backend), json.dumps(RECIPES)]
        started[backend] = subprocess.Popen(argv, env=env, cwd=folder, text=True, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE)
    out = {}
    for backend, process in started.items():
        try:
            stdout, stderr = process.communicate(timeout=900)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        smokes = [json.loads(line[6:]) for line in stdout.splitlines() if line.startswith("SMOKE ")]
        dtypes = [json.loads(line[7:]) for line in stdout.splitlines() if line.startswith("DTYPES ")]
        out[backend] = (folder / backend, {s["recipe"]: s for s in smokes}, dtypes[0] if dtypes else None,
                        f"exit {process.returncode}:\n{stderr[-3000:]}")
    return out


def backend_run(runs, backend):
    if backend not in runs:
        pytest.skip(f"{backend} is not installed")
    return runs[backend]


@pytest.mark.parametrize("recipe", sorted(RECIPES))
@pytest.mark.parametrize("backend", BACKENDS)
def test_an_offline_recipe_trains_resumes_evaluates_and_predicts(runs, backend, recipe):
    folder, smokes, _, failure = backend_run(runs, backend)
    assert recipe in smokes, failure
    smoke, run = smokes[recipe], folder / recipe
    version = __import__(backend).__version__
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["backend"] == f"{backend} {version}" and saved["best_epoch"] in (1, 2)
    assert (run / "recipe.yaml").read_text().splitlines()[2] == f"# backend: {backend} {version}"
    metric = MAIN_METRIC.get(recipe, "accuracy")
    assert 0.0 <= smoke["metrics"][metric] <= 1.0 and smoke["metrics"]["num_examples"] > 0
    assert smoke["metrics"][metric] == pytest.approx(saved[metric], abs=1e-6)  # the same model
    with open(run / "history.csv") as f:
        losses = [float(row["loss"]) for row in csv.DictReader(f)]
    assert len(losses) == 2 and losses[1] < losses[0]  # epoch 1, then the resumed epoch 2 learned more
    assert len(smoke["results"]) == 2 and (run / "eval" / "per_class.csv").is_file()


def test_outputs_and_losses_are_float32_under_mixed_bfloat16_on_torch(runs):
    _, _, dtypes, failure = backend_run(runs, "torch")
    assert dtypes, failure
    output, loss, compute = dtypes
    assert (output, loss) == ("torch.float32", "torch.float32") and "bfloat16" in compute, dtypes


def test_a_model_trained_on_jax_runs_eagerly_where_torch_loads_it(runs):
    """Keras saves the jit_compile its `auto` resolved to (True on jax); the zoo saves `auto`, so
    torch, loading with plain Keras in a fresh process, does not torch.compile it."""
    folder, _, _, failure = backend_run(runs, "jax")
    backend_run(runs, "torch")
    model_file = folder / "digits_cnn" / "model.keras"
    assert model_file.is_file(), failure
    with zipfile.ZipFile(model_file) as saved:
        assert json.loads(saved.read("config.json"))["compile_config"]["jit_compile"] == "auto"
    script = ("import sys, keras, numpy as np, zoo\n"
              "model = keras.saving.load_model(sys.argv[1])\n"
              "model.predict(np.zeros((2, *model.input_shape[1:]), 'float32'), verbose=0)\n"
              "print('JIT', model.jit_compile)")
    env = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", script, str(model_file)], env=env, text=True,
                          capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[-1] == "JIT False" and "dynamo" not in proc.stderr
