"""Subword tokenisation: WordPiece pieces learned from the training text (tensorflow-text).

Text is split into words at whitespace (as ``str.split()`` splits), then each
word into WordPiece pieces by greedy longest match: the first piece of a word
is a plain token, every following one a *continuation* token stored with the
prefix ``##`` ("sitting" -> "sit", "##ting"). Detokenisation glues each
continuation to the piece before it and joins words with single spaces, so
for whitespace-normalised text ``detokenize(tokenize(x)) == x`` whenever every
character of ``x`` is in the vocabulary (words that begin with ``#`` included).

Unknown text: a word with a character the vocabulary lacks, or longer than
`MAX_BYTES_PER_WORD` UTF-8 bytes, becomes one `UNK` as a whole (WordPiece's
behaviour; its other words are unaffected), and decodes as ``<unk>``.

Learning (`learn_wordpieces`) runs tensorflow-text's WordPiece vocabulary
learner, the one behind ``bert_vocab_from_dataset``, on the training words
split as above (not BERT's lower-casing, punctuation-splitting pre-tokenizer).
Splitting runs tensorflow-text's ``FastWordpieceTokenizer`` (`make_wordpiece`),
eagerly here and inside the exported SavedModel (``seq2seq.export``), so both
give the same ids. Nothing but the vocabulary's token list is needed to
rebuild it: the vocabulary file (tokenizer "subword") is the whole model.

tensorflow-text, and with it TensorFlow, is imported only when a vocabulary is
learned or text is split; loading a vocabulary and decoding ids do not need it.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterable, Sequence
from typing import Any

from seq2seq.vocab import (
    RESERVED_TOKENS,
    UNK,
    Tokenizer,
    register_tokenizer,
)

SUFFIX_MARK = "##"  # Prefix of continuation tokens in the vocabulary.
DEFAULT_VOCAB_SIZE = 8000
# A piece is learned only if seen at least this often: at a threshold of 1
# every training word becomes a piece of its own.
MIN_PIECE_COUNT = 2
# Longer words are left out of learning (their characters are still kept).
MAX_PIECE_CHARS = 50
# Longer words (URLs, long runs of symbols) become UNK.
MAX_BYTES_PER_WORD = 256
# The learner's refinement passes. tensorflow-text's default is 4; on Multi30k
# 2 split the training text into as few pieces, in two thirds of the time.
LEARNER_ITERATIONS = 2
# The words of the tokenizer's cache; it starts again when full.
MAX_CACHED_WORDS = 500_000

# FastWordpieceTokenizer marks continuations with this instead of "##": a
# string that starts with a space never occurs inside a word, so a word that
# begins with "##" is split like any other and comes back unchanged.
_MATCHER_SUFFIX = " "
# Fraction of the learner's pieces per word seen at least as often, used to
# guess the count threshold that fills the budget (measured: 1.15 to 1.7).
_PIECES_PER_FREQUENT_WORD = 1.3


def is_continuation(token: str) -> bool:
    """Whether `token` continues the word of the token before it ("##ing")."""
    return token.startswith(SUFFIX_MARK)


def join_pieces(tokens: Sequence[str]) -> str:
    """Joins WordPiece tokens into text: continuations glued on, words with single spaces.

    Any token sequence is accepted (a model may start with a continuation).
    The exported graph (``seq2seq.export``) applies the same rule.
    """
    text = "".join(
        token[len(SUFFIX_MARK) :] if is_continuation(token) else " " + token for token in tokens
    )
    return text[1:] if text.startswith(" ") else text


def matcher_vocabulary(tokens: Sequence[str]) -> list[str]:
    """The vocabulary given to ``FastWordpieceTokenizer`` for `tokens`, index for index.

    Continuations ("##ing") become `_MATCHER_SUFFIX` + piece; tokens that
    text must never produce (PAD, BOS, EOS, the bare mark "##", anything with
    whitespace) become strings containing a space, which match no word.
    """
    matcher = []
    for index, token in enumerate(tokens):
        piece = token[len(SUFFIX_MARK) :] if is_continuation(token) else token
        reserved = index < len(RESERVED_TOKENS) and token != UNK
        if reserved or not piece or any(char.isspace() for char in token):
            matcher.append(f"<unused {index}>")
        elif is_continuation(token):
            matcher.append(_MATCHER_SUFFIX + piece)
        else:
            matcher.append(token)
    return matcher


def _tf_text() -> tuple[Any, Any]:
    """Imports (on first use) and returns ``tensorflow`` and ``tensorflow_text``."""
    import tensorflow as tf
    import tensorflow_text

    return tf, tensorflow_text


def make_wordpiece(tokens: Sequence[str]) -> Any:
    """A ``tensorflow_text.FastWordpieceTokenizer`` for a vocabulary of `tokens`.

    It takes words (no whitespace) and returns int64 ids of `tokens`; an
    unsplittable or overlong word gives `UNK_ID`.
    """
    tf, tensorflow_text = _tf_text()
    return tensorflow_text.FastWordpieceTokenizer(
        vocab=matcher_vocabulary(tokens),
        suffix_indicator=_MATCHER_SUFFIX,
        max_bytes_per_word=MAX_BYTES_PER_WORD,
        token_out_type=tf.int64,
        unknown_token=UNK,
        no_pretokenization=True,
    )


class SubwordTokenizer(Tokenizer):
    """WordPiece tokenizer over whitespace-separated words (see the module docstring).

    Splitting needs the vocabulary: `Vocabulary` binds the tokenizer to its
    tokens (`for_tokens`). Pieces of words already seen are cached, and
    `tokenize_batch` splits the new words of many texts in one call.

    Args:
        tokens: The vocabulary's tokens in id order, or `None` for a tokenizer
            that can only learn (`learn_tokens`) and join pieces.
    """

    name = "subword"
    needs_vocabulary = True

    def __init__(self, tokens: Sequence[str] | None = None) -> None:
        self._tokens = None if tokens is None else tuple(tokens)
        self._wordpiece: Any = None  # built on the first split
        self._cache: dict[str, tuple[str, ...]] = {}

    def for_tokens(self, tokens: Sequence[str]) -> SubwordTokenizer:
        """Returns a subword tokenizer bound to `tokens`."""
        return SubwordTokenizer(tokens)

    def tokenize(self, text: str) -> list[str]:
        """Returns the WordPiece tokens of `text` (`UNK` for an unsplittable word)."""
        return self.tokenize_batch([text])[0]

    def tokenize_batch(self, texts: Sequence[str]) -> list[list[str]]:
        """Returns the tokens of every text, splitting all new words in one call."""
        words = [text.split() for text in texts]
        self._split_new_words({word for text_words in words for word in text_words})
        cache = self._cache
        return [[piece for word in text_words for piece in cache[word]] for text_words in words]

    def detokenize(self, tokens: Sequence[str]) -> str:
        """Joins tokens into words and words with single spaces (`join_pieces`)."""
        return join_pieces(tokens)

    def normalize(self, text: str) -> str:
        """Returns `text` with single spaces: what decoding its tokens gives when all are known."""
        return " ".join(text.split())

    def learn_tokens(
        self, texts: Iterable[str], *, min_count: int, max_size: int | None
    ) -> list[str]:
        """Learns WordPiece tokens from `texts` (`learn_wordpieces`)."""
        return learn_wordpieces(
            texts,
            max_size=DEFAULT_VOCAB_SIZE if max_size is None else max_size,
            min_count=min_count,
        )

    def __repr__(self) -> str:
        size = "unbound" if self._tokens is None else f"{len(self._tokens)} tokens"
        return f"SubwordTokenizer({size})"

    def _split_new_words(self, words: set[str]) -> None:
        """Adds the pieces of the words of `words` not in the cache yet."""
        new = [word for word in words if word not in self._cache]
        if not new:
            return
        if self._tokens is None:
            raise ValueError(
                "A subword tokenizer splits text with a learned vocabulary. Use it through a "
                "Vocabulary: Vocabulary.build(texts, 'subword') or Vocabulary.load(path)."
            )
        if len(self._cache) + len(new) > MAX_CACHED_WORDS:
            self._cache.clear()
            new = list(words)  # the batch's cached words went too
        words, encoded = [], []
        for word in new:
            try:
                encoded.append(word.encode("utf-8"))
                words.append(word)
            except UnicodeEncodeError:  # a lone surrogate: no UTF-8 text can hold it
                self._cache[word] = (UNK,)
        if not words:
            return
        tf, _ = _tf_text()
        if self._wordpiece is None:
            self._wordpiece = make_wordpiece(self._tokens)
        ids = self._wordpiece.tokenize(tf.constant(encoded, tf.string))
        flat, splits = ids.flat_values.numpy(), ids.row_splits.numpy()
        tokens = self._tokens
        for index, word in enumerate(words):
            pieces = flat[splits[index] : splits[index + 1]]
            self._cache[word] = tuple(tokens[token_id] for token_id in pieces)


register_tokenizer(SubwordTokenizer)


def learn_wordpieces(
    texts: Iterable[str], *, max_size: int = DEFAULT_VOCAB_SIZE, min_count: int = 1
) -> list[str]:
    """Learns the non-reserved tokens of a subword vocabulary of at most `max_size` tokens.

    Every character of the training words comes first, most frequent first,
    each followed by its continuation form ("a", "##a", "e", "##e", ...), so
    any word made of seen characters can be split. The learned pieces follow,
    most frequent first: tensorflow-text's WordPiece learner
    (``wordpiece_tokenizer_learner_lib``) keeps the pieces seen at least
    *threshold* times; the threshold searched for is the smallest (at least
    ``max(min_count, MIN_PIECE_COUNT)``) whose pieces fit the budget, and the
    pieces of the threshold one below, which do not, are cut to fill it.
    A search takes a few learner runs (seconds for 30k sentence pairs).

    Args:
        texts: The training texts.
        max_size: Vocabulary size bound, the reserved tokens included.
        min_count: Pieces seen fewer times are not learned (characters are
            always kept while the budget allows).

    Returns:
        The tokens after the reserved ones, in id order: at most
        ``max_size - len(RESERVED_TOKENS)``, none reserved.

    Raises:
        ValueError: If `max_size` is below ``len(RESERVED_TOKENS)`` or
            `min_count` is not a positive integer.
    """
    if (
        isinstance(max_size, bool)
        or not isinstance(max_size, int)
        or max_size < len(RESERVED_TOKENS)
    ):
        raise ValueError(
            f"Expected an integer >= {len(RESERVED_TOKENS)} (the reserved tokens count) for "
            f"`max_size`. Received: max_size={max_size!r}"
        )
    if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
        raise ValueError(f"Expected a positive integer for `min_count`. Received: {min_count!r}")
    word_counts = collections.Counter(word for text in texts for word in text.split())
    budget = max_size - len(RESERVED_TOKENS)
    char_counts: collections.Counter[str] = collections.Counter()
    for word, count in word_counts.items():
        for char in word:
            char_counts[char] += count
    ranked = sorted(char_counts, key=lambda char: (-char_counts[char], char))
    alphabet = [token for char in ranked for token in (char, SUFFIX_MARK + char)]
    if not alphabet or len(alphabet) >= budget:
        return alphabet[:budget]
    # No piece is seen more often than its first character.
    search = _WordpieceSearch(word_counts, alphabet, budget, max(char_counts.values()))
    return alphabet + search.best_pieces(max(min_count, MIN_PIECE_COUNT))


class _WordpieceSearch:
    """Runs the WordPiece learner at count thresholds and finds the one that fits a budget.

    Args:
        word_counts: Training word -> count.
        alphabet: The character tokens, which are kept apart.
        budget: The number of tokens available after the reserved ones.
        top: A count above which no piece is learned.
    """

    def __init__(
        self, word_counts: collections.Counter[str], alphabet: list[str], budget: int, top: int
    ) -> None:
        self._words = [(w, c) for w, c in word_counts.items() if len(w) <= MAX_PIECE_CHARS]
        self._counts = sorted((c for _, c in self._words), reverse=True)
        self._top = top
        self._skip = set(alphabet) | set(RESERVED_TOKENS) | {SUFFIX_MARK}
        self._room = budget - len(alphabet)
        self._pieces: dict[int, list[str]] = {}

    def best_pieces(self, lowest: int) -> list[str]:
        """The pieces to keep, with thresholds from `lowest` up (see `learn_wordpieces`)."""
        # Bounds: `over` is below `lowest` or does not fit, `fits` fits.
        over, fits = lowest - 1, self._top + 1
        probe = min(max(self._guess(), lowest), fits - 1)
        first = True
        while fits - over > 1:
            if self._fits(probe):
                fits = probe
            else:
                over = probe
            if first:  # the guess is usually right or off by one: try its neighbour
                probe = probe - 1 if fits == probe else probe + 1
                first = False
            else:  # bisection in log space: the piece count falls like a power of t
                probe = round(math.sqrt(max(over, 1) * fits))
            probe = min(max(probe, over + 1), fits - 1)
        if over >= lowest:
            return self._learn(over)[: self._room]
        return self._learn(fits) if fits <= self._top else []

    def _guess(self) -> int:
        """The smallest threshold at which the frequent words predict a fitting vocabulary."""
        wanted = self._room / _PIECES_PER_FREQUENT_WORD
        # self._counts is sorted in decreasing order: the count of the word
        # ranked `wanted` is where about `wanted` words are seen that often.
        index = int(wanted)
        if index >= len(self._counts):
            return 1
        return self._counts[index] + 1

    def _fits(self, threshold: int) -> bool:
        return len(self._learn(threshold)) <= self._room

    def _learn(self, threshold: int) -> list[str]:
        """The learner's multi-character pieces at `threshold`, most frequent first (cached)."""
        if threshold not in self._pieces:
            from tensorflow_text.tools.wordpiece_vocab import (
                wordpiece_tokenizer_learner_lib as learner,
            )

            params = learner.Params(
                upper_thresh=None,
                lower_thresh=None,
                num_iterations=LEARNER_ITERATIONS,
                max_input_tokens=None,
                max_token_length=MAX_PIECE_CHARS,
                max_unique_chars=None,
                vocab_size=None,
                slack_ratio=None,
                include_joiner_token=True,
                joiner=SUFFIX_MARK,
                reserved_tokens=[],
            )
            vocab = learner.learn_with_thresh(self._words, threshold, params)
            self._pieces[threshold] = [token for token in vocab if token not in self._skip]
        return self._pieces[threshold]
