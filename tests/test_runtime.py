import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from zoo.runtime import Device, resolve_distribution, resolve_policy

CPU = Device("CPU")
V100, A100, K80 = Device("GPU", (7, 0)), Device("GPU", (8, 0)), Device("GPU", (3, 7))


@pytest.mark.parametrize("devices, policy", [
    ([CPU], "float32"),
    ([CPU, A100], "mixed_float16"),
    ([CPU, V100, A100], "mixed_float16"),
    ([CPU, K80], "float32"),  # no tensor cores: float16 would be slower
    ([CPU, A100, K80], "float32"),
    ([CPU, Device("TPU")], "mixed_bfloat16"),
])
def test_auto_policy_follows_the_devices(devices, policy):
    assert resolve_policy("auto", devices) == policy


def test_explicit_policy_wins():
    assert resolve_policy("float32", [CPU, A100]) == "float32"
    assert resolve_policy("mixed_bfloat16", [CPU]) == "mixed_bfloat16"


@pytest.mark.parametrize("devices, strategy", [
    ([CPU], "none"), ([CPU, A100], "none"), ([CPU, A100, A100], "mirrored"),
    ([CPU, Device("TPU")], "tpu"),
])
def test_auto_distribution_follows_the_devices(devices, strategy):
    assert resolve_distribution("auto", devices) == strategy
    assert resolve_distribution("none", devices) == "none"


def test_mirrored_over_two_logical_cpus_with_mixed_bfloat16_splits_evaluation_batches(tmp_path):
    """Logical devices must be set before TensorFlow initializes: run in a fresh process."""
    script = textwrap.dedent(f"""
        import json, keras, numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import zoo
        batches = []  # (replica, examples) of each batch that model.predict (evaluation) runs
        predict_step = keras.Model.predict_step
        def recorded_predict_step(self, data):
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            examples = tf.shape(tf.nest.flatten(data)[0])[0]
            tf.py_function(lambda r, n: batches.append((int(r), int(n))), [replica, examples], [])
            return predict_step(self, data)
        keras.Model.predict_step = recorded_predict_step
        recipe = zoo.load_recipe("digits_cnn", ["runtime.distribution=mirrored", "train.epochs=3",
                                                "runtime.mixed_precision=mixed_bfloat16",
                                                "train.verbose=0", "data.batch_size=64"])
        run = zoo.train(recipe, output_dir={str(tmp_path)!r})
        model = run.model
        probs = model(np.zeros((2, 8, 8, 3), "float32"))
        print(json.dumps({{"replicas": model.distribute_strategy.num_replicas_in_sync, **run.metrics,
                          "bfloat16": any(layer.compute_dtype == "bfloat16" for layer in model.layers),
                          "output": probs.dtype.name, "loss": model.loss(np.array([1, 2]), probs).dtype.name,
                          "history_loss": run.history["loss"], "batches": batches}}))
    """)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert result["bfloat16"] and result["output"] == result["loss"] == "float32"
    assert result["history_loss"][-1] < result["history_loss"][0]
    assert result["accuracy"] > 0.8  # chance is 0.1; measured 0.89
    # Evaluation ran every example once, each batch of 64 split across both replicas.
    assert {replica for replica, _ in result["batches"]} == {0, 1}
    assert sum(n for _, n in result["batches"]) == result["num_examples"] == 360
    assert max(n for _, n in result["batches"]) == 32
