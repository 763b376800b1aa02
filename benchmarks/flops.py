"""FLOP accounting for LSTM encoder-decoders, and the machine's measured matmul peak.

Counts are matmul FLOPs (2 per multiply-add) of the shapes actually computed,
padding included: that is the work the hardware does. Element-wise gate math
is left out (a few percent at 256 units). A training step is counted as three
forward passes (forward, and the two matmuls per weight of the backward pass).
"""

from __future__ import annotations

import time

import keras
import numpy as np

TRAIN_FLOPS_PER_FORWARD = 3


def lstm_step_flops(input_size: int, units: int) -> int:
    """Matmul FLOPs of one LSTM step for one example: [x, h] @ [input+units, 4*units]."""
    return 2 * (input_size + units) * 4 * units


def dense_flops(units: int, outputs: int) -> int:
    """Matmul FLOPs of a Dense layer for one example."""
    return 2 * units * outputs


def forward_flops(
    source_steps: int, target_steps: int, source_vocab: int, target_vocab: int, units: int
) -> int:
    """Forward FLOPs of a 1-layer one-hot LSTM encoder-decoder over the given step counts.

    Args:
        source_steps: encoder steps summed over examples (batch * padded source length).
        target_steps: decoder steps summed over examples.
        source_vocab: one-hot source input size.
        target_vocab: one-hot target input size and output classes.
        units: LSTM units.
    """
    encoder = source_steps * lstm_step_flops(source_vocab, units)
    decoder = target_steps * (
        lstm_step_flops(target_vocab, units) + dense_flops(units, target_vocab)
    )
    return encoder + decoder


def matmul_peak_gflops(size: int = 2048, repeats: int = 20) -> float:
    """Measures this machine's float32 matmul limit: the fastest of ``repeats`` matmuls, GFLOP/s.

    The fastest run, not the median: on a shared machine the limit is what the
    hardware reaches when nothing else runs, and other runs only lose time.
    """
    rng = np.random.default_rng(0)
    a = keras.ops.convert_to_tensor(rng.normal(size=(size, size)).astype("float32"))
    b = keras.ops.convert_to_tensor(rng.normal(size=(size, size)).astype("float32"))
    keras.ops.convert_to_numpy(keras.ops.matmul(a, b))  # warm-up
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        keras.ops.convert_to_numpy(keras.ops.matmul(a, b))
        rates.append(2 * size**3 / (time.perf_counter() - start) / 1e9)
    return max(rates)
