"""The numeric forecaster: teacher forcing, the autoregressive loop, saving, and its helpers."""

import keras
import numpy as np
import pytest

from seq2seq.forecasting import (
    Forecaster,
    ForecastModel,
    NumericDecoder,
    last_observed,
    last_value_forecast,
    sliding_windows,
    teacher_forcing_inputs,
)

NUM_FEATURES = 5
TARGET = 2
HORIZON = 4
# Every cell, depth, direction and residual setting appears, in few models (eager RNNs are slow).
CASES = [
    ("lstm", 2, True, True),
    ("gru", 1, False, True),
    ("simple_rnn", 1, True, False),
    ("gru", 2, False, False),
]


def _past(batch=3, time=7, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, time, NUM_FEATURES)).astype("float32")


def _forecaster(cell="gru", layers=1, bidirectional=False, residual=True, units=6):
    model = Forecaster(
        NUM_FEATURES,
        target_index=TARGET,
        horizon=HORIZON,
        cell=cell,
        units=units,
        num_layers=layers,
        bidirectional=bidirectional,
        residual=residual,
    )
    model.build()
    return model


@pytest.mark.parametrize("cell,layers,bidirectional,residual", CASES)
def test_shapes_of_teacher_forced_call_and_forecast(cell, layers, bidirectional, residual):
    model = _forecaster(cell, layers, bidirectional, residual)
    past = _past()
    outputs = model({"past": past, "decoder_input": np.zeros((3, 6), "float32")})
    assert outputs.shape == (3, 6) and outputs.dtype == "float32"
    assert model.forecast(past).shape == (3, HORIZON)
    assert model.forecast(past, horizon=2).shape == (3, 2)
    assert model.decoder.units == 6 * (2 if bidirectional else 1)


@pytest.mark.parametrize("cell,layers,bidirectional,residual", CASES)
def test_step_loop_agrees_with_teacher_forcing_on_its_own_outputs(
    cell, layers, bidirectional, residual
):
    """Fed the loop's own predictions as the previous values, the teacher-forced pass gives them back."""
    model = _forecaster(cell, layers, bidirectional, residual)
    past = _past()
    forecast = keras.ops.convert_to_numpy(model.forecast(past, horizon=6))
    decoder_input = teacher_forcing_inputs(past, forecast, TARGET)
    forced = keras.ops.convert_to_numpy(model({"past": past, "decoder_input": decoder_input}))
    np.testing.assert_allclose(forced, forecast, atol=1e-5)


def test_compiled_forecast_model_equals_eager_loop():
    model = _forecaster("lstm", 2, True)
    past = _past(batch=5)
    eager = keras.ops.convert_to_numpy(model.forecast(past, horizon=3))
    compiled = ForecastModel(model, horizon=3).predict_on_batch(past)
    np.testing.assert_allclose(compiled, eager, atol=1e-5)


def test_residual_decoder_with_zero_projection_repeats_last_value():
    """Golden: a zero projection makes each step repeat its input, the naive forecast."""
    model = _forecaster("gru")
    projection = model.decoder.projection
    projection.set_weights([np.zeros_like(w) for w in projection.get_weights()])
    past = _past()
    forecast = keras.ops.convert_to_numpy(model.forecast(past))
    np.testing.assert_array_equal(forecast, np.repeat(past[:, -1:, TARGET], HORIZON, axis=1))
    np.testing.assert_array_equal(forecast, last_value_forecast(past, HORIZON, TARGET))


def test_trailing_padding_changes_nothing():
    model = _forecaster("lstm", 2)
    past = _past(batch=2, time=5)
    padded = np.concatenate([past, np.zeros((2, 3, NUM_FEATURES), "float32")], axis=1)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model.forecast(padded)),
        keras.ops.convert_to_numpy(model.forecast(past)),
        atol=1e-6,
    )


def test_last_observed_and_teacher_forcing_inputs_by_hand():
    past = np.zeros((2, 3, 2), "float32")
    past[0, :, 1] = [1.0, 2.0, 3.0]
    past[1, :2, 1] = [5.0, 6.0]  # last frame is padding
    past[:, :, 0] = [[1, 1, 1], [1, 1, 0]]
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(last_observed(past, 1)), [3.0, 6.0])
    future = np.array([[10.0, 11.0, 12.0], [20.0, 21.0, 22.0]], "float32")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(teacher_forcing_inputs(past, future, 1)),
        [[3.0, 10.0, 11.0], [6.0, 20.0, 21.0]],
    )


def test_sliding_windows_by_hand():
    series = np.arange(20, dtype="float32").reshape(10, 2)  # row t = [2t, 2t + 1]
    past, future = sliding_windows(series, past_length=3, horizon=2, target_index=1, stride=2)
    assert past.shape == (3, 3, 2) and future.shape == (3, 2)
    np.testing.assert_array_equal(past[1], series[2:5])
    np.testing.assert_array_equal(future[1], series[5:7, 1])
    np.testing.assert_array_equal(future[2], [15.0, 17.0])  # rows 7 and 8


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"past_length": 0}, "past_length=0"),
        ({"target_index": 2}, r"target_index=2"),
        ({"horizon": 8}, "too short"),
    ],
)
def test_sliding_windows_errors(kwargs, match):
    arguments = {"past_length": 3, "horizon": 2, "target_index": 0, **kwargs}
    with pytest.raises(ValueError, match=match):
        sliding_windows(np.ones((10, 2)), **arguments)


def test_save_and_load_keras_format_in_safe_mode(tmp_path):
    model = _forecaster("lstm", 2, bidirectional=True, units=4)
    past = _past()
    decoder_input = teacher_forcing_inputs(past, np.ones((3, HORIZON), "float32"), TARGET)
    path = tmp_path / "forecaster.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    assert isinstance(loaded, Forecaster) and isinstance(loaded.decoder, NumericDecoder)
    assert loaded.get_config() == model.get_config()
    for a, b in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    inputs = {"past": past, "decoder_input": decoder_input}
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(inputs)), keras.ops.convert_to_numpy(model(inputs))
    )
    np.testing.assert_allclose(
        ForecastModel(loaded).predict(past, verbose=0),
        ForecastModel(model).predict(past, verbose=0),
    )


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"num_features": 0}, "num_features=0"),
        ({"target_index": 5}, r"`target_index` in \[0, 5\).*target_index=5"),
        ({"target_index": -1}, "target_index=-1"),
        ({"horizon": 0}, "horizon=0"),
        ({"cell": "rnn"}, "cell='rnn'"),
        ({"units": -3}, "units=-3"),
        ({"num_layers": 1.5}, "num_layers=1.5"),
    ],
)
def test_constructor_errors_quote_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Forecaster(**{"num_features": NUM_FEATURES, **kwargs})


def test_call_errors_quote_bad_values():
    model = _forecaster()
    with pytest.raises(ValueError, match=r"\[batch, past_time, 5\].*shape \(3, 7, 4\)"):
        model.forecast(np.ones((3, 7, 4), "float32"))
    with pytest.raises(ValueError, match="horizon=0"):
        model.forecast(_past(), horizon=0)
    with pytest.raises(ValueError, match="Expected a `Forecaster`"):
        ForecastModel(keras.Sequential())
