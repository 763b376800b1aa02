"""Crash and resume: `seq2seq-train` killed with SIGKILL resumes to the same result.

The runs are real subprocesses of `python -m seq2seq.cli.train`. A small
wrapper (``_CHILD``) runs the program unchanged, except that at the chosen
point it creates a marker file and sleeps; the test then sends SIGKILL. The
kill points are drawn at random (the draw is printed on failure): a batch in
the middle of an epoch, and the moment just before one of the files of an
epoch's commit is renamed into place (its temporary file written, the
previous version still in place).
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from seq2seq import model as _model  # noqa: F401  (registers the Keras classes for loading)
from seq2seq.atomic import TEMP_PREFIX
from seq2seq.checkpoint import (
    BACKUP_DIRNAME,
    BEST_MODEL_FILENAME,
    HISTORY_FILENAME,
    LAST_MODEL_FILENAME,
    SOURCE_VOCAB_FILENAME,
    STATE_FILENAME,
    TARGET_VOCAB_FILENAME,
)
from seq2seq.config import Config
from seq2seq.tasks import write_tsv
from seq2seq.vocab import Vocabulary

EPOCHS = 4
BATCHES_PER_EPOCH = 10  # 180 training pairs of at most 6 tokens, batches of 18 (one bucket)
CHILD_TIMEOUT_S = 120

# Runs seq2seq.cli.train as `python -m` would, pausing (marker file + sleep) at
# the point named by the environment: S2S_PAUSE="batch:EPOCH:BATCH" or
# S2S_PAUSE="commit:EPOCHS_DONE:FILE_SUFFIX".
_CHILD = r"""
import json, os, runpy, sys, time
import keras
from seq2seq import training

kind, epoch, where = os.environ["S2S_PAUSE"].split(":")
epoch = int(epoch)
marker = os.environ["S2S_MARKER"]

def pause():
    with open(marker, "w") as f:
        f.write("paused")
    time.sleep(600)

class PauseInEpoch(keras.callbacks.Callback):
    def on_epoch_begin(self, e, logs=None):
        self.epoch = e

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == epoch and batch == int(where):
            pause()

real_replace = os.replace

def replace(src, dst, *args, **kwargs):
    # The file of the commit of epoch `epoch` (1-based): written after the
    # commit for history.csv, before it for the others.
    if os.fspath(dst).endswith(where):
        directory = os.path.dirname(os.fspath(dst))
        if os.path.basename(directory) == training.BACKUP_DIRNAME:  # the resume checkpoint
            directory = os.path.dirname(directory)
        with open(os.path.join(directory, training.STATE_FILENAME)) as f:
            committed = json.load(f)["epochs_done"]
        if committed == (epoch if where == training.HISTORY_FILENAME else epoch - 1):
            pause()
    return real_replace(src, dst, *args, **kwargs)

if kind == "batch":
    real_train = training.train
    def train(*args, **kwargs):
        kwargs["callbacks"] = [*kwargs.get("callbacks", ()), PauseInEpoch()]
        return real_train(*args, **kwargs)
    training.train = train
else:
    os.replace = replace
sys.argv = ["seq2seq-train", *sys.argv[1:]]
runpy.run_module("seq2seq.cli.train", run_name="__main__")
"""


def _pairs():
    rng = random.Random(7)
    words = sorted(
        {"".join(rng.choice("abcde") for _ in range(rng.randint(2, 6))) for _ in range(400)}
    )
    return [(w, w[::-1]) for w in words[:200]]


def _command(train_file, model_dir):
    return [
        f"--train_file={train_file}",
        f"--model_dir={model_dir}",
        "--cell=gru",
        "--units=16",
        "--dropout=0.2",
        f"--epochs={EPOCHS}",
        "--batch_size=18",
        "--valid_fraction=0.1",
        "--patience=0",
        "--seed=3",
        "--num_samples=2",
    ]


def _env():
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def _start(args, pause=None, marker=None):
    if pause is None:
        argv = [sys.executable, "-m", "seq2seq.cli.train", *args]
        env = _env()
    else:
        argv = [sys.executable, "-c", _CHILD, *args]
        env = {**_env(), "S2S_PAUSE": pause, "S2S_MARKER": str(marker)}
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _kill_when_paused(process, marker, what):
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    while not os.path.exists(marker):
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"{what}: ended before its kill point:\n{err[-3000:]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"{what}: did not reach its kill point in {CHILD_TIMEOUT_S} s")
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    os.unlink(marker)


def _assert_every_file_loads(model_dir):
    """A kill never leaves a file that fails to load."""
    Config.load(model_dir)
    for name in (SOURCE_VOCAB_FILENAME, TARGET_VOCAB_FILENAME):
        if os.path.exists(os.path.join(model_dir, name)):
            Vocabulary.load(os.path.join(model_dir, name))
    for name in (BEST_MODEL_FILENAME, LAST_MODEL_FILENAME):
        if os.path.exists(os.path.join(model_dir, name)):
            keras.saving.load_model(os.path.join(model_dir, name), compile=False, safe_mode=True)
    with open(os.path.join(model_dir, STATE_FILENAME)) as f:
        state = json.load(f)
    assert os.path.exists(os.path.join(model_dir, state["checkpoint"]))
    return state


def _weights(path):
    return keras.saving.load_model(path, compile=False, safe_mode=True).get_weights()


@pytest.mark.parametrize(
    "kill_file", [".weights.h5", LAST_MODEL_FILENAME, STATE_FILENAME, HISTORY_FILENAME]
)
def test_sigkill_during_epoch_and_during_commit_resumes_to_same_weights(tmp_path, kill_file):
    train_file = tmp_path / "train.tsv"
    write_tsv(_pairs(), str(train_file))
    reference_dir, resumed_dir = tmp_path / "reference", tmp_path / "resumed"
    marker = tmp_path / "paused"
    rng = random.Random()
    kill_batch = rng.randrange(BATCHES_PER_EPOCH)
    draw = f"(kill points: epoch 2 batch {kill_batch + 1}; commit of epoch 3 at {kill_file})"

    reference = _start(_command(train_file, reference_dir))  # runs alongside the others
    first = _start(_command(train_file, resumed_dir), f"batch:1:{kill_batch}", marker)
    _kill_when_paused(first, marker, f"first run {draw}")
    state = _assert_every_file_loads(resumed_dir)
    assert state["epochs_done"] == 1, draw

    second = _start(_command(train_file, resumed_dir), f"commit:3:{kill_file}", marker)
    _kill_when_paused(second, marker, f"second run {draw}")
    state = _assert_every_file_loads(resumed_dir)
    assert state["epochs_done"] == (3 if kill_file == HISTORY_FILENAME else 2), draw
    assert any(name.startswith(TEMP_PREFIX) for name in _all_files(resumed_dir)), draw

    third = subprocess.run(
        [sys.executable, "-m", "seq2seq.cli.train", *_command(train_file, resumed_dir)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=CHILD_TIMEOUT_S,
    )
    assert third.returncode == 0, f"{draw}\n{third.stderr[-3000:]}"
    out, err = reference.communicate(timeout=CHILD_TIMEOUT_S)
    assert reference.returncode == 0, err[-3000:]

    assert not any(name.startswith(TEMP_PREFIX) for name in _all_files(resumed_dir)), draw
    assert not os.path.exists(resumed_dir / BACKUP_DIRNAME)
    for name in (LAST_MODEL_FILENAME, BEST_MODEL_FILENAME):
        expected, actual = _weights(reference_dir / name), _weights(resumed_dir / name)
        for e, a in zip(expected, actual, strict=True):
            np.testing.assert_array_equal(a, e, err_msg=f"{name} {draw}")
    assert (resumed_dir / HISTORY_FILENAME).read_text() == (
        reference_dir / HISTORY_FILENAME
    ).read_text(), draw
    assert json.loads(third.stdout.splitlines()[-1]) == {
        **json.loads(out.splitlines()[-1]),
        "model_dir": str(resumed_dir),
    }, draw


def _all_files(model_dir):
    return [name for _, _, names in os.walk(model_dir) for name in names]
