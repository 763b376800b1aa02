"""Beam search over the one-step decoder, batched and compiled as one loop.

Shapes: ``batch`` sentences, ``beam`` hypotheses each, ``vocab`` target
tokens, ``max_length`` the length cap. The decoder runs on ``batch * beam``
rows (``merge_beams``); everything the search keeps per hypothesis is
``[batch, beam, ...]`` (``split_beams``).

A finished hypothesis (it chose EOS) stays in the beam with its score frozen:
its only continuation is EOS at log-probability 0. The search ends when every
hypothesis of every sentence is finished (or, given ``n_best``, as soon as the
``n_best`` best of every sentence can no longer change), or after
``max_length`` steps.
Candidates are ranked by their log-probability divided by the GNMT length
penalty ``((5 + length) / 6) ** alpha`` (``alpha = 0``: plain log-probability);
the length counts the generated tokens, EOS included, so all the
continuations of one hypothesis share it and a beam of 1 is greedy search.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import keras
from keras import ops

from seq2seq.vocab import BOS_ID, EOS_ID, PAD_ID

# Scores are always float32 (logits are cast before log_softmax), so this is
# far below any real score yet far from overflow when added to one.
NEG_INF = -1e9


class BeamState(NamedTuple):
    """The loop state of beam search.

    Attributes:
        tokens: int32 [batch * beam], the last token of each hypothesis.
        states: the decoder states, nested tensors [batch * beam, ...].
        ids: int32 [batch, beam, max_length], tokens before EOS, PAD_ID after.
        lengths: int32 [batch, beam], tokens before EOS.
        log_probs: float32 [batch, beam], sum of token log-probabilities (EOS included).
        finished: bool [batch, beam], whether the hypothesis chose EOS.
    """

    tokens: Any
    states: Any
    ids: Any
    lengths: Any
    log_probs: Any
    finished: Any


def tile_beams(x, beam_size: int):
    """Repeats every row of ``x`` [batch, ...] ``beam_size`` times: [batch * beam, ...]."""
    return ops.repeat(x, beam_size, axis=0)


def split_beams(x, beam_size: int):
    """Reshapes ``x`` [batch * beam, ...] to [batch, beam, ...]."""
    shape = ops.shape(x)
    return ops.reshape(x, (-1, beam_size, *shape[1:]))


def merge_beams(x):
    """Reshapes ``x`` [batch, beam, ...] to [batch * beam, ...]."""
    shape = ops.shape(x)
    return ops.reshape(x, (-1, *shape[2:]))


def gather_beams(x, indices):
    """Picks hypotheses per sentence: ``x`` [batch, beam, ...], ``indices`` int [batch, k].

    Returns:
        [batch, k, ...] with ``out[b, j] = x[b, indices[b, j]]``.
    """
    shape = ops.shape(x)
    batch, beam = shape[0], shape[1]
    # One gather of whole rows of the [batch * beam, ...] view (cheaper than take_along_axis).
    offsets = ops.arange(batch, dtype="int32")[:, None] * beam
    rows = ops.reshape(ops.cast(indices, "int32") + offsets, (-1,))
    picked = ops.take(ops.reshape(x, (-1, *shape[2:])), rows, axis=0)
    return ops.reshape(picked, (batch, ops.shape(indices)[1], *shape[2:]))


def length_penalty(lengths, alpha: float):
    """GNMT length penalty ``((5 + lengths) / 6) ** alpha`` of int ``lengths``, float32."""
    return ops.power((5.0 + ops.cast(lengths, "float32")) / 6.0, alpha)


def initial_beam_state(initial_states, batch_size, beam_size: int, max_length: int) -> BeamState:
    """Returns the state before the first step: one live hypothesis per sentence.

    The other ``beam_size - 1`` copies start at ``NEG_INF`` so that the first
    step expands only one of the identical hypotheses.
    """
    first = ops.cast(ops.equal(ops.arange(beam_size), 0), "float32")  # [beam]
    log_probs = ops.zeros((batch_size, beam_size), "float32") + (1.0 - first) * NEG_INF
    return BeamState(
        tokens=ops.full((batch_size * beam_size,), BOS_ID, dtype="int32"),
        states=keras.tree.map_structure(lambda s: tile_beams(s, beam_size), initial_states),
        ids=ops.full((batch_size, beam_size, max_length), PAD_ID, dtype="int32"),
        lengths=ops.zeros((batch_size, beam_size), "int32"),
        log_probs=log_probs,
        finished=ops.zeros((batch_size, beam_size), "bool"),
    )


def beam_search_step(
    state: BeamState,
    logits,
    new_states,
    t,
    alpha: float = 0.0,
    eos_id: int = EOS_ID,
    pad_id: int = PAD_ID,
) -> BeamState:
    """Extends every hypothesis by one token and keeps the best ``beam`` per sentence.

    Args:
        state: the state before step ``t``.
        logits: float [batch * beam, vocab], the decoder's output for ``state.tokens``.
        new_states: the decoder states after that step, nested [batch * beam, ...].
        t: int scalar, the step (the column of ``ids`` written).
        alpha: length penalty exponent.
        eos_id: id that ends a hypothesis.
        pad_id: id written after the end of a hypothesis.

    Returns:
        The ``BeamState`` after step ``t``.
    """
    beam_size = ops.shape(state.log_probs)[1]
    max_length = ops.shape(state.ids)[2]
    log_probs = split_beams(ops.log_softmax(ops.cast(logits, "float32"), axis=-1), beam_size)
    vocab = ops.shape(log_probs)[2]
    # A finished hypothesis can only be continued by EOS, at no cost.
    only_eos = ops.where(ops.equal(ops.arange(vocab), eos_id), 0.0, NEG_INF)  # [vocab]
    log_probs = ops.where(state.finished[:, :, None], only_eos[None, None, :], log_probs)
    candidates = state.log_probs[:, :, None] + log_probs  # [batch, beam, vocab]
    # Generated tokens, EOS included, of every continuation of a hypothesis.
    generated = ops.where(state.finished, state.lengths + 1, t + 1)  # [batch, beam]
    ranking = candidates / length_penalty(generated, alpha)[:, :, None]
    _, best = ops.top_k(ops.reshape(ranking, (-1, beam_size * vocab)), beam_size)
    origins = best // vocab  # [batch, beam]
    tokens = ops.cast(best % vocab, "int32")
    width = beam_size * vocab
    flat_best = best + ops.arange(ops.shape(best)[0], dtype=best.dtype)[:, None] * width
    new_log_probs = ops.reshape(
        ops.take(ops.reshape(candidates, (-1,)), ops.reshape(flat_best, (-1,))), (-1, beam_size)
    )
    was_finished = gather_beams(state.finished, origins)
    emitting = ops.logical_and(ops.logical_not(was_finished), ops.not_equal(tokens, eos_id))
    ids = gather_beams(state.ids, origins)  # [batch, beam, max_length]
    at_t = ops.equal(ops.arange(max_length), t)[None, None, :]
    ids = ops.where(at_t, ops.where(emitting, tokens, pad_id)[:, :, None], ids)
    return BeamState(
        tokens=merge_beams(tokens),
        states=keras.tree.map_structure(
            lambda s: merge_beams(gather_beams(split_beams(s, beam_size), origins)), new_states
        ),
        ids=ids,
        lengths=gather_beams(state.lengths, origins) + ops.cast(emitting, "int32"),
        log_probs=new_log_probs,
        finished=ops.logical_or(was_finished, ops.equal(tokens, eos_id)),
    )


def sentences_done(state: BeamState, n_best: int, alpha: float, max_length: int):
    """Whether each sentence's ``n_best`` best hypotheses are final: bool [batch].

    True when the ``n_best`` first-ranked hypotheses have finished and no
    live one can still overtake them: a live hypothesis' log-probability only
    falls, so its ranking score can at best reach ``log_prob /
    length_penalty(max_length)``. Stopping there changes no returned result.
    """
    finished_scores = state.log_probs / length_penalty(state.lengths + 1, alpha)
    worst_kept = ops.min(
        ops.where(state.finished[:, :n_best], finished_scores[:, :n_best], -NEG_INF), axis=1
    )
    live_bound = ops.max(
        ops.where(
            state.finished, 2.0 * NEG_INF, state.log_probs / length_penalty(max_length, alpha)
        ),
        axis=1,
    )
    return ops.logical_and(ops.all(state.finished[:, :n_best], axis=1), worst_kept >= live_bound)


def beam_search(
    step_fn,
    initial_states,
    batch_size,
    max_length: int,
    beam_size: int,
    alpha: float = 0.0,
    eos_id: int = EOS_ID,
    pad_id: int = PAD_ID,
    n_best: int | None = None,
) -> BeamState:
    """Beam search over a whole batch in one ``while_loop``.

    Args:
        step_fn: one decoder step, ``(tokens [rows], states) -> (logits [rows, vocab], states)``.
        initial_states: the decoder's initial states, nested tensors [batch, ...].
        batch_size: int or scalar tensor.
        max_length: Python int, the length cap (EOS excluded).
        beam_size: Python int, hypotheses kept per sentence.
        alpha: length penalty exponent (0: rank by log-probability).
        eos_id: id that ends a hypothesis.
        pad_id: id written after the end of a hypothesis.
        n_best: stop as soon as the ``n_best`` best hypotheses of every
            sentence are final (``sentences_done``); None waits until every
            hypothesis has finished.

    Returns:
        The final ``BeamState``; its hypotheses are sorted best first (with
        ``n_best``, only the first ``n_best`` are complete).
    """
    state = initial_beam_state(initial_states, batch_size, beam_size, max_length)

    def cond(t, state):
        if n_best is None:
            done = state.finished
        else:
            done = sentences_done(state, n_best, alpha, max_length)
        return ops.logical_and(ops.less(t, max_length), ops.logical_not(ops.all(done)))

    def body(t, state):
        logits, new_states = step_fn(state.tokens, state.states)
        return t + 1, beam_search_step(state, logits, new_states, t, alpha, eos_id, pad_id)

    _, state = ops.while_loop(cond, body, (ops.convert_to_tensor(0, "int32"), state))
    return state
