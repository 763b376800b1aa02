"""The bridge: encoder final states -> decoder initial states."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="seq2seq")
class ConcatBridge(keras.layers.Layer):
    """Passes each encoder layer's final states to the decoder layer of the same depth.

    A unidirectional encoder layer's ``(h, c)`` (LSTM) or ``(h,)`` (GRU,
    SimpleRNN) becomes the decoder layer's initial state unchanged. For a
    bidirectional encoder layer, forward and backward states are concatenated
    component by component: ``h = [h_fw; h_bw]``, ``c = [c_fw; c_bw]``, so the
    decoder has twice the encoder's units. No weights.

    Call arguments:
        states: ``EncoderOutput.states``: per layer, per direction, a tuple of
            tensors [batch, units].

    Returns:
        per layer, a tuple of tensors [batch, units * num_directions].
    """

    def call(self, states):
        decoder_states = []
        for directions in states:
            if len(directions) == 1:
                decoder_states.append(tuple(directions[0]))
            else:
                decoder_states.append(
                    tuple(
                        ops.concatenate(parts, axis=-1) for parts in zip(*directions, strict=True)
                    )
                )
        return tuple(decoder_states)
