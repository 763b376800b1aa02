"""Attention over the encoder outputs: additive (Bahdanau) or multiplicative (Luong) scores.

The decoder uses attention the Luong way: its recurrent stack runs as in the
plain model, then every decoder output ``h_t`` (the query) attends over the
encoder's top-layer outputs (the memory) and is combined with the context:

    scores_ts = v . tanh(W_q h_t + W_k m_s)      (additive, Bahdanau et al. 2015)
    scores_ts = h_t . (W_k m_s)                  (multiplicative, Luong's "general")
    a_t = softmax over the real source steps s of scores_t
    c_t = sum_s a_ts m_s
    attentional_t = tanh(W_c [c_t; h_t])          -> output projection

Because the context does not feed back into the recurrence, teacher forcing
runs the recurrent stack in one pass and attends for all target steps at once;
one decoding step is the same computation for one target step. The memory's
keys ``W_k m_s`` depend on the source only, so they are computed once per
sentence (``prepare``), not once per step.

Scores and the softmax are computed in float32 whatever the compute dtype,
so the masking constant is safe under float16.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import keras
from keras import ops

ATTENTION_SCORES = ("additive", "multiplicative")
# Score given to padding steps of the memory (float32 scores only).
MASKED_SCORE = -1e9


class AttentionMemory(NamedTuple):
    """What a decoder attends over, prepared once per source batch.

    Attributes:
        values: float [batch, src_time, memory_dim], the encoder's top-layer outputs.
        keys: float [batch, src_time, key_dim], ``W_k`` applied to ``values``.
        mask: float32 [batch, src_time], 1.0 on real source steps, 0.0 on padding.
    """

    values: Any
    keys: Any
    mask: Any


@keras.saving.register_keras_serializable(package="seq2seq")
class Attention(keras.layers.Layer):
    """Attention of decoder outputs over an ``AttentionMemory``, and the attentional vector.

    Args:
        score: "additive" or "multiplicative".
        units: Positive integer, size of the query (the decoder's state size)
            and of the attentional vector it returns; also the hidden size of
            the additive score.

    Call arguments:
        query: float [batch, tgt_time, units], the decoder's top-layer outputs.
        memory: ``AttentionMemory`` from ``prepare``.

    Returns:
        ``(attentional, weights)``: attentional float [batch, tgt_time, units],
        weights float32 [batch, tgt_time, src_time] (rows sum to 1 over the
        real source steps; 0 on padding).
    """

    def __init__(self, score: str = "multiplicative", units: int = 256, **kwargs):
        super().__init__(**kwargs)
        if score not in ATTENTION_SCORES:
            raise ValueError(
                f"Expected one of {list(ATTENTION_SCORES)} for `score`. Received: score={score!r}"
            )
        if not isinstance(units, int) or units <= 0:
            raise ValueError(f"Expected a positive integer for `units`. Received: units={units!r}")
        self.score = score
        self.units = units
        self.key_projection = keras.layers.Dense(units, use_bias=False, name="key_projection")
        if score == "additive":
            self.query_projection = keras.layers.Dense(units, name="query_projection")
            self.score_vector = keras.layers.Dense(1, use_bias=False, name="score_vector")
        self.combine = keras.layers.Dense(
            units, activation="tanh", use_bias=False, name="attentional"
        )

    def prepare(self, values, mask) -> AttentionMemory:
        """Returns the ``AttentionMemory`` of encoder outputs ``values`` with bool ``mask``."""
        return AttentionMemory(
            values=values, keys=self.key_projection(values), mask=ops.cast(mask, "float32")
        )

    def scores(self, query, memory: AttentionMemory):
        """Returns the float32 scores [batch, tgt_time, src_time], padding masked."""
        if self.score == "additive":
            q = self.query_projection(query)
            hidden = ops.tanh(q[:, :, None, :] + memory.keys[:, None, :, :])
            scores = ops.squeeze(self.score_vector(hidden), axis=-1)
        else:
            scores = ops.einsum("btd,bsd->bts", query, memory.keys)
        real = ops.greater(ops.cast(memory.mask, "float32"), 0.5)[:, None, :]
        return ops.where(real, ops.cast(scores, "float32"), MASKED_SCORE)

    def call(self, query, memory: AttentionMemory):
        scores = self.scores(query, memory)
        # softmax written out: a one-step source is valid input (ops.softmax warns).
        # Masked steps get exp(-1e9 - max) = 0; a source of padding only gets
        # no weight anywhere, so its context is 0.
        # (Keras casts every float input to the compute dtype: the mask too.)
        mask = ops.cast(memory.mask, "float32")[:, None, :]
        exp = ops.exp(scores - ops.max(scores, axis=-1, keepdims=True)) * mask
        weights = exp / ops.maximum(ops.sum(exp, axis=-1, keepdims=True), 1e-30)
        values = memory.values
        context = ops.einsum("bts,bsd->btd", ops.cast(weights, values.dtype), values)
        attentional = self.combine(ops.concatenate([context, query], axis=-1))
        return attentional, weights

    def get_config(self):
        return {**super().get_config(), "score": self.score, "units": self.units}
