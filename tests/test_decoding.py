"""Decoding strategies on scripted logits and small models: greedy, beam, sampling, scoring."""

import keras
import numpy as np
import pytest

from seq2seq.config import ConfigError, DecodeConfig, ModelConfig
from seq2seq.data import pad_batch
from seq2seq.decoding import (
    BeamSearch,
    DecodingModel,
    DecodingStrategy,
    GreedySearch,
    RandomSampling,
    ScoringModel,
    greedy_search,
    sequence_log_probs,
    source_keys,
    uniform_noise,
    write_column,
)
from seq2seq.model import build_inference_graph, build_model
from seq2seq.vocab import BOS_ID, EOS_ID, PAD_ID

VOCAB = 8


def _scripted_step(script):
    """Returns a step function whose logits at step t favour script[row][t]."""
    script = np.asarray(script, "int32")  # [batch, steps]

    def step(tokens, states):
        (t,) = states
        column = keras.ops.take(keras.ops.convert_to_tensor(script), t, axis=1)
        logits = keras.ops.one_hot(column, VOCAB) * 5.0
        return logits, (t + 1,)

    return step


def _run_greedy(script, max_length):
    step = _scripted_step(script)
    init = (keras.ops.convert_to_tensor(0, "int32"),)
    result = greedy_search(step, init, len(script), max_length)
    return [keras.ops.convert_to_numpy(x) for x in result]


def test_greedy_follows_scripted_tokens_and_stops_at_eos():
    script = [[4, 5, EOS_ID, 6, 6, 6], [6, EOS_ID, 7, 7, 7, 7]]
    ids, lengths, scores = _run_greedy(script, max_length=6)
    np.testing.assert_array_equal(lengths, [2, 1])
    np.testing.assert_array_equal(ids[0, :3], [4, 5, PAD_ID])
    np.testing.assert_array_equal(ids[1, :2], [6, PAD_ID])
    assert (ids[:, 3:] == PAD_ID).all()  # finished sequences stay finished
    # Each chosen token has log-softmax of 5 against 7 zeros.
    per_step = 5.0 - np.log(np.exp(5.0) + VOCAB - 1)
    np.testing.assert_allclose(scores, [3 * per_step, 2 * per_step], atol=1e-5)


def test_greedy_honours_length_cap():
    script = [[4] * 10]
    ids, lengths, _ = _run_greedy(script, max_length=3)
    assert ids.shape == (1, 3)
    np.testing.assert_array_equal(ids[0], [4, 4, 4])
    np.testing.assert_array_equal(lengths, [3])


def test_write_column_sets_one_column():
    buffer = keras.ops.zeros((2, 4), "int32")
    out = keras.ops.convert_to_numpy(write_column(buffer, 2, keras.ops.convert_to_tensor([7, 9])))
    np.testing.assert_array_equal(out, [[0, 0, 7, 0], [0, 0, 9, 0]])


def test_strategy_factory():
    assert isinstance(DecodingStrategy.from_params("greedy"), GreedySearch)
    with pytest.raises(ValueError, match="strategy='nope'"):
        DecodingStrategy.from_params("nope")


def _naive_greedy(model, source, max_length):
    """Reference: the per-step loop of the inference graph, one sentence at a time."""
    graph = build_inference_graph(model)
    outputs = []
    for row in source:
        states = graph.encoder_model(row[None])
        token, ids = BOS_ID, []
        for _ in range(max_length):
            result = graph.step_model([np.array([token]), *states])
            probabilities, states = result[0], result[1:]
            token = int(np.argmax(keras.ops.convert_to_numpy(probabilities)[0]))
            if token == EOS_ID:
                break
            ids.append(token)
        outputs.append(ids)
    return outputs


def _trained_like_model(cell, bidirectional, attention="none"):
    keras.utils.set_random_seed(3)
    config = ModelConfig(
        cell=cell, units=8, layers=2, bidirectional=bidirectional, attention=attention
    )
    model = build_model(config, source_vocab_size=12, target_vocab_size=VOCAB)
    # Make EOS likely after a few steps so sequences end at different lengths.
    bias = model.decoder.projection.bias
    bias.assign(keras.ops.convert_to_tensor(np.linspace(-0.5, 0.5, VOCAB).astype("float32")))
    return model


@pytest.mark.parametrize(
    "cell,bidirectional,attention",
    [
        ("lstm", False, "none"),
        ("gru", True, "none"),
        ("simple_rnn", False, "none"),
        ("lstm", True, "additive"),
        ("gru", False, "multiplicative"),
    ],
)
def test_compiled_greedy_equals_naive_step_loop(cell, bidirectional, attention):
    # With attention the step model takes (and passes on) the attention memory.
    model = _trained_like_model(cell, bidirectional, attention)
    source = np.array([[4, 5, 6, 7], [8, 9, 0, 0], [10, 0, 0, 0]], "int32")
    decoded = DecodingModel(model, GreedySearch(), max_length=6).predict_on_batch(source)
    expected = _naive_greedy(model, source, max_length=6)
    for row, ids in enumerate(expected):
        assert decoded["lengths"][row, 0] == len(ids)
        assert decoded["ids"][row, 0, : len(ids)].tolist() == ids


def test_xla_compiled_greedy_equals_graph_greedy():
    model = _trained_like_model("gru", False)
    source = np.array([[4, 5, 6, 7], [8, 9, 0, 0]], "int32")
    graph = DecodingModel(model, GreedySearch(), 6).predict_on_batch(source)
    xla = DecodingModel(model, GreedySearch(), 6, jit_compile=True).predict_on_batch(source)
    np.testing.assert_array_equal(graph["ids"], xla["ids"])
    np.testing.assert_array_equal(graph["lengths"], xla["lengths"])


def test_greedy_output_identical_after_save_and_load(tmp_path):
    model = _trained_like_model("lstm", True)
    source = np.array([[4, 5, 6, 7], [8, 9, 0, 0]], "int32")
    before = DecodingModel(model, GreedySearch(), 6).predict_on_batch(source)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    after = DecodingModel(loaded, GreedySearch(), 6).predict_on_batch(source)
    for key in ("ids", "lengths"):
        np.testing.assert_array_equal(before[key], after[key])
    np.testing.assert_allclose(before["scores"], after["scores"], atol=1e-6)


def _forced_scores(model, source, ids, lengths, max_length):
    """Forced-decoding log-probabilities of hypotheses ids [batch, n, time].

    A hypothesis shorter than ``max_length`` ended with EOS, which counts in its
    score; one at the cap did not.
    """
    batch, n, _ = ids.shape
    rows = [ids[b, k, : lengths[b, k]].tolist() for b in range(batch) for k in range(n)]
    targets = [r if len(r) == max_length else [*r, EOS_ID] for r in rows]
    inputs = {
        "source": np.repeat(source, n, axis=0),
        "decoder_input": pad_batch([[BOS_ID, *t[:-1]] for t in targets]),
        "target": pad_batch(targets),
    }
    return ScoringModel(model).predict_on_batch(inputs).reshape(batch, n)


BEAM_CASES = [
    (cell, layers, bidirectional, "none")
    for cell in ("lstm", "gru", "simple_rnn")
    for layers, bidirectional in ((1, False), (2, True), (2, False), (1, True))
] + [("lstm", 2, True, "additive"), ("gru", 1, False, "multiplicative")]


@pytest.mark.parametrize("cell,layers,bidirectional,attention", BEAM_CASES)
def test_beam_hypotheses_score_as_forced_decoding(cell, layers, bidirectional, attention):
    # Wrongly gathered states (any cell, depth, direction) or a wrongly tiled
    # attention memory would break this equality.
    keras.utils.set_random_seed(4)
    config = ModelConfig(
        cell=cell, units=8, layers=layers, bidirectional=bidirectional, attention=attention
    )
    model = build_model(config, source_vocab_size=12, target_vocab_size=VOCAB)
    bias = np.linspace(-0.5, 0.5, VOCAB)
    bias[EOS_ID] = 0.8  # so that hypotheses end at different lengths
    model.decoder.projection.bias.assign(bias.astype("float32"))
    source = np.array([[4, 5, 6, 7], [8, 9, 0, 0], [10, 0, 0, 0]], "int32")
    out = DecodingModel(model, BeamSearch(beam_size=3, n_best=3), 6).predict_on_batch(source)
    assert out["ids"].shape == (3, 3, 6)
    assert len(np.unique(out["lengths"])) > 1, out["lengths"]
    forced = _forced_scores(model, source, out["ids"], out["lengths"], 6)
    np.testing.assert_allclose(out["scores"], forced, atol=1e-4)
    assert (np.diff(out["scores"], axis=1) <= 1e-6).all()  # n-best sorted, best first


def test_compiled_beam_of_one_equals_greedy_and_xla_equals_graph():
    model = _trained_like_model("lstm", True)
    source = np.array([[4, 5, 6, 7], [8, 9, 0, 0], [10, 11, 4, 0]], "int32")
    greedy = DecodingModel(model, GreedySearch(), 6).predict_on_batch(source)
    beam1 = DecodingModel(model, BeamSearch(beam_size=1), 6).predict_on_batch(source)
    for key in ("ids", "lengths"):
        np.testing.assert_array_equal(greedy[key], beam1[key])
    np.testing.assert_allclose(greedy["scores"], beam1["scores"], atol=1e-5)
    graph = DecodingModel(model, BeamSearch(beam_size=4), 6).predict_on_batch(source)
    xla = DecodingModel(model, BeamSearch(beam_size=4), 6, jit_compile=True).predict_on_batch(
        source
    )
    np.testing.assert_array_equal(graph["ids"], xla["ids"])
    assert (graph["scores"] >= greedy["scores"] - 1e-5).all()  # beam never does worse here


def _one_step_distribution(probabilities):
    """A scripted step whose logits are log(probabilities) at every step."""
    logits = keras.ops.convert_to_tensor(np.log(np.asarray(probabilities, "float32")))

    def step(tokens, states):
        return keras.ops.broadcast_to(logits, (keras.ops.shape(tokens)[0], VOCAB)), states

    return step


def test_sampling_draws_from_the_distribution_seeded():
    p = np.array([0.0001, 0.0001, 0.2, 0.1, 0.4, 0.3, 0.0001, 0.0001])
    p = p / p.sum()
    step, init = _one_step_distribution(p), (keras.ops.zeros((4000, 1)),)
    first = RandomSampling(seed=11).decode(step, init, 4000, 1)
    tokens = np.where(_np(first.lengths)[:, 0] == 0, EOS_ID, _np(first.ids)[:, 0, 0])
    frequencies = np.bincount(tokens, minlength=VOCAB) / 4000
    np.testing.assert_allclose(frequencies, p, atol=0.03)
    again = RandomSampling(seed=11).decode(step, init, 4000, 1)
    np.testing.assert_array_equal(_np(first.ids), _np(again.ids))
    other = RandomSampling(seed=12).decode(step, init, 4000, 1)
    assert (_np(first.ids) != _np(other.ids)).any()
    # top-k 2 keeps tokens 4 and 5 only; a low temperature concentrates on token 4.
    top2 = RandomSampling(top_k=2, seed=3).decode(step, init, 4000, 1)
    assert set(np.unique(_np(top2.ids)[:, 0, 0])) == {4, 5}
    cold = RandomSampling(temperature=0.05, seed=3).decode(step, init, 4000, 1)
    assert (_np(cold.ids)[:, 0, 0] == 4).mean() > 0.99


def test_uniform_noise_is_uniform_and_a_function_of_seed_and_step():
    u = _np(uniform_noise(5, 3, (100, 50)))
    assert 0.0 < u.min() and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.005
    np.testing.assert_array_equal(u, _np(uniform_noise(5, 3, (100, 50))))
    assert (u != _np(uniform_noise(5, 4, (100, 50)))).mean() > 0.99
    assert (u != _np(uniform_noise(6, 3, (100, 50)))).mean() > 0.99


@pytest.mark.parametrize("attention", ["none", "additive"])
def test_sampling_on_a_model_returns_n_samples_scored_by_the_model(attention):
    model = _trained_like_model("gru", False, attention)
    source = np.array([[4, 5, 6, 7], [8, 9, 0, 0]], "int32")
    strategy = RandomSampling(temperature=1.5, seed=2, num_samples=5)
    out = DecodingModel(model, strategy, 6).predict_on_batch(source)
    assert out["ids"].shape == (2, 5, 6)
    assert len({tuple(r) for r in out["ids"].reshape(10, 6).tolist()}) > 2
    assert len(np.unique(out["lengths"])) > 1, out["lengths"]
    forced = _forced_scores(model, source, out["ids"], out["lengths"], 6)
    np.testing.assert_allclose(out["scores"], forced, atol=1e-4)


def test_a_sentence_gets_the_same_samples_in_any_batch():
    model = _trained_like_model("gru", False)
    decoder = DecodingModel(model, RandomSampling(temperature=2.0, seed=1, num_samples=3), 6)
    alone = decoder.predict_on_batch(np.array([[8, 9]], "int32"))
    batch = decoder.predict_on_batch(np.array([[4, 5, 6, 7], [8, 9, 0, 0]], "int32"))
    for key in ("ids", "lengths"):
        np.testing.assert_array_equal(alone[key][0], batch[key][1])
    assert len({tuple(r) for r in alone["ids"][0].tolist()}) > 1  # the 3 samples differ
    keys = _np(source_keys(np.array([[8, 9, 0], [9, 8, 0], [8, 9, 7]], "int32")))
    assert len(set(keys.tolist())) == 3  # order and content matter, padding does not
    assert keys[0] == _np(source_keys(np.array([[8, 9]], "int32")))[0]


def test_sequence_log_probs_ignores_padding_and_never_outputs_pad_or_bos():
    # Vocabulary PAD, BOS, EOS, A, B: PAD and BOS are taken out of the distribution.
    step = np.log(np.array([0.2, 0.2, 0.3, 0.2, 0.1], "float32"))
    logits = np.stack([step, step, step])[None]  # [1, 3, 5]
    out = _np(sequence_log_probs(logits, np.array([[3, EOS_ID, PAD_ID]])))
    np.testing.assert_allclose(out, [np.log(0.2 / 0.6) + np.log(0.3 / 0.6)], atol=1e-6)


def test_decoding_never_writes_pad_or_bos():
    model = _trained_like_model("gru", False)
    bias = np.zeros(VOCAB, "float32")
    bias[[PAD_ID, BOS_ID]] = 50.0  # an untrained model could favour them
    model.decoder.projection.bias.assign(bias)
    source = np.array([[4, 5, 6, 7], [8, 9, 0, 0]], "int32")
    for strategy in (GreedySearch(), BeamSearch(3, 3), RandomSampling(num_samples=3)):
        out = DecodingModel(model, strategy, 6).predict_on_batch(source)
        for b, k in np.ndindex(out["lengths"].shape):
            written = out["ids"][b, k, : out["lengths"][b, k]]
            assert not np.isin(written, [PAD_ID, BOS_ID]).any(), strategy.name


def test_strategy_from_config():
    assert isinstance(DecodingStrategy.from_config(DecodeConfig()), GreedySearch)
    beam = DecodingStrategy.from_config(DecodeConfig(strategy="beam", beam_size=5, n_best=2))
    assert isinstance(beam, BeamSearch) and (beam.beam_size, beam.num_hypotheses) == (5, 2)
    sampling = DecodingStrategy.from_config(
        DecodeConfig(strategy="sampling", sampling_topk=3, seed=9, n_best=4)
    )
    assert isinstance(sampling, RandomSampling)
    assert (sampling.top_k, sampling.seed, sampling.num_hypotheses) == (3, 9, 4)
    with pytest.raises(ConfigError, match="decode.n_best"):
        DecodeConfig(strategy="beam", beam_size=2, n_best=3)
    with pytest.raises(ConfigError, match="decode.n_best"):
        DecodeConfig(n_best=2)
    with pytest.raises(ConfigError, match="decode.strategy"):
        DecodeConfig(strategy="top")


def _np(x):
    return keras.ops.convert_to_numpy(x)
