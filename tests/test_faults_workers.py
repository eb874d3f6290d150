"""A multi-worker process whose peers never come stops on SIGTERM or Ctrl-C (SIGINT) within
seconds, with one line; a TF_CONFIG port that is taken or not a number is one line naming
TF_CONFIG, exit 2; the port is checked once, before TensorFlow starts, so a source that reads
TF_CONFIG later (tfrecord sharding) trains. Workers run on the loopback interface, as in
tests/test_distributed.py."""
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import history_rows, run_cli
from test_distributed import LoopbackCluster, free_ports, tf_config
from zoo.cluster import bind_port, cluster_worker
from zoo.errors import RecipeError

ROOT = Path(__file__).resolve().parents[1]


def read_line(stream, timeout_s: float = 120) -> str:
    """The next line of a worker's output, waited for at most `timeout_s`: a hung worker fails
    the test instead of hanging the suite."""
    lines = []
    reader = threading.Thread(target=lambda: lines.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout_s)
    assert lines, f"no line from the worker within {timeout_s} s"
    return lines[0]


@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGINT])
def test_a_worker_waiting_for_its_peers_stops_on_a_signal(tmp_path, sent):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}  # worker 1 never starts
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3",
           "TF_CONFIG": tf_config(cluster, "worker", 0)}
    out = tmp_path / "run"
    # As from a terminal: a shell's background job (`.ci/run &`) starts with SIGINT ignored, and
    # the zoo leaves an ignored signal ignored.
    worker = subprocess.Popen([sys.executable, "-m", "zoo.cli", "train", "digits_cnn",
                               "runtime.distribution=multi_worker", "train.epochs=1", "--output", str(out)],
                              env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              preexec_fn=lambda: signal.signal(sent, signal.SIG_DFL))
    try:
        rank_line = read_line(worker.stdout)  # printed before the wait for the peers begins
        if not rank_line.startswith("multi-worker: worker 0 of 2"):
            worker.kill()
            pytest.fail(rank_line + worker.communicate(timeout=20)[1][-2000:])
        waiting = read_line(worker.stdout)  # after 5 s inside the wait (before the fix: inside
        assert waiting.startswith("waiting for the other workers"), waiting  # TensorFlow, deaf to both)
        worker.send_signal(sent)
        sent_at = time.monotonic()
        stdout, stderr = worker.communicate(timeout=20)
        assert time.monotonic() - sent_at < 10
    finally:
        worker.kill()
    assert worker.returncode == 2
    zoo_lines = [line for line in stderr.splitlines() if line.startswith("zoo:")]
    assert zoo_lines == [f"zoo: error: stopped by {sent.name} while waiting for the other workers of the "
                         f"TF_CONFIG cluster (this is task worker:0; not started: {cluster['worker'][1]})"]
    assert "Traceback" not in stderr
    assert not out.exists()  # nothing was written: the run directory it had made is gone


def test_a_port_in_use_or_not_a_number_is_one_line_naming_tf_config(tmp_path, capsys, monkeypatch):
    args = ("train", "digits_cnn", "runtime.distribution=multi_worker", "--output", tmp_path / "run")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cluster = {"worker": [f"127.0.0.1:{port}", f"127.0.0.1:{free_ports(1)[0]}"]}
        monkeypatch.setenv("TF_CONFIG", tf_config(cluster, "worker", 0))
        code, _, err = run_cli(capsys, *args)
    assert code == 2
    assert err.splitlines() == [f"zoo: error: TF_CONFIG: task worker:0 listens on 127.0.0.1:{port}, but port "
                                f"{port} cannot be bound: another process uses it"]
    for address in ("127.0.0.1:http", "127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:²"):
        cluster = {"worker": [address, "127.0.0.1:7002"]}
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}}))
        code, _, err = run_cli(capsys, *args)
        assert code == 2
        assert err.splitlines() == [f"zoo: error: TF_CONFIG: cluster.worker: address {address!r} has no valid "
                                    f"port (expected host:port, the port a number from 1 to 65535)"]
    assert not (tmp_path / "run").exists()


def test_reading_tf_config_binds_nothing_and_a_port_below_1024_is_named(monkeypatch):
    """Sources read TF_CONFIG after TensorFlow's server took the port: reading it must not bind."""
    with socket.socket() as server:  # as TensorFlow's server holds this task's port
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"127.0.0.1:{server.getsockname()[1]}"
        config = tf_config({"worker": [address, "127.0.0.1:1"]}, "worker", 0)
        assert cluster_worker({"TF_CONFIG": config}).addresses == (address, "127.0.0.1:1")

    class NeedsRoot(socket.socket):
        def bind(self, _address):
            raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(socket, "socket", NeedsRoot)
    with pytest.raises(RecipeError, match=r"^TF_CONFIG: task worker:1 listens on h:80, but port 80 cannot be "
                                          r"bound: permission denied \(ports below 1024 need root\)$"):
        bind_port("h:80", "worker:1")


def test_two_workers_train_on_tfrecord_shards(tmp_path):
    """Loading the shards reads TF_CONFIG (each worker its own shards) after TensorFlow's server
    started: it stopped with "port ... cannot be bound (Address already in use)". Every worker
    evaluates the whole eval split, also when it is cached (it held only the worker's own shards)."""
    from zoo import load_recipe
    from zoo.convert import convert

    convert(load_recipe("digits_cnn"), tmp_path / "tfr", shards=2)
    cluster = LoopbackCluster(tmp_path)
    try:
        results = cluster.run("digits_cnn", "runtime.distribution=multi_worker", "data.source=tfrecord",
                              f"data.path={tmp_path / 'tfr'}", "train.epochs=2", "train.verbose=0",
                              "--output", tmp_path / "run")
    finally:
        cluster.kill()
    finals = []
    for code, stdout, stderr in results:
        assert code == 0, stderr[-3000:]
        finals += [json.loads(line[len("metrics: "):]) for line in stdout.splitlines() if line.startswith("metrics: ")]
    assert len(finals) == 2 and finals[0] == finals[1], finals  # the same model, the same whole eval split
    assert finals[0]["num_examples"] == 360 and finals[0]["accuracy"] > 0.8, finals  # 0.93; chance 0.1
    assert [int(r["epoch"]) for r in history_rows(tmp_path / "run")] == [1, 2]
