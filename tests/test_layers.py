"""The state contract of encoder, bridge and decoder, for every cell, depth and direction."""

import itertools

import keras
import numpy as np
import pytest

from seq2seq.config import ModelConfig
from seq2seq.layers import ConcatBridge, Decoder, Encoder, OneHot, state_count
from seq2seq.model import build_model

CELLS = ["lstm", "gru", "simple_rnn"]
GRID = list(itertools.product(CELLS, [1, 2], [False, True]))
UNITS = 6


def _source(batch=3, time=5, vocab=11, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(4, vocab, size=(batch, time)).astype("int32")
    ids[1, 3:] = 0  # a shorter sequence, padded
    return ids


@pytest.mark.parametrize("cell,layers,bidirectional", GRID)
def test_encoder_state_structure(cell, layers, bidirectional):
    encoder = Encoder(cell, UNITS, layers, bidirectional, vocab_size=11)
    out = encoder(_source())
    directions = 2 if bidirectional else 1
    assert out.outputs.shape == (3, 5, UNITS * directions)
    assert out.mask.shape == (3, 5)
    assert len(out.states) == layers
    for layer_states in out.states:
        assert len(layer_states) == directions
        for direction in layer_states:
            assert len(direction) == state_count(cell)
            for tensor in direction:
                assert tensor.shape == (3, UNITS)


@pytest.mark.parametrize("cell,layers,bidirectional", GRID)
def test_gru_and_lstm_state_wiring(cell, layers, bidirectional):
    """The top forward h state is the last real output of the top layer's forward pass."""
    encoder = Encoder(cell, UNITS, layers, bidirectional, vocab_size=11)
    source = np.array([[5, 6, 7, 8, 0, 0]], "int32")  # 4 real steps, then padding
    out = encoder(source)
    top_forward_h = keras.ops.convert_to_numpy(out.states[-1][0][0])
    outputs = keras.ops.convert_to_numpy(out.outputs)
    np.testing.assert_allclose(top_forward_h[0], outputs[0, 3, :UNITS], atol=1e-6)
    if bidirectional:
        # The backward pass ends at the first step.
        top_backward_h = keras.ops.convert_to_numpy(out.states[-1][1][0])
        np.testing.assert_allclose(top_backward_h[0], outputs[0, 0, UNITS:], atol=1e-6)


@pytest.mark.parametrize("cell,layers,bidirectional", GRID)
def test_bridge_gives_decoder_states_of_decoder_size(cell, layers, bidirectional):
    encoder = Encoder(cell, UNITS, layers, bidirectional, vocab_size=11)
    out = encoder(_source())
    states = ConcatBridge()(out.states)
    directions = 2 if bidirectional else 1
    assert len(states) == layers
    for layer_state in states:
        assert len(layer_state) == state_count(cell)
        for tensor in layer_state:
            assert tensor.shape == (3, UNITS * directions)
    if bidirectional:
        forward_h = keras.ops.convert_to_numpy(out.states[0][0][0])
        backward_h = keras.ops.convert_to_numpy(out.states[0][1][0])
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(states[0][0]), np.concatenate([forward_h, backward_h], -1)
        )
    # The decoder accepts exactly this structure.
    decoder = Decoder(cell, UNITS * directions, layers, vocab_size=9)
    logits = decoder(np.ones((3, 4), "int32"), states)
    assert logits.shape == (3, 4, 9)


@pytest.mark.parametrize("cell,layers,bidirectional", GRID)
def test_padding_does_not_change_states(cell, layers, bidirectional):
    encoder = Encoder(cell, UNITS, layers, bidirectional, vocab_size=11)
    alone = encoder(np.array([[4, 5, 6]], "int32"))
    batched = encoder(np.array([[4, 5, 6, 0, 0, 0, 0], [7, 8, 9, 10, 4, 5, 6]], "int32"))
    for layer_alone, layer_batched in zip(alone.states, batched.states, strict=True):
        for dir_alone, dir_batched in zip(layer_alone, layer_batched, strict=True):
            for a, b in zip(dir_alone, dir_batched, strict=True):
                np.testing.assert_allclose(
                    keras.ops.convert_to_numpy(a)[0], keras.ops.convert_to_numpy(b)[0], atol=1e-5
                )


@pytest.mark.parametrize("cell", CELLS)
def test_decoder_step_equals_teacher_forced_pass(cell):
    """Running ``step`` token by token reproduces the one-pass teacher-forced logits."""
    decoder = Decoder(cell, UNITS, 2, vocab_size=9)
    rng = np.random.default_rng(1)
    n = state_count(cell)
    states = tuple(
        tuple(rng.normal(size=(2, UNITS)).astype("float32") for _ in range(n)) for _ in range(2)
    )
    tokens = np.array([[1, 4, 5, 6], [1, 7, 8, 3]], "int32")
    full = keras.ops.convert_to_numpy(decoder(tokens, states))
    current = states
    for t in range(tokens.shape[1]):
        logits, current = decoder.step(tokens[:, t], current)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(logits), full[:, t], atol=1e-5)


def test_features_source_masks_all_zero_frames():
    config = ModelConfig(cell="gru", units=UNITS, source_input="features", num_features=26)
    model = build_model(config, None, 9)
    rng = np.random.default_rng(0)
    frames = rng.normal(size=(1, 4, 26)).astype("float32")
    padded = np.concatenate([frames, np.zeros((1, 3, 26), "float32")], axis=1)
    a = model.encoder(frames).states[0][0][0]
    b = model.encoder(padded).states[0][0][0]
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), atol=1e-6
    )


def test_one_hot_layer_round_trips_config():
    layer = OneHot(7, name="x")
    clone = OneHot.from_config(layer.get_config())
    assert clone.depth == 7 and clone.name == "x"
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(clone(np.array([[0, 3]]))), np.eye(7)[[[0, 3]]]
    )
    with pytest.raises(ValueError, match="depth=-1"):
        OneHot(-1)


def test_encoder_and_decoder_get_config_round_trip():
    encoder = Encoder("gru", 5, 2, True, dropout=0.1, vocab_size=13, source_input="embedding")
    assert Encoder.from_config(encoder.get_config()).get_config() == encoder.get_config()
    decoder = Decoder("lstm", 10, 2, vocab_size=9, target_input="embedding", embedding_dim=4)
    assert Decoder.from_config(decoder.get_config()).get_config() == decoder.get_config()
