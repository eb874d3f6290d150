"""The runtime on JAX (and torch, where it can be shown without it): a distribution a backend
cannot run is one line and exit 2; `mirrored` on jax is keras.distribution data parallelism over
the local devices; `auto` precision per backend and device, outputs and losses in float32; the
backend recorded in recipe.yaml, metrics.json and exports; `--resume` across backends; `zoo
export` from a jax session. Real `zoo` processes under KERAS_BACKEND=jax in subprocesses."""
import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest

jax = pytest.importorskip("jax")

import zoo  # noqa: E402
from conftest import tiny  # noqa: E402
from zoo import runtime  # noqa: E402
from zoo.errors import RecipeError  # noqa: E402
from zoo.export import load_exported  # noqa: E402
from zoo.runtime import Device, check_distribution, choose_policy, resolve_distribution  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def on_jax(args, extra_env=None, timeout=300):
    """`args` run by this Python under KERAS_BACKEND=jax; the finished process."""
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3",
           **(extra_env or {})}
    return subprocess.run([sys.executable, *args], env=env, text=True, capture_output=True, timeout=timeout,
                          cwd=ROOT)


def zoo_on_jax(*argv, extra_env=None):
    return on_jax(["-m", "zoo.cli", *argv], extra_env)


# ------------------------------------------------------------------------------ distribution


@pytest.mark.parametrize("backend, setting, said", [
    ("jax", "tpu", "runtime.distribution tpu: on the jax backend use mirrored"),
    ("torch", "mirrored", "runtime.distribution mirrored: the torch backend has no distributed training"),
    ("torch", "multi_worker", "runtime.distribution multi_worker: the torch backend has no distributed training"),
])
def test_a_distribution_the_backend_has_no_path_for_is_refused_naming_it(backend, setting, said):
    with pytest.raises(RecipeError) as caught:
        check_distribution(setting, backend)
    assert str(caught.value).startswith(said) and "\n" not in str(caught.value)


def test_what_each_backend_runs_is_accepted_and_auto_resolves_to_a_path_it_has():
    for backend, settings in (("jax", ("none", "auto", "mirrored", "multi_worker")), ("torch", ("none", "auto")),
                              ("tensorflow", ("none", "auto", "mirrored", "multi_worker", "tpu"))):
        for setting in settings:
            check_distribution(setting, backend)
    gpus = [Device("CPU"), Device("GPU", (8, 0)), Device("GPU", (8, 0))]
    tpu = [Device("CPU"), Device("TPU")]
    assert [resolve_distribution("auto", d, "jax") for d in ([Device("CPU")], gpus, tpu)] == ["none", "mirrored",
                                                                                           "mirrored"]
    assert [resolve_distribution("auto", d, "torch") for d in ([Device("CPU")], gpus, tpu)] == ["none"] * 3
    assert [resolve_distribution("auto", d) for d in ([Device("CPU")], gpus, tpu)] == ["none", "mirrored", "tpu"]


def test_multi_worker_on_jax_is_one_line_and_exit_2_before_anything_is_written(tmp_path):
    """Not a lone worker that logs "2 replica(s)": jax reads the cluster from TF_CONFIG as TensorFlow
    does (tests/test_backends_multiworker.py); TF_CONFIG unset is TensorFlow's line."""
    proc = zoo_on_jax("train", "digits_cnn", "runtime.distribution=multi_worker", "--output", str(tmp_path / "run"))
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("zoo: error:")]
    assert errors == ["zoo: error: runtime.distribution: multi_worker reads the cluster from the TF_CONFIG "
                      "environment variable, which is not set (docs/distributed.md)"]
    assert "replica" not in proc.stdout and not (tmp_path / "run").exists()


def test_mirrored_on_jax_trains_data_parallel_over_two_host_devices(tmp_path):
    """Two XLA host devices: "2 replica(s)" logged and recorded, each device gets half of every
    global batch (an evaluation split's last batch they cannot split evenly runs whole on both; a
    data.batch_size they do not divide is refused), and the run learns as one device does (same
    seed: the same accuracy)."""
    script = textwrap.dedent(f'''
        import json, sys
        import keras, numpy as np
        from keras.src.backend.jax import distribution_lib
        from zoo import runtime
        from zoo.cli import main
        strategy = runtime.backend_strategy("mirrored")
        distribution = keras.distribution.distribution()
        shards = {{}}
        for batch in (32, 7):
            x = distribution_lib.distribute_data_input(np.zeros((batch, 8, 8, 3), np.float32),
                                                       distribution.get_data_layout((batch, 8, 8, 3)), "batch")
            shards[batch] = x.sharding.shard_shape(x.shape)[0]
        print("SHARDS " + json.dumps([strategy.num_replicas_in_sync, shards]), flush=True)
        assert main(["train", "digits_cnn", "runtime.distribution=mirrored", "data.batch_size=31",
                     "--output", r"{tmp_path}/odd"]) == 2
        for setting in ("mirrored", "none"):
            main(["train", "digits_cnn", "train.epochs=2", "train.verbose=0", "runtime.mixed_precision=float32",
                  "runtime.distribution=" + setting, "--output", r"{tmp_path}/" + setting])
    ''')
    proc = on_jax(["-c", script], {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    shards = json.loads(proc.stdout.split("SHARDS ")[1].splitlines()[0])
    assert shards == [2, {"32": 16, "7": 7}]
    assert ("zoo: error: data.batch_size 31: runtime.distribution mirrored on jax splits each batch evenly over "
            "its 2 devices; use a multiple of 2") in proc.stderr.splitlines()
    training = [line for line in proc.stdout.splitlines() if line.startswith("training digits_cnn")]
    assert "; 2 replica(s), " in training[0] and "; 1 replica(s), " in training[1]
    header = (tmp_path / "mirrored" / "recipe.yaml").read_text().splitlines()[0]
    assert header == "# resolved: runtime.mixed_precision float32, runtime.distribution mirrored (2 replica(s))"
    accuracy = {s: json.loads((tmp_path / s / "metrics.json").read_text())["accuracy"] for s in ("mirrored", "none")}
    assert accuracy["mirrored"] > 0.8 and abs(accuracy["mirrored"] - accuracy["none"]) < 0.02, accuracy


# ------------------------------------------------------------------------------ precision


@pytest.mark.parametrize("backend, devices, expected", [
    ("jax", [Device("CPU"), Device("GPU", (8, 0))], ("mixed_float16", "auto (jax): GPU with tensor cores")),
    ("torch", [Device("CPU"), Device("GPU", (8, 6))], ("mixed_float16", "auto (torch): GPU with tensor cores")),
    ("torch", [Device("CPU"), Device("GPU", (6, 1))],
     ("float32", "auto (torch): GPU of compute capability 6.1, below 7.0 (no tensor cores)")),
    ("jax", [Device("CPU"), Device("TPU")], ("mixed_bfloat16", "auto (jax): TPU")),
    ("jax", [Device("CPU")], ("float32", "auto (jax): CPU without native bfloat16")),
    ("jax", [Device("CPU", bfloat16_flags=("amx_bf16",))],
     ("float32", "auto (jax): XLA's CPU kernels run bfloat16 no faster than float32")),
    ("torch", [Device("CPU", bfloat16_flags=("amx_bf16",))],
     ("mixed_bfloat16", "auto (torch): the CPU computes bfloat16 natively: amx_bf16")),
    ("tensorflow", [Device("CPU")], ("float32", "auto: CPU without native bfloat16")),
])
def test_auto_precision_per_backend_and_device_names_who_decided(backend, devices, expected):
    assert choose_policy("auto", devices, backend) == expected


def test_each_backend_reports_its_own_accelerators(monkeypatch):
    """jax: its CUDA devices' compute capability and its TPUs; torch: torch.cuda (faked here:
    this machine has no GPU)."""
    fake = [types.SimpleNamespace(platform="gpu", compute_capability="8.0"),
            types.SimpleNamespace(platform="tpu"), types.SimpleNamespace(platform="cpu")]
    monkeypatch.setattr(jax, "devices", lambda: fake)
    assert runtime._accelerators("jax") == [Device("GPU", (8, 0)), Device("TPU")]
    cuda = types.SimpleNamespace(device_count=lambda: 2, get_device_capability=lambda i: (7, 5 + i))
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    assert runtime._accelerators("torch") == [Device("GPU", (7, 5)), Device("GPU", (7, 6))]
    monkeypatch.setattr(runtime, "detect_cpu", lambda: Device("CPU"))
    monkeypatch.setattr(runtime, "backend", lambda: "torch")
    assert choose_policy("auto", runtime.detect_devices(), "torch")[0] == "mixed_float16"


def test_outputs_and_losses_are_float32_under_mixed_bfloat16_on_jax():
    script = textwrap.dedent('''
        import json
        import keras, numpy as np
        import zoo
        from zoo import pipeline
        from zoo.tasks import get_task
        keras.config.set_dtype_policy("mixed_bfloat16")
        out = {}
        for recipe_name in ("digits_cnn",):  # shapes_unet alike, 13 s more on this CPU
            recipe = zoo.load_recipe(recipe_name)
            task = get_task(recipe.task)
            split = pipeline.load_split(recipe, task, recipe.data.train_split)
            info = pipeline._with_num_classes(recipe, split.info)
            model = pipeline.build_model(recipe, task, info)
            x, y = next(iter(task.make_dataset(split, recipe, True, False).take(1)))[:2]
            model.compile(optimizer="sgd", loss=task.loss(info))
            y_pred = model(x.numpy())
            loss = model.compute_loss(x=x.numpy(), y=y.numpy(), y_pred=y_pred)
            compute = sorted({layer.compute_dtype for layer in model.layers})
            out[recipe_name] = [str(y_pred.dtype), str(loss.dtype), compute]
        print("DTYPES " + json.dumps(out))
    ''')
    proc = on_jax(["-c", script])
    assert proc.returncode == 0, proc.stderr[-3000:]
    dtypes = json.loads(proc.stdout.split("DTYPES ")[1].splitlines()[0])
    for output, loss, compute in dtypes.values():
        assert (output, loss) == ("float32", "float32") and "bfloat16" in compute, dtypes


# ------------------------------------------------------------------------------ recorded backend, resume, export


def test_a_run_resumes_under_jax_records_it_and_exports_from_jax_under_tensorflow(tmp_path):
    """Trained one epoch here (TensorFlow), resumed for a second under jax: one line says the
    backend changed; recipe.yaml and metrics.json name jax; `zoo export` from the jax session
    re-runs itself under TensorFlow, and the SavedModel of the jax-trained model.keras answers as
    the Keras model does on jax."""
    run = tmp_path / "run"
    zoo.train(tiny("digits_cnn", "train.epochs=1", "runtime.mixed_precision=float32"), output_dir=run)
    tensorflow = runtime.backend_description()
    assert tensorflow.startswith("tensorflow ")
    assert (run / "recipe.yaml").read_text().splitlines()[2] == f"# backend: {tensorflow}"
    script = textwrap.dedent(f'''
        import numpy as np
        import zoo
        from zoo.cli import main
        run = r"{run}"
        assert main(["train", "digits_cnn", "train.epochs=2", "train.verbose=0", "runtime.mixed_precision=float32",
                     "--resume", "--output", run]) == 0
        assert main(["export", run, "--format", "saved_model"]) == 0
        images = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
        found = zoo.load_predictor(run).predict(images)
        np.savez(run + "/jax.npz", images=images, probabilities=np.stack([r.probabilities for r in found]))
    ''')
    proc = on_jax(["-c", script])
    assert proc.returncode == 0, proc.stderr[-3000:]
    jax_version = f"jax {jax.__version__}"
    lines = proc.stdout.splitlines()
    assert (f"resuming on another backend: the run was trained on {tensorflow}, this process runs {jax_version} "
            f"(the checkpoints are backend-neutral Keras weights)") in lines
    assert any("resuming after epoch 1" in line for line in lines if line.startswith("training digits_cnn"))
    trained = f"{jax_version} (earlier epochs: {tensorflow})"
    assert (run / "recipe.yaml").read_text().splitlines()[2] == f"# backend: {trained}"
    assert json.loads((run / "metrics.json").read_text())["backend"] == jax_version
    assert ("zoo export runs on the TensorFlow backend: re-running it with KERAS_BACKEND=tensorflow "
            "(this session: jax)") in lines
    exported = run / "export" / "digits_cnn"
    metadata = json.loads((run / "export" / "digits_cnn.json").read_text())
    assert metadata["versions"]["backend"] == "tensorflow" and metadata["trained_backend"] == trained
    saved = np.load(run / "jax.npz")
    served = load_exported(exported)(saved["images"])["probabilities"]
    np.testing.assert_allclose(served, saved["probabilities"], atol=1e-5)


def test_a_run_resumed_on_another_backend_keeps_the_earlier_ones_in_its_header(tmp_path):
    from zoo.resume import backend_history, recorded_backend

    recipe = tmp_path / "recipe.yaml"
    assert backend_history(recipe, "tensorflow 2.21.0") == "tensorflow 2.21.0"  # a new run
    recipe.write_text("# resolved: ...\n# backend: jax 0.10.2\ntask: classification\n")
    assert backend_history(recipe, "jax 0.10.2") == "jax 0.10.2"
    history = backend_history(recipe, "tensorflow 2.21.0")
    assert history == "tensorflow 2.21.0 (earlier epochs: jax 0.10.2)"
    recipe.write_text(f"# backend: {history}\ntask: classification\n")
    assert recorded_backend(recipe) == history
    assert backend_history(recipe, "torch 2.9.0") == "torch 2.9.0 (earlier epochs: tensorflow 2.21.0, jax 0.10.2)"
    assert backend_history(recipe, "jax 0.10.2") == "jax 0.10.2 (earlier epochs: tensorflow 2.21.0)"


def test_a_resume_in_another_precision_says_so(tmp_path, capsys):
    """`auto` resolves per backend and device: float32 on jax's CPU path, mixed_bfloat16 elsewhere."""
    import keras

    from zoo.resume import _say_precision_change
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("# resolved: runtime.mixed_precision mixed_bfloat16, runtime.distribution none (1 replica(s))\n"
                      "task: classification\n")
    keras.config.set_dtype_policy("mixed_bfloat16")
    _say_precision_change(recipe)
    assert capsys.readouterr().out == ""
    keras.config.set_dtype_policy("float32")
    _say_precision_change(recipe)
    assert capsys.readouterr().out == ("resuming in float32: the earlier epochs trained in mixed_bfloat16 "
                                       "(runtime.mixed_precision auto resolves per backend and device; set it "
                                       "to keep one)\n")
