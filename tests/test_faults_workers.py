"""A multi-worker process whose peers never come stops on SIGTERM or Ctrl-C (SIGINT) within
seconds, with one line; a TF_CONFIG port that is taken or not a number is one line naming
TF_CONFIG, exit 2. Workers run on the loopback interface, as in tests/test_distributed.py."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_cli
from test_distributed import free_ports, tf_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGINT])
def test_a_worker_waiting_for_its_peers_stops_on_a_signal(tmp_path, sent):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}  # worker 1 never starts
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3",
           "TF_CONFIG": tf_config(cluster, "worker", 0)}
    out = tmp_path / "run"
    worker = subprocess.Popen([sys.executable, "-m", "zoo.cli", "train", "digits_cnn",
                               "runtime.distribution=multi_worker", "train.epochs=1", "--output", str(out)],
                              env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        rank_line = worker.stdout.readline()  # printed before the wait for the peers begins
        assert rank_line.startswith("multi-worker: worker 0 of 2"), rank_line + worker.stderr.read()[-2000:]
        time.sleep(2)  # well inside the wait (before the fix: inside TensorFlow, deaf to both signals)
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
                                f"{port} cannot be bound (Address already in use): another process uses it"]
    for address in ("127.0.0.1:http", "127.0.0.1:", "127.0.0.1:99999"):
        cluster = {"worker": [address, "127.0.0.1:7002"]}
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}}))
        code, _, err = run_cli(capsys, *args)
        assert code == 2
        assert err.splitlines() == [f"zoo: error: TF_CONFIG: cluster.worker: address {address!r} has no valid "
                                    f"port (expected host:port, the port a number from 1 to 65535)"]
    assert not (tmp_path / "run").exists()
