"""The recurrent building blocks shared by encoder and decoder, and the state contract.

State contract (one structure for every cell type):

- ``LayerState``: a tuple of tensors [batch, units] for one layer and one
  direction: ``(h, c)`` for LSTM, ``(h,)`` for GRU and SimpleRNN.
- ``EncoderOutput.states``: per encoder layer, a tuple of directions, each a
  ``LayerState``: ``((h, c),)`` for a unidirectional LSTM layer,
  ``((h_fw, c_fw), (h_bw, c_bw))`` for a bidirectional one.
- Decoder states: per decoder layer, one ``LayerState``.

Code never unpacks ``[output, h, c]`` lists by position outside this module.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import keras

RNN_LAYERS = {
    "lstm": keras.layers.LSTM,
    "gru": keras.layers.GRU,
    "simple_rnn": keras.layers.SimpleRNN,
}

STATES_PER_CELL = {"lstm": 2, "gru": 1, "simple_rnn": 1}


class EncoderOutput(NamedTuple):
    """What an encoder returns.

    Attributes:
        outputs: float tensor [batch, src_time, units * num_directions], top layer.
        states: per layer, per direction, a ``LayerState`` (see module docstring).
        mask: bool tensor [batch, src_time], True on real (non-padding) steps.
    """

    outputs: Any
    states: tuple
    mask: Any


def state_count(cell: str) -> int:
    """Returns how many state tensors one layer of ``cell`` carries (LSTM 2, others 1)."""
    if cell not in STATES_PER_CELL:
        raise ValueError(f"Expected one of {list(STATES_PER_CELL)} for `cell`. Received: {cell!r}")
    return STATES_PER_CELL[cell]


def make_rnn(
    cell: str,
    units: int,
    *,
    dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    name: str,
) -> keras.layers.Layer:
    """Returns a recurrent layer returning its full sequence and its final states."""
    return RNN_LAYERS[cell](
        units,
        return_sequences=True,
        return_state=True,
        dropout=dropout,
        recurrent_dropout=recurrent_dropout,
        name=name,
    )


def split_rnn_result(result, cell: str, bidirectional: bool) -> tuple[Any, tuple]:
    """Splits a ``return_state`` result into outputs and per-direction ``LayerState``s.

    Args:
        result: the list a recurrent layer returns with ``return_state=True``:
            ``[outputs, *states]``, the forward states before the backward ones.
        cell: "lstm", "gru" or "simple_rnn".
        bidirectional: whether ``result`` comes from a ``Bidirectional`` wrapper.

    Returns:
        ``(outputs, directions)``, directions a tuple of one or two ``LayerState``.
    """
    outputs, states = result[0], tuple(result[1:])
    n = state_count(cell)
    expected = n * (2 if bidirectional else 1)
    if len(states) != expected:
        raise ValueError(
            f"A {'bidirectional ' if bidirectional else ''}{cell} layer should return "
            f"{expected} state tensors. Received: {len(states)}"
        )
    if bidirectional:
        return outputs, (states[:n], states[n:])
    return outputs, (states,)


def as_layer_state(states) -> tuple:
    """Normalises what an RNN cell returns as its new state into a ``LayerState`` tuple."""
    if isinstance(states, list | tuple):
        return tuple(states)
    return (states,)
