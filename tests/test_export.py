"""SavedModel export: reloaded in a fresh process without seq2seq, it gives the Translator's output."""

import base64
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from model_dirs import write_untrained_model_dir

from seq2seq.export import (
    ExportError,
    _whitespace_pattern,
    encode_token,
    export_saved_model,
)
from seq2seq.translator import Translator

INPUTS = [
    "abc de",
    "",
    "   ",
    "hello world",
    "hello\u3000 \x1cworld\u2028x",  # whitespace Python splits on, beyond ASCII
    "qqq zzz",  # never seen in training
    "Ωmega ☃ 😀 👩‍👩‍👧",
    "e\u0301\u0301 \u0651",
    "\x00\x07\u200b\ufeff",
    "éa " * 20,  # longer than max_source_length: truncated
    "abc de",
]

# Runs in a fresh interpreter: loads the SavedModel with TensorFlow alone.
_LOAD = r"""
import json, sys
import tensorflow as tf
export_dir, inputs_file = sys.argv[1:]
with open(inputs_file, encoding="utf-8") as f:
    inputs = json.load(f)
loaded = tf.saved_model.load(export_dir)
sentences = tf.constant(inputs, tf.string)
out = {
    "translations": [
        t.decode("utf-8")
        for t in loaded.signatures["serving_default"](sentences=sentences)["translations"].numpy()
    ],
    "one_by_one": [
        loaded.signatures["serving_default"](sentences=tf.constant([s]))["translations"]
        .numpy()[0]
        .decode("utf-8")
        for s in inputs
    ],
    "empty_batch": loaded.signatures["serving_default"](
        sentences=tf.constant([], tf.string)
    )["translations"].numpy().tolist(),
    **{k: v.numpy().tolist() for k, v in loaded.signatures["translate_ids"](sentences=sentences).items()},
    "source_ids": loaded.signatures["tokenize"](sentences=sentences)["source_ids"].numpy().tolist(),
    "imports_seq2seq": any(name.split(".")[0] == "seq2seq" for name in sys.modules),
}
states = loaded.signatures["encode"](source_ids=tf.constant(out["source_ids"], tf.int32))
step = loaded.signatures["decode_step"](
    tokens=tf.ones([len(inputs)], tf.int32), **{k: states[k] for k in states}
)
out["states"] = {k: v.numpy().tolist() for k, v in states.items()}
out["probabilities"] = step["probabilities"].numpy().tolist()
print(json.dumps(out))
"""


def _load_in_fresh_process(export_dir, inputs, tmp_path):
    inputs_file = tmp_path / "inputs.json"
    inputs_file.write_text(json.dumps(inputs), encoding="utf-8")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", _LOAD, str(export_dir), str(inputs_file)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,  # not the repository, so `seq2seq` is not importable by accident
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.parametrize(
    "tokenizer,overrides,attention",
    [
        ("char", {}, "none"),
        ("word", {}, "none"),
        ("char", {"strategy": "beam", "beam_size": 3, "n_best": 2, "length_penalty": 0.6}, "none"),
        ("word", {"strategy": "sampling", "n_best": 2, "sampling_topk": 3, "seed": 7}, "none"),
        ("word", {"strategy": "beam", "beam_size": 3, "n_best": 2}, "additive"),
    ],
)
def test_export_round_trip_equals_translator(tmp_path, tokenizer, overrides, attention):
    model_dir = write_untrained_model_dir(tmp_path / "m", tokenizer, attention=attention)
    translator = Translator.load(model_dir, decode_overrides=overrides)
    export_dir = export_saved_model(translator, str(tmp_path / "export"))
    out = _load_in_fresh_process(export_dir, INPUTS, tmp_path)
    assert not out["imports_seq2seq"]

    expected = translator.translate_nbest(INPUTS)
    assert out["translations"] == [h[0].text for h in expected]
    assert out["one_by_one"] == out["translations"]  # any batch size
    assert out["empty_batch"] == []
    n = translator.strategy.num_hypotheses
    assert np.array(out["ids"]).shape == (len(INPUTS), n, translator.config.decode.max_length)
    for row, hypotheses in enumerate(expected):
        for k, hypothesis in enumerate(hypotheses):
            assert out["ids"][row][k][: out["lengths"][row][k]] == hypothesis.ids
            np.testing.assert_allclose(out["scores"][row][k], hypothesis.score, atol=1e-5)

    # The inference graph signatures equal the Python inference models.
    source = np.array(out["source_ids"], "int32")
    assert source.shape[1] % 8 == 0
    for row, sentence in enumerate(INPUTS):
        ids = translator.encode_sources([sentence])[0]
        assert source[row, : len(ids)].tolist() == ids and not source[row, len(ids) :].any()
    states = translator.inference_graph.encoder_model(source)
    names = [f"state_{i}" for i in range(len(out["states"]))]
    if attention != "none":  # the attention memory follows the recurrent states
        names = [*names[:-3], "memory_values", "memory_keys", "memory_mask"]
    for name, want in zip(names, states, strict=True):
        np.testing.assert_allclose(out["states"][name], np.asarray(want), atol=1e-5)
    step = translator.inference_graph.step_model([np.ones(len(INPUTS), "int32"), *states])
    np.testing.assert_allclose(out["probabilities"], np.asarray(step[0]), atol=1e-5)


def test_export_refuses_a_used_directory_unless_overwrite(tmp_path):
    model_dir = write_untrained_model_dir(tmp_path / "m")
    translator = Translator.load(model_dir)
    export_dir = tmp_path / "export"
    export_dir.mkdir()
    (export_dir / "keep.txt").write_text("x")
    with pytest.raises(ExportError, match="already exists"):
        export_saved_model(translator, str(export_dir))
    assert (export_dir / "keep.txt").exists()
    export_saved_model(translator, str(export_dir), overwrite=True)
    assert (export_dir / "saved_model.pb").exists() and not (export_dir / "keep.txt").exists()
    assert (export_dir / "assets.extra" / "config.json").exists()
    leftovers = [name for name in os.listdir(tmp_path) if name.startswith(".tmp-")]
    assert leftovers == []


def test_vocab_asset_lines_hold_any_token():
    for token in ["a", " ", "\n", "\r", "<unk>", "😀", "e\u0301"]:
        line = encode_token(token)
        assert b"\n" not in line and b"=" not in line
        assert base64.urlsafe_b64decode(line + b"=" * (-len(line) % 4)).decode() == token


def test_whitespace_pattern_covers_exactly_python_split():
    pattern = _whitespace_pattern()
    for c in ["\t", "\x1c", "\x85", "\u3000", "\u2028", " "]:
        assert f"\\x{{{ord(c):x}}}" in pattern
    for c in ["\u200b", "\ufeff", "a"]:
        assert f"\\x{{{ord(c):x}}}" not in pattern
