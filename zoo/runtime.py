"""Devices, precision policy, distribution strategy and seeding; set before any layer is built.

Per Keras backend: the devices (and so `auto` precision) are the backend's own; distribution is
tf.distribute on TensorFlow, keras.distribution.DataParallel for `mirrored` on jax, and a
distribution a backend has no path for is refused (`check_distribution`), never run alone.

Multi-worker training (docs/distributed.md): each worker process reads its place in the cluster
from TF_CONFIG (`cluster_worker`, checked before TensorFlow starts); the chief, rank 0, writes the
run directory. Each waits for the others' ports to answer before TensorFlow starts (`wait_for_peers`),
where SIGTERM and Ctrl-C stop it.
"""
from __future__ import annotations

import contextlib
import errno
import importlib
import json
import os
import re
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import tensorflow as tf

from zoo.errors import RecipeError, ZooError, quote


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
    CPU alone mixed_bfloat16 where it computes bfloat16 natively (AVX512-BF16 or AMX), else float32.
    `why` names a backend other than TensorFlow ("auto (jax): GPU with tensor cores")."""
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
    if cpu_flags:
        return "mixed_bfloat16", f"{auto}: the CPU computes bfloat16 natively: {', '.join(cpu_flags)}"
    return "float32", f"{auto}: CPU without native bfloat16"


def resolve_policy(setting: str, devices: list[Device]) -> str:
    """The policy `choose_policy` picks."""
    return choose_policy(setting, devices)[0]


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


@dataclass(frozen=True)
class Worker:
    """This process's place in the training job; rank 0, the chief, writes the run directory."""

    rank: int = 0
    count: int = 1
    task: str = ""  # TF_CONFIG's task ("worker:1"); "" outside a multi-worker cluster
    addresses: tuple = field(default=(), compare=False)  # every task's "host:port", in rank order

    @property
    def is_chief(self) -> bool:
        return self.rank == 0

    def describe(self) -> str:
        role = "the chief: it writes the run directory" if self.is_chief else "not the chief"
        return f"multi-worker: worker {self.rank} of {self.count} (TF_CONFIG task {self.task}), {role}"


def cluster_worker(environ=os.environ) -> Worker:
    """This process's place in the cluster that the TF_CONFIG environment variable describes
    (`{"cluster": {"chief": [...], "worker": ["host:port", ...]}, "task": {"type": "worker",
    "index": 0}}`, as Kubernetes TFJob or Vertex AI set it). Ranks: the chief 0, then the workers
    in order; without a chief, worker 0 is the chief. A mismatch is a RecipeError naming TF_CONFIG.
    It only reads: sources call it too (tfrecord sharding), after TensorFlow's server took the port."""
    text = environ.get("TF_CONFIG")
    if not text:
        raise RecipeError("runtime.distribution: multi_worker reads the cluster from the TF_CONFIG "
                          "environment variable, which is not set (docs/distributed.md)")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise RecipeError(f"TF_CONFIG: not valid JSON ({err})") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not cluster:
        raise RecipeError('TF_CONFIG: no "cluster" (job name -> list of "host:port" addresses)')
    jobs = {job: cluster.get(job, []) for job in ("chief", "worker")}
    other = sorted(set(cluster) - set(jobs))
    if other:
        raise RecipeError(f"TF_CONFIG: cluster job(s) {quote(', '.join(other), as_repr=False)}: "
                          f"multi_worker takes a chief and workers only")
    for job, addresses in jobs.items():
        if not isinstance(addresses, list) or not all(isinstance(a, str) and ":" in a for a in addresses):
            raise RecipeError(f'TF_CONFIG: cluster.{job}: expected a list of "host:port" addresses, '
                              f"got {quote(addresses)}")
        for address in addresses:
            port = address.rpartition(":")[2]
            if not (port.isascii() and port.isdecimal() and 0 < int(port) < 65536):
                raise RecipeError(f"TF_CONFIG: cluster.{job}: address {quote(address)} has no valid port "
                                  f"(expected host:port, the port a number from 1 to 65535)")
    if len(jobs["chief"]) > 1:
        raise RecipeError(f"TF_CONFIG: cluster.chief lists {len(jobs['chief'])} addresses; a cluster "
                          f"has one chief")
    addresses = jobs["chief"] + jobs["worker"]
    repeated = sorted({a for a in addresses if addresses.count(a) > 1})
    if repeated:
        raise RecipeError(f"TF_CONFIG: address {quote(repeated[0], as_repr=False)} is listed twice in the "
                          f"cluster")
    task = config.get("task")
    kind, index = (task.get("type"), task.get("index")) if isinstance(task, dict) else (None, None)
    if kind not in jobs:
        raise RecipeError(f'TF_CONFIG: task.type must be "chief" or "worker", got {quote(kind)}')
    if not jobs[kind]:
        raise RecipeError(f"TF_CONFIG: task.type is {kind} but the cluster lists no {kind} "
                          f"(cluster: {', '.join(j for j in jobs if jobs[j])})")
    if type(index) is not int or not 0 <= index < len(jobs[kind]):
        raise RecipeError(f"TF_CONFIG: task.index {quote(index)} is out of range: cluster.{kind} lists "
                          f"{len(jobs[kind])} address(es), indices 0-{len(jobs[kind]) - 1}")
    rank = index + (len(jobs["chief"]) if kind == "worker" else 0)
    return Worker(rank, len(addresses), f"{kind}:{index}", tuple(addresses))


def bind_port(address: str, task: str) -> socket.socket:
    """A socket bound to `address`'s port on every interface, where TensorFlow's server for `task`
    will listen; a port that cannot be bound (another process holds it, or it needs root) is a
    RecipeError naming TF_CONFIG."""
    port = int(address.rpartition(":")[2])
    probe = socket.socket()
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed socket's TIME_WAIT is no user
    try:
        probe.bind(("", port))
    except OSError as err:
        probe.close()
        why = {errno.EADDRINUSE: "another process uses it",
               errno.EACCES: "permission denied (ports below 1024 need root)"}.get(err.errno, err.strerror)
        raise RecipeError(f"TF_CONFIG: task {task} listens on {quote(address, as_repr=False)}, but port "
                          f"{port} cannot be bound: {why}") from None
    return probe


def this_worker(runtime) -> Worker:
    """The training process's place: `cluster_worker` for `runtime.distribution: multi_worker`,
    its port checked free before TensorFlow starts (one line now, not gRPC's errors later); the
    only worker otherwise."""
    check_distribution(runtime.distribution, backend())  # before TF_CONFIG, which only TensorFlow reads
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


@contextlib.contextmanager
def _signals_raise(what):
    """While the block runs, SIGTERM and SIGINT (Ctrl-C) raise a ZooError: "stopped by SIGTERM while
    {what()}"."""
    def stop(number, _frame):
        raise ZooError(f"stopped by {signal.Signals(number).name} while {what()}")

    signals = [s for s in (signal.SIGTERM, signal.SIGINT) if signal.getsignal(s) is not signal.SIG_IGN]
    previous = {s: signal.signal(s, stop) for s in signals}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _reachable(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=1):
            return True
    except OSError:
        return False


def wait_for_peers(worker: Worker, poll_s: float = 0.25):
    """Before TensorFlow starts this task's server: listen on its port (in Python) until every other
    task's port answers, so that the workers enter TensorFlow's start-up together. TensorFlow waits
    for absent peers inside native code that holds the interpreter (and takes SIGTERM over), where
    neither Ctrl-C nor SIGTERM could stop the process; waiting here, both stop it with one line."""
    absent = [a for i, a in enumerate(worker.addresses) if i != worker.rank]

    def waiting():
        return (f"waiting for the other workers of the TF_CONFIG cluster (this is task {worker.task}; "
                f"not started: {', '.join(absent)})")

    with bind_port(worker.addresses[worker.rank], worker.task) as listener, _signals_raise(waiting):
        listener.listen(len(worker.addresses))
        start, told = time.monotonic(), False
        while True:
            absent = [a for a in absent if not _reachable(a)]
            if not absent:
                return
            if not told and time.monotonic() - start > 5:
                print(f"{waiting()}; Ctrl-C or SIGTERM stops", flush=True)
                told = True
            time.sleep(poll_s)


class WorkerLost(RuntimeError):
    """Another worker of a multi-worker job stopped (killed, preempted, crashed)."""


@contextlib.contextmanager
def lost_workers(worker: Worker):
    """In a multi-worker job, TensorFlow's error when a peer stops answering (its collective ops
    aborted: UnavailableError, several lines) becomes one line: who, and how to go on."""
    try:
        yield
    except tf.errors.UnavailableError as err:
        if not worker.task:
            raise
        tasks = {f"{job}:{index}" for job, index in re.findall(r"/job:(\w+)/replica:\d+/task:(\d+)", err.message)}
        peers = sorted(tasks - {worker.task})
        who = f"TF_CONFIG task {' and '.join(peers)}" if peers else "another worker"
        raise WorkerLost(f"{who} stopped answering (killed, preempted or crashed): restart every worker "
                         f"with --resume to continue from the last completed epoch") from None


def gather_from_workers(strategy, values: list[int]):
    """`values` of every replica of every worker, one row each (a collective: every worker calls it)."""
    local = tf.constant([values], tf.int64)
    per_replica = strategy.experimental_distribute_values_from_function(lambda _: local)
    return strategy.gather(per_replica, axis=0).numpy()


def auto_shard(dataset, evaluation: bool = False):
    """`dataset` as a multi-worker strategy splits it across workers: as its source chose (the
    tfrecord source: FILE, each worker reads its own files), else DATA: every worker runs the
    input pipeline and keeps its share of each global batch (docs/distributed.md). Other
    strategies ignore the setting. An `evaluation` dataset is always split by DATA: every worker
    evaluates the whole split, and a cache that Keras' validation fills holds all of it."""
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
BACKEND_DISTRIBUTIONS = {"jax": ("none", "auto", "mirrored"), "torch": ("none", "auto")}
NO_DISTRIBUTION = {
    "jax": {"multi_worker": "not on the jax backend yet: run the workers with KERAS_BACKEND=tensorflow "
                            "(docs/distributed.md), or use mirrored for the devices of one machine",
            "tpu": "on the jax backend use mirrored (keras.distribution.DataParallel over every TPU core)"},
}


def check_distribution(setting: str, backend_name: str):
    """A RecipeError, one line naming the backend, for a runtime.distribution that `backend_name`
    has no path for: never a single-process run that logs replicas."""
    if backend_name == "tensorflow" or setting in BACKEND_DISTRIBUTIONS.get(backend_name, ("none", "auto")):
        return
    how = NO_DISTRIBUTION.get(backend_name, {}).get(setting) or (
        f"the {backend_name} backend has no distributed training in Keras {keras.__version__}: use "
        f"runtime.distribution=none, or KERAS_BACKEND=tensorflow (or jax for mirrored)")
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
    split's last, smaller batch) run whole on every device instead of failing to split."""

    def get_data_layout(self, data_shape):
        if data_shape and data_shape[0] is not None and data_shape[0] % self.device_mesh.shape[0]:
            return keras.distribution.TensorLayout([None] * len(data_shape), self.device_mesh)
        return super().get_data_layout(data_shape)


def backend_strategy(name: str, batch_size: int | None = None) -> BackendStrategy:
    """`name` (none or, on jax, mirrored: keras.distribution.DataParallel over every local device,
    each replica an equal share of the global `batch_size`, which they must divide) as a
    strategy-like object; sets Keras' global distribution, so an earlier one of this process goes."""
    if name != "mirrored":
        keras.distribution.set_distribution(None)
        return BackendStrategy()
    devices = keras.distribution.list_devices()
    if batch_size and batch_size % len(devices):
        raise RecipeError(f"data.batch_size {batch_size}: runtime.distribution mirrored on {backend()} splits "
                          f"each batch evenly over its {len(devices)} devices; use a multiple of {len(devices)}")
    keras.distribution.set_distribution(DataParallel(devices=devices))
    return BackendStrategy("mirrored", len(devices))


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
    # First: MultiWorkerMirroredStrategy sets up collective ops, which must precede any other op.
    multi_worker = make_strategy("multi_worker") if runtime.distribution == "multi_worker" else None
    devices = detect_devices() if devices is None else devices
    keras.utils.set_random_seed(runtime.seed)
    keras.config.set_dtype_policy(resolve_policy(runtime.mixed_precision, devices))
    if multi_worker is not None:
        return multi_worker
    distribution = resolve_distribution(runtime.distribution, devices, name)
    return make_strategy(distribution) if name == "tensorflow" else backend_strategy(distribution, batch_size)
