"""Bad input at translation time, bad model files, and no code execution on load."""

import ast
import json
import os
import pathlib

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from model_dirs import write_untrained_model_dir

import seq2seq
from seq2seq.cli.translate import read_lines
from seq2seq.config import Config, ConfigError
from seq2seq.training import BEST_MODEL_FILENAME
from seq2seq.translator import LongInputError, ModelFileError, Translator
from seq2seq.vocab import Vocabulary, VocabularyError

ODD_INPUTS = [
    "abc",
    "",
    "   ",
    "\t \u3000",  # whitespace only, including an ideographic space
    "qqq zzz",  # characters never seen in training
    "Ωmega ☃ 😀 👩‍👩‍👧",  # astral emoji and a ZWJ sequence
    "e\u0301\u0301 \u0651",  # combining marks without (or on) a base
    "\x00\x07\u200b\ufeff",  # control, zero-width and BOM characters
    "x" * 300,  # longer than max_source_length
    "abc",
]


@pytest.fixture(scope="module", params=["char", "word"])
def translator(request, tmp_path_factory):
    model_dir = write_untrained_model_dir(
        tmp_path_factory.mktemp(request.param) / "m", request.param
    )
    return Translator.load(model_dir)


def test_odd_inputs_give_one_output_per_input_in_order(translator):
    outputs = translator.translate_detailed(ODD_INPUTS, batch_size=4)
    assert len(outputs) == len(ODD_INPUTS)
    assert all(isinstance(o.text, str) and np.isfinite(o.score) for o in outputs)
    assert outputs[0] == outputs[-1]  # the same input at both ends


def test_results_come_back_in_input_order(translator, monkeypatch):
    # An echo decoder (output ids = source ids) makes order visible exactly.
    def echo(source):
        return {
            "ids": source[:, None],
            "lengths": (source != 0).sum(axis=1)[:, None],
            "scores": np.zeros((len(source), 1)),
        }

    monkeypatch.setattr(translator, "decode_ids", echo)
    monkeypatch.setattr(translator, "target_vocab", translator.source_vocab)
    sources = ["hello", "", "a", "abc de", "world hello", "d"]
    vocab = translator.source_vocab
    expected = [vocab.decode(vocab.encode(s)) for s in sources]
    assert translator.translate(sources, batch_size=2) == expected


def test_long_input_truncated_with_warning_or_rejected(tmp_path, caplog):
    model_dir = write_untrained_model_dir(tmp_path / "m")
    assert len(Translator.load(model_dir).translate(["a" * 13, "b" * 40])) == 2
    assert "2 input(s) longer than max_source_length=12 tokens were truncated" in caplog.text
    assert "(indices 0, 1)" in caplog.text
    strict = Translator.load(model_dir, long_input="error")
    assert len(strict.translate(["a" * 12])) == 1  # at the limit is fine
    with pytest.raises(LongInputError, match="input 1 has 13 tokens") as info:
        strict.translate(["abc", "a" * 13])
    assert (info.value.index, info.value.length, info.value.limit) == (1, 13, 12)
    with pytest.raises(ValueError, match="long_input='cut'"):
        Translator.load(model_dir, long_input="cut")


def test_non_string_input_is_a_clear_type_error(translator):
    with pytest.raises(TypeError, match="index 1: None"):
        translator.translate(["abc", None])
    assert translator.translate([]) == []


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sentences=st.lists(st.text(max_size=30), max_size=6))
def test_any_unicode_translates_one_output_per_input(translator, sentences):
    outputs = translator.translate(sentences, batch_size=4)
    assert len(outputs) == len(sentences) and all(isinstance(o, str) for o in outputs)


def test_vocabulary_that_does_not_fit_the_weights_is_refused(tmp_path):
    model_dir = write_untrained_model_dir(tmp_path / "m")
    Vocabulary.build(["abcdefghijk"], "char").save(os.path.join(model_dir, "source_vocab.json"))
    with pytest.raises(ModelFileError, match="source_vocab.json has 15 tokens but the model"):
        Translator.load(model_dir)


def test_config_that_does_not_fit_the_weights_is_refused(tmp_path):
    model_dir = write_untrained_model_dir(tmp_path / "m")
    with open(os.path.join(model_dir, "config.json")) as f:
        data = json.load(f)
    data["model"]["cell"] = "lstm"
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(data, f)
    with pytest.raises(ModelFileError, match="config.json describes model"):
        Translator.load(model_dir)


def test_model_file_with_python_code_is_not_executed(tmp_path):
    model_dir = write_untrained_model_dir(tmp_path / "m")
    marker = tmp_path / "code_ran"

    def payload(x):
        marker.write_text("ran")
        return x

    inputs = keras.Input((3,))
    evil = keras.Model(inputs, keras.layers.Lambda(lambda x: payload(x))(inputs))
    evil.save(os.path.join(model_dir, BEST_MODEL_FILENAME))
    marker.unlink()
    with pytest.raises(ModelFileError, match=f"{BEST_MODEL_FILENAME}: cannot load.*safe_mode"):
        Translator.load(model_dir)
    assert not marker.exists()


def test_a_keras_model_of_another_kind_is_refused(tmp_path):
    model_dir = write_untrained_model_dir(tmp_path / "m")
    inputs = keras.Input((3,))
    keras.Model(inputs, keras.layers.Dense(2)(inputs)).save(
        os.path.join(model_dir, BEST_MODEL_FILENAME)
    )
    with pytest.raises(ModelFileError, match="holds a Functional, not a seq2seq"):
        Translator.load(model_dir)


_UNSAFE_NAMES = {"pickle", "cPickle", "dill", "joblib", "marshal", "shelve", "cloudpickle"}


def test_package_never_unpickles_or_loads_unsafely():
    """No pickle-like module anywhere; every Keras load runs in safe mode."""
    for path in pathlib.Path(seq2seq.__file__).parent.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                names = {(node.module or "").split(".")[0]}
            else:
                names = set()
            assert not names & _UNSAFE_NAMES, f"{path}:{node.lineno} imports {names}"
            if isinstance(node, ast.Call):
                keywords = {k.arg: k.value for k in node.keywords}
                name = getattr(node.func, "attr", getattr(node.func, "id", ""))
                where = f"{path}:{node.lineno}"
                assert name not in ("eval", "exec"), where
                allow_pickle = keywords.get("allow_pickle")
                assert not (isinstance(allow_pickle, ast.Constant) and allow_pickle.value), where
                if name == "load_model":
                    safe = keywords.get("safe_mode")
                    assert isinstance(safe, ast.Constant) and safe.value is True, where


_SETTINGS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
_JSONISH = st.one_of(
    st.binary(max_size=80),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=12,
    ).map(lambda value: json.dumps(value).encode()),
)


@_SETTINGS
@given(data=_JSONISH)
def test_vocabulary_file_of_random_content_raises_only_vocabulary_error(tmp_path, data):
    path = tmp_path / "vocab.json"
    path.write_bytes(data)
    try:
        Vocabulary.load(path)
    except VocabularyError as error:
        assert str(path) in str(error)


@_SETTINGS
@given(
    data=_JSONISH
    | st.fixed_dictionaries(
        {
            "model": st.dictionaries(
                st.sampled_from(["units", "cell"]), st.integers() | st.text(max_size=4)
            )
        }
    ).map(lambda value: json.dumps(value).encode())
)
def test_config_file_of_random_content_raises_only_config_error(tmp_path, data):
    (tmp_path / "config.json").write_bytes(data)
    try:
        Config.load(str(tmp_path))
    except ConfigError as error:
        assert "config.json" in str(error)


@_SETTINGS
@given(data=st.binary(max_size=120))
def test_translate_input_of_random_bytes_keeps_one_item_per_line(tmp_path, data):
    path = tmp_path / "in.txt"
    path.write_bytes(data)
    try:
        lines = read_lines(str(path))
    except ValueError as error:
        assert str(error).startswith(f"{path}:") and "not valid UTF-8" in str(error)
        return
    body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    assert len(lines) == body.count(b"\n") + (0 if body.endswith(b"\n") or not body else 1)
