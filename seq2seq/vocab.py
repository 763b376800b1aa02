"""Tokenizers and the token <-> id vocabulary, with a JSON file format.

A `Vocabulary` maps tokens to integer ids. The first four ids are reserved for
padding, begin- and end-of-sequence and unknown tokens, so every model and
data pipeline in the package can rely on the same constants (`PAD_ID` is 0).

Vocabularies are stored as UTF-8 JSON (never pickle):

    {"format": "seq2seq.vocabulary", "version": 1,
     "tokenizer": "char", "tokens": ["<pad>", "<s>", "</s>", "<unk>", ...]}

The tokenizers are "char", "word" and "subword" (WordPiece pieces learned from
the training text; see `seq2seq.subword`, which registers itself here when
first asked for). The tokens of a file are all it takes to rebuild any of them.

This module is pure Python; it does not import TensorFlow. Only the subword
tokenizer does (tensorflow-text), and only once it learns or splits text.
"""

from __future__ import annotations

import abc
import collections
import errno
import importlib
import json
import operator
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from seq2seq.atomic import write_text_atomic

PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
RESERVED_TOKENS = (PAD, BOS, EOS, UNK)

VOCAB_FORMAT = "seq2seq.vocabulary"
VOCAB_VERSION = 1
_VOCAB_KEYS = ("format", "version", "tokenizer", "tokens")
# Permissions of a saved file; mkstemp would otherwise leave it owner-only.


class Tokenizer(abc.ABC):
    """Splits text into string tokens and joins tokens back into text.

    Subclasses set the class attribute `name`, the key under which they are
    registered in `TOKENIZERS` and stored in vocabulary files. A tokenizer
    whose splitting depends on its vocabulary's tokens sets `needs_vocabulary`
    and returns a bound copy from `for_tokens`; `Vocabulary` binds it.
    """

    name: str
    # True if text can only be split once the vocabulary's tokens are known.
    needs_vocabulary: bool = False

    @abc.abstractmethod
    def tokenize(self, text: str) -> list[str]:
        """Splits `text` into a list of tokens.

        Args:
            text: The text to split.

        Returns:
            The tokens, in order.
        """

    @abc.abstractmethod
    def detokenize(self, tokens: Sequence[str]) -> str:
        """Joins `tokens` back into text.

        Args:
            tokens: The tokens to join, in order.

        Returns:
            The text.
        """

    def tokenize_batch(self, texts: Sequence[str]) -> list[list[str]]:
        """Splits every text of `texts`; the same as `tokenize` on each, maybe faster."""
        return [self.tokenize(text) for text in texts]

    def normalize(self, text: str) -> str:
        """Returns `text` as the tokenizer writes it back (e.g. with single spaces)."""
        return self.detokenize(self.tokenize(text))

    def for_tokens(self, tokens: Sequence[str]) -> Tokenizer:
        """Returns the tokenizer to use with a vocabulary of `tokens` (this one by default)."""
        del tokens  # Char and word splitting do not depend on the vocabulary.
        return self

    def learn_tokens(
        self, texts: Iterable[str], *, min_count: int, max_size: int | None
    ) -> list[str]:
        """Chooses the non-reserved tokens of a new vocabulary, in id order.

        By default these are the tokens of `texts` seen at least `min_count`
        times, by decreasing frequency, ties broken by the token string.

        Args:
            texts: The texts to learn from.
            min_count: Positive integer; rarer tokens are left out.
            max_size: Maximum vocabulary size, reserved tokens included, or
                `None` for no limit.

        Returns:
            The tokens, none of them a reserved token.
        """
        counts: collections.Counter[str] = collections.Counter()
        for text in texts:
            counts.update(self.tokenize(text))
        reserved = set(RESERVED_TOKENS)
        ranked = sorted(
            (
                token
                for token, count in counts.items()
                if count >= min_count and token not in reserved
            ),
            key=lambda token: (-counts[token], token),
        )
        if max_size is not None:
            ranked = ranked[: max_size - len(RESERVED_TOKENS)]
        return ranked

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tokenizer):
            return NotImplemented
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class CharTokenizer(Tokenizer):
    """Character-level tokenizer: every character is one token."""

    name = "char"

    def tokenize(self, text: str) -> list[str]:
        """Returns the characters of `text`."""
        return list(text)

    def detokenize(self, tokens: Sequence[str]) -> str:
        """Concatenates `tokens` without separators."""
        return "".join(tokens)


class WordTokenizer(Tokenizer):
    """Whitespace tokenizer: runs of whitespace separate tokens."""

    name = "word"

    def tokenize(self, text: str) -> list[str]:
        """Returns the whitespace-separated words of `text`."""
        return text.split()

    def detokenize(self, tokens: Sequence[str]) -> str:
        """Joins `tokens` with single spaces."""
        return " ".join(tokens)


TOKENIZERS: dict[str, type[Tokenizer]] = {
    CharTokenizer.name: CharTokenizer,
    WordTokenizer.name: WordTokenizer,
}
# Tokenizers defined in a module of their own (which imports this one), imported
# when first asked for; the module calls `register_tokenizer`.
_TOKENIZER_MODULES = {"subword": "seq2seq.subword"}


def register_tokenizer(tokenizer_class: type[Tokenizer]) -> type[Tokenizer]:
    """Registers `tokenizer_class` under its `name` in `TOKENIZERS`; returns it."""
    TOKENIZERS[tokenizer_class.name] = tokenizer_class
    return tokenizer_class


def tokenizer_names() -> list[str]:
    """The names `get_tokenizer` accepts, sorted ("char", "subword", "word")."""
    return sorted({*TOKENIZERS, *_TOKENIZER_MODULES})


def get_tokenizer(name: str) -> Tokenizer:
    """Returns a new tokenizer registered under `name`.

    Args:
        name: One of `tokenizer_names()`, e.g. "char", "word" or "subword".

    Returns:
        An instance of the tokenizer class (a subword tokenizer not yet bound
        to a vocabulary: `Vocabulary` binds it).

    Raises:
        ValueError: If `name` is not a registered tokenizer name.
    """
    if isinstance(name, str) and name not in TOKENIZERS and name in _TOKENIZER_MODULES:
        importlib.import_module(_TOKENIZER_MODULES[name])
    try:
        tokenizer_class = TOKENIZERS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown tokenizer {name!r}. Expected one of: {', '.join(tokenizer_names())}."
        ) from None
    return tokenizer_class()


def _resolve_tokenizer(tokenizer: Tokenizer | str) -> Tokenizer:
    """Returns `tokenizer` itself, or the registered tokenizer of that name."""
    if isinstance(tokenizer, Tokenizer):
        return tokenizer
    if isinstance(tokenizer, str):
        return get_tokenizer(tokenizer)
    raise TypeError(
        f"Expected a Tokenizer or a tokenizer name for `tokenizer`. Received: {tokenizer!r}"
    )


def _as_token_id(value: Any) -> int:
    """Converts an integer-like id (Python or NumPy integer) to `int`."""
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"Expected an integer token id. Received: {value!r}") from None


class VocabularyError(ValueError):
    """A vocabulary's content or file is invalid."""


class Vocabulary:
    """A bijection between tokens and the ids `0 .. size - 1`.

    Ids 0-3 are always `PAD`, `BOS`, `EOS` and `UNK` (`RESERVED_TOKENS`).

    Args:
        tokens: All tokens in id order; the first four must be
            `RESERVED_TOKENS`. Tokens must be non-empty, distinct strings.
        tokenizer: The tokenizer used by `encode` and `decode`, or its name.

    Raises:
        VocabularyError: If `tokens` is not a valid token list.
        ValueError: If `tokenizer` is an unknown name.
        TypeError: If `tokens` is a single string or `tokenizer` has a wrong type.
    """

    def __init__(self, tokens: Sequence[str], tokenizer: Tokenizer | str) -> None:
        if isinstance(tokens, (str, bytes)):
            raise TypeError(f"Expected a sequence of token strings. Received: tokens={tokens!r}")
        tokens = tuple(tokens)
        _validate_tokens(tokens)
        self._tokens = tokens
        self._tokenizer = _resolve_tokenizer(tokenizer).for_tokens(tokens)
        self._ids = {token: index for index, token in enumerate(tokens)}

    @classmethod
    def build(
        cls,
        texts: Iterable[str],
        tokenizer: Tokenizer | str,
        *,
        min_count: int = 1,
        max_size: int | None = None,
    ) -> Vocabulary:
        """Builds a vocabulary from the tokens of `texts`.

        For "char" and "word", tokens are ordered by decreasing frequency, ties
        broken by the token string, so the result does not depend on the order
        of `texts`; a token equal to a reserved token string keeps its reserved
        id. "subword" learns WordPiece pieces instead (`seq2seq.subword`).

        Args:
            texts: The texts to count tokens in.
            tokenizer: The tokenizer, or its name.
            min_count: Positive integer; tokens (subword: pieces) seen fewer
                times are left out.
            max_size: Maximum number of tokens including the reserved ones, at
                least `len(RESERVED_TOKENS)`; `None` for no limit (subword:
                `seq2seq.subword.DEFAULT_VOCAB_SIZE`).

        Returns:
            The new vocabulary.

        Raises:
            ValueError: If `min_count` or `max_size` is out of range, or
                `tokenizer` is an unknown name.
        """
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ValueError(
                f"Expected a positive integer for `min_count`. Received: {min_count!r}"
            )
        num_reserved = len(RESERVED_TOKENS)
        if max_size is not None and (
            isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < num_reserved
        ):
            raise ValueError(
                f"Expected `max_size` to be None or an integer >= {num_reserved} "
                f"(the reserved tokens count). Received: max_size={max_size!r}"
            )
        tokenizer = _resolve_tokenizer(tokenizer)
        learned = tokenizer.learn_tokens(texts, min_count=min_count, max_size=max_size)
        return cls(RESERVED_TOKENS + tuple(learned), tokenizer)

    @property
    def tokens(self) -> tuple[str, ...]:
        """All tokens, in id order."""
        return self._tokens

    @property
    def tokenizer(self) -> Tokenizer:
        """The tokenizer used by `encode` and `decode`."""
        return self._tokenizer

    @property
    def size(self) -> int:
        """Number of tokens, reserved ones included."""
        return len(self._tokens)

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._ids

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return self._tokens == other._tokens and self._tokenizer == other._tokenizer

    def __hash__(self) -> int:
        return hash((self._tokens, self._tokenizer))

    def __repr__(self) -> str:
        return f"Vocabulary(size={self.size}, tokenizer={self._tokenizer.name!r})"

    def token_to_id(self, token: str) -> int:
        """Returns the id of `token`, or `UNK_ID` if it is not in the vocabulary."""
        return self._ids.get(token, UNK_ID)

    def id_to_token(self, token_id: int) -> str:
        """Returns the token with id `token_id`.

        Args:
            token_id: An integer (Python or NumPy) in `[0, size)`.

        Returns:
            The token string.

        Raises:
            ValueError: If `token_id` is out of range.
            TypeError: If `token_id` is not an integer.
        """
        index = _as_token_id(token_id)
        if not 0 <= index < len(self._tokens):
            raise ValueError(
                f"Token id {index} is out of range for a vocabulary of size {self.size}."
            )
        return self._tokens[index]

    def encode(self, text: str, *, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Tokenizes `text` and maps the tokens to ids.

        Args:
            text: The text to encode.
            add_bos: Whether to start the ids with `BOS_ID`.
            add_eos: Whether to end the ids with `EOS_ID`.

        Returns:
            The token ids; unknown tokens become `UNK_ID`.
        """
        return self._to_ids(self._tokenizer.tokenize(text), add_bos, add_eos)

    def encode_batch(
        self, texts: Sequence[str], *, add_bos: bool = False, add_eos: bool = False
    ) -> list[list[int]]:
        """`encode` of every text of `texts`, tokenized together (faster for "subword").

        Returns:
            One list of ids per text, in order.
        """
        return [
            self._to_ids(tokens, add_bos, add_eos)
            for tokens in self._tokenizer.tokenize_batch(texts)
        ]

    def _to_ids(self, tokens: list[str], add_bos: bool, add_eos: bool) -> list[int]:
        """The ids of `tokens` (UNK_ID when unknown), with BOS/EOS as asked."""
        ids = [self._ids.get(token, UNK_ID) for token in tokens]
        if add_bos:
            ids.insert(0, BOS_ID)
        if add_eos:
            ids.append(EOS_ID)
        return ids

    def decode(self, ids: Iterable[int], *, stop_at_eos: bool = True) -> str:
        """Maps ids back to tokens and detokenizes them.

        `PAD_ID` and `BOS_ID` are skipped; `UNK_ID` is rendered as `UNK`.

        Args:
            ids: Token ids (Python or NumPy integers, e.g. a 1-D array).
            stop_at_eos: If true, ids from the first `EOS_ID` on are ignored;
                otherwise `EOS_ID` is skipped like `PAD_ID`.

        Returns:
            The decoded text.

        Raises:
            ValueError: If an id is out of range.
            TypeError: If an id is not an integer.
        """
        tokens = []
        for value in ids:
            token_id = _as_token_id(value)
            if token_id == EOS_ID:
                if stop_at_eos:
                    break
                continue
            if token_id in (PAD_ID, BOS_ID):
                continue
            tokens.append(self.id_to_token(token_id))
        return self._tokenizer.detokenize(tokens)

    def to_dict(self) -> dict[str, Any]:
        """Returns the JSON-ready dictionary that `from_dict` reads back."""
        return {
            "format": VOCAB_FORMAT,
            "version": VOCAB_VERSION,
            "tokenizer": self._tokenizer.name,
            "tokens": list(self._tokens),
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> Vocabulary:
        """Creates a vocabulary from the output of `to_dict`.

        Args:
            data: The dictionary (e.g. parsed JSON).
            source: Where `data` came from, quoted in error messages.

        Returns:
            The vocabulary.

        Raises:
            VocabularyError: If a key is missing, unknown or has a bad value;
                the message names `source` and the key.
        """
        if not isinstance(data, Mapping):
            raise VocabularyError(f"{source}: expected a JSON object, got {type(data).__name__}.")
        missing = [key for key in _VOCAB_KEYS if key not in data]
        if missing:
            raise VocabularyError(f"{source}: missing key(s) {', '.join(map(repr, missing))}.")
        unknown = sorted(str(key) for key in data if key not in _VOCAB_KEYS)
        if unknown:
            raise VocabularyError(f"{source}: unknown key(s) {', '.join(map(repr, unknown))}.")
        if data["format"] != VOCAB_FORMAT:
            raise VocabularyError(
                f"{source}: key 'format' must be {VOCAB_FORMAT!r}. Received: {data['format']!r}"
            )
        version = data["version"]
        if isinstance(version, bool) or not isinstance(version, int):
            raise VocabularyError(
                f"{source}: key 'version' must be an integer. Received: {version!r}"
            )
        if version != VOCAB_VERSION:
            raise VocabularyError(
                f"{source}: unsupported version {version} (this code reads version {VOCAB_VERSION})."
            )
        name = data["tokenizer"]
        if not isinstance(name, str) or name not in tokenizer_names():
            raise VocabularyError(
                f"{source}: key 'tokenizer' must be one of {', '.join(tokenizer_names())}. "
                f"Received: {name!r}"
            )
        tokens = data["tokens"]
        if not isinstance(tokens, list):
            raise VocabularyError(
                f"{source}: key 'tokens' must be a list of strings. "
                f"Received: {type(tokens).__name__}"
            )
        try:
            return cls(tokens, name)
        except VocabularyError as error:
            raise VocabularyError(f"{source}: key 'tokens': {error}") from None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the vocabulary as UTF-8 JSON, atomically.

        The JSON goes to a temporary file in the same directory, which is
        flushed to disk and then renamed over `path`, so a crash never leaves
        a partly written vocabulary behind.

        Args:
            path: The file to write; its directory must exist.

        Raises:
            OSError: If the file cannot be written.
        """
        text = json.dumps(self.to_dict(), ensure_ascii=False, indent=1) + "\n"
        write_text_atomic(os.fspath(path), text)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Vocabulary:
        """Reads a vocabulary written by `save`.

        Args:
            path: The JSON file.

        Returns:
            The vocabulary.

        Raises:
            FileNotFoundError: If `path` does not exist.
            VocabularyError: If the file is not valid UTF-8 JSON in the
                vocabulary format; the message names the file and the problem.
        """
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, "Vocabulary file not found", path)
        with open(path, "rb") as file:
            raw = file.read()
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as error:
            raise VocabularyError(f"{path}: not valid UTF-8 ({error.reason}).") from None
        except json.JSONDecodeError as error:
            raise VocabularyError(
                f"{path}: invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}."
            ) from None
        return cls.from_dict(data, source=path)


def _validate_tokens(tokens: tuple[Any, ...]) -> None:
    """Raises `VocabularyError` unless `tokens` is a valid vocabulary token list."""
    num_reserved = len(RESERVED_TOKENS)
    if tokens[:num_reserved] != RESERVED_TOKENS:
        raise VocabularyError(
            f"The first {num_reserved} tokens must be {list(RESERVED_TOKENS)}. "
            f"Received: {list(tokens[:num_reserved])}"
        )
    seen: set[str] = set()
    for index, token in enumerate(tokens):
        if not isinstance(token, str):
            raise VocabularyError(f"Token {index} must be a string. Received: {token!r}")
        if not token:
            raise VocabularyError(f"Token {index} is the empty string.")
        if token in seen:
            raise VocabularyError(f"Token {index} ({token!r}) is a duplicate.")
        seen.add(token)
