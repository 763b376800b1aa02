"""Attention over the encoder outputs: masking, the context, precision, training."""

import keras
import numpy as np
import pytest

from seq2seq.config import Config, ConfigError, DataConfig, ModelConfig, TrainConfig
from seq2seq.layers import Attention
from seq2seq.model import build_model
from seq2seq.training import train
from seq2seq.translator import Translator


def _np(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("score", ["additive", "multiplicative"])
def test_weights_cover_real_steps_only_and_context_is_their_average(score):
    rng = np.random.default_rng(0)
    attention = Attention(score, units=6)
    values = rng.normal(size=(3, 5, 4)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]], bool)
    query = rng.normal(size=(3, 2, 6)).astype("float32")
    memory = attention.prepare(values, mask)
    attentional, weights = attention(query, memory)
    weights = _np(weights)
    assert weights.shape == (3, 2, 5) and _np(attentional).shape == (3, 2, 6)
    np.testing.assert_allclose(weights[:2].sum(-1), 1.0, atol=1e-6)
    assert (weights[1, :, 2:] == 0).all()
    assert (weights[2] == 0).all()  # a source of padding only: no weight, no NaN
    assert np.isfinite(_np(attentional)).all()
    # The context is the weighted average of the values: changing padded
    # values changes nothing.
    changed = values.copy()
    changed[1, 2:] = 100.0
    again, _ = attention(query, attention.prepare(changed, mask))
    np.testing.assert_allclose(_np(again)[1], _np(attentional)[1], atol=1e-6)


def test_attention_sees_every_source_position():
    # Without attention the decoder sees only the final states; with it, the
    # logits depend on each encoder output.
    keras.utils.set_random_seed(0)
    model = build_model(ModelConfig(cell="gru", units=8, attention="multiplicative"), 12, 10)
    source = np.array([[4, 5, 6, 7]], "int32")
    decoder_input = np.array([[1, 4]], "int32")
    encoded = model.encoder(source)
    memory = model.decoder.prepare_memory(encoded.outputs, encoded.mask)
    states = model.bridge(encoded.states)
    base = _np(model.decoder(decoder_input, states, memory=memory))
    values = _np(memory.values).copy()
    values[0, 0] += 1.0
    moved = memory._replace(values=values)
    assert not np.allclose(_np(model.decoder(decoder_input, states, memory=moved)), base)
    with pytest.raises(ValueError, match="memory"):
        model.decoder(decoder_input, states)


def test_bad_attention_value_names_the_key():
    with pytest.raises(ConfigError, match=r"model\.attention.*'dot'"):
        Config.from_dict({"model": {"attention": "dot"}})
    with pytest.raises(ValueError, match="score='dot'"):
        Attention("dot", 4)


def test_attention_model_trains_in_bfloat16_and_translates(tmp_path):
    # Mixed precision: float32 scores and softmax, bfloat16 elsewhere.
    pairs = [(w, w[::-1]) for w in ("abc", "bca", "cab", "abcd", "dcab", "bad", "dab", "cd")] * 4
    config = Config(
        model=ModelConfig(cell="gru", units=16, bidirectional=True, attention="additive"),
        data=DataConfig(),
        train=TrainConfig(
            epochs=2, batch_size=8, learning_rate=1e-2, mixed_precision="mixed_bfloat16"
        ),
    )
    result = train(config, pairs, pairs[:4], str(tmp_path / "m"), verbose=0)
    assert all(np.isfinite(result.history["loss"]))
    assert result.history["loss"][-1] < result.history["loss"][0]
    translator = Translator.load(str(tmp_path / "m"))
    assert translator.model.decoder.attention_layer.compute_dtype == "bfloat16"
    out = translator.translate(["abc", "", "d"])
    assert len(out) == 3 and all(isinstance(t, str) for t in out)
