"""Tests for seq2seq.vocab: tokenizers, Vocabulary building, coding and files."""

import json
import os
import tempfile

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from seq2seq import vocab
from seq2seq.vocab import (
    BOS,
    BOS_ID,
    EOS,
    EOS_ID,
    PAD,
    PAD_ID,
    RESERVED_TOKENS,
    UNK,
    UNK_ID,
    CharTokenizer,
    Vocabulary,
    VocabularyError,
    WordTokenizer,
    get_tokenizer,
)

NUM_RESERVED = len(RESERVED_TOKENS)


@pytest.fixture
def word_vocab():
    return Vocabulary.build(["the cat sat", "the dog sat", "the end"], "word")


def test_reserved_ids_and_tokens():
    assert (PAD_ID, BOS_ID, EOS_ID, UNK_ID) == (0, 1, 2, 3)
    assert RESERVED_TOKENS == (PAD, BOS, EOS, UNK) == ("<pad>", "<s>", "</s>", "<unk>")
    built = Vocabulary.build(["ab"], "char")
    for token_id, token in enumerate(RESERVED_TOKENS):
        assert built.token_to_id(token) == token_id
        assert built.id_to_token(token_id) == token


@pytest.mark.parametrize(
    ("name", "cls", "text", "tokens", "joined"),
    [
        ("char", CharTokenizer, "a b", ["a", " ", "b"], "a b"),
        ("word", WordTokenizer, " a  b\tc ", ["a", "b", "c"], "a b c"),
    ],
)
def test_tokenizers_split_and_join(name, cls, text, tokens, joined):
    tokenizer = get_tokenizer(name)
    assert isinstance(tokenizer, cls)
    assert tokenizer.name == name
    assert vocab.TOKENIZERS[name] is cls
    assert tokenizer.tokenize(text) == tokens
    assert tokenizer.detokenize(tokens) == joined


def test_get_tokenizer_bad_name_lists_allowed_names():
    with pytest.raises(ValueError, match=r"'bpe'.*char, subword, word"):
        get_tokenizer("bpe")


def test_build_orders_by_frequency_then_token(word_vocab):
    # the x3, sat x2, then cat/dog/end once each in string order.
    assert word_vocab.tokens == RESERVED_TOKENS + ("the", "sat", "cat", "dog", "end")
    assert word_vocab.size == len(word_vocab) == NUM_RESERVED + 5
    assert word_vocab.tokenizer == WordTokenizer()


def test_build_is_independent_of_text_order():
    texts = ["b a c", "c c a", "d"]
    assert Vocabulary.build(texts, "word") == Vocabulary.build(texts[::-1], "word")


def test_build_min_count_and_max_size(word_vocab):
    texts = ["the cat sat", "the dog sat", "the end"]
    frequent = Vocabulary.build(texts, "word", min_count=2)
    assert frequent.tokens[NUM_RESERVED:] == ("the", "sat")
    capped = Vocabulary.build(texts, "word", max_size=NUM_RESERVED + 3)
    assert capped.tokens == word_vocab.tokens[: NUM_RESERVED + 3]
    only_reserved = Vocabulary.build(texts, "word", max_size=NUM_RESERVED)
    assert only_reserved.tokens == RESERVED_TOKENS


@pytest.mark.parametrize(
    "kwargs", [{"min_count": 0}, {"min_count": True}, {"max_size": 3}, {"max_size": 2.5}]
)
def test_build_rejects_bad_limits(kwargs):
    ((key, value),) = kwargs.items()
    with pytest.raises(ValueError, match=key):
        Vocabulary.build(["a"], "char", **kwargs)


def test_build_counts_reserved_strings_without_duplicating_them():
    built = Vocabulary.build(["<unk> <unk> x </s>"], "word")
    assert built.tokens == RESERVED_TOKENS + ("x",)


def test_unknown_token_maps_to_unk(word_vocab):
    assert word_vocab.token_to_id("zebra") == UNK_ID
    assert word_vocab.encode("the zebra sat") == [
        NUM_RESERVED,
        UNK_ID,
        NUM_RESERVED + 1,
    ]
    assert word_vocab.decode(word_vocab.encode("the zebra")) == f"the {UNK}"


def test_encode_adds_bos_and_eos(word_vocab):
    body = word_vocab.encode("the cat")
    assert word_vocab.encode("the cat", add_bos=True) == [BOS_ID, *body]
    assert word_vocab.encode("the cat", add_eos=True) == [*body, EOS_ID]
    assert word_vocab.encode("the cat", add_bos=True, add_eos=True) == [BOS_ID, *body, EOS_ID]
    assert word_vocab.encode("", add_bos=True, add_eos=True) == [BOS_ID, EOS_ID]


def test_decode_stops_at_eos_and_skips_pad_and_bos(word_vocab):
    the, cat = word_vocab.encode("the cat")
    ids = [BOS_ID, the, PAD_ID, cat, EOS_ID, the, PAD_ID, PAD_ID]
    assert word_vocab.decode(ids) == "the cat"
    assert word_vocab.decode(ids, stop_at_eos=False) == "the cat the"


def test_decode_accepts_numpy_ints(word_vocab):
    ids = np.array(word_vocab.encode("the dog", add_bos=True, add_eos=True), dtype=np.int32)
    assert word_vocab.decode(ids) == "the dog"
    assert word_vocab.decode(list(ids.astype(np.int64))) == "the dog"
    assert word_vocab.id_to_token(np.int64(NUM_RESERVED)) == "the"


@pytest.mark.parametrize("bad_id", [-1, 100])
def test_id_out_of_range_raises(word_vocab, bad_id):
    with pytest.raises(ValueError, match=str(bad_id)):
        word_vocab.id_to_token(bad_id)
    with pytest.raises(ValueError, match=str(bad_id)):
        word_vocab.decode([bad_id])


@pytest.mark.parametrize(
    ("tokens", "problem"),
    [
        (["a", "<s>", "</s>", "<unk>"], "first 4 tokens"),
        ([*RESERVED_TOKENS, "a", "a"], "duplicate"),
        ([*RESERVED_TOKENS, ""], "empty"),
        ([*RESERVED_TOKENS, 7], "string"),
    ],
)
def test_constructor_rejects_bad_tokens(tokens, problem):
    with pytest.raises(VocabularyError, match=problem):
        Vocabulary(tokens, "char")


def test_equality_depends_on_tokens_and_tokenizer():
    tokens = [*RESERVED_TOKENS, "a"]
    assert Vocabulary(tokens, "char") == Vocabulary(tokens, CharTokenizer())
    assert Vocabulary(tokens, "char") != Vocabulary(tokens, "word")
    assert Vocabulary(tokens, "char") != Vocabulary([*tokens, "b"], "char")


def test_save_load_round_trip(tmp_path):
    original = Vocabulary.build(["héllo wörld", "日本語"], "char")
    path = tmp_path / "vocab.json"
    original.save(path)
    assert Vocabulary.load(path) == original
    assert Vocabulary.load(str(path)) == original
    text = path.read_text(encoding="utf-8")
    assert "日" in text  # ensure_ascii=False
    assert json.loads(text) == original.to_dict()
    assert os.listdir(tmp_path) == ["vocab.json"]  # no temporary file left behind


def test_save_overwrites_existing_file(tmp_path):
    path = tmp_path / "vocab.json"
    Vocabulary.build(["abc"], "char").save(path)
    second = Vocabulary.build(["xyz zz"], "word")
    second.save(path)
    assert Vocabulary.load(path) == second


def test_to_dict_layout():
    assert Vocabulary([*RESERVED_TOKENS, "a"], "word").to_dict() == {
        "format": "seq2seq.vocabulary",
        "version": 1,
        "tokenizer": "word",
        "tokens": [*RESERVED_TOKENS, "a"],
    }


def test_load_missing_file_names_path(tmp_path):
    path = tmp_path / "nope.json"
    with pytest.raises(FileNotFoundError, match="nope.json"):
        Vocabulary.load(path)


def _valid_dict():
    return {
        "format": "seq2seq.vocabulary",
        "version": 1,
        "tokenizer": "char",
        "tokens": [*RESERVED_TOKENS, "a"],
    }


def _without(key):
    data = _valid_dict()
    del data[key]
    return data


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"format": "seq2seq.vocabulary", ', "invalid JSON"),
        ("[1, 2]", "JSON object"),
        (_valid_dict() | {"format": "other"}, "'format'"),
        (_valid_dict() | {"version": 2}, "version 2"),
        (_valid_dict() | {"version": "1"}, "'version'"),
        (_valid_dict() | {"tokenizer": "bpe"}, "'tokenizer'.*'bpe'"),
        (_valid_dict() | {"tokens": "abc"}, "'tokens'"),
        (_valid_dict() | {"extra": 1}, "unknown key.*'extra'"),
        (_without("tokens"), "missing key.*'tokens'"),
        (_without("format"), "missing key.*'format'"),
        (_valid_dict() | {"tokens": ["a", "<s>", "</s>", "<unk>"]}, "'tokens'.*first 4"),
        (_valid_dict() | {"tokens": [*RESERVED_TOKENS, "a", "a"]}, "'tokens'.*duplicate"),
    ],
)
def test_load_bad_file_names_file_and_problem(tmp_path, content, problem):
    path = tmp_path / "bad_vocab.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content), "utf-8")
    with pytest.raises(VocabularyError, match=problem) as info:
        Vocabulary.load(path)
    assert str(path) in str(info.value)


def test_load_invalid_utf8_names_file(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"tokens": ["\xe9"]}')
    with pytest.raises(VocabularyError, match="UTF-8") as info:
        Vocabulary.load(path)
    assert str(path) in str(info.value)


@settings(max_examples=60, deadline=None)
@given(texts=st.lists(st.text(max_size=30), max_size=5), probe=st.text(max_size=30))
def test_char_round_trip(texts, probe):
    built = Vocabulary.build(texts, "char")
    for text in texts:
        assert built.decode(built.encode(text, add_bos=True, add_eos=True)) == text
    known = "".join(char for char in probe if char in built)
    assert built.decode(built.encode(known)) == known
    for char, token_id in zip(probe, built.encode(probe), strict=True):
        assert token_id == (built.token_to_id(char) if char in built else UNK_ID)


@settings(max_examples=60, deadline=None)
@given(texts=st.lists(st.text(max_size=40), min_size=1, max_size=5))
def test_word_round_trip(texts):
    assume(not any(word in RESERVED_TOKENS for text in texts for word in text.split()))
    built = Vocabulary.build(texts, "word")
    for text in texts:
        assert built.decode(built.encode(text, add_eos=True)) == " ".join(text.split())


@settings(max_examples=30, deadline=None)
@given(
    texts=st.lists(st.text(max_size=20), max_size=4),
    tokenizer=st.sampled_from(["char", "word"]),
    max_size=st.none() | st.integers(NUM_RESERVED, NUM_RESERVED + 10),
)
def test_file_round_trip_property(texts, tokenizer, max_size):
    built = Vocabulary.build(texts, tokenizer, max_size=max_size)
    assert Vocabulary.from_dict(built.to_dict()) == built
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "vocab.json")
        built.save(path)
        assert Vocabulary.load(path) == built
