"""Decoding strategies over the inference graph, each one compiled loop over a batch."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, NamedTuple

import keras
from keras import ops

from seq2seq.model import build_inference_graph
from seq2seq.vocab import BOS_ID, EOS_ID, PAD_ID

# step_fn(tokens [batch] int32, states) -> (logits [batch, vocab], new_states)
StepFn = Callable[[Any, Any], tuple[Any, Any]]


class DecodeResult(NamedTuple):
    """Decoded sequences of a batch.

    Attributes:
        ids: int32 [batch, max_length], tokens before EOS, PAD_ID after.
        lengths: int32 [batch], number of tokens before EOS (max_length if none).
        scores: float32 [batch], sum of the log-probabilities of the chosen
            tokens, EOS included.
    """

    ids: Any
    lengths: Any
    scores: Any


def write_column(buffer, t, values):
    """Returns ``buffer`` [batch, length] with column ``t`` set to ``values`` [batch]."""
    positions = ops.arange(ops.shape(buffer)[1], dtype="int32")
    at_t = ops.cast(ops.equal(positions, t), buffer.dtype)[None, :]
    return buffer * (1 - at_t) + at_t * ops.cast(values, buffer.dtype)[:, None]


def greedy_search(
    step_fn: StepFn,
    initial_states,
    batch_size,
    max_length: int,
    bos_id: int = BOS_ID,
    eos_id: int = EOS_ID,
    pad_id: int = PAD_ID,
) -> DecodeResult:
    """Greedy decoding of a whole batch in one ``while_loop``.

    Each sequence stops at its first EOS; the loop stops when every sequence
    has finished or after ``max_length`` steps.

    Args:
        step_fn: one decoder step, ``(tokens [batch], states) -> (logits, states)``.
        initial_states: the decoder's initial states (any nested structure).
        batch_size: int or scalar tensor, the batch size.
        max_length: Python int, the length cap (EOS excluded).
        bos_id: id fed at the first step.
        eos_id: id that ends a sequence.
        pad_id: id written after the end of a sequence.

    Returns:
        ``DecodeResult``.
    """
    tokens = ops.full((batch_size,), bos_id, dtype="int32")
    ids = ops.full((batch_size, max_length), pad_id, dtype="int32")
    finished = ops.zeros((batch_size,), dtype="bool")
    lengths = ops.zeros((batch_size,), dtype="int32")
    scores = ops.zeros((batch_size,), dtype="float32")
    step = ops.convert_to_tensor(0, dtype="int32")

    def cond(t, tokens, states, ids, finished, lengths, scores):
        return ops.logical_and(ops.less(t, max_length), ops.logical_not(ops.all(finished)))

    def body(t, tokens, states, ids, finished, lengths, scores):
        logits, states = step_fn(tokens, states)
        logits = ops.cast(logits, "float32")
        next_tokens = ops.cast(ops.argmax(logits, axis=-1), "int32")
        log_probs = ops.log_softmax(logits, axis=-1)
        chosen = ops.take_along_axis(log_probs, next_tokens[:, None], axis=-1)[:, 0]
        alive = ops.logical_not(finished)
        is_eos = ops.equal(next_tokens, eos_id)
        emitting = ops.logical_and(alive, ops.logical_not(is_eos))
        scores = scores + ops.where(alive, chosen, 0.0)
        ids = write_column(ids, t, ops.where(emitting, next_tokens, pad_id))
        lengths = lengths + ops.cast(emitting, "int32")
        finished = ops.logical_or(finished, is_eos)
        return t + 1, next_tokens, states, ids, finished, lengths, scores

    loop_vars = (step, tokens, initial_states, ids, finished, lengths, scores)
    _, _, _, ids, _, lengths, scores = ops.while_loop(cond, body, loop_vars)
    return DecodeResult(ids=ids, lengths=lengths, scores=scores)


class DecodingStrategy(abc.ABC):
    """A way to turn decoder steps into output sequences."""

    name: str = ""

    @abc.abstractmethod
    def decode(self, step_fn: StepFn, initial_states, batch_size, max_length: int) -> DecodeResult:
        """Decodes a batch (see ``greedy_search`` for the arguments)."""

    @staticmethod
    def from_params(name: str = "greedy", **params) -> DecodingStrategy:
        """Returns the strategy called ``name`` built with ``params``."""
        if name not in STRATEGIES:
            raise ValueError(
                f"Expected one of {sorted(STRATEGIES)} for `strategy`. Received: strategy={name!r}"
            )
        return STRATEGIES[name](**params)


class GreedySearch(DecodingStrategy):
    """Takes the most probable token at every step."""

    name = "greedy"

    def decode(self, step_fn: StepFn, initial_states, batch_size, max_length: int) -> DecodeResult:
        return greedy_search(step_fn, initial_states, batch_size, max_length)


STRATEGIES: dict[str, type[DecodingStrategy]] = {"greedy": GreedySearch}


class DecodingModel(keras.Model):
    """Source -> decoded ids in one compiled call: encoder, bridge and the step loop.

    Built from a trained ``Seq2Seq`` model's layers by name, so the weights are
    shared. Call it through ``predict_on_batch`` to run it as one compiled
    graph (``tf.function`` on TensorFlow, ``jit`` on JAX).

    Args:
        seq2seq_model: a trained or loaded ``seq2seq.model.Seq2Seq``.
        strategy: a ``DecodingStrategy``.
        max_length: Python int, the length cap of decoded sequences.
        jit_compile: compile the loop with XLA (TensorFlow) instead of as a
            plain graph; JAX always compiles.

    Call arguments:
        source: int ids [batch, src_time] or features [batch, src_time, features].

    Returns:
        dict with "ids" [batch, max_length], "lengths" [batch], "scores" [batch].
    """

    def __init__(
        self,
        seq2seq_model,
        strategy: DecodingStrategy,
        max_length: int,
        jit_compile: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        graph = build_inference_graph(seq2seq_model)
        self.encoder = graph.encoder_model.encoder
        self.bridge = graph.encoder_model.bridge
        self.decoder = graph.step_model.decoder
        self.strategy = strategy
        self.max_length = max_length
        self.compile(jit_compile=jit_compile)

    def call(self, source):
        initial_states = self.bridge(self.encoder(source, training=False).states)
        batch_size = ops.shape(source)[0]
        result = self.strategy.decode(
            self.decoder.step, initial_states, batch_size, self.max_length
        )
        return result._asdict()
