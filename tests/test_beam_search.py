"""Beam search with scripted logits: helpers one by one, known beams, invariants."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from seq2seq.beam_search import (
    NEG_INF,
    beam_search,
    beam_search_step,
    gather_beams,
    initial_beam_state,
    length_penalty,
    merge_beams,
    split_beams,
    tile_beams,
)
from seq2seq.decoding import greedy_search
from seq2seq.vocab import BOS_ID, EOS_ID, PAD_ID

A, B = 3, 4  # two ordinary tokens after PAD, BOS, EOS


def _np(x):
    return keras.ops.convert_to_numpy(x)


def test_tile_split_merge():
    x = ops.convert_to_tensor(np.arange(6).reshape(2, 3))
    tiled = tile_beams(x, 2)
    np.testing.assert_array_equal(_np(tiled), [[0, 1, 2], [0, 1, 2], [3, 4, 5], [3, 4, 5]])
    split = split_beams(tiled, 2)
    assert tuple(split.shape) == (2, 2, 3)
    np.testing.assert_array_equal(_np(merge_beams(split)), _np(tiled))


@pytest.mark.parametrize("trailing", [(), (3,), (2, 3)])
def test_gather_beams_picks_per_sentence(trailing):
    x = np.arange(2 * 3 * int(np.prod(trailing, dtype=int))).reshape(2, 3, *trailing)
    indices = np.array([[2, 2], [0, 1]])
    out = _np(gather_beams(ops.convert_to_tensor(x), ops.convert_to_tensor(indices)))
    expected = np.stack([x[b, indices[b]] for b in range(2)])
    np.testing.assert_array_equal(out, expected)


def test_length_penalty_is_gnmt():
    out = _np(length_penalty(ops.convert_to_tensor([1, 7]), 0.6))
    np.testing.assert_allclose(out, [1.0, 2.0**0.6], rtol=1e-6)
    np.testing.assert_allclose(_np(length_penalty(ops.convert_to_tensor([3]), 0.0)), [1.0])


def _table(probabilities):
    """Log-probability table [sentences, steps, previous token, vocab] from probability rows."""
    p = np.asarray(probabilities, "float64")
    p = p / p.sum(-1, keepdims=True)
    return np.log(p).astype("float32")


def _scripted_step(table):
    """Step function: logits = table[sentence, t, previous token]; states (t, sentence) [rows]."""
    sentences, steps, vocab, _ = table.shape
    flat = ops.convert_to_tensor(table.reshape(-1, vocab))

    def step(tokens, states):
        t, sentence = states
        row = (sentence * steps + ops.minimum(t, steps - 1)) * vocab + tokens
        return ops.take(flat, row, axis=0), (t + 1, sentence)

    return step


def _initial_states(batch):
    return (ops.zeros((batch,), "int32"), ops.arange(batch, dtype="int32"))


def _known_tree():
    """Greedy takes A then EOS (0.5 * 0.4); the best sentence is B then EOS (0.4 * 0.9)."""
    eps = 1e-4
    first = np.full((5, 5), eps)
    first[BOS_ID, [A, B, EOS_ID]] = [0.5, 0.4, 0.1]
    second = np.full((5, 5), eps)
    second[A, [A, B, EOS_ID]] = [0.3, 0.3, 0.4]
    second[B, [A, B, EOS_ID]] = [0.05, 0.05, 0.9]
    second[EOS_ID, EOS_ID] = 1.0
    rest = np.full((5, 5), eps)
    rest[:, EOS_ID] = 1.0
    return _table([[first, second, rest, rest]])


def test_known_beams_step_by_step():
    table = _known_tree()
    step = _scripted_step(table)
    state = initial_beam_state(_initial_states(1), 1, 2, 4)
    t = 0
    logits, states = step(state.tokens, state.states)
    state = beam_search_step(state, logits, states, t)
    np.testing.assert_array_equal(_np(state.ids)[0, :, 0], [A, B])
    np.testing.assert_allclose(_np(state.log_probs)[0], np.log([0.5, 0.4]), atol=1e-3)
    assert not _np(state.finished).any()

    logits, states = step(state.tokens, state.states)
    state = beam_search_step(state, logits, states, 1)
    # Candidates: B EOS 0.36, A EOS 0.2, A A 0.15, A B 0.15, ...
    np.testing.assert_array_equal(_np(state.ids)[0, :, :2], [[B, PAD_ID], [A, PAD_ID]])
    np.testing.assert_array_equal(_np(state.lengths)[0], [1, 1])
    np.testing.assert_allclose(_np(state.log_probs)[0], np.log([0.36, 0.2]), atol=1e-3)
    assert _np(state.finished).all()


def test_search_finds_what_greedy_misses_and_stops_when_all_finished():
    table = _known_tree()
    greedy = greedy_search(_scripted_step(table), _initial_states(1), 1, 4)
    np.testing.assert_array_equal(_np(greedy.ids)[0, :1], [A])
    calls = []
    step = _scripted_step(table)

    def counting_step(tokens, states):
        calls.append(1)
        return step(tokens, states)

    state = beam_search(counting_step, _initial_states(1), 1, 4, beam_size=2)
    np.testing.assert_array_equal(_np(state.ids)[0, 0], [B, PAD_ID, PAD_ID, PAD_ID])
    np.testing.assert_allclose(_np(state.log_probs)[0, 0], math.log(0.36), atol=1e-3)
    assert len(calls) == 2  # eager loop: both beams finished after two steps, cap is 4


def _random_table(seed, sentences=3, steps=8, vocab=7, eos_boost=0.0):
    rng = np.random.default_rng(seed)
    p = rng.gamma(0.5, size=(sentences, steps, vocab, vocab)) + 1e-6
    p[..., EOS_ID] += eos_boost
    p[..., [PAD_ID, BOS_ID]] = 1e-9  # so that ids tell hypotheses apart (PAD ends them)
    return _table(p)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_of_one_is_greedy(seed):
    table = _random_table(seed, eos_boost=0.3)
    step = _scripted_step(table)
    greedy = greedy_search(step, _initial_states(3), 3, 8)
    for alpha in (0.0, 0.6):
        beam = beam_search(step, _initial_states(3), 3, 8, beam_size=1, alpha=alpha)
        np.testing.assert_array_equal(_np(beam.ids)[:, 0], _np(greedy.ids))
        np.testing.assert_array_equal(_np(beam.lengths)[:, 0], _np(greedy.lengths))
        np.testing.assert_allclose(_np(beam.log_probs)[:, 0], _np(greedy.scores), atol=1e-5)


def _prefix(ids, t):
    return tuple(ids[:t].tolist())


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_scores_never_increase_and_finished_beams_stay_finished(alpha):
    table = _random_table(5, sentences=2, steps=10, eos_boost=0.5)
    step = _scripted_step(table)
    beam, cap = 4, 10
    state = initial_beam_state(_initial_states(2), 2, beam, cap)
    for t in range(cap):
        before = {
            name: _np(getattr(state, name)) for name in ("ids", "log_probs", "finished", "lengths")
        }
        logits, states = step(state.tokens, state.states)
        state = beam_search_step(state, logits, states, t, alpha=alpha)
        ids, log_probs = _np(state.ids), _np(state.log_probs)
        finished, lengths = _np(state.finished), _np(state.lengths)
        for b in range(2):
            parents = {}
            for k in range(beam if t else 1):  # before step 0 only beam 0 is live
                parents[_prefix(before["ids"][b, k], t)] = k
            for k in range(beam):
                k0 = parents[_prefix(ids[b, k], t)]  # every hypothesis extends a previous one
                assert log_probs[b, k] <= before["log_probs"][b, k0] + 1e-6
                if before["finished"][b, k0]:
                    assert finished[b, k]
                    assert log_probs[b, k] == before["log_probs"][b, k0]
                    assert lengths[b, k] == before["lengths"][b, k0]
                    np.testing.assert_array_equal(ids[b, k], before["ids"][b, k0])
                assert (ids[b, k, lengths[b, k] :] == PAD_ID).all()


def test_length_cap_is_honoured():
    table = _random_table(1, sentences=2, steps=6)
    table[..., EOS_ID] = NEG_INF  # EOS never chosen
    state = beam_search(_scripted_step(table), _initial_states(2), 2, 5, beam_size=3)
    assert tuple(state.ids.shape) == (2, 3, 5)
    np.testing.assert_array_equal(_np(state.lengths), np.full((2, 3), 5))
    assert not _np(state.finished).any()
    assert (_np(state.ids) != PAD_ID).all()


def test_hypotheses_are_distinct_sorted_and_scored_by_their_tokens():
    table = _random_table(3, sentences=3, steps=8, eos_boost=0.4)
    alpha = 0.6
    state = beam_search(_scripted_step(table), _initial_states(3), 3, 8, beam_size=4, alpha=alpha)
    ids, lengths, log_probs = _np(state.ids), _np(state.lengths), _np(state.log_probs)
    finished = _np(state.finished)
    for b in range(3):
        seen = set()
        ranked = []
        for k in range(4):
            tokens = ids[b, k, : lengths[b, k]].tolist()
            path = tokens + ([EOS_ID] if finished[b, k] else [])
            previous, total = BOS_ID, 0.0
            for t, token in enumerate(path):
                total += table[b, min(t, 7), previous, token]
                previous = token
            np.testing.assert_allclose(log_probs[b, k], total, atol=1e-4)
            seen.add(tuple(path))
            ranked.append(total / ((5 + len(path)) / 6) ** alpha)
        assert len(seen) == 4
        assert ranked == sorted(ranked, reverse=True)


def test_length_penalty_favours_the_longer_hypothesis():
    eps = 1e-4
    first = np.full((5, 5), eps)
    first[BOS_ID, [A, EOS_ID]] = [0.55, 0.45]
    second = np.full((5, 5), eps)
    second[A, A] = 0.8
    second[A, EOS_ID] = 0.2
    third = np.full((5, 5), eps)
    third[A, EOS_ID] = 0.9
    third[A, A] = 0.1
    rest = np.full((5, 5), eps)
    rest[:, EOS_ID] = 1.0
    table = _table([[first, second, third, rest]])
    step = _scripted_step(table)
    plain = beam_search(step, _initial_states(1), 1, 4, beam_size=2, alpha=0.0)
    assert _np(plain.lengths)[0, 0] == 0  # EOS first: 0.45 > 0.55 * 0.8 * 0.9
    normalised = beam_search(step, _initial_states(1), 1, 4, beam_size=2, alpha=1.0)
    np.testing.assert_array_equal(_np(normalised.ids)[0, 0, :2], [A, A])


@pytest.mark.parametrize("alpha,n_best", [(0.0, 1), (0.0, 3), (1.0, 1), (1.0, 2)])
def test_early_stop_returns_what_running_to_the_end_returns(alpha, n_best):
    table = _random_table(7, sentences=4, steps=12, eos_boost=0.8)
    calls = {"full": 0, "early": 0}

    def counted(key):
        step = _scripted_step(table)

        def counting_step(tokens, states):
            calls[key] += 1
            return step(tokens, states)

        return counting_step

    full = beam_search(counted("full"), _initial_states(4), 4, 12, beam_size=4, alpha=alpha)
    early = beam_search(
        counted("early"), _initial_states(4), 4, 12, beam_size=4, alpha=alpha, n_best=n_best
    )
    for name in ("ids", "lengths", "log_probs", "finished"):
        np.testing.assert_array_equal(
            _np(getattr(early, name))[:, :n_best], _np(getattr(full, name))[:, :n_best], name
        )
    assert _np(early.finished)[:, :n_best].all()
    assert calls["early"] <= calls["full"], calls
    if n_best == 1:
        assert calls["early"] < calls["full"], calls  # here it does stop earlier
