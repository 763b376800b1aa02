"""train.distribution="multi_worker": TF_CONFIG checks, batch splitting, and two
worker processes on 127.0.0.1 that train, lose a worker and resume.

Each worker is its own process (MultiWorkerMirroredStrategy sets up
collectives once per process), started with a TF_CONFIG of loopback
addresses on free ports. Every wait is bounded and leftovers are killed.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from seq2seq.config import ConfigError
from seq2seq.distribute import make_strategy, read_tf_config, replica_rows

WORKER_TIMEOUT_S = 120
# How long a surviving worker may take to notice a lost peer before the test kills it.
SURVIVOR_TIMEOUT_S = 60
EPOCHS = 3
KILLED_AFTER_EPOCH = 1
CHIEF_FILES = {
    ".lock",
    "config.json",
    "history.csv",
    "last.keras",
    "logs",
    "model.keras",
    "source_vocab.json",
    "target_vocab.json",
    "train_state.json",
}

# A worker: trains a tiny model with train(); argv: model_dir, kill_at (-1: never).
# Worker 1 SIGKILLs itself when epoch `kill_at` begins, once the chief has
# committed epoch `kill_at` (so the commit is whole and the kill is mid-run).
_WORKER = r"""
import json, os, signal, sys, time
import keras
from seq2seq.config import Config, ModelConfig, TrainConfig
from seq2seq.training import train

model_dir, kill_at = sys.argv[1], int(sys.argv[2])
task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]

def chief_committed(epochs):
    try:
        with open(os.path.join(model_dir, "train_state.json")) as f:
            return json.load(f).get("epochs_done", 0) >= epochs
    except (OSError, ValueError):
        return False

class Record(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs, self.steps, self.losses = [], [], []
    def on_epoch_begin(self, epoch, logs=None):
        if task == 1 and epoch == kill_at:
            deadline = time.time() + 60
            while not chief_committed(kill_at) and time.time() < deadline:
                time.sleep(0.1)
            os.kill(os.getpid(), signal.SIGKILL)
        self.epochs.append(epoch)
        self.steps.append(0)
    def on_train_batch_end(self, batch, logs=None):
        self.steps[-1] += 1
        self.losses.append(float(logs["loss"]))

words = ["".join("abcdef"[(i * 7 + j * 3) % 6] for j in range(1 + i % 7)) for i in range(80)]
pairs = [(w, w[::-1]) for w in words]
config = Config(
    model=ModelConfig(cell="gru", units=16, layers=1),
    train=TrainConfig(epochs=EPOCHS, batch_size=15, seed=3, distribution="multi_worker"),
)
record = Record()
result = train(config, pairs, pairs[:20], model_dir, verbose=0, callbacks=[record])
print(json.dumps({"epochs_done": result.epochs_done, "epochs": record.epochs,
                  "steps": record.steps, "losses": record.losses}))
""".replace("EPOCHS", str(EPOCHS))


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _start_workers(tmp_path, model_dir, kill_at, run):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    temp = tmp_path / "tmp"  # the workers' private directories go here
    temp.mkdir(exist_ok=True)
    workers = []
    for index in range(2):
        tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps(tf_config),
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "CUDA_VISIBLE_DEVICES": "",
            "TMPDIR": str(temp),
        }
        log = open(tmp_path / f"run{run}-worker{index}.log", "w")  # noqa: SIM115
        command = [sys.executable, "-c", _WORKER, str(model_dir), str(kill_at)]
        workers.append(
            (subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env), log)
        )
    return workers


def _wait(workers, timeout):
    """Waits for every worker (within ``timeout`` in all); kills those still running."""
    deadline = time.monotonic() + timeout
    codes = []
    for process, log in workers:
        try:
            codes.append(process.wait(timeout=max(0.1, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            process.kill()
            codes.append(process.wait(timeout=10))
        log.close()
    return codes


def _result(tmp_path, run, index):
    text = (tmp_path / f"run{run}-worker{index}.log").read_text()
    lines = [line for line in text.splitlines() if line.startswith('{"epochs_done"')]
    assert lines, text[-3000:]
    return json.loads(lines[-1])


@pytest.mark.slow
def test_two_workers_resume_after_one_is_killed(tmp_path):
    model_dir = tmp_path / "model"
    workers = []
    try:
        # Run 1: worker 1 is SIGKILLed once the chief has committed epoch 1.
        workers = _start_workers(tmp_path, model_dir, KILLED_AFTER_EPOCH, run=1)
        killed_code = _wait(workers[1:], WORKER_TIMEOUT_S)[0]
        assert killed_code == -signal.SIGKILL, (tmp_path / "run1-worker1.log").read_text()[-3000:]
        # The chief loses its peer: its collectives fail (or the test kills it).
        chief_code = _wait(workers[:1], SURVIVOR_TIMEOUT_S)[0]
        assert chief_code != 0
        state = json.loads((model_dir / "train_state.json").read_text())
        assert state["epochs_done"] == KILLED_AFTER_EPOCH and not state["finished"]

        # Run 2: the same command on both workers resumes and finishes.
        workers = _start_workers(tmp_path, model_dir, -1, run=2)
        codes = _wait(workers, WORKER_TIMEOUT_S)
        logs = [(tmp_path / f"run2-worker{i}.log").read_text()[-3000:] for i in range(2)]
        assert codes == [0, 0], logs
        results = [_result(tmp_path, 2, index) for index in range(2)]
    finally:
        for process, log in workers:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
            log.close()

    for result in results:
        assert result["epochs_done"] == EPOCHS
        assert result["epochs"] == list(range(KILLED_AFTER_EPOCH, EPOCHS))  # resumed
        # One step per global batch of 15 pairs: 80 pairs in length buckets make 6.
        assert result["steps"] == [6] * (EPOCHS - KILLED_AFTER_EPOCH)
        assert all(np.isfinite(result["losses"]))
    # Step logs are averaged over all replicas: the same on both workers.
    np.testing.assert_allclose(results[0]["losses"], results[1]["losses"], rtol=1e-6)
    state = json.loads((model_dir / "train_state.json").read_text())
    assert state["finished"] and state["epochs_done"] == EPOCHS
    assert [row["epoch"] for row in state["history"]] == list(range(EPOCHS))
    assert state["history"][-1]["loss"] < state["history"][0]["loss"]
    # Only the chief wrote model_dir; the finishing worker removed its own directory.
    assert {p.name for p in model_dir.iterdir()} == CHIEF_FILES
    leftovers = [p.name for p in (tmp_path / "tmp").glob("seq2seq-worker*")]
    assert len(leftovers) <= 1, leftovers  # at most the SIGKILLed worker's


@pytest.mark.parametrize(
    ("tf_config", "message"),
    [
        (None, "TF_CONFIG unset"),
        ("{cluster", "Expected JSON"),
        ("[1, 2]", "Expected a JSON object"),
        ('{"task": {"type": "worker", "index": 0}}', "cluster=None"),
        ('{"cluster": {"worker": ["a:1"]}}', "task=None"),
        ('{"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {}}', "cluster.ps"),
        ('{"cluster": {"worker": []}, "task": {"type": "worker"}}', "at least 1 worker"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief"}}', "task.type='chief'"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}', "index=1"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": "0"}}', "'0'"),
        ('{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker"}}', "worker[0]"),
        ('{"cluster": {"worker": "a:1"}, "task": {"type": "worker"}}', "cluster.worker='a:1'"),
    ],
)
def test_read_tf_config_names_the_bad_key(tf_config, message):
    environ = {} if tf_config is None else {"TF_CONFIG": tf_config}
    with pytest.raises(ConfigError, match="TF_CONFIG") as info:
        read_tf_config(environ)
    assert message in str(info.value)


def test_read_tf_config_finds_the_chief():
    workers = '"worker": ["a:1", "b:2"]'
    task = read_tf_config(
        {"TF_CONFIG": f'{{"cluster": {{{workers}}}, "task": {{"type": "worker", "index": 1}}}}'}
    )
    assert (task.task_type, task.index, task.num_workers, task.is_chief) == ("worker", 1, 2, False)
    assert read_tf_config(
        {"TF_CONFIG": f'{{"cluster": {{{workers}}}, "task": {{"type": "worker"}}}}'}
    ).is_chief
    with_chief = (
        f'{{"cluster": {{"chief": ["c:3"], {workers}}}, "task": {{"type": "%s", "index": 0}}}}'
    )
    assert read_tf_config({"TF_CONFIG": with_chief % "chief"}).is_chief
    assert not read_tf_config({"TF_CONFIG": with_chief % "worker"}).is_chief
    assert read_tf_config({"TF_CONFIG": with_chief % "worker"}).num_workers == 3


def test_replica_rows_split_a_batch_into_equal_parts():
    batch = np.arange(1, 11, dtype=np.int32).reshape(5, 2)  # 5 rows, no PAD
    parts = np.asarray(replica_rows(batch, num_replicas=2, first=0, count=2))
    assert parts.shape == (2, 3, 2)  # every replica gets the same shape
    np.testing.assert_array_equal(parts.reshape(6, 2)[:5], batch)  # all rows, in order
    np.testing.assert_array_equal(parts[1, 2], [0, 0])  # one PAD row
    second = np.asarray(replica_rows(batch, num_replicas=2, first=1, count=1))
    np.testing.assert_array_equal(second, parts[1:])


def test_make_strategy_multi_worker_takes_no_devices():
    with pytest.raises(ConfigError, match="train.distribution='multi_worker'"):
        make_strategy("multi_worker", ["/cpu:0"])
