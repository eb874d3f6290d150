"""A multi-worker job's cluster (docs/distributed.md): each worker process reads its place from
TF_CONFIG (`cluster_worker`, checked before TensorFlow or jax.distributed starts); the chief,
rank 0, writes the run directory. Each waits for the others' ports to answer before the backend
connects them (`wait_for_peers`), where SIGTERM and Ctrl-C stop it; a peer that stops answering
later is one line (`lost_workers`)."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import signal
import socket
import time
from dataclasses import dataclass, field

import tensorflow as tf

from zoo.errors import RecipeError, ZooError, quote


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


def wait_for_peers(worker: Worker, poll_s: float = 0.25, keep_listening: bool = False):
    """Before TensorFlow starts this task's server: listen on its port (in Python) until every other
    task's port answers, so that the workers enter TensorFlow's start-up together. TensorFlow waits
    for absent peers inside native code that holds the interpreter (and takes SIGTERM over), where
    neither Ctrl-C nor SIGTERM could stop the process; waiting here, both stop it with one line.
    `keep_listening` (jax, whose server takes the chief's port alone): return the socket listening,
    for the caller to close once all joined, so the others still waiting see this worker."""
    absent = [a for i, a in enumerate(worker.addresses) if i != worker.rank]

    def waiting():
        return (f"waiting for the other workers of the TF_CONFIG cluster (this is task {worker.task}; "
                f"not started: {', '.join(absent)})")

    with contextlib.ExitStack() as closing, _signals_raise(waiting):
        listener = closing.enter_context(bind_port(worker.addresses[worker.rank], worker.task))
        listener.listen(len(worker.addresses))
        start, told = time.monotonic(), False
        while True:
            absent = [a for a in absent if not _reachable(a)]
            if not absent:
                if keep_listening:
                    closing.pop_all()
                    return listener
                return None
            if not told and time.monotonic() - start > 5:
                print(f"{waiting()}; Ctrl-C or SIGTERM stops", flush=True)
                told = True
            time.sleep(poll_s)


class WorkerLost(RuntimeError):
    """Another worker of a multi-worker job stopped (killed, preempted, crashed)."""


@contextlib.contextmanager
def lost_workers(worker: Worker):
    """In a multi-worker job, the error when a peer stops answering (TensorFlow: its collective ops
    aborted, UnavailableError, several lines; jax: gloo's connection to it broke, naming no task)
    becomes one line: who, and how to go on."""
    def lost(who):
        return WorkerLost(f"{who} stopped answering (killed, preempted or crashed): restart every worker "
                          f"with --resume to continue from the last completed epoch")

    try:
        yield
    except tf.errors.UnavailableError as err:
        if not worker.task:
            raise
        tasks = {f"{job}:{index}" for job, index in re.findall(r"/job:(\w+)/replica:\d+/task:(\d+)", err.message)}
        peers = sorted(tasks - {worker.task})
        raise lost(f"TF_CONFIG task {' and '.join(peers)}" if peers else "another worker") from None
    except (RuntimeError, ValueError) as err:  # jax: "Gloo all-reduce failed: ... Connection reset by peer"
        if not (worker.task and re.search(r"\bGloo [\w-]+ failed\b.*\bby peer\b", str(err))):
            raise
        raise lost("another worker") from None
