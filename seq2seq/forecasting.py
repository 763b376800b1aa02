"""Numeric sequence-to-sequence forecasting: past frames -> the next values of one feature.

The same encoder-decoder as ``Seq2Seq``, with numbers instead of tokens:

- the ``Encoder`` (``source_input="features"``) reads the past window
  [batch, past_time, num_features] and its final states pass through the
  ``ConcatBridge``;
- the ``NumericDecoder`` starts from those states and reads, at each step,
  the previous value of the target feature; it outputs the next value.

In training the decoder reads the true previous values (teacher forcing,
``Forecaster.call`` with ``teacher_forcing_inputs``); at inference it reads its
own predictions (``Forecaster.forecast``, one ``keras.ops.fori_loop``; run it
compiled through ``ForecastModel``). The first value the decoder reads is the
last observed value of the target feature in the past window.

Model code uses ``keras.ops`` only, so it runs on every Keras backend.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from seq2seq.config import check_positive_ints
from seq2seq.decoding import write_column
from seq2seq.layers import ConcatBridge, Encoder
from seq2seq.layers.inputs import feature_mask
from seq2seq.layers.recurrent import RNN_LAYERS, as_layer_state, make_rnn
from seq2seq.model import BRIDGE_NAME, DECODER_NAME, ENCODER_NAME


def last_observed(past, target_index: int):
    """Returns the target feature at the last real frame of each past window.

    Windows may end in padding (all-zero frames, as the ``Encoder`` masks):
    the value is taken at the last frame that is not all zero.

    Args:
        past: float [batch, past_time, num_features].
        target_index: which feature is forecast.

    Returns:
        float [batch].
    """
    lengths = ops.sum(ops.cast(feature_mask(past), "int32"), axis=1)
    last = ops.maximum(lengths - 1, 0)
    target = past[:, :, target_index]
    return ops.take_along_axis(target, ops.expand_dims(last, 1), axis=1)[:, 0]


def teacher_forcing_inputs(past, future, target_index: int):
    """Returns the decoder inputs for training: the true values shifted right by one step.

    Step 0 reads the last observed value of the past window, step ``t`` the
    true value of step ``t - 1``.

    Args:
        past: float [batch, past_time, num_features].
        future: float [batch, horizon], the values to forecast.
        target_index: which feature of ``past`` is forecast.

    Returns:
        float [batch, horizon].
    """
    future = ops.cast(future, "float32")
    start = ops.cast(last_observed(past, target_index), "float32")
    return ops.concatenate([ops.expand_dims(start, 1), future[:, :-1]], axis=1)


def sliding_windows(
    series: np.ndarray, past_length: int, horizon: int, target_index: int, stride: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Cuts a multivariate series into (past window, next values of one feature) pairs.

    Args:
        series: float [time, num_features].
        past_length: Positive integer, frames per past window.
        horizon: Positive integer, values to forecast after each window.
        target_index: which feature is forecast.
        stride: Positive integer, steps between window starts.

    Returns:
        ``(past, future)``: past float32 [windows, past_length, num_features],
        future float32 [windows, horizon].

    Raises:
        ValueError: for bad arguments, or a series too short for one window.
    """
    check_positive_ints(past_length=past_length, horizon=horizon, stride=stride)
    series = np.asarray(series, dtype=np.float32)
    if series.ndim != 2:
        raise ValueError(
            f"Expected a series of shape [time, num_features]. Received: shape {series.shape}"
        )
    _check_target_index(target_index, series.shape[1])
    count = (len(series) - past_length - horizon) // stride + 1
    if count < 1:
        raise ValueError(
            f"A series of {len(series)} steps is too short for one window of "
            f"past_length={past_length} + horizon={horizon}."
        )
    starts = np.arange(count) * stride
    past = series[starts[:, None] + np.arange(past_length)[None, :]]
    future = series[starts[:, None] + past_length + np.arange(horizon)[None, :], target_index]
    return past, future


def last_value_forecast(past: np.ndarray, horizon: int, target_index: int) -> np.ndarray:
    """The naive baseline: every future value equals the last observed one.

    Returns:
        float32 [batch, horizon].
    """
    start = ops.convert_to_numpy(
        last_observed(ops.convert_to_tensor(past, "float32"), target_index)
    )
    return np.repeat(start[:, None], horizon, axis=1).astype(np.float32)


@keras.saving.register_keras_serializable(package="seq2seq")
class NumericDecoder(keras.layers.Layer):
    """Recurrent decoder of real values: previous value in, next value out.

    Args:
        cell: "lstm", "gru" or "simple_rnn".
        units: Positive integer, state size of each layer.
        num_layers: Positive integer, number of stacked layers.
        dropout: Input dropout rate of each recurrent layer.
        recurrent_dropout: Recurrent-state dropout rate of each recurrent layer.
        residual: predict the change from the previous value (the output is
            previous value + projection): with a zero projection the decoder
            repeats its input, the naive forecast, and training learns the
            correction.

    Call arguments:
        inputs: float [batch, time], the previous value at each step.
        initial_states: per layer, a tuple of tensors [batch, units].
        training: Python bool, enables dropout.

    Returns:
        float32 [batch, time], the next value at each step.
    """

    def __init__(
        self,
        cell: str = "lstm",
        units: int = 64,
        num_layers: int = 1,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        residual: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_cell(cell)
        check_positive_ints(units=units, num_layers=num_layers)
        self.cell = cell
        self.units = units
        self.num_layers = num_layers
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.residual = residual
        self.rnn_layers = [
            make_rnn(
                cell,
                units,
                dropout=dropout,
                recurrent_dropout=recurrent_dropout,
                name=f"{cell}_{i}",
            )
            for i in range(num_layers)
        ]
        # Values stay float32 whatever the compute policy.
        self.projection = keras.layers.Dense(1, dtype="float32", name="output_projection")

    def _output(self, x, previous):
        """Projects top-layer outputs [..., units] to values [...], adding ``previous`` if residual."""
        values = self.projection(x)[..., 0]
        if self.residual:
            values = values + ops.cast(previous, "float32")
        return values

    def call(self, inputs, initial_states, training=None):
        x = ops.expand_dims(ops.cast(inputs, self.compute_dtype), -1)  # [batch, time, 1]
        for rnn, state in zip(self.rnn_layers, initial_states, strict=True):
            x = rnn(x, initial_state=list(state), training=training)[0]
        return self._output(x, inputs)

    def step(self, values, states, training=False):
        """Advances every layer by one step.

        Args:
            values: float [batch], the previous value (the last observed one at first).
            states: per layer, a tuple of tensors [batch, units].
            training: Python bool, enables dropout.

        Returns:
            ``(next_values, new_states)``: next_values float32 [batch] and
            states with the structure of ``states``.
        """
        x = ops.expand_dims(ops.cast(values, self.compute_dtype), -1)  # [batch, 1]
        new_states = []
        for rnn, state in zip(self.rnn_layers, states, strict=True):
            x, new_state = rnn.cell(x, list(state), training=training)
            new_states.append(as_layer_state(new_state))
        return self._output(x, values), tuple(new_states)

    def get_config(self):
        return {
            **super().get_config(),
            "cell": self.cell,
            "units": self.units,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "residual": self.residual,
        }


@keras.saving.register_keras_serializable(package="seq2seq")
class Forecaster(keras.Model):
    """Encoder-decoder forecaster: a past window of frames -> the next values of one feature.

    Args:
        num_features: Positive integer, features per frame.
        target_index: which feature is forecast (0 <= target_index < num_features).
        horizon: Positive integer, default number of values ``forecast`` returns.
        cell: "lstm", "gru" or "simple_rnn" (encoder and decoder).
        units: Positive integer, state size of each encoder layer and direction.
        num_layers: Positive integer, layers of the encoder and of the decoder.
        bidirectional: whether encoder layers read both ways (the decoder then
            has ``2 * units`` units, see ``ConcatBridge``).
        dropout: Input dropout rate of each recurrent layer.
        recurrent_dropout: Recurrent-state dropout rate of each recurrent layer.
        residual: the decoder predicts changes (see ``NumericDecoder``).

    Call arguments:
        inputs: dict with "past" float [batch, past_time, num_features] (an
            all-zero frame is padding) and "decoder_input" float [batch,
            time], the true previous values (``teacher_forcing_inputs``).
        training: Python bool, enables dropout.

    Returns:
        float32 [batch, time], the forecast of each step given the true past
        values (teacher forcing).
    """

    def __init__(
        self,
        num_features: int,
        target_index: int = 0,
        horizon: int = 24,
        cell: str = "lstm",
        units: int = 64,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        residual: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_ints(num_features=num_features)
        _check_target_index(target_index, num_features)
        check_positive_ints(horizon=horizon, units=units, num_layers=num_layers)
        _check_cell(cell)
        self.num_features = num_features
        self.target_index = target_index
        self.horizon = horizon
        self.cell = cell
        self.units = units
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.residual = residual
        self.encoder = Encoder(
            cell=cell,
            units=units,
            num_layers=num_layers,
            bidirectional=bidirectional,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            source_input="features",
            num_features=num_features,
            name=ENCODER_NAME,
        )
        self.bridge = ConcatBridge(name=BRIDGE_NAME)
        self.decoder = NumericDecoder(
            cell=cell,
            units=units * (2 if bidirectional else 1),
            num_layers=num_layers,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            residual=residual,
            name=DECODER_NAME,
        )

    def _check_past(self, past) -> None:
        shape = tuple(ops.shape(past))
        if len(shape) != 3 or (shape[-1] is not None and shape[-1] != self.num_features):
            raise ValueError(
                f"Expected `past` of shape [batch, past_time, {self.num_features}]. "
                f"Received: shape {shape}"
            )

    def call(self, inputs, training=None):
        past = inputs["past"]
        self._check_past(past)
        encoded = self.encoder(past, training=training)
        initial_states = self.bridge(encoded.states)
        return self.decoder(inputs["decoder_input"], initial_states, training=training)

    def forecast(self, past, horizon: int | None = None, training=False):
        """Forecasts autoregressively: each step reads the previous step's prediction.

        One ``keras.ops.fori_loop`` over the steps for the whole batch. Called
        on arrays it runs eagerly; ``ForecastModel(model).predict(past)`` runs
        it as one compiled graph.

        Args:
            past: float [batch, past_time, num_features].
            horizon: Positive integer, values to forecast (default: ``self.horizon``).
            training: Python bool, enables dropout.

        Returns:
            float32 [batch, horizon].
        """
        self._check_past(past)
        horizon = self.horizon if horizon is None else horizon
        check_positive_ints(horizon=horizon)
        states = self.bridge(self.encoder(past, training=training).states)
        start = ops.cast(last_observed(past, self.target_index), "float32")
        outputs = ops.zeros((ops.shape(past)[0], horizon), dtype="float32")

        def body(t, carry):
            values, states, outputs = carry
            values, states = self.decoder.step(values, states, training=training)
            return values, states, write_column(outputs, t, values)

        _, _, outputs = ops.fori_loop(0, horizon, body, (start, states, outputs))
        return outputs

    def dummy_inputs(self) -> dict[str, np.ndarray]:
        """Returns a one-example batch that builds every weight when called."""
        return {
            "past": np.ones((1, 1, self.num_features), "float32"),
            "decoder_input": np.ones((1, 1), "float32"),
        }

    def build(self, input_shape=None):
        # Running call() builds every sub-layer through its own __call__.
        self.call(self.dummy_inputs(), training=False)
        self.built = True

    def get_build_config(self):
        return {"built": True}

    def build_from_config(self, config):
        self.build()

    def get_config(self):
        return {
            **super().get_config(),
            "num_features": self.num_features,
            "target_index": self.target_index,
            "horizon": self.horizon,
            "cell": self.cell,
            "units": self.units,
            "num_layers": self.num_layers,
            "bidirectional": self.bidirectional,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "residual": self.residual,
        }


class ForecastModel(keras.Model):
    """Past windows -> autoregressive forecasts, one compiled call per batch.

    Shares the layers (and so the weights) of a trained or loaded
    ``Forecaster``; ``predict`` / ``predict_on_batch`` run encoder and step
    loop as one graph (``tf.function`` on TensorFlow, ``jit`` on JAX).

    Args:
        forecaster: a built ``Forecaster``.
        horizon: Positive integer, values to forecast (default: the forecaster's).
        jit_compile: compile with XLA on TensorFlow; JAX always compiles.

    Call arguments:
        past: float [batch, past_time, num_features].

    Returns:
        float32 [batch, horizon].
    """

    def __init__(
        self, forecaster: Forecaster, horizon: int | None = None, jit_compile=False, **kwargs
    ):
        super().__init__(**kwargs)
        if not isinstance(forecaster, Forecaster):
            raise ValueError(
                f"Expected a `Forecaster`. Received: forecaster of type {type(forecaster).__name__}"
            )
        self.forecaster = forecaster
        self.horizon = forecaster.horizon if horizon is None else horizon
        check_positive_ints(horizon=self.horizon)
        self.compile(jit_compile=jit_compile)

    def call(self, past):
        return self.forecaster.forecast(past, self.horizon)


def _check_target_index(target_index, num_features: int) -> None:
    if (
        isinstance(target_index, bool)
        or not isinstance(target_index, int | np.integer)
        or not 0 <= target_index < num_features
    ):
        raise ValueError(
            f"Expected `target_index` in [0, {num_features}) for {num_features} features. "
            f"Received: target_index={target_index!r}"
        )


def _check_cell(cell) -> None:
    if cell not in RNN_LAYERS:
        raise ValueError(f"Expected one of {list(RNN_LAYERS)} for `cell`. Received: cell={cell!r}")
