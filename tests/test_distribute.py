"""tf.distribute: two workers on this machine train together and end with the same weights."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from flexseg.errors import ConfigError
from flexseg.training import distribute
from tests.conftest import REPO, tiny_experiment, write_yaml


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_train_one_epoch_together(tiny_data, tmp_path):
    run = tmp_path / "run"
    exp = write_yaml(
        tmp_path / "exp.yaml",
        tiny_experiment(
            data={"root": str(tiny_data)},
            run_dir=str(run),
            train={"epochs": 1, "batch_size": 4, "distribute": "multi_worker"},
        ),
    )
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    procs = []
    for index in range(2):
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "CUDA_VISIBLE_DEVICES": "-1",
            "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
        }
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(REPO / "tests" / "multiworker_worker.py"),
                    str(exp),
                    str(tmp_path / f"w{index}.npz"),
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    try:
        logs = [p.communicate(timeout=420)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
    assert "MultiWorkerMirroredStrategy, 2 workers, 2 replicas; this is worker 0" in logs[0]
    assert "this worker writes nothing" in logs[1]

    w0, w1 = np.load(tmp_path / "w0.npz"), np.load(tmp_path / "w1.npz")
    assert len(w0.files) == len(w1.files) > 10
    for key in w0.files:
        np.testing.assert_array_equal(w0[key], w1[key], err_msg=key)
    # the chief saved the model (one epoch: the best is the last) and it is worker 1's model too
    from flexseg.model.store import load_model

    saved = load_model(run).get_weights()
    assert len(saved) == len(w1.files)
    for a, key in zip(saved, w1.files):
        np.testing.assert_array_equal(a, w1[key], err_msg=key)
    env_record = json.loads((run / "environment.json").read_text())
    assert env_record["distribute"] == {"strategy": "multi_worker", "workers": 2, "replicas": 2, "global_batch": 8}
    rows = (run / "train_losses.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["epoch", "1"]


def test_tf_config_errors_say_what_is_wrong(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        distribute.read_tf_config()
    monkeypatch.setenv(
        "TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}})
    )
    with pytest.raises(ConfigError, match="not in cluster"):
        distribute.read_tf_config()
    monkeypatch.delenv("TF_CONFIG")
    with pytest.raises(ConfigError, match="needs TF_CONFIG"):
        distribute.make_distribution("multi_worker")
    assert distribute.choose("auto") == "none"  # no TF_CONFIG, no GPUs


def test_chief_is_the_chief_task_or_worker_zero():
    workers = {"worker": ["a:1", "b:1"]}
    assert distribute.is_chief_task({"cluster": workers, "task": {"type": "worker", "index": 0}})
    assert not distribute.is_chief_task({"cluster": workers, "task": {"type": "worker", "index": 1}})
    with_chief = {"chief": ["c:1"], **workers}
    assert distribute.is_chief_task({"cluster": with_chief, "task": {"type": "chief", "index": 0}})
    assert not distribute.is_chief_task({"cluster": with_chief, "task": {"type": "worker", "index": 0}})
    assert distribute.cluster_size({"cluster": with_chief, "task": {"type": "chief", "index": 0}}) == 3


def test_mirrored_strategy_trains_and_records_itself(tiny_data, tmp_path):
    from flexseg.commands.train import train
    from flexseg.config import load_experiment

    run = tmp_path / "run"
    exp = load_experiment(
        write_yaml(
            tmp_path / "exp.yaml",
            tiny_experiment(
                data={"root": str(tiny_data)}, run_dir=str(run), train={"epochs": 1, "distribute": "mirrored"}
            ),
        )
    )
    result = train(exp)
    assert result.epochs_run == 1 and (run / "model.keras").is_file()
    record = json.loads((run / "environment.json").read_text())["distribute"]
    assert record["strategy"] == "mirrored" and record["global_batch"] == 8 * record["replicas"]
