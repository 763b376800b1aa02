"""Greedy decoding: scripted logits, equality with a naive loop, save -> load."""

import keras
import numpy as np
import pytest

from seq2seq.config import ModelConfig
from seq2seq.decoding import (
    DecodingModel,
    DecodingStrategy,
    GreedySearch,
    greedy_search,
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


def _trained_like_model(cell, bidirectional):
    keras.utils.set_random_seed(3)
    config = ModelConfig(cell=cell, units=8, layers=2, bidirectional=bidirectional)
    model = build_model(config, source_vocab_size=12, target_vocab_size=VOCAB)
    # Make EOS likely after a few steps so sequences end at different lengths.
    bias = model.decoder.projection.bias
    bias.assign(keras.ops.convert_to_tensor(np.linspace(-0.5, 0.5, VOCAB).astype("float32")))
    return model


@pytest.mark.parametrize(
    "cell,bidirectional", [("lstm", False), ("gru", True), ("simple_rnn", False)]
)
def test_compiled_greedy_equals_naive_step_loop(cell, bidirectional):
    model = _trained_like_model(cell, bidirectional)
    source = np.array([[4, 5, 6, 7], [8, 9, 0, 0], [10, 0, 0, 0]], "int32")
    decoded = DecodingModel(model, GreedySearch(), max_length=6).predict_on_batch(source)
    expected = _naive_greedy(model, source, max_length=6)
    for row, ids in enumerate(expected):
        assert decoded["lengths"][row] == len(ids)
        assert decoded["ids"][row, : len(ids)].tolist() == ids


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
