"""Stateful recurrent models over long streams: batch layout, state resets and checks.

A stateful recurrent layer (``stateful=True``) starts each batch from the
final states of the previous batch, row by row, so a stream too long for one
window is read as consecutive windows without losing its past. That holds only
if the data are laid out for it:

- the stream is split into ``batch_size`` parallel sub-streams, one per batch
  row, and row ``i`` of batch ``k + 1`` is the window that follows row ``i``
  of batch ``k`` (``stream_windows``);
- every batch has exactly ``batch_size`` rows, the one the states were built
  for, and batches are never shuffled (``check_stateful_run``);
- states go back to zero where a new pass over the streams starts: every
  epoch, every evaluation and every prediction (``ResetStatesCallback``).

Keras 3 has ``reset_state()`` (alias ``reset_states()``) on recurrent layers
but none on ``keras.Model``; ``reset_recurrent_states`` resets every stateful
layer of a model, nested ones included.

Backends: on TensorFlow (and eager calls anywhere) the states carry over. On
JAX, Keras 3.15 keeps the state variables out of the model's variables, so the
compiled steps of ``fit``, ``evaluate`` and ``predict`` start every batch from
zeros: a stateful run would silently be a stateless one, and
``check_stateful_run`` refuses it.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from seq2seq.config import check_positive_ints

# Backends whose compiled fit/evaluate/predict steps never update stateful RNN
# states (measured with Keras 3.15: the states stay zero after predict on JAX).
BACKENDS_WITHOUT_COMPILED_STATES = ("jax",)


def stream_windows(
    stream: np.ndarray, batch_size: int, window: int, drop_remainder: bool = False
) -> np.ndarray:
    """Cuts one long stream into windows ordered for a stateful model.

    The stream is split into ``batch_size`` contiguous sub-streams of
    ``num_batches * window`` steps; window ``k`` of sub-stream ``i`` becomes
    row ``k * batch_size + i``. Fed in order in batches of ``batch_size``
    rows, row ``i`` of batch ``k + 1`` continues row ``i`` of batch ``k``.

    Args:
        stream: array [time, ...] (features [time, features] or labels [time]).
        batch_size: Positive integer, number of parallel sub-streams (batch rows).
        window: Positive integer, steps per window (the model's time axis).
        drop_remainder: Drop the steps beyond the last whole batch instead of
            raising an error.

    Returns:
        array [num_batches * batch_size, window, ...] with the dtype of ``stream``.

    Raises:
        ValueError: if the stream is shorter than one batch, or its length is
            not a multiple of ``batch_size * window`` and not ``drop_remainder``.
    """
    check_positive_ints(batch_size=batch_size)
    check_positive_ints(window=window)
    stream = np.asarray(stream)
    steps_per_batch = batch_size * window
    num_batches = len(stream) // steps_per_batch
    if num_batches == 0:
        raise ValueError(
            f"A stream of {len(stream)} steps is shorter than one batch of "
            f"batch_size * window = {batch_size} * {window} = {steps_per_batch} steps."
        )
    used = num_batches * steps_per_batch
    if used != len(stream) and not drop_remainder:
        raise ValueError(
            f"A stream of {len(stream)} steps does not split into batch_size={batch_size} "
            f"parallel streams of whole windows of {window} steps: {len(stream)} is not a "
            f"multiple of {steps_per_batch}. Trim it to {used} steps, or pass "
            "drop_remainder=True."
        )
    rows = stream[:used].reshape(batch_size, num_batches, window, *stream.shape[1:])
    return np.swapaxes(rows, 0, 1).reshape(num_batches * batch_size, window, *stream.shape[1:])


def unstream_windows(windows: np.ndarray, batch_size: int) -> np.ndarray:
    """Inverse of ``stream_windows``: windows [n * batch_size, window, ...] -> stream [time, ...]."""
    check_positive_ints(batch_size=batch_size)
    windows = np.asarray(windows)
    if windows.ndim < 2 or len(windows) % batch_size:
        raise ValueError(
            f"Expected windows [num_batches * {batch_size}, window, ...]. "
            f"Received: shape={windows.shape}"
        )
    num_batches, window = len(windows) // batch_size, windows.shape[1]
    rows = windows.reshape(num_batches, batch_size, window, *windows.shape[2:])
    return np.swapaxes(rows, 0, 1).reshape(num_batches * batch_size * window, *windows.shape[2:])


def stateful_layers(model: keras.layers.Layer) -> list[keras.layers.Layer]:
    """Returns every stateful recurrent layer of ``model``, nested ones included."""
    # Keras 3 has no public list of nested layers: `model.layers` stops at the
    # first level and misses a Bidirectional's inner layers and layers held by
    # custom layers; `_flatten_layers` is what Keras' own trainers walk.
    return [
        layer
        for layer in model._flatten_layers(include_self=True, recursive=True)
        if isinstance(layer, keras.layers.RNN) and layer.stateful
    ]


def _require_stateful_layers(model: keras.layers.Layer) -> list[keras.layers.Layer]:
    layers = stateful_layers(model)
    if not layers:
        raise ValueError(
            f"Model {model.name!r} has no stateful recurrent layer: build its recurrent "
            "layers with stateful=True (and a fixed batch size) to carry states across batches."
        )
    return layers


def stateful_batch_size(model: keras.layers.Layer) -> int:
    """Returns the fixed batch size the stateful layers of a built ``model`` hold states for.

    Raises:
        ValueError: if ``model`` has no stateful layer, is not built, or its
            stateful layers disagree.
    """
    sizes = {}
    for layer in _require_stateful_layers(model):
        if layer.states is None:
            raise ValueError(
                f"Stateful layer {layer.name!r} is not built yet: give the model a fixed "
                "batch size, e.g. keras.Input(batch_shape=(batch_size, window, features))."
            )
        sizes[layer.name] = int(keras.tree.flatten(layer.states)[0].shape[0])
    if len(set(sizes.values())) != 1:
        raise ValueError(f"Stateful layers hold states for different batch sizes: {sizes}")
    return next(iter(sizes.values()))


def reset_recurrent_states(model: keras.layers.Layer) -> int:
    """Sets the states of every stateful recurrent layer of ``model`` to zeros.

    Returns:
        the number of layers reset.

    Raises:
        ValueError: if ``model`` has no stateful recurrent layer.
    """
    layers = _require_stateful_layers(model)
    for layer in layers:
        layer.reset_state()
    return len(layers)


def check_stateful_run(
    model: keras.layers.Layer, num_windows: int, batch_size: int, shuffle: bool = False
) -> None:
    """Checks that ``num_windows`` windows in batches of ``batch_size`` suit a stateful ``model``.

    Raises:
        ValueError: if shuffling is asked for, ``batch_size`` differs from the
            batch size of the model's states, the windows do not fill whole
            batches (a smaller last batch would not match the states), or the
            backend does not carry states between compiled steps (JAX).
    """
    if keras.backend.backend() in BACKENDS_WITHOUT_COMPILED_STATES:
        raise ValueError(
            f"Stateful recurrent layers do not carry their states from batch to batch in "
            f"fit/evaluate/predict on the {keras.backend.backend()} backend of Keras "
            f"{keras.__version__}: the state variables are not model variables, so every "
            "compiled step starts from zeros and the run would silently be stateless. Use "
            "the TensorFlow backend (KERAS_BACKEND=tensorflow) for stateful runs."
        )
    if shuffle:
        raise ValueError(
            "Expected shuffle=False for a stateful model: shuffling reorders the windows, "
            "so row i of a batch would no longer continue row i of the batch before. "
            "Received: shuffle=True"
        )
    expected = stateful_batch_size(model)
    if batch_size != expected:
        raise ValueError(
            f"Model {model.name!r} is stateful with states for batch_size={expected}, so "
            f"every batch must have {expected} rows. Received: batch_size={batch_size}. "
            "To run another batch size, copy the model with seq2seq.stateful.with_batch_size."
        )
    if num_windows % batch_size:
        raise ValueError(
            f"{num_windows} windows do not fill whole batches of batch_size={batch_size}: "
            f"the last batch would have {num_windows % batch_size} rows. Lay the stream out "
            "with seq2seq.stateful.stream_windows."
        )


class ResetStatesCallback(keras.callbacks.Callback):
    """Zeroes the states of the model's stateful layers where a pass over the data starts.

    Resets at the start of every training epoch (each epoch reads the streams
    from their beginning), of every evaluation (validation during ``fit``
    included, so it neither starts from nor leaks into the training states)
    and of every prediction. ``resets`` counts the resets done.
    """

    def __init__(self):
        super().__init__()
        self.resets = 0

    def _reset(self) -> None:
        reset_recurrent_states(self.model)
        self.resets += 1

    def on_epoch_begin(self, epoch, logs=None):
        self._reset()

    def on_test_begin(self, logs=None):
        self._reset()

    def on_predict_begin(self, logs=None):
        self._reset()


def _num_rows(x) -> int:
    """Returns the number of rows of ``x`` (an array or a nested structure of arrays)."""
    return int(np.shape(keras.tree.flatten(x)[0])[0])


def fit_stateful(
    model: keras.Model,
    x,
    y,
    batch_size: int,
    epochs: int = 1,
    shuffle: bool = False,
    validation_data: tuple | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    **fit_kwargs,
) -> keras.callbacks.History:
    """``model.fit`` for a stateful model on windows laid out by ``stream_windows``.

    Checks the layout (``check_stateful_run``, validation data too), never
    shuffles, and resets the states every epoch and before validation
    (``ResetStatesCallback``).

    Args:
        model: a compiled model with stateful recurrent layers.
        x: windows [num_batches * batch_size, window, ...] (or a structure of them).
        y: targets laid out like ``x``.
        batch_size: the batch size of the model's states.
        epochs: passes over the streams.
        shuffle: must be False; present so that a request to shuffle fails loudly.
        validation_data: optional ``(x, y)`` laid out the same way.
        callbacks: more Keras callbacks.
        **fit_kwargs: passed to ``model.fit`` (``validation_split`` is refused:
            it would cut the validation rows out of the middle of the layout).

    Returns:
        the ``History`` of ``model.fit``.
    """
    if "validation_split" in fit_kwargs:
        raise ValueError(
            "validation_split cuts the last rows off the windows and breaks their stream "
            "order; pass validation_data laid out with stream_windows instead. Received: "
            f"validation_split={fit_kwargs['validation_split']!r}"
        )
    check_stateful_run(model, _num_rows(x), batch_size, shuffle)
    if validation_data is not None:
        validation_batch_size = fit_kwargs.get("validation_batch_size") or batch_size
        check_stateful_run(model, _num_rows(validation_data[0]), validation_batch_size)
    return model.fit(
        x,
        y,
        batch_size=batch_size,
        epochs=epochs,
        shuffle=False,
        validation_data=validation_data,
        callbacks=[ResetStatesCallback(), *callbacks],
        **fit_kwargs,
    )


def predict_stateful(model: keras.Model, x, batch_size: int, **predict_kwargs) -> np.ndarray:
    """``model.predict`` over windows laid out by ``stream_windows``, from zero states.

    Returns:
        the model's outputs, one row per window, in the order of ``x``
        (``unstream_windows`` turns them back into stream order).
    """
    check_stateful_run(model, _num_rows(x), batch_size)
    predict_kwargs.setdefault("verbose", 0)
    return model.predict(
        x, batch_size=batch_size, callbacks=[ResetStatesCallback()], **predict_kwargs
    )


def with_batch_size(model: keras.Model, batch_size: int) -> keras.Model:
    """Returns a copy of a Sequential or functional ``model`` whose inputs have ``batch_size`` rows.

    The copy shares no variables with ``model``: its weights are copied, its
    states start at zero. Use it to run a model trained with one batch size of
    parallel streams on another number of streams (e.g. 1 for live data).

    Raises:
        ValueError: if ``model`` is neither Sequential nor functional.
    """
    check_positive_ints(batch_size=batch_size)
    # Only Sequential and functional models have symbolic `inputs` to re-declare.
    if not getattr(model, "inputs", None):
        raise ValueError(
            "Expected a built Sequential or functional model (its input shapes are known). "
            f"Received: {type(model).__name__}; rebuild a subclassed model with the new "
            "batch size and copy the weights with set_weights()."
        )
    inputs = [
        keras.Input(batch_shape=(batch_size, *tensor.shape[1:]), dtype=tensor.dtype)
        for tensor in model.inputs
    ]
    copy = keras.models.clone_model(model, input_tensors=inputs[0] if len(inputs) == 1 else inputs)
    copy.set_weights(model.get_weights())
    return copy
