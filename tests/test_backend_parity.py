"""Keras backend portability: models and decoding saved under TensorFlow run the same on JAX.

The JAX side runs in a subprocess with ``KERAS_BACKEND=jax`` (a Keras process
has one backend); it loads the ``.keras`` files and model directory written
here and prints its outputs as JSON.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from seq2seq.config import Config, ModelConfig, TrainConfig
from seq2seq.decoding import BeamSearch, DecodingModel, GreedySearch, RandomSampling
from seq2seq.model import build_model
from seq2seq.training import train
from seq2seq.translator import Translator

SOURCE = np.array([[4, 5, 6, 7], [8, 9, 0, 0], [10, 0, 0, 0]], "int32")
DECODER_INPUT = np.array([[1, 4, 5], [1, 6, 0], [1, 0, 0]], "int32")
SENTENCES = ["abc", "dcba", "", "bad", "zz😀", "cab", "eda", "bee"]
STRATEGIES = {
    "greedy": lambda: GreedySearch(),
    "beam": lambda: BeamSearch(beam_size=3, n_best=2),
    "sampling": lambda: RandomSampling(temperature=1.5, seed=3, num_samples=2),
}

# Run under KERAS_BACKEND=jax: argv = .keras paths, model_dir, sentences, source,
# decoder input (JSON except model_dir).
_JAX_SIDE = r"""
import json, sys
import numpy as np
import keras
from seq2seq import model as _model  # registers the Keras classes
from seq2seq.decoding import BeamSearch, DecodingModel, GreedySearch, RandomSampling
from seq2seq.translator import Translator

assert keras.backend.backend() == "jax", keras.backend.backend()
paths, model_dir = json.loads(sys.argv[1]), sys.argv[2]
source = np.array(json.loads(sys.argv[4]), "int32")
decoder_input = np.array(json.loads(sys.argv[5]), "int32")
strategies = {
    "greedy": GreedySearch(),
    "beam": BeamSearch(beam_size=3, n_best=2),
    "sampling": RandomSampling(temperature=1.5, seed=3, num_samples=2),
}
out = {"models": []}
for path in paths:
    model = keras.saving.load_model(path, compile=False, safe_mode=True)
    row = {"logits": np.asarray(model({"source": source, "decoder_input": decoder_input})).tolist()}
    for name, strategy in strategies.items():
        result = DecodingModel(model, strategy, 8).predict_on_batch(source)
        row[name] = {k: np.asarray(v).tolist() for k, v in result.items()}
    out["models"].append(row)
sentences = json.loads(sys.argv[3])
out["translations"] = Translator.load(model_dir).translate(sentences)
out["beam_translations"] = Translator.load(
    model_dir, decode_overrides={"strategy": "beam", "beam_size": 4}
).translate(sentences)
print(json.dumps(out))
"""


def _run_on_jax(paths, model_dir, tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _JAX_SIDE,
            json.dumps(paths),
            model_dir,
            json.dumps(SENTENCES),
            json.dumps(SOURCE.tolist()),
            json.dumps(DECODER_INPUT.tolist()),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory):
    words = [""]
    for _ in range(4):
        words = words + [w + c for w in words for c in "abcde" if len(w) < 4]
    pairs = [(w, w[::-1]) for w in sorted(set(words)) if len(w) >= 2]
    config = Config(
        model=ModelConfig(cell="gru", units=64),
        train=TrainConfig(epochs=8, batch_size=32, seed=2, learning_rate=1e-2),
    )
    model_dir = str(tmp_path_factory.mktemp("trained") / "m")
    train(config, pairs, pairs[:8], model_dir, verbose=0)
    return model_dir


def test_jax_backend_gives_tensorflow_outputs(tmp_path, trained_dir):
    configs = [
        ModelConfig(cell="lstm", units=8, layers=2, bidirectional=True, attention="additive"),
        ModelConfig(cell="gru", units=8, bidirectional=True, target_input="embedding"),
        ModelConfig(
            cell="simple_rnn",
            units=8,
            layers=2,
            source_input="embedding",
            attention="multiplicative",
        ),
    ]
    paths, expected = [], []
    for index, config in enumerate(configs):
        keras.utils.set_random_seed(index)
        model = build_model(config, source_vocab_size=12, target_vocab_size=10)
        bias = np.linspace(-0.5, 0.5, 10).astype("float32")
        bias[2] = 0.6  # EOS likely enough that hypotheses end at different steps
        model.decoder.projection.bias.assign(bias)
        path = str(tmp_path / f"m{index}.keras")
        model.save(path)
        paths.append(path)
        row = {
            "logits": keras.ops.convert_to_numpy(
                model({"source": SOURCE, "decoder_input": DECODER_INPUT})
            )
        }
        for name, make in STRATEGIES.items():
            row[name] = DecodingModel(model, make(), 8).predict_on_batch(SOURCE)
        expected.append(row)

    jax_out = _run_on_jax(paths, trained_dir, tmp_path)

    for want, got in zip(expected, jax_out["models"], strict=True):
        np.testing.assert_allclose(got["logits"], want["logits"], atol=1e-4)
        for name in STRATEGIES:
            np.testing.assert_array_equal(got[name]["ids"], want[name]["ids"], err_msg=name)
            np.testing.assert_array_equal(got[name]["lengths"], want[name]["lengths"])
            np.testing.assert_allclose(got[name]["scores"], want[name]["scores"], atol=1e-4)
    # A trained model: the same translations, token for token.
    assert jax_out["translations"] == Translator.load(trained_dir).translate(SENTENCES)
    beam = Translator.load(trained_dir, decode_overrides={"strategy": "beam", "beam_size": 4})
    assert jax_out["beam_translations"] == beam.translate(SENTENCES)
    # The model learned the task, so the equality is not between two kinds of noise.
    right = sum(t == s[::-1] for s, t in zip(SENTENCES, jax_out["translations"], strict=True))
    assert right >= 5, jax_out["translations"]
