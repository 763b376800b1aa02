"""Decoding strategies over the inference graph, each one compiled loop over a batch."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, NamedTuple

import keras
from keras import ops

from seq2seq.beam_search import NEG_INF, beam_search, split_beams, tile_beams
from seq2seq.config import DecodeConfig
from seq2seq.model import build_inference_graph, output_logits
from seq2seq.vocab import BOS_ID, EOS_ID, PAD_ID

# step_fn(tokens [batch] int32, states) -> (logits [batch, vocab], new_states)
StepFn = Callable[[Any, Any], tuple[Any, Any]]


class DecodeResult(NamedTuple):
    """Decoded hypotheses of a batch, ``n`` per sentence, best first.

    Attributes:
        ids: int32 [batch, n, max_length], tokens before EOS, PAD_ID after.
        lengths: int32 [batch, n], number of tokens before EOS (max_length if none).
        scores: float32 [batch, n], sum of the log-probabilities of the chosen
            tokens under the model, EOS included (the forced-decoding score of
            the hypothesis, whatever the strategy ranked by).
    """

    ids: Any
    lengths: Any
    scores: Any


def write_column(buffer, t, values):
    """Returns ``buffer`` [batch, length] with column ``t`` set to ``values`` [batch]."""
    at_t = ops.equal(ops.arange(ops.shape(buffer)[1], dtype="int32"), t)[None, :]
    return ops.where(at_t, ops.cast(values, buffer.dtype)[:, None], buffer)


def argmax_tokens(logits, t):
    """Greedy choice: the most probable token of every row of ``logits`` [batch, vocab]."""
    return ops.cast(ops.argmax(logits, axis=-1), "int32")


def greedy_search(
    step_fn: StepFn,
    initial_states,
    batch_size,
    max_length: int,
    bos_id: int = BOS_ID,
    eos_id: int = EOS_ID,
    pad_id: int = PAD_ID,
    choose: Callable[[Any, Any], Any] = argmax_tokens,
) -> DecodeResult:
    """Token-by-token decoding of a whole batch in one ``while_loop``, one hypothesis each.

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
        choose: ``(logits [batch, vocab] float32, t) -> tokens [batch] int32``;
            ``argmax_tokens`` by default, a sampler for sampling.

    Returns:
        ``DecodeResult`` with ids [batch, max_length], lengths and scores [batch]
        (no hypothesis axis).
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
        next_tokens = choose(logits, t)
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


def hash_uint32(x):
    """A bijective integer hash of uint32 ``x`` (any shape), as a counter-based random source."""
    for shift, multiplier in ((16, 0x7FEB352D), (15, 0x846CA68B)):
        x = ops.bitwise_xor(x, ops.right_shift(x, shift))
        x = ops.multiply(x, _uint32(multiplier))
    return ops.bitwise_xor(x, ops.right_shift(x, 16))


GOLDEN_RATIO_32 = 0x9E3779B9  # odd constant that spreads consecutive integers over uint32


def _uint32(x):
    """``x`` (a Python int, taken modulo 2**32, or an integer tensor) as uint32."""
    if isinstance(x, int):
        return ops.convert_to_tensor(x % 2**32, "uint32")
    return ops.cast(x, "uint32")


def _sum_uint32(x, axis):
    """Sum of uint32 ``x`` modulo 2**32, without 64-bit integers (JAX keeps them off)."""
    low = ops.sum(ops.cast(ops.bitwise_and(x, _uint32(0xFFFF)), "int32"), axis=axis)
    high = ops.sum(ops.cast(ops.right_shift(x, 16), "int32"), axis=axis)
    return ops.left_shift(_uint32(high), 16) + _uint32(low)


def source_keys(source):
    """One uint32 key per source row, a hash of its ids that ignores trailing padding.

    Sampling draws its noise from these keys, so a sentence gets the same
    samples whatever its position in the batch and the batch's padding.

    Args:
        source: int ids [batch, src_time] (PAD_ID padded), or float features
            [batch, src_time, features] (then the key is the row index).

    Returns:
        uint32 [batch].
    """
    if len(ops.shape(source)) != 2:
        return _uint32(ops.arange(ops.shape(source)[0]))
    positions = _uint32(ops.arange(ops.shape(source)[1]))[None, :]
    token_hashes = hash_uint32(_uint32(source) + hash_uint32(positions + _uint32(GOLDEN_RATIO_32)))
    kept = ops.where(ops.not_equal(source, PAD_ID), token_hashes, _uint32(0))
    return hash_uint32(_sum_uint32(kept, axis=1))


def uniform_noise(seed: int, t, shape, row_keys=None):
    """Uniform floats in (0, 1) of ``shape`` [rows, cols], a pure function of its arguments.

    Stateless, so a compiled loop gives the same draws on every run and backend.

    Args:
        seed: Python int.
        t: int scalar, the decoding step.
        shape: (rows, cols).
        row_keys: uint32 [rows], what tells rows apart (default: the row index).
    """
    rows, cols = shape
    if row_keys is None:
        row_keys = _uint32(ops.arange(rows))
    step_key = hash_uint32(_uint32(seed) + hash_uint32(_uint32(t) + _uint32(GOLDEN_RATIO_32)))
    row_hashes = hash_uint32(ops.bitwise_xor(row_keys, step_key))
    counter = row_hashes[:, None] + _uint32(ops.arange(cols))[None, :]
    bits = ops.right_shift(hash_uint32(counter), 8)  # 24 random bits
    return (ops.cast(bits, "float32") + 0.5) / float(2**24)


def sampling_chooser(temperature: float, top_k: int, seed: int, row_keys=None):
    """Returns a ``choose`` function that samples from softmax(logits / temperature).

    With ``top_k > 0`` only the ``top_k`` most probable tokens can be drawn.
    Sampling uses the Gumbel-max trick on ``uniform_noise(seed, t, row_keys)``.
    """

    def choose(logits, t):
        scaled = logits / temperature
        if top_k:
            kth = ops.top_k(scaled, top_k)[0][:, -1:]
            scaled = ops.where(scaled < kth, NEG_INF, scaled)
        shape = ops.shape(scaled)
        noise = uniform_noise(seed, t, (shape[0], shape[1]), row_keys)
        return ops.cast(ops.argmax(scaled - ops.log(-ops.log(noise)), axis=-1), "int32")

    return choose


def sequence_log_probs(logits, targets):
    """Log-probability of each target sequence under teacher-forced ``logits``.

    Like decoding, it uses ``output_logits``: PAD and BOS are never outputs.

    Args:
        logits: float [batch, time, vocab], the model's output for BOS + target.
        targets: int [batch, time], target + EOS, PAD_ID padded (padding ignored).

    Returns:
        float32 [batch], the sum of the target tokens' log-probabilities.
    """
    log_probs = ops.log_softmax(output_logits(logits), axis=-1)
    targets = ops.cast(targets, "int32")
    picked = ops.take_along_axis(log_probs, targets[:, :, None], axis=-1)[:, :, 0]
    return ops.sum(ops.where(ops.not_equal(targets, PAD_ID), picked, 0.0), axis=1)


def _with_hypothesis_axis(result: DecodeResult) -> DecodeResult:
    return DecodeResult(*(ops.expand_dims(x, 1) for x in result))


class DecodingStrategy(abc.ABC):
    """A way to turn decoder steps into output sequences.

    Attributes:
        num_hypotheses: hypotheses returned per sentence.
        rows_per_sentence: decoder rows the strategy runs per sentence (the
            beam, or the samples); its ``step_fn`` gets ``batch * rows`` rows,
            each sentence's rows next to each other (``tile_beams``).
    """

    name: str = ""
    num_hypotheses: int = 1
    rows_per_sentence: int = 1

    @abc.abstractmethod
    def decode(
        self, step_fn: StepFn, initial_states, batch_size, max_length: int, row_keys=None
    ) -> DecodeResult:
        """Decodes a batch (see ``greedy_search`` for the arguments).

        ``row_keys`` (uint32 [batch], ``source_keys``) seed the randomness of
        a random strategy per sentence; the others ignore it.

        Returns:
            ``DecodeResult`` with a hypothesis axis: ids [batch, n, max_length].
        """

    @staticmethod
    def from_params(name: str = "greedy", **params) -> DecodingStrategy:
        """Returns the strategy called ``name`` built with ``params``."""
        if name not in STRATEGIES:
            raise ValueError(
                f"Expected one of {sorted(STRATEGIES)} for `strategy`. Received: strategy={name!r}"
            )
        return STRATEGIES[name](**params)

    @staticmethod
    def from_config(config: DecodeConfig) -> DecodingStrategy:
        """Returns the strategy ``config`` asks for (see ``DecodeConfig.strategy``)."""
        name = config.strategy
        if name == "beam":
            return BeamSearch(config.beam_size, config.n_best, config.length_penalty)
        if name == "sampling":
            return RandomSampling(
                config.sampling_temperature, config.sampling_topk, config.seed, config.n_best
            )
        return GreedySearch()


class GreedySearch(DecodingStrategy):
    """Takes the most probable token at every step."""

    name = "greedy"

    def decode(
        self, step_fn: StepFn, initial_states, batch_size, max_length: int, row_keys=None
    ) -> DecodeResult:
        return _with_hypothesis_axis(greedy_search(step_fn, initial_states, batch_size, max_length))


class BeamSearch(DecodingStrategy):
    """Keeps the ``beam_size`` best hypotheses per sentence (see ``seq2seq.beam_search``).

    Args:
        beam_size: hypotheses kept per sentence.
        n_best: hypotheses returned per sentence, best first (at most ``beam_size``).
        length_penalty: GNMT length penalty exponent alpha (0: plain log-probability).
    """

    name = "beam"

    def __init__(self, beam_size: int = 4, n_best: int = 1, length_penalty: float = 0.0):
        if beam_size < 1:
            raise ValueError(f"Expected a positive `beam_size`. Received: beam_size={beam_size}")
        if not 1 <= n_best <= beam_size:
            raise ValueError(
                f"Expected `n_best` between 1 and beam_size={beam_size}. Received: n_best={n_best}"
            )
        if length_penalty < 0:
            raise ValueError(
                "Expected a non-negative `length_penalty`. "
                f"Received: length_penalty={length_penalty}"
            )
        self.beam_size = beam_size
        self.rows_per_sentence = beam_size
        self.num_hypotheses = n_best
        self.length_penalty = length_penalty

    def decode(
        self, step_fn: StepFn, initial_states, batch_size, max_length: int, row_keys=None
    ) -> DecodeResult:
        state = beam_search(
            step_fn,
            initial_states,
            batch_size,
            max_length,
            self.beam_size,
            self.length_penalty,
            n_best=self.num_hypotheses,
        )
        n = self.num_hypotheses
        return DecodeResult(
            ids=state.ids[:, :n], lengths=state.lengths[:, :n], scores=state.log_probs[:, :n]
        )


class RandomSampling(DecodingStrategy):
    """Draws every token from the model's distribution, ``n`` independent samples per sentence.

    The draws are a pure function of the seed, the step and the sentence's
    ``row_keys``: through ``DecodingModel`` a sentence gets the same samples
    whatever batch it is decoded in (and so does an exported model).

    Args:
        temperature: divides the logits (below 1 sharper, above 1 flatter).
        top_k: draw among the ``top_k`` most probable tokens only (0: all).
        seed: the same seed gives the same samples for the same batch.
        num_samples: samples per sentence, returned in draw order.
    """

    name = "sampling"

    def __init__(
        self, temperature: float = 1.0, top_k: int = 0, seed: int = 0, num_samples: int = 1
    ):
        if temperature <= 0:
            raise ValueError(
                f"Expected a positive `temperature`. Received: temperature={temperature}"
            )
        if top_k < 0 or num_samples < 1:
            raise ValueError(
                "Expected top_k >= 0 and num_samples >= 1. "
                f"Received: top_k={top_k}, num_samples={num_samples}"
            )
        self.temperature = temperature
        self.top_k = top_k
        self.seed = seed
        self.num_hypotheses = num_samples
        self.rows_per_sentence = num_samples

    def decode(
        self, step_fn: StepFn, initial_states, batch_size, max_length: int, row_keys=None
    ) -> DecodeResult:
        n = self.num_hypotheses
        states = keras.tree.map_structure(lambda s: tile_beams(s, n), initial_states)
        if row_keys is None:
            row_keys = _uint32(ops.arange(batch_size))
        # Sample j of a sentence: the sentence's key mixed with j.
        sample = _uint32(ops.arange(batch_size * n) % n)
        keys = hash_uint32(tile_beams(row_keys, n) + sample * _uint32(GOLDEN_RATIO_32))
        result = greedy_search(
            step_fn,
            states,
            batch_size * n,
            max_length,
            choose=sampling_chooser(self.temperature, self.top_k, self.seed, keys),
        )
        return DecodeResult(*(split_beams(x, n) for x in result))


STRATEGIES: dict[str, type[DecodingStrategy]] = {
    cls.name: cls for cls in (GreedySearch, BeamSearch, RandomSampling)
}


class DecodingModel(keras.Model):
    """Source -> decoded ids in one compiled call: encoder, bridge, attention memory, step loop.

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
        dict with "ids" [batch, n, max_length], "lengths" [batch, n] and
        "scores" [batch, n], ``n`` the strategy's ``num_hypotheses``.
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
        encoded = self.encoder(source, training=False)
        initial_states = self.bridge(encoded.states)
        batch_size = ops.shape(source)[0]
        # The attention memory is the same for all the rows of a sentence:
        # tiled once here, never reordered by the search.
        memory = self.decoder.prepare_memory(encoded.outputs, encoded.mask)
        rows = self.strategy.rows_per_sentence
        if memory is not None and rows > 1:
            memory = keras.tree.map_structure(lambda m: tile_beams(m, rows), memory)

        def step(tokens, states):
            logits, states = self.decoder.step(tokens, states, memory=memory)
            return output_logits(logits), states

        result = self.strategy.decode(
            step, initial_states, batch_size, self.max_length, row_keys=source_keys(source)
        )
        return result._asdict()


class ScoringModel(keras.Model):
    """Forced decoding: the log-probability of given targets, one compiled call per batch.

    Shares the weights of ``seq2seq_model``; call it through ``predict_on_batch``.

    Call arguments:
        inputs: dict with "source" and "decoder_input" as for ``Seq2Seq`` and
            "target" int [batch, tgt_time] (target + EOS, PAD_ID padded).

    Returns:
        float32 [batch], ``sequence_log_probs`` of the targets.
    """

    def __init__(self, seq2seq_model, **kwargs):
        super().__init__(**kwargs)
        self.seq2seq = seq2seq_model

    def call(self, inputs):
        logits = self.seq2seq(
            {"source": inputs["source"], "decoder_input": inputs["decoder_input"]}, training=False
        )
        return sequence_log_probs(logits, inputs["target"])
