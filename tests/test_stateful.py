"""Stateful runs: stream layout, state resets, batch-size checks, batch-size copies."""

import keras
import numpy as np
import pytest

from seq2seq.stateful import (
    BACKENDS_WITHOUT_COMPILED_STATES,
    ResetStatesCallback,
    check_stateful_run,
    fit_stateful,
    predict_stateful,
    reset_recurrent_states,
    stateful_batch_size,
    stateful_layers,
    stream_windows,
    unstream_windows,
    with_batch_size,
)

WINDOW = 4
FEATURES = 2

# Runs through fit/predict need a backend whose compiled steps carry the states.
carries_states = pytest.mark.skipif(
    keras.backend.backend() in BACKENDS_WITHOUT_COMPILED_STATES,
    reason="this backend's compiled steps do not update stateful RNN states",
)


def _model(batch_size=3, stateful=True, cell=keras.layers.GRU, bidirectional=False, window=WINDOW):
    rnn = cell(5, return_sequences=True, stateful=stateful)
    if bidirectional:
        rnn = keras.layers.Bidirectional(rnn)
    model = keras.Sequential(
        [
            keras.Input(batch_shape=(batch_size if stateful else None, window, FEATURES)),
            rnn,
            keras.layers.GRU(4, return_sequences=True, stateful=stateful),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer="adam", loss="mse")
    return model


def _state_norm(model):
    return sum(
        float(np.abs(keras.ops.convert_to_numpy(s)).sum())
        for layer in stateful_layers(model)
        for s in layer.states
    )


def _windows(num_batches, batch_size=3, seed=0):
    x = np.random.default_rng(seed).normal(size=(num_batches * batch_size, WINDOW, FEATURES))
    return x.astype("float32"), np.zeros((num_batches * batch_size, WINDOW, 1), "float32")


@pytest.mark.parametrize("batch_size, window", [(1, 5), (3, 2), (4, 5)])
@pytest.mark.parametrize("feature_shape", [(), (2,)])
def test_row_i_of_batch_k_plus_1_continues_row_i_of_batch_k(batch_size, window, feature_shape):
    num_batches = 3
    steps = batch_size * window * num_batches
    stream = np.arange(steps * int(np.prod(feature_shape))).reshape(steps, *feature_shape)
    windows = stream_windows(stream, batch_size, window)
    assert windows.shape == (num_batches * batch_size, window, *feature_shape)
    for k in range(num_batches - 1):
        for i in range(batch_size):
            this, following = windows[k * batch_size + i], windows[(k + 1) * batch_size + i]
            # The next window of a row starts right after the previous one ends.
            np.testing.assert_array_equal(
                np.concatenate([this, following]),
                stream[
                    i * num_batches * window + k * window : i * num_batches * window
                    + (k + 2) * window
                ],
            )
    np.testing.assert_array_equal(unstream_windows(windows, batch_size), stream)


def test_drop_remainder_drops_the_tail_only():
    windows = stream_windows(np.arange(25), batch_size=2, window=3, drop_remainder=True)
    np.testing.assert_array_equal(unstream_windows(windows, 2), np.arange(24))


@pytest.mark.parametrize(
    "steps, batch_size, window, match",
    [
        (1001, 32, 10, r"1001 is not a multiple of 320\. Trim it to 960 steps"),
        (5, 2, 3, r"5 steps is shorter than one batch of batch_size \* window = 2 \* 3 = 6"),
        (10, 0, 2, r"`batch_size`. Received: batch_size=0"),
        (10, 2, 1.5, r"`window`. Received: window=1.5"),
    ],
)
def test_stream_windows_refuses_a_bad_layout(steps, batch_size, window, match):
    with pytest.raises(ValueError, match=match):
        stream_windows(np.zeros(steps), batch_size, window)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", [keras.layers.GRU, keras.layers.LSTM, keras.layers.SimpleRNN])
def test_reset_recurrent_states_zeroes_every_stateful_layer(cell, bidirectional):
    model = _model(cell=cell, bidirectional=bidirectional)
    x, _ = _windows(1)
    model(x)  # an eager call updates the states on every backend
    assert _state_norm(model) > 0
    assert reset_recurrent_states(model) == (3 if bidirectional else 2)
    assert _state_norm(model) == 0


def test_stateful_batch_size_and_missing_states_are_reported():
    assert stateful_batch_size(_model(batch_size=3)) == 3
    unbuilt = keras.Sequential([keras.layers.GRU(2, stateful=True)])
    with pytest.raises(ValueError, match="is not built yet: give the model a fixed batch size"):
        stateful_batch_size(unbuilt)
    with pytest.raises(ValueError, match="has no stateful recurrent layer"):
        stateful_batch_size(_model(stateful=False))
    with pytest.raises(ValueError, match="has no stateful recurrent layer"):
        reset_recurrent_states(_model(stateful=False))


@carries_states
@pytest.mark.parametrize(
    "num_windows, batch_size, shuffle, match",
    [
        (6, 3, True, r"Expected shuffle=False .* Received: shuffle=True"),
        (6, 2, False, r"states for batch_size=3, .* Received: batch_size=2\. .*with_batch_size"),
        (7, 3, False, r"7 windows do not fill whole batches .* the last batch would have 1 rows"),
    ],
)
def test_check_stateful_run_refuses_what_breaks_the_stream(num_windows, batch_size, shuffle, match):
    with pytest.raises(ValueError, match=match):
        check_stateful_run(_model(batch_size=3), num_windows, batch_size, shuffle)


@carries_states
def test_fit_and_predict_refuse_bad_runs_before_keras_sees_them():
    model = _model(batch_size=3)
    x, y = _windows(2)
    with pytest.raises(ValueError, match="Received: shuffle=True"):
        fit_stateful(model, x, y, batch_size=3, shuffle=True)
    with pytest.raises(ValueError, match="Received: validation_split=0.5"):
        fit_stateful(model, x, y, batch_size=3, validation_split=0.5)
    with pytest.raises(ValueError, match="5 windows do not fill"):
        fit_stateful(model, x, y, batch_size=3, validation_data=(x[:5], y[:5]))
    with pytest.raises(ValueError, match="Received: batch_size=6"):
        predict_stateful(model, x, batch_size=6)


class _StateProbe(keras.callbacks.Callback):
    """Records the states' total magnitude at epoch/evaluation starts and epoch ends."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_epoch_begin(self, epoch, logs=None):
        self.seen.append(("epoch_begin", _state_norm(self.model)))

    def on_test_begin(self, logs=None):
        self.seen.append(("test_begin", _state_norm(self.model)))

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append(("epoch_end", _state_norm(self.model)))


@carries_states
def test_states_are_reset_every_epoch_and_before_validation():
    model = _model(batch_size=3)
    x, y = _windows(2)
    probe = _StateProbe()
    fit_stateful(
        model, x, y, batch_size=3, epochs=2, validation_data=(x, y), callbacks=[probe], verbose=0
    )
    kinds = [kind for kind, _ in probe.seen]
    assert kinds == ["epoch_begin", "test_begin", "epoch_end"] * 2
    assert all(norm == 0 for kind, norm in probe.seen if kind != "epoch_end")
    assert all(norm > 0 for kind, norm in probe.seen if kind == "epoch_end")


@carries_states
def test_callback_counts_its_resets_and_predict_starts_from_zero():
    model = _model(batch_size=3)
    x, _ = _windows(2)
    first = predict_stateful(model, x, batch_size=3)
    second = predict_stateful(model, x, batch_size=3)  # the states left by `first` are reset
    np.testing.assert_allclose(first, second, atol=1e-6)
    callback = ResetStatesCallback()
    model.predict(x, batch_size=3, callbacks=[callback], verbose=0)
    assert callback.resets == 1


@carries_states
def test_consecutive_windows_equal_one_pass_over_the_whole_stream():
    # A stateful model reading the laid-out windows gives, on every step, the
    # output of the same weights reading each sub-stream in one piece.
    batch_size, num_batches = 3, 4
    stream = np.random.default_rng(1).normal(size=(batch_size * num_batches * WINDOW, FEATURES))
    stateful = _model(batch_size=batch_size)
    outputs = predict_stateful(stateful, stream_windows(stream, batch_size, WINDOW), batch_size)
    whole = _model(stateful=False, window=num_batches * WINDOW)
    whole.set_weights(stateful.get_weights())
    rows = stream.reshape(batch_size, num_batches * WINDOW, FEATURES)
    expected = keras.ops.convert_to_numpy(whole(rows)).reshape(-1, 1)
    np.testing.assert_allclose(unstream_windows(outputs, batch_size), expected, atol=1e-5)


@carries_states
def test_with_batch_size_copies_weights_into_fresh_states():
    model = _model(batch_size=3)
    x, _ = _windows(2)
    outputs = predict_stateful(model, x, batch_size=3)
    single = with_batch_size(model, 1)
    assert stateful_batch_size(single) == 1
    assert _state_norm(single) == 0
    # Row 0 of each batch, fed one window at a time, continues its own stream.
    row0 = [single.predict_on_batch(x[k * 3][None]) for k in range(2)]
    np.testing.assert_allclose(np.concatenate(row0), outputs[::3], atol=1e-5)


def test_with_batch_size_refuses_a_subclassed_model():
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.rnn = keras.layers.GRU(2, stateful=True)

        def call(self, x):
            return self.rnn(x)

    model = Subclassed()
    model(np.zeros((2, WINDOW, FEATURES), "float32"))
    assert stateful_batch_size(model) == 2  # nested layers are found
    with pytest.raises(ValueError, match="Received: Subclassed"):
        with_batch_size(model, 1)


def test_a_backend_that_drops_states_is_refused(monkeypatch):
    model = _model(batch_size=3)
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(ValueError, match="on the jax backend .* would silently be stateless"):
        check_stateful_run(model, 6, 3)
