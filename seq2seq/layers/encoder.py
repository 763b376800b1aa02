"""The encoder: a stack of recurrent layers that returns its final states."""

from __future__ import annotations

import keras

from seq2seq.layers.inputs import feature_mask, make_token_input, token_mask
from seq2seq.layers.recurrent import EncoderOutput, make_rnn, split_rnn_result


@keras.saving.register_keras_serializable(package="seq2seq")
class Encoder(keras.layers.Layer):
    """Stack of LSTM / GRU / SimpleRNN layers, optionally bidirectional.

    Each layer returns its whole sequence (the input of the next layer) and its
    final states (``return_state``). Padding steps are masked, so they change
    neither the final states nor the outputs of real steps.

    Args:
        cell: "lstm", "gru" or "simple_rnn".
        units: Positive integer, state size of each layer and direction.
        num_layers: Positive integer, number of stacked layers.
        bidirectional: Whether each layer reads the sequence in both directions.
        dropout: Input dropout rate of each recurrent layer.
        recurrent_dropout: Recurrent-state dropout rate of each recurrent layer.
        source_input: "onehot", "embedding" (ids in) or "features" (floats in).
        vocab_size: Source vocabulary size (token inputs only).
        embedding_dim: Embedding size when ``source_input="embedding"``.
        num_features: Feature size when ``source_input="features"``.

    Call arguments:
        source: int ids [batch, src_time] (PAD_ID = padding), or float features
            [batch, src_time, num_features] (an all-zero frame = padding).
        training: Python bool, enables dropout.

    Returns:
        ``EncoderOutput(outputs, states, mask)``.
    """

    def __init__(
        self,
        cell: str = "lstm",
        units: int = 256,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        source_input: str = "onehot",
        vocab_size: int | None = None,
        embedding_dim: int = 128,
        num_features: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if source_input != "features" and not vocab_size:
            raise ValueError(
                f"Expected a positive `vocab_size` for source_input={source_input!r}. "
                f"Received: vocab_size={vocab_size!r}"
            )
        self.cell = cell
        self.units = units
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.source_input = source_input
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.num_features = num_features

        self.token_input = None
        if source_input != "features":
            self.token_input = make_token_input(
                source_input, vocab_size, embedding_dim, name="source_input"
            )
        self.rnn_layers = []
        for i in range(num_layers):
            rnn = make_rnn(
                cell,
                units,
                dropout=dropout,
                recurrent_dropout=recurrent_dropout,
                name=f"{cell}_{i}",
            )
            if bidirectional:
                rnn = keras.layers.Bidirectional(
                    rnn, merge_mode="concat", name=f"bidirectional_{i}"
                )
            self.rnn_layers.append(rnn)

    def call(self, source, training=None):
        if self.token_input is None:
            mask = feature_mask(source)
            x = source
        else:
            mask = token_mask(source)
            x = self.token_input(source)
        states = []
        for rnn in self.rnn_layers:
            result = rnn(x, mask=mask, training=training)
            x, directions = split_rnn_result(result, self.cell, self.bidirectional)
            states.append(directions)
        return EncoderOutput(outputs=x, states=tuple(states), mask=mask)

    def get_config(self):
        return {
            **super().get_config(),
            "cell": self.cell,
            "units": self.units,
            "num_layers": self.num_layers,
            "bidirectional": self.bidirectional,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "source_input": self.source_input,
            "vocab_size": self.vocab_size,
            "embedding_dim": self.embedding_dim,
            "num_features": self.num_features,
        }
