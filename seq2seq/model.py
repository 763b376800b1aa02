"""The Seq2Seq Keras model and the inference graph built from its trained layers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NamedTuple

import keras
import numpy as np
from keras import ops

from seq2seq.config import ModelConfig, build_dataclass
from seq2seq.layers import AttentionMemory, ConcatBridge, Decoder, Encoder, state_count
from seq2seq.vocab import BOS_ID, PAD_ID

ENCODER_NAME = "encoder"
BRIDGE_NAME = "bridge"
DECODER_NAME = "decoder"
# Logit given to tokens a model never outputs (float32 logits only).
OUTPUT_MASK_VALUE = -1e9


@contextlib.contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Makes ``name`` ("none": float32) the global Keras dtype policy inside, then restores it.

    Keras layers take the global policy when they are created; ``Seq2Seq``
    creates its sub-layers under its own policy, which its ``.keras`` file
    keeps, so a mixed-precision model loads as one.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32" if name == "none" else name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


@keras.saving.register_keras_serializable(package="seq2seq")
class Seq2Seq(keras.Model):
    """Encoder-decoder trained with teacher forcing.

    The encoder's final states (``return_state``) pass through the bridge and
    initialise the decoder, which reads BOS + target and predicts target + EOS.
    With ``model_config.attention`` the decoder also attends over the
    encoder's outputs (``seq2seq.layers.attention``).

    Args:
        model_config: ``ModelConfig`` or its dict form.
        source_vocab_size: Source vocabulary size (None for feature inputs).
        target_vocab_size: Target vocabulary size.

    Call arguments:
        inputs: dict with "source" (int ids [batch, src_time] or float features
            [batch, src_time, num_features]) and "decoder_input" (int ids
            [batch, tgt_time], BOS + target, PAD_ID padded).
        training: Python bool, enables dropout.

    Returns:
        float logits [batch, tgt_time, target_vocab_size].
    """

    def __init__(
        self,
        model_config: ModelConfig | dict,
        source_vocab_size: int | None,
        target_vocab_size: int,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(model_config, dict):
            model_config = build_dataclass(ModelConfig, model_config, prefix="model.")
        self.model_config = model_config
        self.source_vocab_size = source_vocab_size
        self.target_vocab_size = target_vocab_size
        c = model_config
        with dtype_policy(self.dtype_policy.name):
            self._build_layers(c, source_vocab_size, target_vocab_size)

    def _build_layers(self, c: ModelConfig, source_vocab_size, target_vocab_size) -> None:
        self.encoder = Encoder(
            cell=c.cell,
            units=c.units,
            num_layers=c.layers,
            bidirectional=c.bidirectional,
            dropout=c.dropout,
            recurrent_dropout=c.recurrent_dropout,
            source_input=c.source_input,
            vocab_size=source_vocab_size,
            embedding_dim=c.embedding_dim,
            num_features=c.num_features,
            name=ENCODER_NAME,
        )
        self.bridge = ConcatBridge(name=BRIDGE_NAME)
        self.decoder = Decoder(
            cell=c.cell,
            units=c.decoder_units,
            num_layers=c.layers,
            vocab_size=target_vocab_size,
            target_input=c.target_input,
            embedding_dim=c.embedding_dim,
            dropout=c.dropout,
            recurrent_dropout=c.recurrent_dropout,
            attention=c.attention,
            name=DECODER_NAME,
        )

    def call(self, inputs, training=None):
        encoded = self.encoder(inputs["source"], training=training)
        initial_states = self.bridge(encoded.states)
        memory = self.decoder.prepare_memory(encoded.outputs, encoded.mask)
        return self.decoder(
            inputs["decoder_input"], initial_states, memory=memory, training=training
        )

    def dummy_inputs(self) -> dict[str, np.ndarray]:
        """Returns a one-example batch that builds every weight when called."""
        if self.model_config.source_input == "features":
            source = np.ones((1, 1, self.model_config.num_features), "float32")
        else:
            source = np.ones((1, 1), "int32")
        return {"source": source, "decoder_input": np.ones((1, 1), "int32")}

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
            "model_config": self.model_config.__dict__.copy(),
            "source_vocab_size": self.source_vocab_size,
            "target_vocab_size": self.target_vocab_size,
        }


def build_model(
    model_config: ModelConfig, source_vocab_size: int | None, target_vocab_size: int
) -> Seq2Seq:
    """Creates a ``Seq2Seq`` model with all weights built."""
    model = Seq2Seq(model_config, source_vocab_size, target_vocab_size, name="seq2seq")
    model.build()
    return model


def flatten_states(states) -> list:
    """Flattens per-layer state tuples into one list [layer0 h, (layer0 c), layer1 h, ...]."""
    return [tensor for layer in states for tensor in layer]


def unflatten_states(flat, num_layers: int, cell: str) -> tuple:
    """Inverse of ``flatten_states`` for ``num_layers`` layers of ``cell``."""
    n = state_count(cell)
    if len(flat) != num_layers * n:
        raise ValueError(
            f"Expected {num_layers * n} state tensors for {num_layers} {cell} layer(s). "
            f"Received: {len(flat)}"
        )
    return tuple(tuple(flat[i * n : (i + 1) * n]) for i in range(num_layers))


def output_logits(logits):
    """Returns float32 ``logits`` [..., vocab] with PAD and BOS made impossible.

    A model never has to write PAD or BOS (training targets hold neither), so
    decoding and scoring both use the distribution over the other tokens.
    """
    vocab = ops.shape(logits)[-1]
    ids = ops.arange(vocab, dtype="int32")
    never = ops.logical_or(ops.equal(ids, PAD_ID), ops.equal(ids, BOS_ID))
    return ops.where(never, OUTPUT_MASK_VALUE, ops.cast(logits, "float32"))


def inference_state_count(model_config: ModelConfig) -> int:
    """Number of recurrent state tensors in the inference graph's flat state list."""
    return model_config.layers * state_count(model_config.cell)


class EncoderModel(keras.Model):
    """Inference encoder: source -> the decoder's initial states (flat list).

    Shares the trained encoder, bridge and (with attention) attention layers
    (their weights are the model's).

    Call arguments:
        source: int ids [batch, src_time] or features [batch, src_time, num_features].

    Returns:
        list of float tensors: the recurrent states [batch, decoder_units] in
        ``flatten_states`` order; with attention followed by the attention
        memory ``values`` [batch, src_time, memory_dim], ``keys``
        [batch, src_time, decoder_units] and ``mask`` float32 [batch, src_time]
        (``AttentionMemory``), which every step passes on unchanged.
    """

    def __init__(self, encoder: Encoder, bridge: ConcatBridge, decoder: Decoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.bridge = bridge
        self.decoder = decoder

    def call(self, source):
        encoded = self.encoder(source, training=False)
        flat = flatten_states(self.bridge(encoded.states))
        memory = self.decoder.prepare_memory(encoded.outputs, encoded.mask)
        # ops.copy: new tensors without the Keras mask the recurrent layers
        # attached, which the step model would warn about.
        return flat if memory is None else [*flat, *(ops.copy(m) for m in memory)]


class StepModel(keras.Model):
    """Inference decoder step: previous token + states -> next-token probabilities + states.

    Shares the trained decoder layer (its cells, attention and projection).
    The probabilities are those of ``output_logits``: PAD and BOS get 0.

    Call arguments:
        inputs: list ``[tokens, *states]``: tokens int [batch], states the flat
            list returned by ``EncoderModel`` or by the previous step.

    Returns:
        list ``[probabilities, *new_states]``: probabilities float
        [batch, target_vocab_size]; the new states have the layout of the
        ``EncoderModel`` list (the attention memory comes back unchanged).
    """

    def __init__(self, decoder: Decoder, **kwargs):
        super().__init__(**kwargs)
        self.decoder = decoder

    def call(self, inputs):
        tokens, flat = inputs[0], list(inputs[1:])
        n = self.decoder.num_layers * state_count(self.decoder.cell)
        memory = None
        if self.decoder.attention != "none":
            if len(flat) != n + len(AttentionMemory._fields):
                raise ValueError(
                    f"Expected {n} state tensors and the attention memory "
                    f"({', '.join(AttentionMemory._fields)}). Received: {len(flat)} tensors"
                )
            memory = AttentionMemory(*flat[n:])
            flat = flat[:n]
        states = unflatten_states(flat, self.decoder.num_layers, self.decoder.cell)
        logits, new_states = self.decoder.step(tokens, states, memory=memory)
        outputs = [ops.softmax(output_logits(logits), axis=-1), *flatten_states(new_states)]
        return outputs if memory is None else [*outputs, *memory]


class InferenceGraph(NamedTuple):
    """The two inference models built from a trained ``Seq2Seq`` (shared weights)."""

    encoder_model: EncoderModel
    step_model: StepModel


def build_inference_graph(model: Seq2Seq) -> InferenceGraph:
    """Builds the encoder model and the one-step decoder model from ``model``.

    Layers are taken by name (``encoder``, ``bridge``, ``decoder``), so this
    works the same on a freshly trained model and on one loaded from disk.
    """
    encoder = model.get_layer(ENCODER_NAME)
    bridge = model.get_layer(BRIDGE_NAME)
    decoder = model.get_layer(DECODER_NAME)
    return InferenceGraph(
        encoder_model=EncoderModel(encoder, bridge, decoder, name="inference_encoder"),
        step_model=StepModel(decoder, name="inference_step"),
    )
