"""Pretrained word vectors (GloVe text format) for the source and target embeddings.

A GloVe-format file has a word per line followed by its vector, space
separated (``the 0.418 0.24968 -0.41242 ...``); the word2vec text format adds
a first line "count dim", detected and checked. `read_word_vectors` checks
every line: a wrong number of values, a non-numeric or non-finite value and
invalid UTF-8 raise `EmbeddingFileError` naming file and line (or are counted
with ``on_bad_line="skip"``). A repeated word keeps its first vector; repeats
are counted, and so are words containing spaces (skipped: the word tokenizer
never makes such a token).

`embedding_matrix` builds the matrix [vocab_size, dim] of a `Vocabulary`: a
word found gets the file's vector (with ``lowercase_fallback``, a word not
found as written gets the vector of its lowercase form); `PAD_ID` gets zeros;
every other row (BOS, EOS, UNK and the words not found) is drawn, seeded,
from Normal(mean, std) of all the file's values, so it is on the scale of the
real vectors, and a word's row depends on the seed and its id only. Reserved
tokens are never looked up and do not count in the `Coverage`.

`set_embedding` writes the matrix into a built `Seq2Seq` model's source or
target `Embedding`, frozen or trainable. Freeze before compiling (an
optimizer cannot later update a variable it was not built for). The
``.keras`` format keeps the weights but not the frozen flag (the encoder and
decoder make their layers from the model config): after loading, call
`set_embedding_trainable` again. In one call::

    coverage = load_pretrained_embeddings(
        model, "source", "glove.6B.50d.txt", source_vocab, trainable=False
    )
    print(coverage.summary())  # 9123 of 10000 words found (91.2%); missing e.g. ...
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Collection

import keras
import numpy as np
from absl import logging

from seq2seq.model import DECODER_NAME, ENCODER_NAME, Seq2Seq
from seq2seq.readers import MAX_REPORTED_LINES, DataError
from seq2seq.vocab import PAD_ID, RESERVED_TOKENS, Vocabulary

SIDES = ("source", "target")
ON_BAD_LINE_CHOICES = ("error", "skip")
MAX_EXAMPLES = 5  # missing and duplicate words quoted in reports

_LAYER_OWNERS = {"source": ENCODER_NAME, "target": DECODER_NAME}
_UTF8_BOM = b"\xef\xbb\xbf"


class EmbeddingFileError(DataError):
    """A word-vector file is malformed; the message reads "path:line: reason"."""


class _BadLine(ValueError):
    """One line cannot be read; carries the reason without the location."""


@dataclasses.dataclass(eq=False)
class WordVectors:
    """Word vectors read from a file, and what reading it found.

    Attributes:
        path: The file read.
        dim: Number of values per vector.
        words: The words kept, in file order (first occurrence).
        vectors: float32 [len(words), dim], row ``i`` the vector of ``words[i]``.
        num_vectors: Vector lines read (kept or not, repeats included).
        mean: Mean of all values of those lines.
        std: Standard deviation of all values of those lines.
        has_header: Whether line 1 was a "count dim" header.
        num_duplicates: Lines whose word appeared on an earlier line (ignored).
        duplicate_examples: The first few such words.
        num_multiword: Lines whose word contains a space (ignored).
        num_skipped: Bad lines skipped with ``on_bad_line="skip"``.
        skipped_lines: The first `MAX_REPORTED_LINES` of them, 1-based.
    """

    path: str
    dim: int
    words: tuple[str, ...]
    vectors: np.ndarray
    num_vectors: int
    mean: float
    std: float
    has_header: bool = False
    num_duplicates: int = 0
    duplicate_examples: tuple[str, ...] = ()
    num_multiword: int = 0
    num_skipped: int = 0
    skipped_lines: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        self._index = {word: i for i, word in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def lookup(self, word: str) -> np.ndarray | None:
        """Returns the vector [dim] of ``word``, or None if it was not kept."""
        index = self._index.get(word)
        return None if index is None else self.vectors[index]

    def summary(self) -> str:
        """Returns one line for the log, e.g. "glove.txt: 400000 vectors of dimension 50"."""
        parts = [f"{self.num_vectors} vectors of dimension {self.dim}, {len(self)} kept"]
        if self.num_duplicates:
            shown = ", ".join(map(repr, self.duplicate_examples))
            parts.append(f"{self.num_duplicates} repeated words ignored (e.g. {shown})")
        if self.num_multiword:
            parts.append(f"{self.num_multiword} words with spaces ignored")
        if self.num_skipped:
            lines = ", ".join(map(str, self.skipped_lines))
            parts.append(f"{self.num_skipped} bad lines skipped (lines {lines})")
        return f"{self.path}: {', '.join(parts)}"


@dataclasses.dataclass(frozen=True)
class Coverage:
    """How much of a vocabulary a word-vector file covers (reserved tokens not counted).

    Attributes:
        found: Vocabulary words that got a vector from the file.
        total: Vocabulary words, reserved tokens excluded.
        found_lowercase: Of ``found``, those matched through their lowercase form.
        missing_examples: The first few words not found, in vocabulary order.
    """

    found: int
    total: int
    found_lowercase: int = 0
    missing_examples: tuple[str, ...] = ()

    @property
    def share(self) -> float:
        """``found / total`` (0.0 for a vocabulary of reserved tokens only)."""
        return self.found / self.total if self.total else 0.0

    def summary(self) -> str:
        """Returns one line, e.g. "45 of 50 words found (90.0%); missing e.g. 'qux'"."""
        text = f"{self.found} of {self.total} words found ({100 * self.share:.1f}%)"
        if self.found_lowercase:
            text += f", {self.found_lowercase} of them in lowercase"
        if self.missing_examples:
            text += f"; missing e.g. {', '.join(map(repr, self.missing_examples))}"
        return text


def _decode(raw: bytes, line: int) -> str:
    """Decodes one raw line without its line end (and the BOM of line 1)."""
    if line == 1 and raw.startswith(_UTF8_BOM):
        raw = raw[len(_UTF8_BOM) :]
    try:
        return raw.rstrip(b"\r\n").decode("utf-8")
    except UnicodeDecodeError as error:
        raise _BadLine(
            f"invalid UTF-8 (byte 0x{raw[error.start]:02x} at byte offset {error.start})"
        ) from None


def _is_number(text: str) -> bool:
    """Whether ``text`` parses as a float."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_values(word: str, texts: list[str]) -> np.ndarray:
    """Parses the values of ``word`` into float32 [len(texts)]; raises `_BadLine`."""
    try:
        with np.errstate(over="ignore"):  # a value beyond float32 becomes inf, refused below
            values = np.array(texts, dtype=np.float32)
    except ValueError:
        position, text = next((i, t) for i, t in enumerate(texts, 1) if not _is_number(t))
        raise _BadLine(f"non-numeric value {text!r} (value {position} of {word!r})") from None
    if not np.all(np.isfinite(values)):
        position = int(np.argmin(np.isfinite(values))) + 1
        raise _BadLine(f"non-finite value {texts[position - 1]!r} (value {position} of {word!r})")
    return values


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    """Raises ValueError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(
            f"Expected one of {list(choices)} for `{name}`. Received: {name}={value!r}"
        )


def _read_header(fields: list[str], has_header: bool | None, path: str) -> tuple[int, int] | None:
    """Returns (count, dim) of a word2vec header on line 1, or None if it is not one."""
    is_header = len(fields) == 2 and all(f.isascii() and f.isdigit() for f in fields)
    if has_header is False or (has_header is None and not is_header):
        return None
    if not is_header:
        raise EmbeddingFileError(
            f'expected a word2vec header "count dim" (has_header=True). '
            f"Received: {' '.join(fields)[:80]!r}",
            path=path,
            line=1,
        )
    count, dim = int(fields[0]), int(fields[1])
    if dim < 1:
        raise EmbeddingFileError(
            f"expected a positive dimension in the header. Received: {dim}", path=path, line=1
        )
    return count, dim


def _parse_line(fields: list[str], dim: int, dim_origin: str) -> tuple[str, np.ndarray, bool]:
    """Returns (word, float32 values [dim], whether the word has spaces); raises `_BadLine`."""
    # Fields before the last `dim` that are not all numbers belong to the word.
    extra = len(fields) - 1 - dim
    multiword = extra > 0 and not all(_is_number(f) for f in fields[1 : 1 + extra])
    if extra != 0 and not multiword:
        raise _BadLine(
            f"found {len(fields) - 1} values for {fields[0]!r}, expected {dim} "
            f"(the dimension set by {dim_origin})"
        )
    word = " ".join(fields[: len(fields) - dim])
    return word, _parse_values(word, fields[len(fields) - dim :]), multiword


def read_word_vectors(
    path: str | os.PathLike[str],
    *,
    keep: Collection[str] | None = None,
    has_header: bool | None = None,
    on_bad_line: str = "error",
) -> WordVectors:
    """Reads a GloVe-format (or word2vec text) file, checking every line.

    The vector size is set by the header or else by the first vector line.
    Lines of words not kept are checked too and count in the mean and std.

    Args:
        path: The UTF-8 text file.
        keep: Words to keep the vectors of (e.g. a vocabulary's tokens), so
            memory holds O(vocabulary) vectors, not the whole file; None keeps all.
        has_header: Whether line 1 is a word2vec "count dim" header; None
            detects it (a first line of exactly two non-negative integers is
            one, so a file of 1-dimensional vectors needs ``has_header=False``).
        on_bad_line: "error" raises on the first bad line; "skip" counts bad
            lines in ``num_skipped`` / ``skipped_lines`` and goes on. A bad
            header and file-level problems always raise.

    Returns:
        The `WordVectors`.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        EmbeddingFileError: For a bad line (naming file and line), a bad or
            wrong header, or a file without vectors.
        ValueError: For a bad ``on_bad_line``.
    """
    _check_choice("on_bad_line", on_bad_line, ON_BAD_LINE_CHOICES)
    path = os.fspath(path)
    keep = None if keep is None else frozenset(keep)
    header, dim, dim_origin = None, 0, ""
    words, rows, seen, duplicates, skipped = [], [], set(), [], []
    num_vectors = num_duplicates = num_multiword = num_skipped = 0
    total = total_squares = 0.0  # float64 sums over every value, for mean and std
    with open(path, "rb") as file:
        for line, raw in enumerate(file, 1):
            try:
                fields = _decode(raw, line).split()
                if not fields:
                    continue
                if line == 1:
                    header = _read_header(fields, has_header, path)
                    if header is not None:
                        dim, dim_origin = header[1], "the header on line 1"
                        continue
                if not dim:
                    if len(fields) < 2:
                        raise _BadLine(f"expected a word and its vector. Received: {fields[0]!r}")
                    dim, dim_origin = len(fields) - 1, f"line {line}"
                word, values, multiword = _parse_line(fields, dim, dim_origin)
            except _BadLine as error:
                if on_bad_line == "error":
                    raise EmbeddingFileError(str(error), path=path, line=line) from None
                num_skipped += 1
                if len(skipped) < MAX_REPORTED_LINES:
                    skipped.append(line)
                continue
            num_vectors += 1
            total += float(values.sum(dtype=np.float64))
            total_squares += float(np.square(values, dtype=np.float64).sum())
            if multiword:  # the word tokenizer never makes a token with a space
                num_multiword += 1
            elif word in seen:
                num_duplicates += 1
                if len(duplicates) < MAX_EXAMPLES:
                    duplicates.append(word)
            else:
                seen.add(word)
                if keep is None or word in keep:
                    words.append(word)
                    rows.append(values)
    if header is not None and header[0] != num_vectors + num_skipped:
        raise EmbeddingFileError(
            f"the header on line 1 announces {header[0]} vectors, but the file has "
            f"{num_vectors + num_skipped} vector lines (truncated, or a wrong header?)",
            path=path,
        )
    if not num_vectors:
        raise EmbeddingFileError("no word vectors in the file", path=path)
    count = num_vectors * dim
    mean = total / count
    std = math.sqrt(max(total_squares / count - mean * mean, 0.0))
    return WordVectors(
        path=path,
        dim=dim,
        words=tuple(words),
        vectors=np.stack(rows) if rows else np.zeros((0, dim), np.float32),
        num_vectors=num_vectors,
        mean=mean,
        std=std,
        has_header=header is not None,
        num_duplicates=num_duplicates,
        duplicate_examples=tuple(duplicates),
        num_multiword=num_multiword,
        num_skipped=num_skipped,
        skipped_lines=tuple(skipped),
    )


def embedding_matrix(
    vectors: WordVectors,
    vocab: Vocabulary,
    *,
    seed: int = 0,
    lowercase_fallback: bool = False,
) -> tuple[np.ndarray, Coverage]:
    """Builds the embedding matrix of ``vocab`` from ``vectors``.

    Rows: a word's vector from the file; zeros for `PAD_ID`; otherwise (other
    reserved tokens, words not found) Normal(``vectors.mean``, ``vectors.std``).

    Args:
        vectors: The word vectors.
        vocab: The vocabulary; row ``i`` is for token id ``i``.
        seed: Seed of the random rows.
        lowercase_fallback: Look a word not found as written up in lowercase.

    Returns:
        ``(matrix, coverage)``: float32 [vocab.size, vectors.dim] and its `Coverage`.
    """
    rng = np.random.default_rng(seed)
    # One draw for the whole matrix: a missing word's row depends on the seed
    # and its id only, not on which other words were found.
    matrix = rng.normal(vectors.mean, vectors.std, (vocab.size, vectors.dim)).astype(np.float32)
    matrix[PAD_ID] = 0.0
    found = found_lowercase = 0
    missing: list[str] = []
    for token_id in range(len(RESERVED_TOKENS), vocab.size):
        token = vocab.id_to_token(token_id)
        vector = vectors.lookup(token)
        if vector is None and lowercase_fallback:
            vector = vectors.lookup(token.lower())
            found_lowercase += vector is not None
        if vector is None:
            if len(missing) < MAX_EXAMPLES:
                missing.append(token)
            continue
        matrix[token_id] = vector
        found += 1
    total = vocab.size - len(RESERVED_TOKENS)
    return matrix, Coverage(found, total, found_lowercase, tuple(missing))


def embedding_layer(model: Seq2Seq, side: str) -> keras.layers.Embedding:
    """Returns the `Embedding` layer of ``side`` ("source" or "target") of a built model.

    Found by name through the encoder or decoder, also in a loaded model.

    Raises:
        TypeError: If ``model`` is not a `Seq2Seq`.
        ValueError: If ``side`` is unknown, the model is not built, or the
            side's input is not "embedding".
    """
    _check_choice("side", side, SIDES)
    if not isinstance(model, Seq2Seq):
        raise TypeError(f"Expected a seq2seq.model.Seq2Seq. Received: {type(model).__name__}")
    kind = getattr(model.model_config, f"{side}_input")
    layer = model.get_layer(_LAYER_OWNERS[side]).token_input
    if not isinstance(layer, keras.layers.Embedding):
        raise ValueError(
            f"Pretrained {side} embeddings need model.{side}_input='embedding'. "
            f"Received: model.{side}_input={kind!r}"
        )
    if not layer.built:
        raise ValueError(f"The {side} embedding is not built; use seq2seq.model.build_model.")
    return layer


def set_embedding_trainable(model: Seq2Seq, side: str, trainable: bool) -> None:
    """Freezes (False) or unfreezes (True) the ``side`` embedding of ``model``.

    Call it before compiling, or compile again after: an optimizer built
    without a variable cannot update it later. A train step already traced is
    re-made so that freezing takes effect at the next ``fit``.
    """
    layer = embedding_layer(model, side)
    if layer.trainable != trainable:
        layer.trainable = trainable
        if getattr(model, "train_function", None) is not None:
            model.make_train_function(force=True)


def set_embedding(model: Seq2Seq, side: str, matrix: np.ndarray, *, trainable: bool = True) -> None:
    """Writes ``matrix`` into the ``side`` embedding of ``model`` and sets its trainability.

    Args:
        model: A built `Seq2Seq` whose ``side`` input is "embedding".
        side: "source" or "target".
        matrix: float [vocab_size, embedding_dim], e.g. from `embedding_matrix`.
        trainable: False freezes the embedding: training leaves it unchanged.

    Raises:
        ValueError: If the model has no such embedding, or ``matrix`` has
            another shape (naming `model.embedding_dim` or the vocabulary size).
    """
    layer = embedding_layer(model, side)
    matrix = np.asarray(matrix)
    embedding_dim = model.model_config.embedding_dim
    if matrix.ndim != 2 or matrix.shape[1] != embedding_dim:
        raise ValueError(
            f"Expected {side} vectors of dimension model.embedding_dim={embedding_dim}. "
            f"Received: a matrix of shape {matrix.shape}; set model.embedding_dim to the "
            "file's dimension."
        )
    if matrix.shape[0] != layer.input_dim:
        raise ValueError(
            f"Expected {layer.input_dim} rows, one per {side} vocabulary token. "
            f"Received: a matrix of shape {matrix.shape} (built for another vocabulary?)"
        )
    layer.embeddings.assign(matrix.astype(layer.embeddings.dtype))
    set_embedding_trainable(model, side, trainable)


def load_pretrained_embeddings(
    model: Seq2Seq,
    side: str,
    path: str | os.PathLike[str],
    vocab: Vocabulary,
    *,
    trainable: bool = True,
    seed: int = 0,
    lowercase_fallback: bool = False,
    on_bad_line: str = "error",
) -> Coverage:
    """Initialises the ``side`` embedding of ``model`` from a GloVe-format file, and logs it.

    `read_word_vectors` (keeping ``vocab``'s words only), then `embedding_matrix`
    (``seed``, ``lowercase_fallback``), then `set_embedding` (``trainable``).

    Args:
        vocab: The vocabulary of ``side`` (the model's ids); other arguments
            as in the functions named above.

    Returns:
        The `Coverage` of ``vocab``.

    Raises:
        EmbeddingFileError: For a malformed file.
        ValueError: If the model has no ``side`` embedding or the sizes differ.
    """
    layer = embedding_layer(model, side)
    if layer.input_dim != vocab.size:
        raise ValueError(
            f"The model's {side} embedding has {layer.input_dim} rows. "
            f"Received: a {side} vocabulary of size {vocab.size}"
        )
    keep = set(vocab.tokens)
    if lowercase_fallback:
        keep.update(token.lower() for token in vocab.tokens)
    vectors = read_word_vectors(path, keep=keep, on_bad_line=on_bad_line)
    logging.info("%s", vectors.summary())
    if vectors.dim != model.model_config.embedding_dim:
        raise ValueError(
            f"{vectors.path} has vectors of dimension {vectors.dim}, but the model has "
            f"model.embedding_dim={model.model_config.embedding_dim}; set model.embedding_dim "
            f"to {vectors.dim}."
        )
    matrix, coverage = embedding_matrix(
        vectors, vocab, seed=seed, lowercase_fallback=lowercase_fallback
    )
    set_embedding(model, side, matrix, trainable=trainable)
    logging.info(
        "%s embeddings from %s (%s): %s",
        side.capitalize(),
        vectors.path,
        "trainable" if trainable else "frozen",
        coverage.summary(),
    )
    return coverage
