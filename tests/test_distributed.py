"""Multi-worker training proved on this machine: one `zoo train` process per worker, the cluster in
TF_CONFIG on the loopback interface (127.0.0.1, free ports), as a cluster manager starts them."""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import history_rows, run_cli
from zoo import pipeline, runtime
from zoo.errors import RecipeError, ZooError
from zoo.cluster import Worker, cluster_worker

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 240  # seconds a launch of the workers may take before the test fails


def tf_config(cluster: dict, kind: str, index: int) -> str:
    return json.dumps({"cluster": cluster, "task": {"type": kind, "index": index}})


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


class LoopbackCluster:
    """Launches `zoo train ARGS` once per worker (worker 0 is the chief), on fresh ports each time;
    each worker's TMPDIR is `tmp`, where its temporary directory must not outlive it."""

    def __init__(self, root: Path, workers: int = 2):
        self.root, self.workers, self.processes, self.launches = root, workers, [], 0
        self.tmp = root / "tmp"
        self.tmp.mkdir()

    def start(self, *args) -> list[subprocess.Popen]:
        cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(self.workers)]}
        self.launches += 1
        self.processes = []
        for index in range(self.workers):
            env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", "TMPDIR": str(self.tmp),
                   "TF_CONFIG": tf_config(cluster, "worker", index)}
            log = self.root / f"launch{self.launches}-worker{index}"
            with open(f"{log}.out", "w") as stdout, open(f"{log}.err", "w") as stderr:
                self.processes.append(subprocess.Popen(
                    [sys.executable, "-m", "zoo.cli", "train", *map(str, args)], env=env, cwd=self.root,
                    stdout=stdout, stderr=stderr))
        return self.processes

    def wait(self) -> list[tuple[int, str, str]]:
        """(exit status, stdout, stderr) of each worker of the latest launch."""
        deadline = time.time() + TIMEOUT
        results = []
        for index, process in enumerate(self.processes):
            code = process.wait(timeout=max(deadline - time.time(), 1))
            log = self.root / f"launch{self.launches}-worker{index}"
            results.append((code, Path(f"{log}.out").read_text(), Path(f"{log}.err").read_text()))
        return results

    def run(self, *args) -> list[tuple[int, str, str]]:
        self.start(*args)
        return self.wait()

    def kill(self):
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture
def cluster(tmp_path):
    launched = LoopbackCluster(tmp_path)
    try:
        yield launched
    finally:
        launched.kill()  # what a failed test left running


def last_completed_epoch(run_dir: Path) -> int:
    state = run_dir / "checkpoints" / "state.json"
    return json.loads(state.read_text())["epoch"] if state.is_file() else 0


@pytest.mark.slow
def test_two_workers_learn_like_one_process_and_only_the_chief_writes(cluster, tmp_path):
    out = tmp_path / "run"
    results = cluster.run("digits_cnn", "runtime.distribution=multi_worker", "train.epochs=4", "train.verbose=2",
                          "--output", out)
    for rank, (code, stdout, stderr) in enumerate(results):
        assert code == 0, stderr[-3000:]
        assert f"multi-worker: worker {rank} of 2 (TF_CONFIG task worker:{rank})" in stdout
        assert "2 replica(s)" in stdout
    assert "the chief: it writes the run directory" in results[0][1]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.95  # one process, 4 epochs on 90% of train: 0.975 (the quickstart's 30: 0.994)
    assert metrics["num_examples"] == 360  # every worker evaluates all of the eval split ...
    finals = [line for _, stdout, _ in results for line in stdout.splitlines() if line.startswith("metrics: ")]
    assert finals == [f"metrics: {json.dumps(metrics)}"] * 2  # ... with the same model
    assert [int(r["epoch"]) for r in history_rows(out)] == [1, 2, 3, 4]
    assert "runtime.distribution multi_worker (2 replica(s))" in (out / "recipe.yaml").read_text()
    written = {p.name for p in out.iterdir()}
    assert {"recipe.yaml", "dataset.json", "history.csv", "metrics.json", "model.keras", "best.keras",
            "checkpoints", "logs", "curves.png"} <= written
    # Exactly one run directory, and the other worker's temporary directory is gone.
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["run", "tmp"]
    assert not list(cluster.tmp.glob("zoo-worker*"))


@pytest.mark.slow
def test_a_killed_worker_stops_the_job_and_resume_finishes_it(cluster, tmp_path):
    out = tmp_path / "run"
    args = ("digits_cnn", "runtime.distribution=multi_worker", "train.epochs=3", "train.validate=false",
            "train.verbose=2", "--output", out)
    chief, worker = cluster.start(*args)
    deadline = time.time() + TIMEOUT
    while last_completed_epoch(out) < 1:
        assert time.time() < deadline and worker.poll() is None and chief.poll() is None, "no epoch completed"
        time.sleep(0.05)
    # Mid-epoch 2, SIGKILL as on a preempted machine. The chief: its lock is left behind, and the
    # survivor notices at once (a killed non-chief is noticed by TensorFlow's heartbeat, ~20 s).
    chief.kill()
    code, stdout, stderr = cluster.wait()[1]
    assert code == 1
    assert stderr.splitlines()[-1].startswith("zoo: error: WorkerLost: TF_CONFIG task worker:0 stopped answering")
    assert "restart every worker with --resume" in stderr and "Traceback" not in stderr
    completed = last_completed_epoch(out)
    assert completed in (1, 2)

    results = cluster.run(*args, "--resume")
    for code, stdout, stderr in results:
        assert code == 0, stderr[-3000:]
        assert f"resuming after epoch {completed}" in stdout
    assert "taking the run directory over" in results[0][1]
    assert [int(r["epoch"]) for r in history_rows(out)] == [1, 2, 3]
    assert json.loads((out / "metrics.json").read_text())["accuracy"] > 0.9  # one process, 3 epochs: 0.96
    assert not list(cluster.tmp.glob("zoo-worker*"))


@pytest.mark.parametrize("config, says", [
    ({"cluster": {"worker": ["127.0.0.1:7001", "127.0.0.1:7002"]}, "task": {"type": "worker", "index": 2}},
     "TF_CONFIG: task.index 2 is out of range: cluster.worker lists 2 address(es), indices 0-1"),
    ({"cluster": {"worker": ["127.0.0.1:7001"]}, "task": {"type": "chief", "index": 0}},
     "TF_CONFIG: task.type is chief but the cluster lists no chief"),
    ({"cluster": {"worker": ["127.0.0.1:7001"], "ps": ["127.0.0.1:7002"]}, "task": {"type": "worker", "index": 0}},
     "TF_CONFIG: cluster job(s) ps"),
    ({"task": {"type": "worker", "index": 0}}, 'TF_CONFIG: no "cluster"'),
    ("{'cluster': {}}", "TF_CONFIG: not valid JSON"),
    (None, "the TF_CONFIG environment variable, which is not set"),
])
def test_a_mismatched_tf_config_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch, config, says):
    if config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", config if isinstance(config, str) else json.dumps(config))
    code, _, err = run_cli(capsys, "train", "digits_cnn", "runtime.distribution=multi_worker",
                           "--output", tmp_path / "run")
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("zoo: error: ") and says in err
    assert not (tmp_path / "run").exists()


def test_ranks_follow_tf_config():
    with_chief = {"chief": ["10.0.0.1:2222"], "worker": ["10.0.0.2:2222", "10.0.0.3:2222"]}
    assert cluster_worker({"TF_CONFIG": tf_config(with_chief, "chief", 0)}) == Worker(0, 3, "chief:0")
    second = cluster_worker({"TF_CONFIG": tf_config(with_chief, "worker", 1)})
    assert second == Worker(2, 3, "worker:1") and not second.is_chief
    workers_only = {"worker": ["10.0.0.2:2222", "10.0.0.3:2222"]}
    assert cluster_worker({"TF_CONFIG": tf_config(workers_only, "worker", 0)}).is_chief  # worker 0 leads
    with pytest.raises(RecipeError, match="listed twice"):
        cluster_worker({"TF_CONFIG": tf_config({"worker": ["h:1", "h:1"]}, "worker", 0)})


def test_sources_are_sharded_by_data_unless_they_chose_files():
    import tensorflow as tf

    policy = tf.data.experimental.AutoShardPolicy
    dataset = tf.data.Dataset.range(8)
    assert runtime.auto_shard(dataset).options().experimental_distribute.auto_shard_policy == policy.DATA
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = policy.FILE  # e.g. the tfrecord source
    chosen = runtime.auto_shard(dataset.with_options(options))
    assert chosen.options().experimental_distribute.auto_shard_policy == policy.FILE


@pytest.mark.parametrize("rows, error, says", [
    ([[2, 44, 4], [0, 44, 4]], ZooError, "would resume after different epochs ([0, 2])"),
    ([[0, 44, 4], [0, 44, 6]], RecipeError, "the workers' recipes differ (train.epochs [4, 6]"),
])
def test_workers_that_would_train_differently_are_stopped_before_training(monkeypatch, tmp_path, rows, error, says):
    import numpy as np

    monkeypatch.setattr(runtime, "gather_from_workers", lambda strategy, values: np.array(rows))
    with pytest.raises(error) as raised:
        pipeline._check_workers_agree(None, tmp_path, *rows[0])
    assert says in str(raised.value)
