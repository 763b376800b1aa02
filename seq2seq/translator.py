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
from seq2seq.decoding import DecodingModel, DecodingStrategy, ScoringModel
from seq2seq.model import Seq2Seq, build_inference_graph
from seq2seq.vocab import BOS_ID, EOS_ID, Vocabulary

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
        strategy: a ``DecodingStrategy``; by default the one ``config.decode``
            names (``DecodingStrategy.from_config``).
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
        strategy: DecodingStrategy | None = None,
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
        self.strategy = strategy or DecodingStrategy.from_config(config.decode)
        self._decoding_model = DecodingModel(
            model,
            self.strategy,
            config.decode.max_length,
            jit_compile=config.decode.jit_compile,
        )
        self._scoring_model = ScoringModel(model)

    @classmethod
    def load(
        cls,
        model_dir: str,
        filename: str = BEST_MODEL_FILENAME,
        decode_overrides: dict | None = None,
        **kwargs,
    ) -> Translator:
        """Loads config, vocabularies and model from ``model_dir``.

        Nothing in the directory can run code: config and vocabularies are
        JSON, and the model is loaded with Keras ``safe_mode=True`` (no
        lambdas or pickled Python objects).

        Args:
            model_dir: a directory written by ``train``.
            filename: the model file in it (``model.keras``, or ``last.keras``).
            decode_overrides: ``DecodeConfig`` fields to change for this
                translator, e.g. ``{"strategy": "beam", "beam_size": 5}``.
            **kwargs: passed to the constructor (``strategy``, ``long_input``).

        Raises:
            FileNotFoundError: naming the missing file.
            ConfigError: naming ``config.json`` when it is invalid or newer
                than this version of seq2seq, or the bad ``decode_overrides`` key.
            VocabularyError: naming the vocabulary file that is invalid.
            ModelFileError: naming the model file that cannot be loaded, or
                the files that do not fit together.
        """
        config = Config.load(model_dir)
        if decode_overrides:
            config = config.with_decode(decode_overrides)
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
            dict of numpy arrays "ids" [batch, n, max_length], "lengths"
            [batch, n], "scores" [batch, n]; ``n`` hypotheses per sentence.
        """
        return self._decoding_model.predict_on_batch(source)

    def translate_nbest(
        self, sentences: Sequence[str], batch_size: int | None = None
    ) -> list[list[Translation]]:
        """Translates ``sentences``; returns the strategy's hypotheses for each, in order.

        Beam search gives its ``n_best`` best hypotheses (best first), sampling
        its ``n_best`` samples, greedy search one.
        """
        batch_size = batch_size or self.config.decode.batch_size
        encoded = self.encode_sources(sentences)
        # Sorting by length keeps padding low; results go back to input order.
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        results: list[list[Translation]] = [[] for _ in encoded]
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            out = self.decode_ids(pad_batch([encoded[i] for i in chunk], SOURCE_LENGTH_MULTIPLE))
            for row, index in enumerate(chunk):
                for ids, length, score in zip(
                    out["ids"][row], out["lengths"][row], out["scores"][row], strict=True
                ):
                    ids = ids[:length].tolist()
                    results[index].append(
                        Translation(self.target_vocab.decode(ids), ids, float(score))
                    )
        return results

    def translate_detailed(
        self, sentences: Sequence[str], batch_size: int | None = None
    ) -> list[Translation]:
        """Translates ``sentences`` and returns text, ids and score of the best, in order."""
        return [hypotheses[0] for hypotheses in self.translate_nbest(sentences, batch_size)]

    def score(
        self, sources: Sequence[str], targets: Sequence[str], batch_size: int | None = None
    ) -> list[float]:
        """Forced decoding: the log-probability of each target given its source, in order.

        The sum over the target's tokens and EOS of their log-probabilities,
        as in ``Translation.score``. Sources follow ``long_input``; targets
        longer than ``decode.max_length`` are scored whole.

        Raises:
            ValueError: when the two lists differ in length.
        """
        if len(sources) != len(targets):
            raise ValueError(
                f"Expected as many targets as sources. Received: {len(sources)} sources "
                f"and {len(targets)} targets"
            )
        for index, target in enumerate(targets):
            if not isinstance(target, str):
                raise TypeError(f"Expected target strings. Received at index {index}: {target!r}")
        batch_size = batch_size or self.config.decode.batch_size
        encoded = self.encode_sources(sources)
        target_ids = [self.target_vocab.encode(t) for t in targets]
        order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i]), len(target_ids[i])))
        scores = [0.0] * len(encoded)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            batch = {
                "source": pad_batch([encoded[i] for i in chunk], SOURCE_LENGTH_MULTIPLE),
                "decoder_input": pad_batch(
                    [[BOS_ID, *target_ids[i]] for i in chunk], SOURCE_LENGTH_MULTIPLE
                ),
            }
            expected = pad_batch([[*target_ids[i], EOS_ID] for i in chunk], SOURCE_LENGTH_MULTIPLE)
            batch["target"] = expected
            values = self._scoring_model.predict_on_batch(batch)
            for row, value in zip(chunk, values, strict=True):
                scores[row] = float(value)
        return scores

    def normalize_target(self, text: str) -> str:
        """Returns ``text`` as the target tokenizer would write it back (e.g. single spaces)."""
        return self.target_vocab.tokenizer.normalize(text)

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
