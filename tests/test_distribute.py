"""tf.distribute: MirroredStrategy over 2 logical CPUs follows the single-device run.

Also across a change of replica count: a run resumed mirrored after epochs
on one device ends where the single-device run ends.

Logical devices must be configured before TensorFlow starts, so the runs
happen in a subprocess.
"""

import json
import os
import subprocess
import sys

import pytest

from seq2seq.config import ConfigError
from seq2seq.distribute import make_strategy

# Trains the same run on one device and mirrored over two logical CPUs; prints
# the per-step losses of both and the weights' largest difference as JSON.
_CHILD = r"""
import json, random, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
import numpy as np
from seq2seq.config import Config, ModelConfig, TrainConfig
from seq2seq.training import train

class StepLosses(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.losses = []
    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(float(logs["loss"]))

rng = random.Random(0)
words = ["".join(rng.choice("abcdef") for _ in range(rng.randint(1, 8))) for _ in range(700)]
pairs = [(w, w[::-1]) for w in words]
out = {}
weights = {}
for name, devices in (("none", None), ("mirrored", ["/cpu:0", "/cpu:1"])):
    config = Config(
        model=ModelConfig(cell="lstm", units=32, layers=2, bidirectional=True),
        train=TrainConfig(epochs=5, batch_size=64, seed=5, distribution=name),
    )
    recorder = StepLosses()
    train(config, pairs, pairs[:50], sys.argv[1] + "/" + name, verbose=0,
          callbacks=[recorder], devices=devices)
    out[name] = recorder.losses
    weights[name] = keras.saving.load_model(
        sys.argv[1] + "/" + name + "/last.keras", compile=False).get_weights()
out["max_weight_difference"] = max(
    float(np.abs(a - b).max()) for a, b in zip(weights["none"], weights["mirrored"]))
# A change of replica count between runs: 2 epochs on one device, resumed mirrored.
for epochs, name, devices in ((2, "none", None), (5, "mirrored", ["/cpu:0", "/cpu:1"])):
    config = Config(
        model=ModelConfig(cell="lstm", units=32, layers=2, bidirectional=True),
        train=TrainConfig(epochs=epochs, batch_size=64, seed=5, distribution=name),
    )
    train(config, pairs, pairs[:50], sys.argv[1] + "/switch", verbose=0, devices=devices)
switched = keras.saving.load_model(sys.argv[1] + "/switch/last.keras", compile=False).get_weights()
out["switch_weight_difference"] = max(
    float(np.abs(a - b).max()) for a, b in zip(weights["none"], switched))
print(json.dumps(out))
"""


def test_mirrored_on_two_logical_cpus_follows_single_device_loss(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.splitlines()[-1])
    single, mirrored = out["none"], out["mirrored"]
    assert len(single) == len(mirrored) >= 50
    # Keras reports the running mean of the epoch's batch losses; compare step 50.
    assert abs(single[49] - mirrored[49]) < 1e-3, (single[49], mirrored[49])
    assert max(abs(a - b) for a, b in zip(single, mirrored, strict=True)) < 1e-3
    assert single[-1] < single[0]  # it trains
    assert out["max_weight_difference"] < 1e-3
    # Resumed on two replicas after two epochs on one: the same run, within float tolerance.
    assert out["switch_weight_difference"] < 1e-3


def test_make_strategy_names_bad_values():
    assert make_strategy("none").num_replicas_in_sync == 1
    with pytest.raises(ConfigError, match="train.distribution='tpu_pod'"):
        make_strategy("tpu_pod")
    with pytest.raises(ConfigError, match="without a distribution"):
        make_strategy("none", ["/cpu:0"])
