"""Devices, precision policy, distribution strategy and seeding; set before any layer is built.

Per Keras backend: the devices (and so `auto` precision) are the backend's own; distribution is
tf.distribute on TensorFlow, keras.distribution.DataParallel for `mirrored` and (across the
processes of a cluster, zoo.jax_workers) `multi_worker` on jax, and a distribution a backend has
no path for is refused (`check_distribution`), never run alone.

Multi-worker training: the cluster and this process's place in it are zoo.cluster's.
"""
from __future__ import annotations

import contextlib
import importlib
import os
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from zoo.cluster import Worker, bind_port, cluster_worker, wait_for_peers
from zoo.errors import RecipeError


@dataclass(frozen=True)
class Device:
    kind: str  # "CPU" | "GPU" | "TPU"
    compute_capability: tuple | None = None  # GPUs only, e.g. (8, 0)
    bfloat16_flags: tuple = ()  # CPUs only: the flags that say it computes bfloat16 natively


# x86 CPU flags (Linux /proc/cpuinfo) of the instructions oneDNN runs bfloat16 matmuls and
# convolutions with; without them TensorFlow emulates bfloat16, several times slower than float32
# (388 s against 70 s for 8 shapes_retinanet steps on an AVX2 CPU).
NATIVE_BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")


def native_bfloat16_flags(cpuinfo: str) -> tuple:
    """The native-bfloat16 flags among the `flags` lines of a /proc/cpuinfo text."""
    flags = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags.update(value.split())
    return tuple(f for f in NATIVE_BFLOAT16_FLAGS if f in flags)


def detect_cpu() -> Device:
    """The CPU, with its native-bfloat16 flags (Linux only; elsewhere none are assumed). oneDNN
    switched off (TF_ENABLE_ONEDNN_OPTS=0) leaves bfloat16 to TensorFlow's slow kernels."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1").strip().lower() not in ("0", "false")
    return Device("CPU", bfloat16_flags=native_bfloat16_flags(cpuinfo) if onednn else ())


def backend() -> str:
    """The Keras backend this process runs: tensorflow, jax or torch."""
    return keras.backend.backend()


def backend_description() -> str:
    """The backend and its version ("jax 0.10.2"), as recipe.yaml, metrics.json and exports record it."""
    name = backend()
    return f"{name} {importlib.import_module(name).__version__}"


def _accelerators(name: str) -> list[Device]:
    """The GPUs and TPUs the backend `name` computes on."""
    if name == "jax":
        import jax

        return [Device("GPU", tuple(int(p) for p in str(getattr(d, "compute_capability", "0.0")).split(".")[:2]))
                if d.platform == "gpu" else Device("TPU") for d in jax.devices() if d.platform in ("gpu", "tpu")]
    if name == "torch":
        import torch

        return [Device("GPU", tuple(torch.cuda.get_device_capability(i))) for i in range(torch.cuda.device_count())]
    devices = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        devices.append(Device("GPU", tuple(details.get("compute_capability") or (0, 0))))
    return devices + [Device("TPU") for _ in tf.config.list_logical_devices("TPU")]


def detect_devices() -> list[Device]:
    """The devices the Keras backend computes on: the CPU, then its GPUs or TPUs."""
    return [detect_cpu(), *_accelerators(backend())]


def choose_policy(setting: str, devices: list[Device], backend_name: str = "tensorflow") -> tuple[str, str]:
    """(policy, why). `auto`: mixed_bfloat16 on TPU; on GPUs mixed_float16 when every one has
    compute capability >= 7.0 (tensor cores), else float32 (older GPUs: float16 is slower); on a
    CPU alone mixed_bfloat16 where it computes bfloat16 natively (AVX512-BF16 or AMX), else float32;
    on jax a CPU is float32 either way (XLA's CPU kernels gain nothing from bfloat16: measured in
    docs/benchmarks.md). `why` names a backend other than TensorFlow ("auto (jax): GPU with tensor
    cores")."""
    gpus = [d for d in devices if d.kind == "GPU"]
    cpu_flags = next((d.bfloat16_flags for d in devices if d.kind == "CPU"), ())
    if setting != "auto":
        emulated = (setting == "mixed_bfloat16" and not cpu_flags
                    and all(d.kind == "CPU" for d in devices))
        return setting, "runtime.mixed_precision" + (
            "; this CPU has no native bfloat16, so expect training several times slower than "
            "float32" if emulated else "")
    auto = "auto" if backend_name == "tensorflow" else f"auto ({backend_name})"
    if any(d.kind == "TPU" for d in devices):
        return "mixed_bfloat16", f"{auto}: TPU"
    if gpus:
        oldest = min(d.compute_capability for d in gpus)
        if oldest >= (7, 0):
            return "mixed_float16", f"{auto}: GPU with tensor cores"
        return "float32", (f"{auto}: GPU of compute capability {'.'.join(map(str, oldest))}, "
                           f"below 7.0 (no tensor cores)")
    if cpu_flags and backend_name == "jax":
        return "float32", f"{auto}: XLA's CPU kernels run bfloat16 no faster than float32"
    if cpu_flags:
        return "mixed_bfloat16", f"{auto}: the CPU computes bfloat16 natively: {', '.join(cpu_flags)}"
    return "float32", f"{auto}: CPU without native bfloat16"


def resolve_policy(setting: str, devices: list[Device]) -> str:
    """The policy `choose_policy` picks for this process's backend."""
    return choose_policy(setting, devices, backend())[0]


def resolve_distribution(setting: str, devices: list[Device], backend_name: str = "tensorflow") -> str:
    """`auto`: tpu with a TPU (on jax: mirrored over its cores), mirrored with more than one GPU,
    none otherwise; always none on torch, which has no distributed path here."""
    if setting != "auto":
        return setting
    if backend_name == "torch":
        return "none"
    if any(d.kind == "TPU" for d in devices):
        return "tpu" if backend_name == "tensorflow" else "mirrored"
    if sum(d.kind == "GPU" for d in devices) > 1:
        return "mirrored"
    return "none"


def this_worker(runtime) -> Worker:
    """The training process's place: `cluster_worker` for `runtime.distribution: multi_worker`,
    its port checked free before TensorFlow starts (one line now, not gRPC's errors later); the
    only worker otherwise."""
    check_distribution(runtime.distribution, backend())  # before TF_CONFIG, which torch does not read
    if runtime.distribution != "multi_worker":
        return Worker()
    worker = cluster_worker()
    bind_port(worker.addresses[worker.rank], worker.task).close()
    return worker


class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """TensorFlow's strategy, with a `reduce` that takes what Keras 3's trainer gives it across
    workers (keras-team/keras#20585): a nested structure (the first batch, to build the model's
    metrics) and scalars with `axis=0` (a step's losses and metrics), reduced leaf by leaf."""

    def reduce(self, reduce_op, value, axis):
        reduce = super().reduce

        def leaf(v):
            scalar = self.experimental_local_results(v)[0].shape.rank == 0
            return reduce(reduce_op, v, None if scalar else axis)

        return tf.nest.map_structure(leaf, value)


def gather_from_workers(strategy, values: list[int]):
    """`values` of every replica of every worker (on jax: of every worker), one row each (a
    collective: every worker calls it)."""
    if isinstance(strategy, BackendStrategy):
        return _jax_workers().gather(values)
    local = tf.constant([values], tf.int64)
    per_replica = strategy.experimental_distribute_values_from_function(lambda _: local)
    return strategy.gather(per_replica, axis=0).numpy()


def auto_shard(dataset, evaluation: bool = False):
    """`dataset` as a multi-worker strategy splits it across workers: as its source chose (the
    tfrecord source: FILE, each worker reads its own files), else DATA: every worker runs the
    input pipeline and keeps its share of each global batch (docs/distributed.md). Other
    strategies ignore the setting. An `evaluation` dataset is always split by DATA: every worker
    evaluates the whole split, and a cache that Keras' validation fills holds all of it. On jax
    across processes: this process's share of each training batch, evaluation batches whole."""
    if _process_shares() is not None:
        return dataset if evaluation else _jax_workers().batch_share(dataset)
    policy = tf.data.experimental.AutoShardPolicy
    if not evaluation and dataset.options().experimental_distribute.auto_shard_policy != policy.AUTO:
        return dataset
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = policy.DATA
    return dataset.with_options(options)


def make_strategy(name: str):
    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":  # every GPU; without GPUs, every logical CPU device
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus or tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":  # before any other TensorFlow op of the process
        worker = cluster_worker()
        wait_for_peers(worker)
        return MultiWorkerMirroredStrategy()
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, tf.errors.NotFoundError) as err:
            raise RecipeError(f"runtime.distribution: tpu requested but none found ({err})") from None
        return tf.distribute.TPUStrategy(resolver)
    raise RecipeError(f"runtime.distribution: unknown strategy {name!r}")


# Off TensorFlow, the runtime.distribution settings a backend trains with (`check_distribution`).
BACKEND_DISTRIBUTIONS = {"jax": ("none", "auto", "mirrored", "multi_worker"), "torch": ("none", "auto")}
NO_DISTRIBUTION = {
    "jax": {"tpu": "on the jax backend use mirrored (keras.distribution.DataParallel over every TPU core)"},
}


def check_distribution(setting: str, backend_name: str):
    """A RecipeError, one line naming the backend, for a runtime.distribution that `backend_name`
    has no path for: never a single-process run that logs replicas."""
    if backend_name == "tensorflow" or setting in BACKEND_DISTRIBUTIONS.get(backend_name, ("none", "auto")):
        return
    how = NO_DISTRIBUTION.get(backend_name, {}).get(setting) or (
        f"the {backend_name} backend has no distributed training in Keras {keras.__version__}: use "
        f"runtime.distribution=none, or KERAS_BACKEND=tensorflow (or jax for mirrored and multi_worker)")
    raise RecipeError(f"runtime.distribution {setting}: {how}")


class BackendStrategy:
    """What `configure` returns off TensorFlow where the pipeline takes a tf.distribute strategy:
    a `scope()` with nothing to enter (jax's DataParallel is set for the whole process, fit
    included) and the replicas that train."""

    def __init__(self, distribution_name: str = "none", num_replicas_in_sync: int = 1):
        self.distribution_name, self.num_replicas_in_sync = distribution_name, num_replicas_in_sync

    def scope(self):
        return contextlib.nullcontext()


class DataParallel(keras.distribution.DataParallel):
    """Keras' DataParallel, with a batch that the devices do not divide evenly (an evaluation
    split's last, smaller batch) run whole on every device instead of failing to split.
    `across_processes` (multi_worker): a batch is this process's share of the global batch while
    `training_shares` (zoo.jax_workers.TrainingShares), else whole on every process and device."""

    def __init__(self, devices, across_processes: bool = False):
        super().__init__(devices=devices, auto_shard_dataset=False)  # `auto_shard` splits the data
        self.across_processes, self.training_shares = across_processes, False

    def get_data_layout(self, data_shape):
        whole = (not self.training_shares if self.across_processes else
                 data_shape and data_shape[0] is not None and data_shape[0] % self.device_mesh.shape[0])
        if whole:
            return keras.distribution.TensorLayout([None] * len(data_shape), self.device_mesh)
        return super().get_data_layout(data_shape)


def _jax_workers():
    """zoo.jax_workers, imported on use: it imports jax."""
    from zoo import jax_workers

    return jax_workers


def _process_shares() -> DataParallel | None:
    """The distribution set when it is jax's across processes (multi_worker)."""
    distribution = keras.distribution.distribution() if backend() == "jax" else None
    return distribution if isinstance(distribution, DataParallel) and distribution.across_processes else None


def fit_callbacks() -> list:
    """The callbacks `fit` needs first for the distribution set (across processes: TrainingShares)."""
    shares = _process_shares()
    return [_jax_workers().TrainingShares(shares)] if shares else []


def backend_strategy(name: str, batch_size: int | None = None) -> BackendStrategy:
    """`name` (none or, on jax, mirrored: keras.distribution.DataParallel over every local device;
    multi_worker: over the devices of every process, once they joined: `configure`) as a
    strategy-like object, each replica an equal share of the global `batch_size`, which they must
    divide; sets Keras' global distribution, so an earlier one of this process goes."""
    if name not in ("mirrored", "multi_worker"):
        keras.distribution.set_distribution(None)
        return BackendStrategy()
    devices = keras.distribution.list_devices()
    if batch_size and batch_size % len(devices):
        raise RecipeError(f"data.batch_size {batch_size}: runtime.distribution {name} on {backend()} splits "
                          f"each batch evenly over its {len(devices)} devices; use a multiple of {len(devices)}")
    keras.distribution.set_distribution(DataParallel(devices, across_processes=name == "multi_worker"))
    return BackendStrategy(name, len(devices))


def policy_reason(runtime) -> str:
    """Why `configure` set the precision policy it set, for the run log."""
    return choose_policy(runtime.mixed_precision, detect_devices(), backend())[1]


def configure(runtime, devices: list[Device] | None = None, batch_size: int | None = None):
    """Seed, set the global precision policy and return the distribution strategy (off
    TensorFlow a `BackendStrategy`; a distribution the backend cannot run, or on jax a training
    `batch_size` its devices do not divide: a RecipeError).

    The batch size in a recipe is global: each of the strategy's replicas gets
    `batch_size / num_replicas_in_sync` examples per step.
    """
    name = backend()
    check_distribution(runtime.distribution, name)
    # First: MultiWorkerMirroredStrategy sets up collective ops, which must precede any other op;
    # jax.distributed (zoo.jax_workers), any jax computation.
    multi_worker = None
    if runtime.distribution == "multi_worker" and name == "jax":
        _jax_workers().join(cluster_worker())
    elif runtime.distribution == "multi_worker":
        multi_worker = make_strategy("multi_worker")
    devices = detect_devices() if devices is None else devices
    keras.utils.set_random_seed(runtime.seed)
    keras.config.set_dtype_policy(resolve_policy(runtime.mixed_precision, devices))
    if multi_worker is not None:
        return multi_worker
    distribution = resolve_distribution(runtime.distribution, devices, name)
    return make_strategy(distribution) if name == "tensorflow" else backend_strategy(distribution, batch_size)
