"""Length-grouped batches of float-feature sequences, padding counts and per-sequence prediction."""

import keras
import numpy as np
import pytest

from seq2seq.data import bucket_boundaries
from seq2seq.layers import Encoder
from seq2seq.sequences import (
    PackedSequences,
    StepMeanError,
    count_padding,
    make_sequence_dataset,
    pad_sequences,
    predict_sequences,
)

NUM_FEATURES = 3


def _sequences(lengths):
    """Frames that name themselves: feature 0 = sequence index + 1, feature 1 = step + 1."""
    features, targets = [], []
    for index, length in enumerate(lengths):
        frames = np.zeros((length, NUM_FEATURES), np.float32)
        frames[:, 0] = index + 1
        frames[:, 1] = np.arange(length) + 1
        frames[:, 2] = 0.5
        features.append(frames)
        targets.append((10 * frames[:, :1]).astype(np.float32))
    return features, targets


def _lengths(n=40, low=1, high=60, seed=0):
    return np.random.default_rng(seed).integers(low, high + 1, size=n)


def _collect(dataset):
    """Returns every batch of one pass as a tuple of arrays (``(x,)`` for features only)."""
    return [
        batch if isinstance(batch, tuple) else (batch,) for batch in dataset.as_numpy_iterator()
    ]


def test_packed_sequences_round_trip():
    arrays = [np.full((n, 2), n, np.float32) for n in (3, 1, 4)]
    packed = PackedSequences.from_arrays(arrays)
    assert len(packed) == 3
    np.testing.assert_array_equal(packed.lengths, [3, 1, 4])
    assert packed.frame_shape == (2,)
    for i, array in enumerate(arrays):
        np.testing.assert_array_equal(packed[i], array)
    assert packed.ragged().shape.as_list() == [3, None, 2]


@pytest.mark.parametrize(
    "arrays,match",
    [
        ([], "at least one sequence"),
        ([np.ones((2, 3)), np.ones((2, 4))], r"sequence 1 of shape \(2, 4\)"),
    ],
)
def test_packed_sequences_errors(arrays, match):
    with pytest.raises(ValueError, match=match):
        PackedSequences.from_arrays(arrays)


@pytest.mark.parametrize("grouping", ["pools", "buckets", "none"])
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("pad_multiple", [1, 8])
def test_every_sequence_once_padded_with_zero_weights(grouping, shuffle, pad_multiple):
    lengths = _lengths()
    features, targets = _sequences(lengths)
    dataset = make_sequence_dataset(
        features,
        6,
        step_targets=targets,
        shuffle=shuffle,
        grouping=grouping,
        pool_batches=2,
        bucket_width=8,
        pad_multiple=pad_multiple,
    )
    batches = _collect(dataset)
    assert len(batches) == int(dataset.cardinality())
    seen = []
    for x, y, weights in batches:
        assert x.shape[1] % pad_multiple == 0
        assert x.dtype == np.float32 and weights.shape == x.shape[:2]
        for row in range(len(x)):
            index = int(x[row, 0, 0]) - 1
            n = lengths[index]
            seen.append(index)
            np.testing.assert_array_equal(x[row, :n], features[index])
            np.testing.assert_array_equal(y[row, :n], targets[index])
            assert not x[row, n:].any() and not y[row, n:].any()
            np.testing.assert_array_equal(weights[row], np.arange(x.shape[1]) < n)
    assert sorted(seen) == list(range(len(lengths)))


@pytest.mark.parametrize("bucket_width", [4, 16])
def test_bucketed_batches_hold_similar_lengths(bucket_width):
    lengths = _lengths(n=80, high=100)
    features, targets = _sequences(lengths)
    dataset = make_sequence_dataset(
        features,
        8,
        step_targets=targets,
        shuffle=True,
        grouping="buckets",
        bucket_width=bucket_width,
    )
    bounds = [0, *bucket_boundaries(int(lengths.max()), bucket_width), np.inf]
    for x, _, weights in _collect(dataset):
        batch_lengths = weights.sum(axis=1)
        bucket = np.searchsorted(bounds, batch_lengths, side="right")
        assert len(set(bucket)) == 1, batch_lengths
        assert x.shape[1] == batch_lengths.max()


def test_pools_hold_neighbours_in_length_in_full_batches():
    lengths = _lengths(n=100, high=500)
    features, _ = _sequences(lengths)
    dataset = make_sequence_dataset(features, 8, shuffle=True, grouping="pools", pool_batches=4)
    batches = _collect(dataset)
    assert len(batches) == int(dataset.cardinality()) == 13
    assert sorted(len(x) for (x,) in batches)[1:] == [8] * 12  # one partial batch
    longest = []
    for (x,) in batches:
        indices = x[:, 0, 0].astype(int) - 1
        assert np.all(np.diff(lengths[indices]) >= 0)  # a slice of a length-sorted pool
        longest.append(lengths[indices].max())
    assert longest != sorted(longest)  # batches are shuffled, not short ones first


def test_length_grouping_reduces_padding_and_sequential_steps():
    lengths = np.exp(np.random.default_rng(1).uniform(np.log(10), np.log(1000), 200)).astype(int)
    features, targets = _sequences(lengths)

    def padding(grouping):
        dataset = make_sequence_dataset(
            features, 16, step_targets=targets, shuffle=True, grouping=grouping
        )
        return count_padding(dataset)

    plain, bucketed, pooled = padding("none"), padding("buckets"), padding("pools")
    assert plain.real_steps == bucketed.real_steps == pooled.real_steps == lengths.sum()
    assert plain.fraction > 0.5
    # Buckets bound the length spread of a batch; pools fill every batch, so the
    # rare long sequences share batches with shorter ones: a little more padding.
    assert bucketed.fraction < 0.1 and pooled.fraction < 0.2
    assert bucketed.total_steps < plain.total_steps / 2
    assert pooled.num_batches == plain.num_batches == 13
    assert pooled.sequential_steps < min(plain.sequential_steps, bucketed.sequential_steps)


def test_count_padding_by_hand():
    features, _ = _sequences([1, 3, 2])
    dataset = make_sequence_dataset(features, 2, grouping="none")  # [1, 3] then [2]
    count = count_padding(dataset)
    assert (count.real_steps, count.padded_steps, count.num_batches) == (6, 2, 2)
    assert count.sequential_steps == 3 + 2
    assert count.fraction == pytest.approx(2 / 8)


def test_shuffle_gives_new_batches_every_pass_and_keeps_every_sequence():
    features, targets = _sequences(_lengths(n=60, high=20))
    dataset = make_sequence_dataset(features, 4, step_targets=targets, shuffle=True, seed=3)

    def order(batches):
        return [int(i) for x, _, _ in batches for i in x[:, 0, 0]]

    first, second = order(_collect(dataset)), order(_collect(dataset))
    assert first != second
    assert sorted(first) == sorted(second) == list(range(1, 61))
    again = make_sequence_dataset(features, 4, step_targets=targets, shuffle=True, seed=3)
    assert order(_collect(again)) == first
    fixed = make_sequence_dataset(features, 4, step_targets=targets, shuffle=False)
    assert order(_collect(fixed)) == order(_collect(fixed))


def test_sequence_targets_and_features_only():
    lengths = _lengths(n=10)
    features, _ = _sequences(lengths)
    labels = np.arange(10) * 2.0
    for x, y in _collect(make_sequence_dataset(features, 3, sequence_targets=labels)):
        np.testing.assert_array_equal(y, (x[:, 0, 0] - 1) * 2)
        assert y.dtype == np.float32
    for (x,) in _collect(make_sequence_dataset(features, 3)):
        assert x.ndim == 3


def test_batch_length_limit_bounds_batch_steps():
    lengths = _lengths(n=100, high=200)
    features, _ = _sequences(lengths)
    dataset = make_sequence_dataset(
        features, 16, grouping="buckets", bucket_width=10, batch_length_limit=30
    )
    for (x,) in _collect(dataset):
        assert len(x) == 1 or x.shape[0] * x.shape[1] <= 16 * 30


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"batch_size": 0}, "batch_size=0"),
        ({"bucket_width": -1}, "bucket_width=-1"),
        ({"pad_multiple": 2.0}, "pad_multiple=2.0"),
        ({"grouping": "sorted"}, "grouping='sorted'"),
        ({"batch_length_limit": 10}, "needs grouping='buckets'"),
        ({"step_targets": "same", "sequence_targets": np.zeros(3)}, "not both"),
        ({"step_targets": [np.zeros((2, 1))] * 3}, "sequence 0 has 2 targets for 4 frames"),
        ({"step_targets": [np.zeros((4, 1))] * 2}, r"sequence \(3\). Received: 2 target"),
        ({"sequence_targets": np.zeros(2)}, "Received: 2 sequence targets"),
    ],
)
def test_dataset_argument_errors(kwargs, match):
    features, targets = _sequences([4, 5, 6])
    kwargs = {"batch_size": 2, **kwargs}
    if kwargs.get("step_targets") == "same":
        kwargs["step_targets"] = targets
    with pytest.raises(ValueError, match=match):
        make_sequence_dataset(features, **kwargs)


def test_all_zero_frame_is_rejected_with_its_position():
    features, _ = _sequences([4, 5])
    features[1][3] = 0.0
    with pytest.raises(ValueError, match="Sequence 1 has an all-zero frame at step 3"):
        make_sequence_dataset(features, 2)
    with pytest.raises(ValueError, match="sequence 0 is empty"):
        make_sequence_dataset([np.zeros((0, 3))], 2)


def test_pad_sequences_and_length_sorted_batches():
    padded, lengths = pad_sequences([np.ones((3, 2)), np.ones((5, 2))], multiple=4)
    assert padded.shape == (2, 8, 2)
    np.testing.assert_array_equal(lengths, [3, 5])
    assert padded[0, 3:].sum() == 0 and padded[1, :5].all()


def _per_step_sum_model():
    frames = keras.Input((None, NUM_FEATURES))
    out = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")(frames)
    return keras.Model(frames, out)


def test_predict_sequences_returns_input_order_trimmed():
    lengths = [7, 1, 30, 12, 3]
    features, _ = _sequences(lengths)
    predictions = predict_sequences(_per_step_sum_model(), features, batch_size=2)
    assert len(predictions) == len(lengths)
    for prediction, frames in zip(predictions, features, strict=True):
        np.testing.assert_allclose(prediction, frames.sum(axis=1, keepdims=True), rtol=1e-6)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_predict_sequences_is_independent_of_batching(cell):
    """A sequence gets the same prediction alone and among longer (padded) ones."""
    frames = keras.Input((None, NUM_FEATURES))
    encoded = Encoder(cell, 5, source_input="features", num_features=NUM_FEATURES)(frames)
    model = keras.Model(frames, keras.layers.Dense(2)(encoded.outputs))
    rng = np.random.default_rng(0)
    features = [rng.normal(size=(n, NUM_FEATURES)).astype(np.float32) for n in (5, 17, 2, 9)]
    together = predict_sequences(model, features, batch_size=4)
    alone = [predict_sequences(model, [f], pad_multiple=1)[0] for f in features]
    for a, b, f in zip(together, alone, features, strict=True):
        assert a.shape == (len(f), 2)
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_predict_sequences_per_sequence_outputs_and_errors():
    frames = keras.Input((None, NUM_FEATURES))
    encoded = Encoder("gru", 4, source_input="features", num_features=NUM_FEATURES)(frames)
    last_state = keras.Model(frames, encoded.states[0][0][0])  # [batch, units]
    features, _ = _sequences([4, 9, 2])
    results = predict_sequences(last_state, features, batch_size=2, per_step=False)
    assert [r.shape for r in results] == [(4,)] * 3
    with pytest.raises(ValueError, match=r"Expected per-step outputs.*Received: outputs of shape"):
        predict_sequences(last_state, features, batch_size=2)


def test_step_mean_error_is_the_mean_over_real_steps_whatever_the_padding():
    y_true = np.array([[1.0, 2.0, 0.0, 0.0], [3.0, 0.0, 0.0, 0.0]], np.float32)[..., None]
    y_pred = np.array([[2.0, 4.0, 9.0, 9.0], [0.0, 9.0, 9.0, 9.0]], np.float32)[..., None]
    weights = np.array([[1, 1, 0, 0], [1, 0, 0, 0]], np.float32)
    metric = StepMeanError()
    metric.update_state(y_true, y_pred, weights)
    assert float(metric.result()) == pytest.approx((1 + 2 + 3) / 3)
    # The same steps in two batches of other padded lengths give the same mean.
    split = StepMeanError()
    split.update_state(y_true[:1, :2], y_pred[:1, :2], weights[:1, :2])
    split.update_state(y_true[1:], y_pred[1:], weights[1:])
    assert float(split.result()) == pytest.approx(float(metric.result()))
    keras_mae = keras.metrics.MeanAbsoluteError()
    keras_mae.update_state(y_true[:1, :2], y_pred[:1, :2], weights[:1, :2])
    keras_mae.update_state(y_true[1:], y_pred[1:], weights[1:])
    assert float(keras_mae.result()) != pytest.approx(2.0)  # why StepMeanError exists

    squared = StepMeanError("squared")
    squared.update_state(y_true, y_pred, weights)
    assert squared.name == "mse"
    assert float(squared.result()) == pytest.approx((1 + 4 + 9) / 3)


def test_step_mean_error_config_and_bad_error():
    metric = StepMeanError("squared", name="step_mse")
    clone = StepMeanError.from_config(metric.get_config())
    assert (clone.error, clone.name) == ("squared", "step_mse")
    with pytest.raises(ValueError, match="error='cubic'"):
        StepMeanError("cubic")
