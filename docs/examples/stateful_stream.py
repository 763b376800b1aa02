"""Stacked and stateful recurrent layers: labelling a stream too long for one window.

**Stacking.** A recurrent layer feeding another must return its whole
sequence (``return_sequences=True``); with only its last output the next layer
gets [batch, units] where it expects [batch, time, units] and Keras refuses:
``expected ndim=3, found ndim=2``. ``seq2seq.layers.Encoder`` stacks this way
already (every layer returns its sequence and its final states:
``EncoderOutput.states`` has one entry per layer), and so does
``build_stream_model`` below. ``stacking()`` shows both and the error.

**Statefulness.** The task, generated here: a stream of symbols, each one of
8 data symbols or, rarely (1 step in 30), a key announcement (one of 4 keys).
The label of a data symbol is the symbol shifted by the current key
(``(symbol + SHIFTS[key]) % 8``); the label of an announcement is its key.
The key in force was announced some 30 steps back on average, further than one
window of 10 steps reaches.

The stream is cut with ``seq2seq.stateful.stream_windows`` into
``batch_size`` parallel sub-streams, so that row i of batch k+1 continues row
i of batch k, and both models see the same windows of 10 steps:

- the **stateful** model (``stateful=True``, fixed batch size) starts every
  batch from the states the previous batch ended with, so it remembers the
  key across windows; ``seq2seq.stateful.fit_stateful`` trains it in stream
  order and resets the states every epoch and before evaluation
  (``ResetStatesCallback``; Keras 3 models have no ``reset_states()``, hence
  ``reset_recurrent_states``);
- the **stateless** model starts every window from zero states, so it knows
  the key only when the window itself contains the announcement.

Checked with clear errors (``seq2seq.stateful``): a stream that does not
split into whole windows of ``batch_size`` parallel streams, a batch of
another size than the states', a last partial batch, ``shuffle=True`` and
``validation_split`` on a stateful run. ``with_batch_size`` copies the trained
model for another number of streams (1 here, window after window, as live data
would come), giving the same predictions.

Measured (``python docs/examples/stateful_stream.py --size test|full``, seed 0,
TensorFlow backend, a shared 2-core machine; per-step accuracy on a held-out
stream; the most frequent label is 0.13)::

    size  train steps  epochs  stateful  stateless  stateful, reset every batch  wall
    test  16000        10      0.90      0.38       0.37                         11 s
    full  64000        10      0.96      0.38       0.38                         26 s

Resetting the trained stateful model before every batch brings it down to the
stateless accuracy: what it gains is the state carried between batches.

Backends: stateful runs need the TensorFlow backend (PyTorch not tried). On
JAX, Keras 3.15's compiled ``fit``/``predict`` steps start every batch from
zero states (the state variables are not model variables), so a stateful run
would silently be stateless; ``seq2seq.stateful`` refuses it with an error.

Run: ``python docs/examples/stateful_stream.py --size test``.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import keras
import numpy as np

from seq2seq.layers import Encoder
from seq2seq.stateful import (
    fit_stateful,
    predict_stateful,
    reset_recurrent_states,
    stream_windows,
    unstream_windows,
    with_batch_size,
)

NUM_SYMBOLS = 8  # data symbols, also the label classes
SHIFTS = (0, 3, 5, 6)  # label shift of each key
NUM_KEYS = len(SHIFTS)
NUM_INPUTS = NUM_SYMBOLS + NUM_KEYS  # one-hot inputs: data symbols, then key announcements
KEY_PROBABILITY = 1 / 30
WINDOW = 10
BATCH_SIZE = 32
LEARNING_RATE = 1e-2


@dataclasses.dataclass(frozen=True)
class Size:
    """How much data and training one run uses."""

    train_batches: int  # consecutive batches of BATCH_SIZE windows per epoch
    test_batches: int
    epochs: int
    units: int
    num_layers: int


SIZES = {
    "test": Size(train_batches=50, test_batches=20, epochs=10, units=32, num_layers=2),
    "full": Size(train_batches=200, test_batches=50, epochs=10, units=32, num_layers=2),
}


def make_stream(num_steps: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Returns one-hot inputs float32 [num_steps, NUM_INPUTS] and labels int32 [num_steps]."""
    is_key = rng.random(num_steps) < KEY_PROBABILITY
    values = np.where(
        is_key, rng.integers(NUM_KEYS, size=num_steps), rng.integers(NUM_SYMBOLS, size=num_steps)
    )
    # The key in force at each step: the last one announced (key 0 before any).
    last_key_step = np.maximum.accumulate(np.where(is_key, np.arange(num_steps), -1))
    key = np.where(last_key_step >= 0, values[np.maximum(last_key_step, 0)], 0)
    labels = np.where(is_key, values, (values + np.asarray(SHIFTS)[key]) % NUM_SYMBOLS)
    symbols = np.where(is_key, NUM_SYMBOLS + values, values)
    return np.eye(NUM_INPUTS, dtype="float32")[symbols], labels.astype("int32")


def build_stream_model(
    batch_size: int | None, stateful: bool, units: int, num_layers: int
) -> keras.Sequential:
    """A stack of GRU layers, each returning its sequence to the next, and a per-step Dense.

    Takes windows [batch_size, WINDOW, NUM_INPUTS]; returns logits
    [batch_size, WINDOW, NUM_SYMBOLS]. A stateful model needs ``batch_size``:
    its states are variables [batch_size, units].
    """
    layers = [keras.Input(batch_shape=(batch_size, WINDOW, NUM_INPUTS))]
    for i in range(num_layers):
        layers.append(
            keras.layers.GRU(units, return_sequences=True, stateful=stateful, name=f"gru_{i}")
        )
    layers.append(keras.layers.Dense(NUM_SYMBOLS, name="logits"))
    model = keras.Sequential(layers, name="stateful" if stateful else "stateless")
    model.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["sparse_categorical_accuracy"],
    )
    return model


def stacking() -> dict[str, str]:
    """Shows a stack built right (Encoder) and wrong (no return_sequences); returns what happened."""
    x = np.zeros((2, WINDOW, NUM_INPUTS), "float32")
    x[..., 0] = 1.0  # real frames: an all-zero frame would be padding for the Encoder
    encoder = Encoder(
        cell="gru", units=16, num_layers=3, source_input="features", num_features=NUM_INPUTS
    )
    encoded = encoder(x)
    found = {
        "encoder": f"outputs {tuple(encoded.outputs.shape)} from the top layer; final states "
        f"of {len(encoded.states)} layers, each {tuple(encoded.states[0][0][0].shape)}"
    }
    try:
        keras.Sequential(
            [
                keras.Input((WINDOW, NUM_INPUTS)),
                keras.layers.GRU(16),  # the mistake: no return_sequences=True
                keras.layers.GRU(16),
            ]
        )
    except ValueError as error:
        found["missing_return_sequences"] = str(error)
    return found


def _error(action) -> str:
    """Runs ``action`` and returns the message of the ValueError it raises."""
    try:
        action()
    except ValueError as error:
        return str(error)
    raise AssertionError("expected a ValueError")


def constraint_errors(model: keras.Model, x: np.ndarray, y: np.ndarray) -> dict[str, str]:
    """Returns the error each batch-size constraint violation gets, on a stateful ``model``."""
    return {
        "stream_not_divisible": _error(lambda: stream_windows(np.zeros(1001), BATCH_SIZE, WINDOW)),
        "predict_other_batch_size": _error(lambda: predict_stateful(model, x, batch_size=8)),
        "partial_last_batch": _error(
            lambda: predict_stateful(model, x[: BATCH_SIZE + 3], batch_size=BATCH_SIZE)
        ),
        "shuffle": _error(lambda: fit_stateful(model, x, y, batch_size=BATCH_SIZE, shuffle=True)),
        "validation_split": _error(
            lambda: fit_stateful(model, x, y, batch_size=BATCH_SIZE, validation_split=0.1)
        ),
    }


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, axis=-1) == labels))


def main(size: str = "test", seed: int = 0, verbose: int = 0) -> dict:
    """Trains a stateful and a stateless model on the stream, prints and returns the results.

    Args:
        size: "test" (small, for the test suite) or "full".
        seed: seed of the streams and of the weight initialisation.
        verbose: Keras ``fit`` verbosity.

    Returns:
        dict with the accuracies (stateful, stateless, stateful reset before
        every batch, chance), whether the batch-1 copy predicts the same, the
        stacking demonstration, the constraint errors and the seconds taken.
    """
    if size not in SIZES:
        raise ValueError(f"Expected one of {list(SIZES)} for `size`. Received: size={size!r}")
    setting = SIZES[size]
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    steps_per_batch = BATCH_SIZE * WINDOW
    train_inputs, train_labels = make_stream(setting.train_batches * steps_per_batch, rng)
    test_inputs, test_labels = make_stream(setting.test_batches * steps_per_batch, rng)
    x, y = (stream_windows(a, BATCH_SIZE, WINDOW) for a in (train_inputs, train_labels))
    test_x = stream_windows(test_inputs, BATCH_SIZE, WINDOW)

    keras.utils.set_random_seed(seed)
    stateful = build_stream_model(BATCH_SIZE, True, setting.units, setting.num_layers)
    fit_stateful(stateful, x, y, batch_size=BATCH_SIZE, epochs=setting.epochs, verbose=verbose)
    logits = predict_stateful(stateful, test_x, batch_size=BATCH_SIZE)
    stateful_accuracy = _accuracy(unstream_windows(logits, BATCH_SIZE), test_labels)

    # The same trained model with its states zeroed before every batch.
    reset_logits = []
    for batch in np.split(test_x, setting.test_batches):
        reset_recurrent_states(stateful)
        reset_logits.append(stateful.predict_on_batch(batch))
    reset_logits = unstream_windows(np.concatenate(reset_logits), BATCH_SIZE)

    # One stream, window after window, through a batch-1 copy: sub-stream 0.
    single = with_batch_size(stateful, 1)
    row_logits = [single.predict_on_batch(window[None]) for window in test_x[::BATCH_SIZE]]
    batch1_matches = np.allclose(np.concatenate(row_logits), logits[::BATCH_SIZE], atol=1e-4)

    keras.utils.set_random_seed(seed)
    stateless = build_stream_model(None, False, setting.units, setting.num_layers)
    stateless.fit(x, y, batch_size=BATCH_SIZE, epochs=setting.epochs, shuffle=True, verbose=verbose)
    stateless_logits = stateless.predict(test_x, batch_size=BATCH_SIZE, verbose=0)

    results = {
        "size": size,
        "chance": float(np.max(np.bincount(test_labels)) / len(test_labels)),
        "stateful_accuracy": stateful_accuracy,
        "stateless_accuracy": _accuracy(
            unstream_windows(stateless_logits, BATCH_SIZE), test_labels
        ),
        "stateful_reset_every_batch_accuracy": _accuracy(reset_logits, test_labels),
        "batch1_copy_matches": bool(batch1_matches),
        "stacking": stacking(),
        "errors": constraint_errors(stateful, x, y),
    }
    results["seconds"] = time.perf_counter() - start

    print(f"chance (most frequent label) {results['chance']:.3f}")
    for key in ("stateful", "stateless", "stateful_reset_every_batch"):
        print(f"{key}: accuracy {results[f'{key}_accuracy']:.3f}")
    print(f"batch-1 copy predicts the same: {results['batch1_copy_matches']}")
    for name, what in {**results["stacking"], **results["errors"]}.items():
        print(f"{name}: {what}")
    print(f"{results['seconds']:.1f} s")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=0)
    args = parser.parse_args()
    main(args.size, args.seed, args.verbose)
