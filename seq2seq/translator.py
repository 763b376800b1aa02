"""The Python API for inference: ``Translator.load(model_dir).translate([...])``."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import keras
import numpy as np
from absl import logging

from seq2seq.checkpoint import (
    BEST_MODEL_FILENAME,
    SOURCE_VOCAB_FILENAME,
    TARGET_VOCAB_FILENAME,
)
from seq2seq.config import CONFIG_FILENAME, Config
from seq2seq.data import pad_batch
from seq2seq.decoding import DecodingModel, DecodingStrategy
from seq2seq.model import Seq2Seq, build_inference_graph
from seq2seq.vocab import Vocabulary

# Padded source lengths are rounded up to this multiple, to bound the number
# of compiled graph variants.
SOURCE_LENGTH_MULTIPLE = 8
LONG_INPUT_CHOICES = ("truncate", "error")
MAX_REPORTED_INPUTS = 10


class ModelFileError(ValueError):
    """A file of a model directory is missing a part, corrupt or does not fit the others."""


class LongInputError(ValueError):
    """A source is longer than the model's ``max_source_length`` (with ``long_input="error"``).

    Attributes:
        index: 0-based position of the source in the input.
        length: its length in tokens.
        limit: the model's ``max_source_length``.
    """

    def __init__(self, index: int, length: int, limit: int):
        self.index, self.length, self.limit = index, length, limit
        super().__init__(
            f"input {index} has {length} tokens, more than max_source_length={limit} "
            "(long_input='error'; use long_input='truncate' to cut it)"
        )


@dataclasses.dataclass
class Translation:
    """One decoded sentence."""

    text: str
    ids: list[int]
    score: float


class Translator:
    """Decodes sentences with a trained model, a whole batch per compiled call.

    Any string can be translated: unknown characters or words become UNK, an
    empty or whitespace-only string decodes from an empty source, and every
    call returns one result per input, in input order.

    Args:
        model: trained ``Seq2Seq``.
        source_vocab: source vocabulary.
        target_vocab: target vocabulary.
        config: the model directory's ``Config`` (decode settings, length limits).
        strategy: decoding strategy name ("greedy").
        long_input: what to do with a source longer than the model's
            ``data.max_source_length``: "truncate" it (one warning per call
            lists them) or raise ``LongInputError`` ("error").

    Raises:
        ValueError: for an unknown ``long_input``.
        ModelFileError: when the vocabularies or config do not fit the model.
    """

    def __init__(
        self,
        model: Seq2Seq,
        source_vocab: Vocabulary,
        target_vocab: Vocabulary,
        config: Config,
        strategy: str = "greedy",
        long_input: str = "truncate",
    ):
        if long_input not in LONG_INPUT_CHOICES:
            raise ValueError(
                f"Expected one of {list(LONG_INPUT_CHOICES)} for `long_input`. "
                f"Received: long_input={long_input!r}"
            )
        check_model_fits(model, source_vocab, target_vocab, config)
        self.model = model
        self.source_vocab = source_vocab
        self.target_vocab = target_vocab
        self.config = config
        self.long_input = long_input
        self.inference_graph = build_inference_graph(model)
        self._decoding_model = DecodingModel(
            model,
            DecodingStrategy.from_params(strategy),
            config.decode.max_length,
            jit_compile=config.decode.jit_compile,
        )

    @classmethod
    def load(cls, model_dir: str, filename: str = BEST_MODEL_FILENAME, **kwargs) -> Translator:
        """Loads config, vocabularies and model from ``model_dir``.

        Nothing in the directory can run code: config and vocabularies are
        JSON, and the model is loaded with Keras ``safe_mode=True`` (no
        lambdas or pickled Python objects).

        Args:
            model_dir: a directory written by ``train``.
            filename: the model file in it (``model.keras``, or ``last.keras``).
            **kwargs: passed to the constructor (``strategy``, ``long_input``).

        Raises:
            FileNotFoundError: naming the missing file.
            ConfigError: naming ``config.json`` when it is invalid or newer
                than this version of seq2seq.
            VocabularyError: naming the vocabulary file that is invalid.
            ModelFileError: naming the model file that cannot be loaded, or
                the files that do not fit together.
        """
        config = Config.load(model_dir)
        source_vocab = Vocabulary.load(os.path.join(model_dir, SOURCE_VOCAB_FILENAME))
        target_vocab = Vocabulary.load(os.path.join(model_dir, TARGET_VOCAB_FILENAME))
        path = os.path.join(model_dir, filename)
        if not os.path.exists(path):
            raise FileNotFoundError(f"No model file at {path}")
        try:
            model = keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as error:  # Keras raises many types for a bad file; name the file.
            reason = " ".join(str(error).split())  # Keras' messages span lines; keep one.
            raise ModelFileError(
                f"{path}: cannot load the model ({type(error).__name__}: {reason})"
            ) from error
        if not isinstance(model, Seq2Seq):
            raise ModelFileError(
                f"{path}: holds a {type(model).__name__}, not a seq2seq Seq2Seq model."
            )
        try:
            check_model_fits(model, source_vocab, target_vocab, config)
        except ModelFileError as error:
            raise ModelFileError(f"{model_dir}: {error}") from None
        return cls(model, source_vocab, target_vocab, config, **kwargs)

    def encode_sources(self, sentences: Sequence[str]) -> list[list[int]]:
        """Encodes sources to ids, handling those over the length limit by ``long_input``.

        Raises:
            TypeError: naming the position of an input that is not a string.
            LongInputError: with ``long_input="error"``, for the first source
                over the limit.
        """
        limit = self.config.data.max_source_length
        encoded, truncated = [], []
        for index, sentence in enumerate(sentences):
            if not isinstance(sentence, str):
                raise TypeError(
                    f"Expected strings to translate. Received at index {index}: {sentence!r}"
                )
            ids = self.source_vocab.encode(sentence)
            if len(ids) > limit:
                if self.long_input == "error":
                    raise LongInputError(index, len(ids), limit)
                truncated.append(index)
                ids = ids[:limit]
            encoded.append(ids)
        if truncated:
            more = len(truncated) - MAX_REPORTED_INPUTS
            logging.warning(
                "%d input(s) longer than max_source_length=%d tokens were truncated to it "
                "(indices %s%s).",
                len(truncated),
                limit,
                ", ".join(map(str, truncated[:MAX_REPORTED_INPUTS])),
                f" and {more} more" if more > 0 else "",
            )
        return encoded

    def decode_ids(self, source: np.ndarray) -> dict[str, np.ndarray]:
        """Decodes one padded batch of source ids [batch, src_time] in one compiled call.

        Returns:
            dict of numpy arrays "ids" [batch, max_length], "lengths" [batch],
            "scores" [batch].
        """
        return self._decoding_model.predict_on_batch(source)

    def translate_detailed(
        self, sentences: Sequence[str], batch_size: int | None = None
    ) -> list[Translation]:
        """Translates ``sentences`` and returns text, ids and score for each, in order."""
        batch_size = batch_size or self.config.decode.batch_size
        encoded = self.encode_sources(sentences)
        # Sorting by length keeps padding low; results go back to input order.
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        results: list[Translation | None] = [None] * len(encoded)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            out = self.decode_ids(pad_batch([encoded[i] for i in chunk], SOURCE_LENGTH_MULTIPLE))
            for row, index in enumerate(chunk):
                ids = out["ids"][row, : out["lengths"][row]].tolist()
                results[index] = Translation(
                    text=self.target_vocab.decode(ids), ids=ids, score=float(out["scores"][row])
                )
        return results

    def normalize_target(self, text: str) -> str:
        """Returns ``text`` as the target tokenizer would write it back (e.g. single spaces)."""
        tokenizer = self.target_vocab.tokenizer
        return tokenizer.detokenize(tokenizer.tokenize(text))

    def translate(self, sentences: Sequence[str], batch_size: int | None = None) -> list[str]:
        """Translates ``sentences``; returns one string per input, in order."""
        return [t.text for t in self.translate_detailed(sentences, batch_size)]


def check_model_fits(
    model: Seq2Seq, source_vocab: Vocabulary, target_vocab: Vocabulary, config: Config
) -> None:
    """Checks that vocabularies and config describe the same model as the weights.

    Raises:
        ModelFileError: naming the file that does not fit and both sizes.
    """
    checks = (
        (SOURCE_VOCAB_FILENAME, source_vocab.size, model.source_vocab_size),
        (TARGET_VOCAB_FILENAME, target_vocab.size, model.target_vocab_size),
    )
    for filename, vocab_size, model_size in checks:
        if model_size is not None and vocab_size != model_size:
            raise ModelFileError(
                f"{filename} has {vocab_size} tokens but the model was built for "
                f"{model_size}; the vocabulary does not belong to this model."
            )
    if dataclasses.asdict(config.model) != dataclasses.asdict(model.model_config):
        raise ModelFileError(
            f"{CONFIG_FILENAME} describes model {dataclasses.asdict(config.model)} but the "
            f"model file holds {dataclasses.asdict(model.model_config)}."
        )
