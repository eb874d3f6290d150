"""`runtime.distribution: multi_worker` on the jax backend: two `zoo train` processes on the
loopback interface (127.0.0.1, free ports), the cluster in TF_CONFIG as for TensorFlow, joined by
jax.distributed (keras.distribution.initialize) and trained with keras.distribution.DataParallel
over both processes' devices, against one process on the same data."""
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

jax = pytest.importorskip("jax")

from test_distributed import free_ports, tf_config  # noqa: E402
from zoo.cluster import Worker, WorkerLost, lost_workers  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 400  # seconds the workers and the one-process run may take together (a hang) before the test fails

# `zoo train ARGV` that also prints, as "BATCHES {json}", the first training batch this process
# fed (each example's pixel sum) and every (examples fed by this process, examples of the global
# batch, examples per device) the distribution laid out.
RECORDING_TRAIN = textwrap.dedent('''
    import json, sys
    import numpy as np
    from keras.src.backend.jax import distribution_lib
    from keras.src.trainers.data_adapters.tf_dataset_adapter import TFDatasetAdapter
    from zoo.cli import main

    first, layouts = [], set()
    batches, distribute = TFDatasetAdapter.get_jax_iterator, distribution_lib.distribute_data_input

    def recording_batches(adapter):
        for batch in batches(adapter):
            if not first:
                first.append(np.asarray(batch[0], np.float64).reshape(len(batch[0]), -1).sum(1).tolist())
            yield batch

    def recording_distribute(per_process_batch, layout, batch_dim_name):
        array = distribute(per_process_batch, layout, batch_dim_name)
        layouts.add((len(per_process_batch), array.shape[0], array.sharding.shard_shape(array.shape)[0]))
        return array

    TFDatasetAdapter.get_jax_iterator = recording_batches
    distribution_lib.distribute_data_input = recording_distribute
    code = main(["train", *sys.argv[1:]])
    print("BATCHES " + json.dumps({"first": first[0], "layouts": sorted(layouts)}), flush=True)
    sys.exit(code)
''')
TRAIN = ("digits_cnn", "train.epochs=2", "train.verbose=2", "runtime.mixed_precision=float32")


def start(args, log: Path, tmp: Path, extra_env=None) -> subprocess.Popen:
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT),
           "TF_CPP_MIN_LOG_LEVEL": "3", "TMPDIR": str(tmp), **(extra_env or {})}
    with open(f"{log}.out", "w") as stdout, open(f"{log}.err", "w") as stderr:
        return subprocess.Popen([sys.executable, "-c", RECORDING_TRAIN, *args], env=env, cwd=log.parent,
                                stdout=stdout, stderr=stderr)


def finish(processes: dict, logs: Path) -> dict:
    """{name: (exit status, stdout, stderr)} once every process ended; a process still running at
    the deadline is killed (jax.distributed waits for a missing peer in native code)."""
    deadline, results = time.time() + TIMEOUT, {}
    try:
        for name, process in processes.items():
            code = process.wait(timeout=max(deadline - time.time(), 1))
            results[name] = (code, (logs / f"{name}.out").read_text(), (logs / f"{name}.err").read_text())
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    return results


def batches_of(stdout: str) -> dict:
    return json.loads(stdout.split("BATCHES ")[1].splitlines()[0])


def test_two_jax_workers_split_every_global_batch_and_learn_like_one_process(tmp_path):
    """Both exit 0 and log "2 replica(s)"; of each global batch of 32 every worker feeds its own 16
    (worker 0 the first half of the one-process run's batch, worker 1 the second) and the
    distribution lays out 32, 16 per device; validation and evaluation batches are whole on both
    (each device runs them whole); both print the same metrics, as accurate as one process;
    only the chief writes the run directory."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    processes = {f"worker{rank}": start([*TRAIN, "runtime.distribution=multi_worker", "--output", tmp_path / "run"],
                                        tmp_path / f"worker{rank}", tmp,
                                        {"TF_CONFIG": tf_config(cluster, "worker", rank)}) for rank in (0, 1)}
    processes["alone"] = start([*TRAIN, "runtime.distribution=none", "--output", tmp_path / "alone"],
                               tmp_path / "alone", tmp)
    results = finish(processes, tmp_path)
    for name, (code, stdout, stderr) in results.items():
        assert code == 0, f"{name}: {stderr[-3000:]}"
    workers = [results["worker0"][1], results["worker1"][1]]
    for rank, stdout in enumerate(workers):
        assert f"multi-worker: worker {rank} of 2 (TF_CONFIG task worker:{rank})" in stdout
        training = next(line for line in stdout.splitlines() if line.startswith("training digits_cnn"))
        assert "; 2 replica(s), " in training
    assert "the chief: it writes the run directory" in workers[0] and "not the chief" in workers[1]

    alone, shares = batches_of(results["alone"][1]), [batches_of(stdout) for stdout in workers]
    assert len(alone["first"]) == 32 and alone["layouts"] == []
    assert [share["first"] for share in shares] == [alone["first"][:16], alone["first"][16:]]
    for share in shares:  # training: 16 of 32, one device each; the rest: whole everywhere
        assert [16, 32, 16] in share["layouts"]
        assert all(fed == laid == per_device for fed, laid, per_device in share["layouts"] if fed != 16 or laid != 32)
        assert {32, 8} <= {fed for fed, _, _ in share["layouts"]}  # evaluation: 360 = 11 x 32 + 8

    finals = [line for stdout in workers for line in stdout.splitlines() if line.startswith("metrics: ")]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert finals == [f"metrics: {json.dumps(metrics)}"] * 2 and metrics["num_examples"] == 360
    one = json.loads((tmp_path / "alone" / "metrics.json").read_text())["accuracy"]
    print(f"accuracy: two jax workers {metrics['accuracy']:.4f}, one process {one:.4f}")
    assert metrics["accuracy"] > 0.8 and abs(metrics["accuracy"] - one) < 0.02
    header = (tmp_path / "run" / "recipe.yaml").read_text().splitlines()[0]
    assert header == "# resolved: runtime.mixed_precision float32, runtime.distribution multi_worker (2 replica(s))"
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["alone", "run", "tmp"]
    assert not list(tmp.glob("zoo-worker*"))  # worker 1's own directory is gone


def test_a_jax_worker_whose_peer_stopped_says_so_in_one_line():
    """Measured by hand: a worker SIGKILLed mid-training leaves its peer with gloo's error from the
    next collective (JaxRuntimeError or ValueError, by where it broke); that becomes the one line
    of the TensorFlow path. Other errors pass."""
    worker = Worker(0, 2, "worker:0", ("127.0.0.1:1", "127.0.0.1:2"))
    for err in (ValueError("UNKNOWN: Gloo AllGather failed: [external/gloo/gloo/transport/tcp/pair.cc:547] "
                           "Connection closed by peer [127.0.0.1]:6051"),
                jax.errors.JaxRuntimeError("UNKNOWN: Gloo all-reduce failed: [external/gloo/gloo/transport/tcp/"
                                           "pair.cc:538] Read error [127.0.0.1]:51100: Connection reset by peer")):
        with pytest.raises(WorkerLost) as caught, lost_workers(worker):
            raise err
        assert str(caught.value) == ("another worker stopped answering (killed, preempted or crashed): restart "
                                     "every worker with --resume to continue from the last completed epoch")
    with pytest.raises(ValueError, match="shapes"), lost_workers(worker):
        raise ValueError("incompatible shapes")
    with pytest.raises(ValueError, match="Gloo"), lost_workers(Worker()):  # not in a cluster
        raise ValueError("Gloo AllGather failed: Connection closed by peer")
