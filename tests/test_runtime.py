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


def test_mirrored_strategy_over_two_logical_cpus(tmp_path):
    """Logical devices must be set before TensorFlow initializes: run in a fresh process."""
    script = textwrap.dedent(f"""
        import json, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import zoo
        recipe = zoo.load_recipe("digits_cnn", ["runtime.distribution=mirrored", "train.epochs=3",
                                                "train.verbose=0", "data.batch_size=64"])
        run = zoo.train(recipe, output_dir={str(tmp_path)!r})
        strategy = run.model.distribute_strategy
        print(json.dumps({{"replicas": strategy.num_replicas_in_sync, **run.metrics}}))
    """)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert result["accuracy"] > 0.6  # chance is 0.1
