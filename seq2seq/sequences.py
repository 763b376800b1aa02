"""Variable-length float-feature sequences: length-grouped batches and per-sequence prediction.

The counterpart of ``seq2seq.data`` for sequences of float frames (audio
features, sensor readings) of very different lengths. ``make_sequence_dataset``
groups sequences of similar length into batches padded only to their own
longest sequence (with all-zero frames, the padding the ``Encoder`` masks
with ``source_input="features"``), with per-step sample weights that are 0
on padding; ``StepMeanError`` averages errors over real steps whatever the
batching; ``count_padding`` measures the padded share of a dataset's steps;
``predict_sequences`` predicts sequences of any lengths in one call and
returns one result per sequence, in input order. ``model.predict`` cannot:
it concatenates batches of different lengths, which fails (Keras 2's
``predict_generator``, Keras 3 on JAX and PyTorch) or, on TensorFlow, gives a
``tf.RaggedTensor`` whose rows are in batch order and keep their padding.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from seq2seq.config import check_positive_ints
from seq2seq.data import bucket_batch_sizes, bucket_boundaries, count_batches, index_order

PADDING_VALUE = 0.0  # an all-zero frame is padding (``layers.inputs.feature_mask``)


@dataclasses.dataclass
class PackedSequences:
    """Sequences of frames of one shape, packed in one flat array.

    Sequence ``i`` is ``values[offsets[i]:offsets[i + 1]]``.

    Attributes:
        values: [total_steps, *frame_shape], every sequence's frames, one after another.
        offsets: int64 [num_sequences + 1], where each sequence starts (and the end).
    """

    values: np.ndarray
    offsets: np.ndarray

    @classmethod
    def from_arrays(
        cls, arrays: Sequence[np.ndarray], dtype: str | None = "float32"
    ) -> PackedSequences:
        """Packs arrays [time_i, *frame_shape] of one frame shape as ``dtype`` (None: theirs).

        Raises:
            ValueError: if ``arrays`` is empty or frame shapes differ.
        """
        if len(arrays) == 0:
            raise ValueError("Expected at least one sequence. Received: 0 sequences.")
        arrays = [np.asarray(a, dtype=dtype) for a in arrays]
        frame_shape = arrays[0].shape[1:]
        for index, array in enumerate(arrays):
            if array.ndim == 0 or array.shape[1:] != frame_shape:
                raise ValueError(
                    f"Expected every sequence to have shape [time, {', '.join(map(str, frame_shape))}]"
                    f" like sequence 0. Received: sequence {index} of shape {array.shape}"
                )
        lengths = np.array([0] + [len(a) for a in arrays], dtype=np.int64)
        return cls(values=np.concatenate(arrays, axis=0), offsets=np.cumsum(lengths))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> np.ndarray:
        return self.values[self.offsets[index] : self.offsets[index + 1]]

    @property
    def lengths(self) -> np.ndarray:
        """int64 [num_sequences], the number of steps of each sequence."""
        return np.diff(self.offsets)

    @property
    def frame_shape(self) -> tuple[int, ...]:
        return tuple(self.values.shape[1:])

    def ragged(self) -> tf.RaggedTensor:
        """Returns the sequences as a ragged tensor [num_sequences, (time), *frame_shape]."""
        return tf.RaggedTensor.from_row_splits(self.values, self.offsets, validate=False)


def as_packed(
    sequences: Sequence[np.ndarray] | PackedSequences, dtype: str | None = "float32"
) -> PackedSequences:
    """Returns ``sequences`` as ``PackedSequences`` (packing a list of arrays as ``dtype``)."""
    if isinstance(sequences, PackedSequences):
        return sequences
    return PackedSequences.from_arrays(sequences, dtype=dtype)


def check_feature_sequences(features: PackedSequences) -> None:
    """Checks feature frames [time, num_features]: non-empty and never all zero.

    An all-zero frame is what the ``Encoder`` takes for padding: a real one
    would be skipped silently, so it is an error (naming sequence and step).
    """
    if len(features.frame_shape) != 1:
        raise ValueError(
            "Expected feature sequences of shape [time, num_features]. "
            f"Received: frames of shape {features.frame_shape}"
        )
    if (features.lengths == 0).any():
        index = int(np.argmax(features.lengths == 0))
        raise ValueError(
            f"Expected sequences of at least 1 step. Received: sequence {index} is empty"
        )
    all_zero = ~np.any(features.values != PADDING_VALUE, axis=-1)
    if all_zero.any():
        step = int(np.argmax(all_zero))
        index = int(np.searchsorted(features.offsets, step, side="right") - 1)
        raise ValueError(
            f"Sequence {index} has an all-zero frame at step {step - features.offsets[index]}: "
            "the Encoder treats all-zero frames as padding and would skip it. "
            "Shift the features or add a constant feature."
        )


GROUPINGS = ("pools", "buckets", "none")


def _dense(ragged: tf.RaggedTensor, multiple: int) -> tf.Tensor:
    """Pads ragged [batch, (time), ...] with zeros to its longest row rounded up to ``multiple``."""
    longest = tf.reduce_max(ragged.row_lengths())
    width = (longest + multiple - 1) // multiple * multiple
    padding = tf.cast(PADDING_VALUE, ragged.dtype)
    inner = tf.shape(ragged.flat_values, out_type=tf.int64)[1:]
    shape = tf.concat([tf.stack([ragged.nrows(), width]), inner], axis=0)
    return ragged.to_tensor(default_value=padding, shape=shape)


def _batch_indices(
    order: tf.data.Dataset,
    lengths: np.ndarray,
    grouping: str,
    shuffle: bool,
    seed: int,
    batch_size: int,
    pool_batches: int,
    bucket_width: int,
    batch_length_limit: int | None,
) -> tuple[tf.data.Dataset, int]:
    """Returns ``(batches, count)``: the indices grouped into int64 vectors, and how many."""
    length_of = tf.constant(lengths.astype(np.int32))
    if grouping == "none":
        return order.batch(batch_size), -(-len(lengths) // batch_size)
    if grouping == "pools":

        def sort_by_length(indices):
            return tf.gather(indices, tf.argsort(tf.gather(length_of, indices), stable=True))

        # Pools are whole numbers of batches, so only the very last batch is partial.
        batches = (
            order.batch(batch_size * pool_batches).map(sort_by_length).unbatch().batch(batch_size)
        )
        if shuffle:  # else short batches would always come first
            batches = batches.shuffle(pool_batches, seed=seed, reshuffle_each_iteration=True)
        return batches, -(-len(lengths) // batch_size)
    longest = int(lengths.max())
    boundaries = bucket_boundaries(longest, bucket_width)
    sizes = bucket_batch_sizes(boundaries, batch_size, batch_length_limit, longest)
    batches = order.bucket_by_sequence_length(
        element_length_func=lambda index: tf.gather(length_of, index),
        bucket_boundaries=boundaries,
        bucket_batch_sizes=sizes,
    )
    return batches, count_batches(lengths, boundaries, sizes)


def _packed_targets(step_targets, sequence_targets, lengths: np.ndarray):
    """Validates the targets against the feature lengths; float64 becomes float32."""
    if step_targets is not None and sequence_targets is not None:
        raise ValueError("Pass `step_targets` or `sequence_targets`, not both.")
    n = len(lengths)
    if step_targets is not None:
        step_targets = as_packed(step_targets, dtype=None)
        step_targets = dataclasses.replace(step_targets, values=_float32(step_targets.values))
        if len(step_targets) != n:
            raise ValueError(
                f"Expected one step-target sequence per feature sequence ({n}). "
                f"Received: {len(step_targets)} target sequences"
            )
        if not np.array_equal(step_targets.lengths, lengths):
            bad = int(np.argmax(step_targets.lengths != lengths))
            raise ValueError(
                "Expected one step target per feature frame. Received: sequence "
                f"{bad} has {step_targets.lengths[bad]} targets for {lengths[bad]} frames"
            )
    if sequence_targets is not None:
        sequence_targets = _float32(np.asarray(sequence_targets))
        if len(sequence_targets) != n:
            raise ValueError(
                f"Expected one sequence target per sequence ({n}). "
                f"Received: {len(sequence_targets)} sequence targets"
            )
    return step_targets, sequence_targets


def _float32(values: np.ndarray) -> np.ndarray:
    """Returns float64 ``values`` as float32, others unchanged."""
    return values.astype(np.float32) if values.dtype == np.float64 else values


def make_sequence_dataset(
    features: Sequence[np.ndarray] | PackedSequences,
    batch_size: int,
    *,
    step_targets: Sequence[np.ndarray] | PackedSequences | None = None,
    sequence_targets: np.ndarray | None = None,
    shuffle: bool = False,
    seed: int = 0,
    grouping: str = "pools",
    pool_batches: int = 32,
    bucket_width: int = 32,
    batch_length_limit: int | None = None,
    pad_multiple: int = 1,
) -> tf.data.Dataset:
    """Builds batches of variable-length feature sequences, padded per batch.

    Three ways to group sequences (``grouping``):

    - "pools": the (shuffled) sequences are cut into pools of ``pool_batches``
      batches, each pool sorted by length and cut into batches, which are then
      shuffled. Batches are full (one partial batch per pass): little padding
      and the fewest batches, so the fewest sequential recurrent steps;
    - "buckets": ``tf.data`` ``bucket_by_sequence_length`` with buckets
      ``bucket_width`` steps wide, as ``seq2seq.data.make_dataset`` does for
      token ids; lengths in a batch differ by less than ``bucket_width``,
      but each bucket ends a pass with a partial batch, and
      ``batch_length_limit`` can bound the steps of a batch;
    - "none": batches in (shuffled) order, the usual way, for comparison.

    Args:
        features: sequences of float frames [time_i, num_features], at least 1
            step each, no frame all zero (all-zero frames are padding).
        batch_size: Positive integer, sequences per batch.
        step_targets: one target per step: arrays [time_i, *target_shape].
        sequence_targets: one target per sequence: array [num_sequences, *target_shape].
        shuffle: shuffle (seeded, a new order every pass) before batching.
        seed: shuffle seed.
        grouping: "pools", "buckets" or "none".
        pool_batches: Positive integer, batches per pool ("pools").
        bucket_width: Positive integer, width in steps of a bucket ("buckets").
        batch_length_limit: buckets of longer sequences get proportionally
            fewer sequences, so that no batch holds more than ``batch_size *
            batch_length_limit`` steps ("buckets" only). None: no limit.
        pad_multiple: round each batch's padded length up to a multiple of this
            (fewer distinct shapes, so fewer compilations under XLA).

    Returns:
        ``tf.data.Dataset`` of batches: ``(x, y, sample_weight)`` with per-step
        targets, x float32 [batch, time, num_features], y [batch, time,
        *target_shape] (zeros on padding) and sample_weight float32 [batch,
        time] (1 on real steps, 0 on padding); ``(x, y)`` with per-sequence
        targets, y [batch, *target_shape]; ``x`` alone without targets.

    Raises:
        ValueError: for a bad argument or bad data, quoting it.
    """
    features = as_packed(features)
    check_feature_sequences(features)
    check_positive_ints(
        batch_size=batch_size,
        pool_batches=pool_batches,
        bucket_width=bucket_width,
        pad_multiple=pad_multiple,
    )
    if grouping not in GROUPINGS:
        raise ValueError(
            f"Expected one of {GROUPINGS} for `grouping`. Received: grouping={grouping!r}"
        )
    if batch_length_limit is not None:
        check_positive_ints(batch_length_limit=batch_length_limit)
        if grouping != "buckets":
            raise ValueError(
                "`batch_length_limit` needs grouping='buckets'. "
                f"Received: grouping={grouping!r}, batch_length_limit={batch_length_limit}"
            )
    lengths = features.lengths
    step_targets, sequence_targets = _packed_targets(step_targets, sequence_targets, lengths)
    order = index_order(len(features), shuffle, seed)
    sizes = (batch_size, pool_batches, bucket_width, batch_length_limit)
    batches, num_batches = _batch_indices(order, lengths, grouping, shuffle, seed, *sizes)
    frames = features.ragged()
    step_values = step_targets.ragged() if step_targets is not None else None
    sequence_values = tf.constant(sequence_targets) if sequence_targets is not None else None

    # Batches of indices (cheap scalars) become padded arrays in a few vectorised ops.
    def make_batch(indices):
        rows = tf.gather(frames, indices)
        x = _dense(rows, pad_multiple)
        if step_values is not None:
            y = _dense(tf.gather(step_values, indices), pad_multiple)
            weights = tf.sequence_mask(rows.row_lengths(), tf.shape(x)[1], dtype=tf.float32)
            return x, y, weights
        if sequence_values is not None:
            return x, tf.gather(sequence_values, indices)
        return x

    dataset = batches.map(make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    # Known cardinality: Keras knows the epoch length from the first epoch.
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(num_batches))
    return dataset.prefetch(tf.data.AUTOTUNE)


STEP_ERRORS = {"absolute": ops.abs, "squared": ops.square}
DEFAULT_METRIC_NAMES = {"absolute": "mae", "squared": "mse"}


@keras.saving.register_keras_serializable(package="seq2seq")
class StepMeanError(keras.metrics.Metric):
    """Mean absolute or squared error over the real steps of every batch seen.

    Sums ``weight * error`` and ``weight`` over all batches, so the result is
    the mean over real steps whatever the batching (and padding). Pass it in
    ``compile(weighted_metrics=...)``: Keras gives sample weights to weighted
    metrics only. Keras' own weighted ``MeanAbsoluteError`` first averages
    each row over its batch's padded length, so its value changes with it.

    Args:
        error: "absolute" or "squared".
        name: metric name (default "mae" or "mse").

    Call arguments (``update_state``):
        y_true: float [batch, time, ...] (or [batch, ...] per sequence).
        y_pred: float, the shape of ``y_true``.
        sample_weight: float [batch, time], 0 on padding (``make_sequence_dataset``
            gives it), or [batch], or None (every step counts).
    """

    def __init__(self, error: str = "absolute", name: str | None = None, **kwargs):
        if error not in STEP_ERRORS:
            raise ValueError(
                f"Expected one of {list(STEP_ERRORS)} for `error`. Received: error={error!r}"
            )
        super().__init__(name=name or DEFAULT_METRIC_NAMES[error], **kwargs)
        self.error = error
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        difference = ops.cast(y_pred, "float32") - ops.cast(y_true, "float32")
        errors = STEP_ERRORS[self.error](difference)
        if len(errors.shape) > 2:  # mean over the target's own axes -> [batch, time]
            errors = ops.mean(errors, axis=tuple(range(2, len(errors.shape))))
        if sample_weight is None:
            weights = ops.ones_like(errors)
        else:
            weights = ops.cast(sample_weight, "float32")
            if len(weights.shape) == 1 and len(errors.shape) > 1:
                weights = ops.expand_dims(weights, 1)
            weights = ops.broadcast_to(weights, ops.shape(errors))
        self.total.assign_add(ops.sum(errors * weights))
        self.count.assign_add(ops.sum(weights))

    def result(self):
        return ops.divide_no_nan(self.total, self.count)

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "error": self.error}


@dataclasses.dataclass
class PaddingCount:
    """Steps a dataset feeds in one pass: real ones and padding.

    Attributes:
        real_steps: frames of real data.
        padded_steps: padding frames.
        num_batches: batches in the pass.
        sequential_steps: the sum of the batches' padded lengths, that is the
            steps a recurrent layer runs one after another in the pass.
    """

    real_steps: int = 0
    padded_steps: int = 0
    num_batches: int = 0
    sequential_steps: int = 0

    @property
    def total_steps(self) -> int:
        return self.real_steps + self.padded_steps

    @property
    def fraction(self) -> float:
        """Padded steps / all steps (0 for an empty count)."""
        return self.padded_steps / self.total_steps if self.total_steps else 0.0


def count_padding(dataset: tf.data.Dataset) -> PaddingCount:
    """Counts real and padded steps in one pass of batches x or (x, ...), x [batch, time, features].

    A step is padding when its frame is all zeros, the rule the ``Encoder``
    masks by (``make_sequence_dataset`` rejects real all-zero frames, so on its
    datasets the count is exact).
    """
    count = PaddingCount()
    for batch in dataset.as_numpy_iterator():
        x = batch[0] if isinstance(batch, tuple) else batch
        real = int(np.any(x != PADDING_VALUE, axis=-1).sum())
        count.real_steps += real
        count.padded_steps += x.shape[0] * x.shape[1] - real
        count.num_batches += 1
        count.sequential_steps += x.shape[1]
    return count


def pad_sequences(
    sequences: Sequence[np.ndarray], multiple: int = 1, value: float = PADDING_VALUE
) -> tuple[np.ndarray, np.ndarray]:
    """Pads arrays [time_i, ...] into one array [batch, time, ...], time rounded up to ``multiple``.

    Returns:
        ``(padded, lengths)``: padded [batch, time, ...] with ``value`` after
        each sequence's end, lengths int64 [batch].
    """
    if len(sequences) == 0:
        raise ValueError("Expected at least one sequence to pad. Received: 0 sequences.")
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    width = max(1, -(-int(lengths.max()) // multiple) * multiple)
    first = np.asarray(sequences[0])
    padded = np.full((len(sequences), width, *first.shape[1:]), value, dtype=first.dtype)
    for row, sequence in enumerate(sequences):
        padded[row, : lengths[row]] = sequence
    return padded, lengths


def predict_sequences(
    model,
    sequences: Sequence[np.ndarray] | PackedSequences,
    *,
    batch_size: int = 32,
    per_step: bool = True,
    pad_multiple: int = 8,
) -> list[np.ndarray]:
    """Runs ``model`` over sequences of any lengths; returns one result per sequence, in input order.

    Sequences are sorted by length and batched (little padding), each batch
    is padded with all-zero frames and run by ``model.predict_on_batch`` (one
    compiled call per batch), and the results go back to input order.

    Args:
        model: a Keras model mapping x [batch, time, num_features] to per-step
            outputs [batch, time, ...] or per-sequence outputs [batch, ...].
        sequences: float frames [time_i, num_features] each.
        batch_size: Positive integer, most sequences per batch.
        per_step: whether the model returns one output per step (then each
            result is trimmed to its sequence's length).
        pad_multiple: round padded lengths up to a multiple of this (few
            distinct shapes, few compiled variants).

    Returns:
        list of numpy arrays, one per sequence in input order: [time_i, ...]
        if ``per_step``, else [...]. ``pad_sequences`` turns it into one
        padded array plus lengths.

    Raises:
        ValueError: for bad arguments or data, or per-step outputs whose time
            axis is not the input's.
    """
    packed = as_packed(sequences)
    check_feature_sequences(packed)
    check_positive_ints(batch_size=batch_size, pad_multiple=pad_multiple)
    lengths = packed.lengths
    order = np.argsort(lengths, kind="stable")
    results: list[np.ndarray | None] = [None] * len(packed)
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        x, _ = pad_sequences([packed[i] for i in indices], multiple=pad_multiple)
        outputs = np.asarray(model.predict_on_batch(x))
        if per_step and (outputs.ndim < 2 or outputs.shape[:2] != x.shape[:2]):
            raise ValueError(
                "Expected per-step outputs of shape [batch, time, ...] = "
                f"[{x.shape[0]}, {x.shape[1]}, ...] (or per_step=False). "
                f"Received: outputs of shape {outputs.shape}"
            )
        for row, index in enumerate(indices):
            results[index] = outputs[row, : lengths[index]] if per_step else outputs[row]
    return results
