"""Training: vocabularies, datasets, Keras ``fit`` with checkpoints, resume and logs.

A model directory holds::

    config.json            the resolved Config
    source_vocab.json      source Vocabulary
    target_vocab.json      target Vocabulary
    model.keras            best model so far (lowest validation loss)
    last.keras             model after the last finished epoch
    train_state.json       epochs done, best validation loss, finished flag
    history.csv            one row of metrics per epoch
    logs/                  TensorBoard logs
    backup/                Keras BackupAndRestore state while a run is unfinished

Running the same command again after an interruption resumes from the last
finished epoch (``BackupAndRestore``); a finished run is not trained again.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import tempfile
from collections.abc import Sequence

import keras
from absl import logging

from seq2seq.config import Config, ConfigError, write_json_atomic
from seq2seq.data import encode_pairs, make_dataset, split_validation
from seq2seq.metrics import MaskedSparseCrossEntropy, MaskedTokenAccuracy, SequenceExactMatch
from seq2seq.model import Seq2Seq, build_model
from seq2seq.vocab import Vocabulary

SOURCE_VOCAB_FILENAME = "source_vocab.json"
TARGET_VOCAB_FILENAME = "target_vocab.json"
BEST_MODEL_FILENAME = "model.keras"
LAST_MODEL_FILENAME = "last.keras"
STATE_FILENAME = "train_state.json"
HISTORY_FILENAME = "history.csv"
LOGS_DIRNAME = "logs"
BACKUP_DIRNAME = "backup"
# Decoding may produce somewhat longer outputs than seen in training.
DECODE_LENGTH_FACTOR = 1.5
DECODE_LENGTH_MARGIN = 5


@dataclasses.dataclass
class TrainResult:
    """What a training run produced."""

    model_dir: str
    epochs_done: int
    best_loss: float | None  # of the monitored quantity: val_loss, or loss without validation
    history: dict[str, list[float]]
    num_train: int
    num_valid: int


def save_model_atomic(model: keras.Model, path: str) -> None:
    """Saves ``model`` in the .keras format through a temporary file and ``os.replace``."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp_path = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".keras")
    os.close(fd)
    try:
        model.save(tmp_path)
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.unlink(tmp_path)
        raise


def read_state(model_dir: str) -> dict:
    """Returns ``train_state.json`` of ``model_dir`` ({} when absent)."""
    path = os.path.join(model_dir, STATE_FILENAME)
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class ModelDirCheckpoint(keras.callbacks.Callback):
    """Writes ``last.keras`` every epoch and ``model.keras`` when validation loss improves.

    Every write is atomic; the best loss is kept in ``train_state.json`` so it
    survives a resume.
    """

    def __init__(self, model_dir: str, monitor: str = "val_loss"):
        super().__init__()
        self.model_dir = model_dir
        self.monitor = monitor
        best = read_state(model_dir).get("best_loss")
        self.best = math.inf if best is None else best

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        value = logs.get(self.monitor)
        save_model_atomic(self.model, os.path.join(self.model_dir, LAST_MODEL_FILENAME))
        if value is not None and value < self.best:
            self.best = float(value)
            save_model_atomic(self.model, os.path.join(self.model_dir, BEST_MODEL_FILENAME))
        write_json_atomic(
            os.path.join(self.model_dir, STATE_FILENAME),
            {
                "epochs_done": epoch + 1,
                "best_loss": self.best if math.isfinite(self.best) else None,
                "monitor": self.monitor,
                "finished": False,
            },
        )


def load_or_build_vocabularies(
    config: Config, train_pairs: Sequence[tuple[str, str]], model_dir: str
) -> tuple[Vocabulary, Vocabulary]:
    """Loads the vocabularies of ``model_dir`` (resume) or builds and saves them."""
    paths = [os.path.join(model_dir, n) for n in (SOURCE_VOCAB_FILENAME, TARGET_VOCAB_FILENAME)]
    if all(os.path.exists(p) for p in paths):
        return Vocabulary.load(paths[0]), Vocabulary.load(paths[1])
    kwargs = {"min_count": config.data.min_count, "max_size": config.data.max_vocab_size}
    source_vocab = Vocabulary.build(
        (s for s, _ in train_pairs), config.data.source_tokenizer, **kwargs
    )
    target_vocab = Vocabulary.build(
        (t for _, t in train_pairs), config.data.target_tokenizer, **kwargs
    )
    source_vocab.save(paths[0])
    target_vocab.save(paths[1])
    return source_vocab, target_vocab


def _check_same_architecture(saved: Config, config: Config, model_dir: str) -> None:
    """Refuses to resume a model directory made with another model or data config."""
    for section in ("model", "data"):
        old, new = getattr(saved, section).__dict__, getattr(config, section).__dict__
        for key in old:
            if old[key] != new[key]:
                raise ConfigError(
                    f"{model_dir} holds a model trained with {section}.{key}={old[key]!r}, "
                    f"but this run asks for {section}.{key}={new[key]!r}. "
                    "Use a new --model_dir, or the same settings to resume."
                )


def compile_model(model: Seq2Seq, config: Config) -> None:
    """Compiles ``model`` with Adam, the masked loss and the masked metrics."""
    model.compile(
        optimizer=keras.optimizers.Adam(
            learning_rate=config.train.learning_rate, clipnorm=config.train.clipnorm
        ),
        loss=MaskedSparseCrossEntropy(),
        metrics=[MaskedTokenAccuracy(), SequenceExactMatch()],
        jit_compile=config.train.jit_compile,
    )


def train(
    config: Config,
    train_pairs: Sequence[tuple[str, str]],
    valid_pairs: Sequence[tuple[str, str]] | None,
    model_dir: str,
    *,
    verbose: int | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> TrainResult:
    """Trains a model on sentence pairs into ``model_dir`` (resuming if it holds a run).

    Args:
        config: the full configuration; ``decode.max_length`` is derived from
            the training targets and written to ``model_dir/config.json``.
        train_pairs: (source, target) training strings.
        valid_pairs: validation pairs; None holds out ``train.valid_fraction``.
        model_dir: output directory (created if needed).
        verbose: Keras ``fit`` verbosity; by default a progress bar on a
            terminal and one line per epoch otherwise (logs, CI).
        callbacks: extra Keras callbacks, run after the built-in ones.

    Returns:
        ``TrainResult``.

    Raises:
        ConfigError: when ``model_dir`` holds a model of another configuration.
        ValueError: when no training pair survives the length limits.
    """
    if config.model.source_input == "features":
        raise ConfigError(
            "train() reads text pairs; a model with model.source_input='features' is built "
            "with seq2seq.model.build_model and fitted on your own feature arrays."
        )
    os.makedirs(model_dir, exist_ok=True)
    if os.path.exists(os.path.join(model_dir, "config.json")):
        _check_same_architecture(Config.load(model_dir), config, model_dir)
    if valid_pairs is None:
        train_pairs, valid_pairs = split_validation(
            train_pairs, config.train.valid_fraction, config.train.seed
        )
        logging.info("Held out %d training pairs for validation.", len(valid_pairs))

    source_vocab, target_vocab = load_or_build_vocabularies(config, train_pairs, model_dir)
    logging.info("Vocabulary sizes: source %d, target %d", source_vocab.size, target_vocab.size)
    limits = (config.data.max_source_length, config.data.max_target_length)
    train_encoded, report = encode_pairs(train_pairs, source_vocab, target_vocab, *limits)
    logging.info("Training data: %s", report.summary())
    valid_encoded, valid_report = encode_pairs(valid_pairs, source_vocab, target_vocab, *limits)
    logging.info("Validation data: %s", valid_report.summary())
    if len(train_encoded) == 0:
        raise ValueError(f"No training pair left after the length limits: {report.summary()}")

    longest = train_encoded.max_target_length()
    config.decode.max_length = int(longest * DECODE_LENGTH_FACTOR) + DECODE_LENGTH_MARGIN
    config.save(model_dir)

    state = read_state(model_dir)
    if state.get("finished") and state.get("epochs_done", 0) >= config.train.epochs:
        logging.info(
            "%s already holds a finished run of %d epochs; nothing to train.",
            model_dir,
            state["epochs_done"],
        )
        return TrainResult(
            model_dir,
            state["epochs_done"],
            state["best_loss"],
            {},
            len(train_encoded),
            len(valid_encoded),
        )

    keras.utils.set_random_seed(config.train.seed)
    model = build_model(config.model, source_vocab.size, target_vocab.size)
    compile_model(model, config)
    last_path = os.path.join(model_dir, LAST_MODEL_FILENAME)
    if state.get("finished") and os.path.exists(last_path):
        # Build the optimizer first so that its saved moments load too.
        model.optimizer.build(model.trainable_variables)
        model.load_weights(last_path)
        logging.info("Continuing a finished run of %d epochs.", state["epochs_done"])

    d = config.data
    train_ds = make_dataset(
        train_encoded,
        config.train.batch_size,
        shuffle=True,
        seed=config.train.seed,
        bucket_width=d.bucket_width,
        shuffle_buffer=d.shuffle_buffer,
    )
    valid_ds = None
    if len(valid_encoded):
        valid_ds = make_dataset(valid_encoded, config.train.batch_size, bucket_width=d.bucket_width)

    all_callbacks = [
        keras.callbacks.BackupAndRestore(os.path.join(model_dir, BACKUP_DIRNAME)),
        keras.callbacks.TerminateOnNaN(),
        ModelDirCheckpoint(model_dir, monitor="val_loss" if valid_ds is not None else "loss"),
        keras.callbacks.CSVLogger(os.path.join(model_dir, HISTORY_FILENAME), append=True),
        keras.callbacks.TensorBoard(os.path.join(model_dir, LOGS_DIRNAME)),
    ]
    if config.train.early_stopping_patience and valid_ds is not None:
        all_callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=config.train.early_stopping_patience
            )
        )
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    history = model.fit(
        train_ds,
        validation_data=valid_ds,
        epochs=config.train.epochs,
        initial_epoch=state.get("epochs_done", 0) if state.get("finished") else 0,
        callbacks=[*all_callbacks, *callbacks],
        shuffle=False,  # the dataset shuffles itself, seeded
        verbose=verbose,
    )
    state = read_state(model_dir)
    state["finished"] = True
    write_json_atomic(os.path.join(model_dir, STATE_FILENAME), state)
    return TrainResult(
        model_dir=model_dir,
        epochs_done=state.get("epochs_done", 0),
        best_loss=state.get("best_loss"),
        history={k: [float(v) for v in vs] for k, vs in history.history.items()},
        num_train=len(train_encoded),
        num_valid=len(valid_encoded),
    )
