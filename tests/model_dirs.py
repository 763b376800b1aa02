"""Untrained model directories for robustness tests (behaviour on bad input needs no training)."""

import os

import keras

from seq2seq.checkpoint import (
    BEST_MODEL_FILENAME,
    SOURCE_VOCAB_FILENAME,
    TARGET_VOCAB_FILENAME,
    save_model_atomic,
)
from seq2seq.config import Config, DataConfig, ModelConfig, TrainConfig
from seq2seq.model import build_model
from seq2seq.vocab import Vocabulary

TEXTS = ["abc de", "hello world", "éa"]


def write_untrained_model_dir(
    path, tokenizer="char", max_source_length=12, attention="none"
) -> str:
    """Writes config, vocabularies and a seeded untrained GRU model to ``path``; returns it."""
    os.makedirs(path, exist_ok=True)
    source = Vocabulary.build(TEXTS, tokenizer)
    target = Vocabulary.build([t[::-1] for t in TEXTS], tokenizer)
    config = Config(
        model=ModelConfig(cell="gru", units=4, attention=attention),
        data=DataConfig(
            source_tokenizer=tokenizer,
            target_tokenizer=tokenizer,
            max_source_length=max_source_length,
        ),
        train=TrainConfig(seed=1),
    )
    config.decode.max_length = 6
    source.save(os.path.join(path, SOURCE_VOCAB_FILENAME))
    target.save(os.path.join(path, TARGET_VOCAB_FILENAME))
    config.save(str(path))
    keras.utils.set_random_seed(0)
    model = build_model(config.model, source.size, target.size)
    save_model_atomic(model, os.path.join(path, BEST_MODEL_FILENAME))
    return str(path)
