"""Subword (WordPiece) tokenisation: learning, round trips, UNK, files, config, training, export."""

import collections
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seq2seq import subword
from seq2seq.config import Config, ConfigError, DataConfig, ModelConfig, TrainConfig
from seq2seq.subword import (
    MAX_BYTES_PER_WORD,
    SubwordTokenizer,
    join_pieces,
    learn_wordpieces,
    matcher_vocabulary,
)
from seq2seq.vocab import (
    RESERVED_TOKENS,
    UNK,
    UNK_ID,
    Vocabulary,
    get_tokenizer,
    tokenizer_names,
)

NUM_RESERVED = len(RESERVED_TOKENS)

CORPUS = [
    "the cat sat on the mat",
    "the cats are sitting on the mats",
    "a dog is sitting on a log",
    "dogs and cats are playing in the park",
    "the player plays with the cat",
    "two players are playing with a dog",
    "a man is sitting in the park",
    "the men are walking their dogs",
]


@pytest.fixture(scope="module")
def corpus_vocab():
    return Vocabulary.build(CORPUS, "subword", max_size=200)


def _alphabet(texts):
    return {char for text in texts for char in text if not char.isspace()}


@pytest.mark.parametrize("max_size", [NUM_RESERVED, 10, 60, 8000])
def test_learning_respects_the_size_bound_and_reserved_ids(max_size):
    built = Vocabulary.build(CORPUS, "subword", max_size=max_size)
    assert built.size <= max_size
    assert built.tokens[:NUM_RESERVED] == RESERVED_TOKENS
    assert not set(built.tokens[NUM_RESERVED:]) & set(RESERVED_TOKENS)
    assert built.tokenizer.name == "subword"
    # Characters come first, most frequent first, each with its continuation form.
    chars = collections.Counter(char for text in CORPUS for char in text if not char.isspace())
    first = min(chars, key=lambda char: (-chars[char], char))
    assert built.tokens[NUM_RESERVED : NUM_RESERVED + 2] == (first, "##" + first)[: max_size - 4]
    if max_size >= 60:
        for char in _alphabet(CORPUS):
            assert char in built and "##" + char in built


def test_learning_fills_the_budget_and_ignores_text_order():
    # 36 character tokens; the 14 pieces seen at least twice overflow the
    # 10 places left, those seen 3 times do not: the first are cut to fit.
    built = Vocabulary.build(CORPUS, "subword", max_size=50)
    assert built.size == 50
    assert built == Vocabulary.build(CORPUS[::-1], "subword", max_size=50)
    assert any(len(token.removeprefix("##")) > 1 for token in built.tokens[NUM_RESERVED:])


def test_learned_pieces_are_seen_at_least_min_count_times(corpus_vocab):
    assert "the" in corpus_vocab and "sitting" in corpus_vocab  # seen twice or more
    strict = Vocabulary.build(CORPUS, "subword", max_size=200, min_count=100)
    assert {len(t.removeprefix("##")) for t in strict.tokens[NUM_RESERVED:]} == {1}
    with pytest.raises(ValueError, match="min_count"):
        learn_wordpieces(CORPUS, min_count=0)
    with pytest.raises(ValueError, match="max_size=3"):
        learn_wordpieces(CORPUS, max_size=3)


def test_words_split_by_longest_match_with_continuations():
    tokens = RESERVED_TOKENS + ("s", "##s", "i", "##i", "t", "##t", "n", "##n", "g", "##g")
    built = Vocabulary(tokens + ("sit", "##ting", "##in"), "subword")
    assert built.tokenizer.tokenize("sitting  sits\tsit") == [
        "sit",
        "##ting",
        "sit",
        "##s",
        "sit",
    ]
    assert built.decode(built.encode("sitting  sits\tsit", add_eos=True)) == "sitting sits sit"


def test_unknown_character_makes_its_word_one_unk(corpus_vocab):
    ids = corpus_vocab.encode("the ca☃t sat")
    assert ids == corpus_vocab.encode("the") + [UNK_ID] + corpus_vocab.encode("sat")
    assert corpus_vocab.decode(ids) == "the <unk> sat"
    too_long = "a" * (MAX_BYTES_PER_WORD + 1)
    assert corpus_vocab.encode(f"{too_long} cat") == [UNK_ID, *corpus_vocab.encode("cat")]
    assert corpus_vocab.encode("\ud800 cat") == [UNK_ID, *corpus_vocab.encode("cat")]
    assert corpus_vocab.encode("") == corpus_vocab.encode(" \t\n") == []
    # The literal text "<unk>" is the unknown token, so it decodes back to itself.
    assert corpus_vocab.encode("<unk>") == [UNK_ID]


def test_text_never_makes_pad_bos_or_eos(corpus_vocab):
    built = Vocabulary.build(["<pad> <s> </s> a"] * 3, "subword")
    ids = built.encode("<pad> <s> </s>")
    assert set(ids).isdisjoint({0, 1, 2})
    assert built.decode(ids) == "<pad> <s> </s>"
    assert matcher_vocabulary(built.tokens)[:NUM_RESERVED] == [
        "<unused 0>",
        "<unused 1>",
        "<unused 2>",
        UNK,
    ]


def test_join_pieces_glues_continuations():
    assert join_pieces(["##a", "b", "##c", UNK, "##d", "##", "e"]) == "a bc <unk>d e"
    assert join_pieces([]) == ""


@settings(max_examples=40, deadline=None)
@given(
    texts=st.lists(st.text(alphabet="ab#é😀 \t\n", max_size=25), min_size=1, max_size=6),
    probe=st.text(alphabet="ab#é😀 ", max_size=25),
    max_size=st.integers(20, 200),
)
def test_round_trip_of_text_with_known_characters(texts, probe, max_size):
    built = Vocabulary.build(texts, "subword", max_size=max_size)
    assert built.size <= max_size
    known = _alphabet(texts)
    if 2 * len(known) > max_size - NUM_RESERVED:
        return
    for text in [*texts, "".join(char for char in probe if char in known or char.isspace())]:
        ids = built.encode(text, add_bos=True, add_eos=True)
        assert UNK_ID not in ids
        assert built.decode(ids) == " ".join(text.split())
        assert built.tokenizer.normalize(text) == " ".join(text.split())
    assert built.encode_batch(texts) == [built.encode(text) for text in texts]


def test_word_cache_starting_again_keeps_results(monkeypatch, corpus_vocab):
    expected = [corpus_vocab.encode(text) for text in CORPUS]
    fresh = Vocabulary(corpus_vocab.tokens, "subword")
    monkeypatch.setattr(subword, "MAX_CACHED_WORDS", 5)
    assert [fresh.encode(text) for text in CORPUS] == expected
    assert fresh.encode_batch(CORPUS) == expected


def test_words_beginning_with_the_mark_round_trip():
    built = Vocabulary.build(["## ### #a a## ##ab"] * 3, "subword", max_size=100)
    text = "a ## ### #a a## ##ab ab# ####"
    assert built.decode(built.encode(text)) == text


def test_vocabulary_file_rebuilds_the_tokenizer(tmp_path, corpus_vocab):
    path = tmp_path / "vocab.json"
    corpus_vocab.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["tokenizer"] == "subword" and data["tokens"] == list(corpus_vocab.tokens)
    assert sorted(data) == ["format", "tokenizer", "tokens", "version"]
    loaded = Vocabulary.load(path)
    assert loaded == corpus_vocab
    for text in CORPUS + ["the ca☃t plays"]:
        assert loaded.encode(text) == corpus_vocab.encode(text)


def test_unbound_tokenizer_can_only_learn_and_join():
    assert "subword" in tokenizer_names()
    tokenizer = get_tokenizer("subword")
    assert isinstance(tokenizer, SubwordTokenizer) and tokenizer.needs_vocabulary
    assert tokenizer.detokenize(["sit", "##ting"]) == "sitting"
    with pytest.raises(ValueError, match="Vocabulary.build"):
        tokenizer.tokenize("sitting")


def test_vocab_module_does_not_import_tensorflow(tmp_path, corpus_vocab):
    path = tmp_path / "vocab.json"
    corpus_vocab.save(path)
    code = (
        "import sys\n"
        "from seq2seq.vocab import Vocabulary\n"
        "Vocabulary.build(['ab c'], 'word').encode('ab')\n"
        f"loaded = Vocabulary.load({str(path)!r})\n"
        "assert loaded.decode([loaded.token_to_id('the'), 3]) == 'the <unk>'\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_config_accepts_subword_and_validates_its_size():
    data = DataConfig(source_tokenizer="subword", target_tokenizer="subword")
    assert data.subword_vocab_size == 8000
    assert data.vocab_size_limit("subword") == 8000
    assert DataConfig(max_vocab_size=500).vocab_size_limit("subword") == 500
    assert DataConfig(max_vocab_size=500).vocab_size_limit("word") == 500
    with pytest.raises(ConfigError, match=r"`data.subword_vocab_size`.*subword_vocab_size=3"):
        DataConfig(subword_vocab_size=3)
    with pytest.raises(ConfigError, match=r"data.subword_vocab_size='big'"):
        Config.from_dict({"data": {"subword_vocab_size": "big"}})
    with pytest.raises(ConfigError, match=r"'subword'.*data.source_tokenizer='bpe'"):
        DataConfig(source_tokenizer="bpe")


def test_train_flags_set_the_subword_config():
    from absl import flags

    from seq2seq.cli import train as train_cli

    flags.FLAGS.unparse_flags()
    try:
        flags.FLAGS(["seq2seq-train", "--tokenizer=subword", "--subword_vocab_size=500"])
        data = train_cli.config_from_flags(None).data
    finally:
        flags.FLAGS.unparse_flags()
    assert (data.source_tokenizer, data.target_tokenizer) == ("subword", "subword")
    assert data.subword_vocab_size == 500


# --- A model trained with subword vocabularies on both sides, and its export.

PAIRS = [(text, " ".join(word[::-1] for word in text.split())) for text in CORPUS * 4]


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory):
    from seq2seq.training import train

    model_dir = str(tmp_path_factory.mktemp("subword") / "model")
    config = Config(
        model=ModelConfig(cell="gru", units=16),
        data=DataConfig(
            source_tokenizer="subword",
            target_tokenizer="subword",
            subword_vocab_size=60,
            max_source_length=12,
        ),
        train=TrainConfig(epochs=1, batch_size=16),
    )
    train(config, PAIRS, None, model_dir, verbose=0)
    return model_dir


def test_train_and_translate_with_subword_vocabularies(trained_dir):
    from seq2seq.translator import Translator

    translator = Translator.load(trained_dir)
    for vocab in (translator.source_vocab, translator.target_vocab):
        assert vocab.tokenizer.name == "subword" and vocab.size <= 60
    assert Config.load(trained_dir).data.subword_vocab_size == 60
    translations = translator.translate(["the cat sat", "", "a ca☃t"])
    assert len(translations) == 3 and all(isinstance(t, str) for t in translations)


EXPORT_INPUTS = [
    "the cat sat",
    "",
    "   ",
    "the ca☃t\u3000sat\u2028on",  # an unknown character; whitespace beyond ASCII
    "##the #cat",
    "the " * 20,  # longer than max_source_length: truncated
    "a" * (MAX_BYTES_PER_WORD + 1),
]


# Runs in a fresh interpreter: TensorFlow and tensorflow-text load the export.
_LOAD = r"""
import json, sys
import tensorflow as tf
import tensorflow_text
loaded = tf.saved_model.load(sys.argv[1])
sentences = tf.constant(json.loads(sys.argv[2]))
out = loaded.signatures["serving_default"](sentences=sentences)["translations"].numpy()
print(json.dumps({
    "translations": [t.decode("utf-8") for t in out],
    "imports_seq2seq": any(name.split(".")[0] == "seq2seq" for name in sys.modules),
}))
"""


def test_export_tokenize_and_detokenize_equal_the_python_path(trained_dir, tmp_path):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the WordPiece ops for loading)

    from seq2seq.export import export_saved_model
    from seq2seq.translator import Translator

    translator = Translator.load(trained_dir)
    export_dir = export_saved_model(translator, str(tmp_path / "export"))
    loaded = tf.saved_model.load(export_dir)
    sentences = tf.constant(EXPORT_INPUTS)
    source = loaded.signatures["tokenize"](sentences=sentences)["source_ids"].numpy()
    for row, ids in enumerate(translator.encode_sources(EXPORT_INPUTS)):
        assert source[row, : len(ids)].tolist() == ids and not source[row, len(ids) :].any()
    assert UNK_ID in source[3] and UNK_ID in source[6]

    vocab = translator.target_vocab
    rng = np.random.default_rng(0)
    ids = rng.choice([0, 1, *range(UNK_ID, vocab.size)], size=(20, 7)).astype("int32")
    ids[0] = [UNK_ID, 0, 1, 0, 0, 0, 0]
    ids[1, 0] = vocab.token_to_id("##e")  # a continuation first
    lengths = rng.integers(0, 8, size=20).astype("int32")
    text = loaded.signatures["detokenize"](ids=ids, lengths=lengths)["text"].numpy()
    for row in range(len(ids)):
        assert text[row].decode("utf-8") == vocab.decode(ids[row, : lengths[row]])

    expected = translator.translate(EXPORT_INPUTS)
    served = loaded.signatures["serving_default"](sentences=sentences)["translations"]
    assert [t.decode("utf-8") for t in served.numpy()] == expected

    result = subprocess.run(
        [sys.executable, "-c", _LOAD, export_dir, json.dumps(EXPORT_INPUTS)],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=300,
        cwd=tmp_path,  # not the repository, so `seq2seq` is not importable by accident
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.splitlines()[-1])
    assert out == {"translations": expected, "imports_seq2seq": False}
