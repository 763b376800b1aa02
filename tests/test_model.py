"""The Seq2Seq model: batching invariance, .keras save/load in safe mode, inference graph."""

import keras
import numpy as np
import pytest

from seq2seq.config import ModelConfig
from seq2seq.metrics import MaskedSparseCrossEntropy
from seq2seq.model import Seq2Seq, build_inference_graph, build_model, output_logits


def _model(**overrides):
    config = ModelConfig(**{"cell": "lstm", "units": 8, "layers": 2, **overrides})
    return build_model(config, source_vocab_size=12, target_vocab_size=10)


PADDING_CASES = [
    (cell, bidirectional, "none")
    for cell in ("lstm", "gru", "simple_rnn")
    for bidirectional in (False, True)
] + [("lstm", True, "additive"), ("gru", False, "multiplicative")]


@pytest.mark.parametrize("cell,bidirectional,attention", PADDING_CASES)
def test_sequence_alone_and_in_padded_batch_gets_same_loss(cell, bidirectional, attention):
    # With attention, padding steps of the source must get no attention weight.
    model = _model(cell=cell, bidirectional=bidirectional, attention=attention)
    loss = MaskedSparseCrossEntropy()
    alone = {"source": np.array([[4, 5, 6]]), "decoder_input": np.array([[1, 7, 8]])}
    target_alone = np.array([[7, 8, 2]])
    batch = {
        "source": np.array([[4, 5, 6, 0, 0, 0], [9, 10, 11, 4, 5, 6]]),
        "decoder_input": np.array([[1, 7, 8, 0, 0], [1, 9, 9, 9, 9]]),
    }
    target_batch = np.array([[7, 8, 2, 0, 0], [9, 9, 9, 9, 2]])
    logits_alone = keras.ops.convert_to_numpy(model(alone))
    logits_batch = keras.ops.convert_to_numpy(model(batch))
    np.testing.assert_allclose(logits_alone[0], logits_batch[0, :3], atol=1e-5)
    first_only = target_batch.copy()
    first_only[1] = 0  # score only the first sequence inside the batch
    assert np.isclose(
        float(loss(target_alone, logits_alone)), float(loss(first_only, logits_batch)), atol=1e-5
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"cell": "gru", "bidirectional": True, "source_input": "embedding"},
        {"cell": "simple_rnn", "layers": 1, "target_input": "embedding", "dropout": 0.1},
        {"cell": "gru", "bidirectional": True, "attention": "additive", "dropout": 0.2},
        {"attention": "multiplicative"},
    ],
)
def test_save_and_load_keras_format_in_safe_mode(tmp_path, overrides):
    model = _model(**overrides)
    inputs = {"source": np.array([[4, 5, 6, 0]]), "decoder_input": np.array([[1, 7, 8]])}
    expected = keras.ops.convert_to_numpy(model(inputs))
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    assert isinstance(loaded, Seq2Seq)
    assert loaded.model_config == model.model_config
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(inputs)), expected, atol=1e-6)


def test_model_config_round_trip():
    model = _model(cell="gru", bidirectional=True)
    clone = Seq2Seq.from_config(model.get_config())
    assert clone.model_config == model.model_config
    assert clone.target_vocab_size == 10


def test_inference_graph_shares_trained_weights():
    model = _model(bidirectional=True)
    graph = build_inference_graph(model)
    source = np.array([[4, 5, 6, 0]])
    states = graph.encoder_model(source)
    assert len(states) == 4  # 2 layers x (h, c), each [batch, 2 * units]
    assert all(tuple(s.shape) == (1, 16) for s in states)
    outputs = graph.step_model([np.array([1]), *states])
    probabilities = keras.ops.convert_to_numpy(outputs[0])
    assert probabilities.shape == (1, 10)
    assert np.isclose(probabilities.sum(), 1.0, atol=1e-5)
    # The step's first prediction equals the teacher-forced model's first step
    # (over the tokens a model can output: PAD and BOS get 0).
    logits = model({"source": source, "decoder_input": np.array([[1]])})
    expected = keras.ops.convert_to_numpy(keras.ops.softmax(output_logits(logits[:, 0])))
    assert (probabilities[:, :2] == 0).all()
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    # Changing a weight of the trained model changes the inference models too.
    bias = model.decoder.projection.bias
    bias.assign(np.arange(10, dtype="float32"))
    after = keras.ops.convert_to_numpy(graph.step_model([np.array([1]), *states])[0])
    assert not np.allclose(after, probabilities)
