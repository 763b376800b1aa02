"""Training on several devices with ``tf.distribute``.

``train.distribution`` chooses the strategy the model is built, compiled and
fitted under:

- "none": the default strategy (one device).
- "mirrored": ``tf.distribute.MirroredStrategy`` over every GPU of the machine
  (or, with ``devices``, the devices named, e.g. logical CPUs). Each global
  batch of ``train.batch_size`` pairs is split evenly between the replicas
  (the split of an odd batch differs by one pair), gradients are summed
  across replicas, and the loss is the mean over the real target tokens of
  the whole global batch, as on one device (see
  ``seq2seq.metrics.MaskedSparseCrossEntropy``).

Checkpoints hold plain variables, so a model directory trained on one
device resumes on several and the other way round.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from seq2seq.config import DISTRIBUTIONS, ConfigError


def make_strategy(name: str, devices: Sequence[str] | None = None) -> tf.distribute.Strategy:
    """Returns the ``tf.distribute`` strategy called ``name`` (see the module docstring).

    Args:
        name: "none" or "mirrored".
        devices: for "mirrored", the devices to mirror over (default: all GPUs,
            or the CPU when there is none).

    Raises:
        ConfigError: for an unknown name, or devices with "none".
    """
    if name not in DISTRIBUTIONS:
        raise ConfigError(
            f"Expected one of {list(DISTRIBUTIONS)} for `train.distribution`. "
            f"Received: train.distribution={name!r}"
        )
    if name == "none":
        if devices:
            raise ConfigError(f"Devices {list(devices)} given without a distribution.")
        return tf.distribute.get_strategy()
    return tf.distribute.MirroredStrategy(devices=list(devices) if devices else None)
