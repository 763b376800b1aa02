"""The decoder: teacher-forced recurrent stack plus output projection, and its one-step form."""

from __future__ import annotations

import keras

from seq2seq.layers.attention import Attention, AttentionMemory
from seq2seq.layers.inputs import make_token_input
from seq2seq.layers.recurrent import as_layer_state, make_rnn


@keras.saving.register_keras_serializable(package="seq2seq")
class Decoder(keras.layers.Layer):
    """Recurrent decoder initialised from the bridged encoder states.

    In training it reads the shifted target (BOS + y) in one pass (teacher
    forcing); at inference ``step`` advances all layers by one token with the
    same cells, hence the same weights.

    With ``attention`` set, the top layer's outputs attend over the encoder
    outputs (``seq2seq.layers.attention``) and the attentional vector, after
    dropout at the ``dropout`` rate, feeds the output projection.

    Args:
        cell: "lstm", "gru" or "simple_rnn".
        units: Positive integer, state size of each layer.
        num_layers: Positive integer, number of stacked layers.
        vocab_size: Target vocabulary size (input ids and output classes).
        target_input: "onehot" or "embedding".
        embedding_dim: Embedding size when ``target_input="embedding"``.
        dropout: Input dropout rate of each recurrent layer.
        recurrent_dropout: Recurrent-state dropout rate of each recurrent layer.
        attention: "none", "additive" or "multiplicative".

    Call arguments:
        inputs: int ids [batch, tgt_time], BOS followed by the target.
        initial_states: per layer, a tuple of tensors [batch, units].
        memory: ``AttentionMemory`` from ``prepare_memory`` (attention only).
        training: Python bool, enables dropout.

    Returns:
        float logits [batch, tgt_time, vocab_size].
    """

    def __init__(
        self,
        cell: str = "lstm",
        units: int = 256,
        num_layers: int = 1,
        vocab_size: int = 0,
        target_input: str = "onehot",
        embedding_dim: int = 128,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        attention: str = "none",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(vocab_size, int) or vocab_size <= 0:
            raise ValueError(
                f"Expected a positive integer for `vocab_size`. Received: vocab_size={vocab_size!r}"
            )
        self.cell = cell
        self.units = units
        self.num_layers = num_layers
        self.vocab_size = vocab_size
        self.target_input = target_input
        self.embedding_dim = embedding_dim
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.attention = attention

        self.token_input = make_token_input(target_input, vocab_size, embedding_dim, "target_input")
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
        self.attention_layer = None
        if attention != "none":
            self.attention_layer = Attention(attention, units, name="attention")
            self.output_dropout = keras.layers.Dropout(dropout, name="output_dropout")
        # Logits stay float32 whatever the compute policy, for a stable softmax.
        self.projection = keras.layers.Dense(vocab_size, dtype="float32", name="output_projection")

    def prepare_memory(self, encoder_outputs, mask) -> AttentionMemory | None:
        """Returns what ``call`` and ``step`` attend over (None without attention).

        Args:
            encoder_outputs: float [batch, src_time, memory_dim], ``EncoderOutput.outputs``.
            mask: bool [batch, src_time], ``EncoderOutput.mask``.
        """
        if self.attention_layer is None:
            return None
        return self.attention_layer.prepare(encoder_outputs, mask)

    def _attend(self, x, memory, training):
        if self.attention_layer is None:
            return x
        if memory is None:
            raise ValueError(
                f"This decoder has attention={self.attention!r}: pass the `memory` "
                "from prepare_memory()."
            )
        attentional, _ = self.attention_layer(x, memory)
        return self.output_dropout(attentional, training=training)

    def call(self, inputs, initial_states, memory=None, training=None):
        x = self.token_input(inputs)
        for rnn, state in zip(self.rnn_layers, initial_states, strict=True):
            x = rnn(x, initial_state=list(state), training=training)[0]
        return self.projection(self._attend(x, memory, training))

    def step(self, tokens, states, memory=None, training=False):
        """Advances every layer by one token.

        Args:
            tokens: int ids [batch], the previous output tokens (BOS at first).
            states: per layer, a tuple of tensors [batch, units].
            memory: ``AttentionMemory`` with batch rows matching ``tokens``
                (attention only).
            training: Python bool, enables dropout.

        Returns:
            ``(logits, new_states)``: logits [batch, vocab_size] and states with
            the structure of ``states``.
        """
        x = self.token_input(tokens)
        new_states = []
        for rnn, state in zip(self.rnn_layers, states, strict=True):
            x, new_state = rnn.cell(x, list(state), training=training)
            new_states.append(as_layer_state(new_state))
        if self.attention_layer is not None:
            x = self._attend(x[:, None, :], memory, training)[:, 0, :]
        return self.projection(x), tuple(new_states)

    def get_config(self):
        return {
            **super().get_config(),
            "cell": self.cell,
            "units": self.units,
            "num_layers": self.num_layers,
            "vocab_size": self.vocab_size,
            "target_input": self.target_input,
            "embedding_dim": self.embedding_dim,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "attention": self.attention,
        }
