"""The Python API for inference: ``Translator.load(model_dir).translate([...])``."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import keras
import numpy as np
from absl import logging

from seq2seq.config import Config
from seq2seq.data import pad_batch
from seq2seq.decoding import DecodingModel, DecodingStrategy
from seq2seq.model import Seq2Seq, build_inference_graph
from seq2seq.training import (
    BEST_MODEL_FILENAME,
    SOURCE_VOCAB_FILENAME,
    TARGET_VOCAB_FILENAME,
)
from seq2seq.vocab import Vocabulary

# Padded source lengths are rounded up to this multiple, to bound the number
# of compiled graph variants.
SOURCE_LENGTH_MULTIPLE = 8


@dataclasses.dataclass
class Translation:
    """One decoded sentence."""

    text: str
    ids: list[int]
    score: float


class Translator:
    """Decodes sentences with a trained model, a whole batch per compiled call.

    Args:
        model: trained ``Seq2Seq``.
        source_vocab: source vocabulary.
        target_vocab: target vocabulary.
        config: the model directory's ``Config`` (decode settings, length limits).
        strategy: decoding strategy name ("greedy").
    """

    def __init__(
        self,
        model: Seq2Seq,
        source_vocab: Vocabulary,
        target_vocab: Vocabulary,
        config: Config,
        strategy: str = "greedy",
    ):
        self.model = model
        self.source_vocab = source_vocab
        self.target_vocab = target_vocab
        self.config = config
        self.inference_graph = build_inference_graph(model)
        self._decoding_model = DecodingModel(
            model, DecodingStrategy.from_params(strategy), config.decode.max_length
        )

    @classmethod
    def load(cls, model_dir: str, filename: str = BEST_MODEL_FILENAME, **kwargs) -> Translator:
        """Loads config, vocabularies and model from ``model_dir`` (Keras safe mode on).

        Raises:
            FileNotFoundError: naming the missing file.
        """
        config = Config.load(model_dir)
        source_vocab = Vocabulary.load(os.path.join(model_dir, SOURCE_VOCAB_FILENAME))
        target_vocab = Vocabulary.load(os.path.join(model_dir, TARGET_VOCAB_FILENAME))
        path = os.path.join(model_dir, filename)
        if not os.path.exists(path):
            raise FileNotFoundError(f"No model file at {path}")
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
        return cls(model, source_vocab, target_vocab, config, **kwargs)

    def encode_sources(self, sentences: Sequence[str]) -> list[list[int]]:
        """Encodes sources to ids, truncating (with a warning) those over the length limit."""
        limit = self.config.data.max_source_length
        encoded = []
        for index, sentence in enumerate(sentences):
            ids = self.source_vocab.encode(sentence)
            if len(ids) > limit:
                logging.warning(
                    "Input %d has %d tokens; truncated to max_source_length=%d.",
                    index,
                    len(ids),
                    limit,
                )
                ids = ids[:limit]
            encoded.append(ids)
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
