"""Tests of seq2seq.pretrained: reading GloVe files, embedding matrices, applying them."""

import re

import keras
import numpy as np
import pytest

from seq2seq.config import Config, ModelConfig
from seq2seq.model import build_model
from seq2seq.pretrained import (
    Coverage,
    EmbeddingFileError,
    embedding_layer,
    embedding_matrix,
    load_pretrained_embeddings,
    read_word_vectors,
    set_embedding,
    set_embedding_trainable,
)
from seq2seq.readers import DataError
from seq2seq.training import compile_model
from seq2seq.vocab import PAD_ID, RESERVED_TOKENS, Vocabulary

GLOVE = "cat 0.5 1.0 -1.5\ndog 2.0 0.0 0.25\nthe -0.5 0.5 1.0\n"
VECTORS = {"cat": [0.5, 1.0, -1.5], "dog": [2.0, 0.0, 0.25], "the": [-0.5, 0.5, 1.0]}
DIM = 3


def write(tmp_path, content, name="vectors.txt"):
    """Writes ``content`` (str as UTF-8, or bytes) and returns the path."""
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return str(path)


def word_vocab(words):
    return Vocabulary(RESERVED_TOKENS + tuple(words), "word")


# --- reading ---------------------------------------------------------------


def test_reads_vectors_in_file_order(tmp_path):
    vectors = read_word_vectors(write(tmp_path, GLOVE))
    assert vectors.dim == DIM
    assert vectors.words == ("cat", "dog", "the")
    for word, values in VECTORS.items():
        np.testing.assert_array_equal(vectors.lookup(word), np.float32(values))
    assert vectors.lookup("fish") is None
    assert vectors.num_vectors == 3 and not vectors.has_header


def test_mean_and_std_cover_every_value_also_of_words_not_kept(tmp_path):
    vectors = read_word_vectors(write(tmp_path, GLOVE), keep={"dog"})
    assert vectors.words == ("dog",) and vectors.num_vectors == 3
    values = np.array(list(VECTORS.values()))
    assert vectors.mean == pytest.approx(values.mean())
    assert vectors.std == pytest.approx(values.std())


def test_bom_crlf_blank_lines_and_trailing_spaces_are_tolerated(tmp_path):
    content = b"\xef\xbb\xbfcat 1 2 3 \r\n\r\ndog 4 5 6\r\n\n"
    vectors = read_word_vectors(write(tmp_path, content))
    assert vectors.words == ("cat", "dog")
    np.testing.assert_array_equal(vectors.lookup("dog"), [4, 5, 6])


def test_word2vec_header_is_read_and_checked(tmp_path):
    vectors = read_word_vectors(write(tmp_path, "3 3\n" + GLOVE))
    assert vectors.has_header and vectors.dim == DIM and len(vectors) == 3


def test_has_header_false_reads_a_numeric_first_line_as_a_vector(tmp_path):
    vectors = read_word_vectors(write(tmp_path, "1 5\n2 6\n"), has_header=False)
    assert vectors.words == ("1", "2") and vectors.dim == 1


def test_duplicates_keep_the_first_vector_and_are_counted(tmp_path):
    vectors = read_word_vectors(write(tmp_path, GLOVE + "cat 9 9 9\ncat 8 8 8\n"))
    np.testing.assert_array_equal(vectors.lookup("cat"), np.float32(VECTORS["cat"]))
    assert vectors.num_duplicates == 2 and vectors.duplicate_examples == ("cat", "cat")
    assert vectors.num_vectors == 5
    assert "2 repeated words ignored" in vectors.summary()


def test_words_with_spaces_are_skipped_and_counted(tmp_path):
    vectors = read_word_vectors(write(tmp_path, GLOVE + ". . . 1 2 3\n"))
    assert vectors.words == ("cat", "dog", "the")
    assert vectors.num_multiword == 1


@pytest.mark.parametrize(
    "content, line, reason",
    [
        (
            GLOVE + "fish 1 2\n",
            4,
            "found 2 values for 'fish', expected 3 (the dimension set by line 1)",
        ),
        (GLOVE + "fish 1 2 3 4\n", 4, "found 4 values for 'fish', expected 3"),
        ("3 4\n" + GLOVE, 2, "expected 4 (the dimension set by the header on line 1)"),
        ("cat 1 2 3\ndog 1 two 3\n", 2, "non-numeric value 'two' (value 2 of 'dog')"),
        ("cat 1 2 3\ndog 1 2 nan\n", 2, "non-finite value 'nan' (value 3 of 'dog')"),
        ("cat 1 2 3\ndog 1 2 1e99\n", 2, "non-finite value '1e99' (value 3 of 'dog')"),
        (b"cat 1 2 3\nd\xffg 1 2 3\n", 2, "invalid UTF-8 (byte 0xff at byte offset 1)"),
        ("cat\ndog 1 2\n", 1, "expected a word and its vector. Received: 'cat'"),
        ("3 0\n", 1, "expected a positive dimension in the header"),
    ],
)
def test_bad_line_error_names_file_line_and_reason(tmp_path, content, line, reason):
    path = write(tmp_path, content)
    with pytest.raises(EmbeddingFileError, match=f"^{re.escape(path)}:{line}: ") as caught:
        read_word_vectors(path)
    assert reason in str(caught.value)
    assert isinstance(caught.value, DataError) and caught.value.line == line


@pytest.mark.parametrize(
    "content, kwargs, reason",
    [
        ("", {}, "no word vectors in the file"),
        ("\n\n", {}, "no word vectors in the file"),
        ("4 3\n" + GLOVE, {}, "the header on line 1 announces 4 vectors, but the file has 3"),
        (GLOVE, {"has_header": True}, 'expected a word2vec header "count dim"'),
    ],
)
def test_file_level_errors(tmp_path, content, kwargs, reason):
    path = write(tmp_path, content)
    with pytest.raises(EmbeddingFileError, match=f"^{re.escape(path)}:") as caught:
        read_word_vectors(path, **kwargs)
    assert reason in str(caught.value)


def test_skip_counts_bad_lines_and_keeps_the_good_ones(tmp_path):
    content = b"cat 1 2 3\ndog 1 2\nfish 1 x 3\nbird 4 5 6\nd\xffg 1 2 3\n"
    vectors = read_word_vectors(write(tmp_path, content), on_bad_line="skip")
    assert vectors.words == ("cat", "bird")
    assert vectors.num_skipped == 3 and vectors.skipped_lines == (2, 3, 5)
    assert "3 bad lines skipped (lines 2, 3, 5)" in vectors.summary()


def test_unknown_on_bad_line_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="on_bad_line"):
        read_word_vectors(write(tmp_path, GLOVE), on_bad_line="ignore")
    with pytest.raises(FileNotFoundError):
        read_word_vectors(str(tmp_path / "absent.txt"))


# --- the matrix and its coverage -------------------------------------------


def test_coverage_counts_vocabulary_words_without_reserved_tokens(tmp_path):
    vectors = read_word_vectors(write(tmp_path, GLOVE))
    vocab = word_vocab(["the", "cat", "fish", "bird", "dog"])
    _, coverage = embedding_matrix(vectors, vocab)
    assert coverage == Coverage(found=3, total=5, missing_examples=("fish", "bird"))
    assert coverage.share == pytest.approx(0.6)
    assert coverage.summary() == "3 of 5 words found (60.0%); missing e.g. 'fish', 'bird'"


def test_lowercase_fallback_is_used_only_when_asked(tmp_path):
    vectors = read_word_vectors(write(tmp_path, GLOVE))
    vocab = word_vocab(["The", "cat", "Fish"])
    matrix, coverage = embedding_matrix(vectors, vocab)
    assert (coverage.found, coverage.found_lowercase) == (1, 0)
    matrix, coverage = embedding_matrix(vectors, vocab, lowercase_fallback=True)
    assert (coverage.found, coverage.found_lowercase, coverage.total) == (2, 1, 3)
    np.testing.assert_array_equal(matrix[vocab.token_to_id("The")], VECTORS["the"])


def test_matrix_rows_are_the_file_vectors_and_pad_is_zero(tmp_path):
    vectors = read_word_vectors(write(tmp_path, GLOVE))
    vocab = word_vocab(["dog", "fish", "cat", "the"])
    matrix, _ = embedding_matrix(vectors, vocab)
    assert matrix.shape == (vocab.size, DIM) and matrix.dtype == np.float32
    for word, values in VECTORS.items():
        np.testing.assert_array_equal(matrix[vocab.token_to_id(word)], np.float32(values))
    np.testing.assert_array_equal(matrix[PAD_ID], np.zeros(DIM))


def test_unknown_rows_are_the_documented_seeded_normal_draw(tmp_path):
    vectors = read_word_vectors(write(tmp_path, GLOVE))
    vocab = word_vocab(["dog", "fish", "cat", "bird"])
    matrix, _ = embedding_matrix(vectors, vocab, seed=7)
    expected = np.random.default_rng(7).normal(vectors.mean, vectors.std, (vocab.size, DIM))
    for token in ("<s>", "</s>", "<unk>", "fish", "bird"):
        token_id = vocab.token_to_id(token)
        np.testing.assert_allclose(matrix[token_id], expected[token_id], rtol=1e-6)
    # A missing word's row depends on the seed and its id, not on the other words.
    fewer = read_word_vectors(write(tmp_path, "cat 0.5 1.0 -1.5\n", "one.txt"))
    fewer_matrix, _ = embedding_matrix(fewer, vocab, seed=7)
    fish = vocab.token_to_id("fish")
    assert not np.array_equal(fewer_matrix[fish], matrix[fish])  # other mean and std
    other_seed, _ = embedding_matrix(vectors, vocab, seed=8)
    assert not np.array_equal(other_seed[fish], matrix[fish])


def test_unknown_rows_have_the_scale_of_the_file_vectors(tmp_path):
    rng = np.random.default_rng(0)
    lines = [f"w{i} " + " ".join(map(str, rng.normal(0.3, 2.0, 8))) for i in range(200)]
    vectors = read_word_vectors(write(tmp_path, "\n".join(lines)))
    vocab = word_vocab([f"missing{i}" for i in range(400)])
    matrix, coverage = embedding_matrix(vectors, vocab)
    assert coverage.found == 0
    rows = matrix[len(RESERVED_TOKENS) :]
    assert rows.std() == pytest.approx(vectors.std, rel=0.05)
    assert rows.mean() == pytest.approx(vectors.mean, abs=0.1)
    assert vectors.std == pytest.approx(2.0, rel=0.05)


# --- applying to a model ---------------------------------------------------


def make_model(source_input="embedding", target_input="embedding", embedding_dim=DIM):
    config = ModelConfig(
        cell="gru",
        units=8,
        source_input=source_input,
        target_input=target_input,
        embedding_dim=embedding_dim,
    )
    keras.utils.set_random_seed(0)
    return build_model(config, SOURCE_VOCAB.size, TARGET_VOCAB.size)


SOURCE_VOCAB = word_vocab(["cat", "dog", "fish"])
TARGET_VOCAB = word_vocab(["the", "dog", "bird", "cow"])


def fit_one_step(model):
    rng = np.random.default_rng(0)
    inputs = {
        "source": rng.integers(1, SOURCE_VOCAB.size, (8, 4)).astype("int32"),
        "decoder_input": rng.integers(1, TARGET_VOCAB.size, (8, 3)).astype("int32"),
    }
    targets = rng.integers(2, TARGET_VOCAB.size, (8, 3)).astype("int32")
    model.fit(inputs, targets, epochs=1, batch_size=8, verbose=0)


def weights(model, side):
    return embedding_layer(model, side).embeddings.numpy().copy()


def test_load_sets_both_sides_and_reports_coverage(tmp_path):
    path = write(tmp_path, GLOVE)
    model = make_model()
    source = load_pretrained_embeddings(model, "source", path, SOURCE_VOCAB, trainable=False)
    target = load_pretrained_embeddings(model, "target", path, TARGET_VOCAB)
    assert (source.found, source.total) == (2, 3)
    assert (target.found, target.total, target.missing_examples) == (2, 4, ("bird", "cow"))
    vectors = read_word_vectors(path)
    for side, vocab in (("source", SOURCE_VOCAB), ("target", TARGET_VOCAB)):
        np.testing.assert_array_equal(weights(model, side), embedding_matrix(vectors, vocab)[0])
    assert not embedding_layer(model, "source").trainable
    assert embedding_layer(model, "target").trainable


def test_frozen_embedding_is_unchanged_by_training_and_trainable_one_changes(tmp_path):
    path = write(tmp_path, GLOVE)
    model = make_model()
    load_pretrained_embeddings(model, "source", path, SOURCE_VOCAB, trainable=False)
    load_pretrained_embeddings(model, "target", path, TARGET_VOCAB, trainable=True)
    source, target = weights(model, "source"), weights(model, "target")
    compile_model(model, Config())
    fit_one_step(model)
    np.testing.assert_array_equal(weights(model, "source"), source)
    assert not np.allclose(weights(model, "target"), target)

    # Freezing after a fit (the train step is already traced) holds from the next fit on.
    set_embedding_trainable(model, "target", False)
    target = weights(model, "target")
    fit_one_step(model)
    np.testing.assert_array_equal(weights(model, "target"), target)
    np.testing.assert_array_equal(weights(model, "source"), source)


def test_save_load_keeps_weights_but_keras_drops_the_frozen_flag(tmp_path):
    model = make_model()
    load_pretrained_embeddings(
        model, "source", write(tmp_path, GLOVE), SOURCE_VOCAB, trainable=False
    )
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False, safe_mode=True)
    for side in ("source", "target"):
        np.testing.assert_array_equal(weights(loaded, side), weights(model, side))
    # The encoder makes its Embedding from the model config, which has no frozen flag.
    assert embedding_layer(loaded, "source").trainable
    set_embedding_trainable(loaded, "source", False)
    assert not embedding_layer(loaded, "source").trainable
    trainable_paths = {v.path for v in loaded.trainable_variables}
    assert embedding_layer(loaded, "source").embeddings.path not in trainable_paths


def test_refuses_a_side_whose_input_is_not_embedding(tmp_path):
    model = make_model(source_input="onehot")
    with pytest.raises(ValueError, match="need model.source_input='embedding'.*'onehot'"):
        load_pretrained_embeddings(model, "source", write(tmp_path, GLOVE), SOURCE_VOCAB)
    with pytest.raises(ValueError, match="side"):
        embedding_layer(model, "decoder")


def test_refuses_another_dimension_naming_file_and_embedding_dim(tmp_path):
    model = make_model(embedding_dim=4)
    path = write(tmp_path, GLOVE)
    with pytest.raises(
        ValueError, match=f"{re.escape(path)} has vectors of dimension 3.*embedding_dim=4"
    ):
        load_pretrained_embeddings(model, "source", path, SOURCE_VOCAB)
    with pytest.raises(ValueError, match="model.embedding_dim=4"):
        set_embedding(model, "source", np.zeros((SOURCE_VOCAB.size, 3)))


def test_refuses_a_vocabulary_of_another_size(tmp_path):
    model = make_model()
    with pytest.raises(ValueError, match="vocabulary of size 8"):
        load_pretrained_embeddings(model, "source", write(tmp_path, GLOVE), TARGET_VOCAB)
    with pytest.raises(ValueError, match="Expected 7 rows"):
        set_embedding(model, "source", np.zeros((TARGET_VOCAB.size, DIM)))
