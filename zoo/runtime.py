"""Devices, precision policy, distribution strategy and seeding; set before any layer is built."""
from __future__ import annotations

from dataclasses import dataclass

import keras

from zoo.errors import RecipeError


@dataclass(frozen=True)
class Device:
    kind: str  # "CPU" | "GPU" | "TPU"
    compute_capability: tuple | None = None  # GPUs only, e.g. (8, 0)


def detect_devices() -> list[Device]:
    import tensorflow as tf

    devices = [Device("CPU")]
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        devices.append(Device("GPU", tuple(details.get("compute_capability") or (0, 0))))
    devices += [Device("TPU") for _ in tf.config.list_logical_devices("TPU")]
    return devices


def resolve_policy(setting: str, devices: list[Device]) -> str:
    """`auto`: mixed_bfloat16 on TPU, mixed_float16 when every GPU has compute capability
    >= 7.0 (tensor cores), float32 otherwise (CPU, or older GPUs where float16 is slower)."""
    if setting != "auto":
        return setting
    if any(d.kind == "TPU" for d in devices):
        return "mixed_bfloat16"
    gpus = [d for d in devices if d.kind == "GPU"]
    if gpus and all(d.compute_capability >= (7, 0) for d in gpus):
        return "mixed_float16"
    return "float32"


def resolve_distribution(setting: str, devices: list[Device]) -> str:
    """`auto`: tpu with a TPU, mirrored with more than one GPU, none otherwise."""
    if setting != "auto":
        return setting
    if any(d.kind == "TPU" for d in devices):
        return "tpu"
    if sum(d.kind == "GPU" for d in devices) > 1:
        return "mirrored"
    return "none"


def make_strategy(name: str):
    import tensorflow as tf

    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":  # every GPU; without GPUs, every logical CPU device
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus or tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":  # cluster from the TF_CONFIG environment variable
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, tf.errors.NotFoundError) as err:
            raise RecipeError(f"runtime.distribution: tpu requested but none found ({err})") from None
        return tf.distribute.TPUStrategy(resolver)
    raise RecipeError(f"runtime.distribution: unknown strategy {name!r}")


def configure(runtime, devices: list[Device] | None = None):
    """Seed, set the global precision policy and return the distribution strategy.

    The batch size in a recipe is global: each of the strategy's replicas gets
    `batch_size / num_replicas_in_sync` examples per step.
    """
    devices = detect_devices() if devices is None else devices
    keras.utils.set_random_seed(runtime.seed)
    keras.config.set_dtype_policy(resolve_policy(runtime.mixed_precision, devices))
    return make_strategy(resolve_distribution(runtime.distribution, devices))
