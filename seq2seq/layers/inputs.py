"""Input layers that turn token ids (or feature frames) into RNN inputs, with their masks."""

from __future__ import annotations

import keras
from keras import ops

from seq2seq.vocab import PAD_ID


@keras.saving.register_keras_serializable(package="seq2seq")
class OneHot(keras.layers.Layer):
    """Turns integer ids into one-hot float vectors inside the graph.

    The dense vectors exist only per batch on the device; the data pipeline
    carries integer ids.

    Args:
        depth: Positive integer, size of the vocabulary.

    Call arguments:
        ids: int tensor of shape [batch, time] (or [batch]).

    Returns:
        float tensor of shape [batch, time, depth] (or [batch, depth]).
    """

    def __init__(self, depth: int, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(depth, int) or depth <= 0:
            raise ValueError(f"Expected a positive integer for `depth`. Received: depth={depth!r}")
        self.depth = depth

    def call(self, ids):
        return ops.one_hot(ops.cast(ids, "int32"), self.depth, dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.depth)

    def get_config(self):
        return {**super().get_config(), "depth": self.depth}


def make_token_input(
    kind: str, vocab_size: int, embedding_dim: int, name: str
) -> keras.layers.Layer:
    """Returns the layer for ``kind`` ("onehot" or "embedding") over ``vocab_size`` ids."""
    if kind == "onehot":
        return OneHot(vocab_size, name=name)
    if kind == "embedding":
        return keras.layers.Embedding(vocab_size, embedding_dim, name=name)
    raise ValueError(f"Expected 'onehot' or 'embedding' for a token input. Received: {kind!r}")


def token_mask(ids):
    """Returns the bool mask [batch, time] of real (non-PAD) token ids."""
    return ops.not_equal(ops.cast(ids, "int32"), PAD_ID)


def feature_mask(features):
    """Returns the bool mask [batch, time] of frames that are not all zero (Keras Masking)."""
    return ops.any(ops.not_equal(features, 0.0), axis=-1)
