"""Training: vocabularies, datasets, Keras ``fit`` with checkpoints, resume and logs.

A model directory holds::

    config.json            the resolved Config
    source_vocab.json      source Vocabulary
    target_vocab.json      target Vocabulary
    model.keras            best model so far (lowest validation loss)
    last.keras             model after the last finished epoch
    train_state.json       the commit record: epochs done, best loss, history, resume point
    history.csv            one row of metrics per finished epoch
    logs/                  TensorBoard logs
    backup/                resume checkpoint (weights and optimizer) while a run is unfinished
    .lock                  locked by the process that trains into the directory

Crash safety. Every file is written to a temporary file in the same directory
and renamed over its name, so a kill at any moment leaves either the old or
the new file, never a partial one. An epoch counts as done only when
``train_state.json`` says so: it is written last, after the epoch's
checkpoints, and names the resume checkpoint. A run killed at any point and
started again with the same arguments resumes from the last committed epoch
and, where the ops are deterministic, ends with the same weights as a run
that was never interrupted: epoch ``k`` sees the same data order (its
permutation is drawn from the seed and ``k`` alone), the same dropout masks (the
dropout random state is part of the commit) and the same optimizer state.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from collections.abc import Sequence

import keras
from absl import logging

from seq2seq.atomic import write_json_atomic, write_text_atomic
from seq2seq.checkpoint import (
    BACKUP_DIRNAME,
    BEST_MODEL_FILENAME,
    HISTORY_FILENAME,
    LAST_MODEL_FILENAME,
    LOGS_DIRNAME,
    SOURCE_VOCAB_FILENAME,
    STATE_FILENAME,
    TARGET_VOCAB_FILENAME,
    ModelDirBusyError,
    ModelDirCheckpoint,
    TrainingDivergedError,
    TrainingError,
    history_csv,
    lock_model_dir,
    read_state,
    remove_leftovers,
    restore_checkpoint,
    save_model_atomic,
)
from seq2seq.config import Config, ConfigError
from seq2seq.data import (
    encode_pairs,
    epoch_steps,
    make_dataset,
    make_epoch_stream,
    split_validation,
)
from seq2seq.distribute import (
    barrier,
    distribute_batches,
    fit_scope,
    make_strategy,
    worker_dir,
)
from seq2seq.metrics import MaskedSparseCrossEntropy, MaskedTokenAccuracy, SequenceExactMatch
from seq2seq.model import Seq2Seq, build_model, dtype_policy
from seq2seq.pretrained import load_pretrained_embeddings
from seq2seq.vocab import Vocabulary

__all__ = [
    "BACKUP_DIRNAME",
    "BEST_MODEL_FILENAME",
    "LAST_MODEL_FILENAME",
    "SOURCE_VOCAB_FILENAME",
    "STATE_FILENAME",
    "TARGET_VOCAB_FILENAME",
    "ModelDirBusyError",
    "TrainResult",
    "TrainingDivergedError",
    "TrainingError",
    "compile_model",
    "save_model_atomic",
    "train",
]

# Decoding may produce somewhat longer outputs than seen in training.
DECODE_LENGTH_FACTOR = 1.5
DECODE_LENGTH_MARGIN = 5
# The cosine schedule ends at this share of the peak learning rate.
COSINE_FLOOR = 0.01


@dataclasses.dataclass
class TrainResult:
    """What a training run produced."""

    model_dir: str
    epochs_done: int
    best_loss: float | None  # of the monitored quantity: val_loss, or loss without validation
    history: dict[str, list[float]]
    num_train: int
    num_valid: int


def load_or_build_vocabularies(
    config: Config,
    train_pairs: Sequence[tuple[str, str]],
    model_dir: str,
    write_dir: str | None = None,
) -> tuple[Vocabulary, Vocabulary]:
    """Loads the vocabularies of ``model_dir`` (resume) or builds and saves them.

    Built vocabularies are saved to ``write_dir`` (default: ``model_dir``).
    """
    names = (SOURCE_VOCAB_FILENAME, TARGET_VOCAB_FILENAME)
    paths = [os.path.join(model_dir, n) for n in names]
    if all(os.path.exists(p) for p in paths):
        return Vocabulary.load(paths[0]), Vocabulary.load(paths[1])
    paths = [os.path.join(write_dir or model_dir, n) for n in names]
    data = config.data
    source_vocab, target_vocab = (
        Vocabulary.build(
            (pair[side] for pair in train_pairs),
            tokenizer,
            min_count=data.min_count,
            max_size=data.vocab_size_limit(tokenizer),
        )
        for side, tokenizer in enumerate((data.source_tokenizer, data.target_tokenizer))
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


def learning_rate(config: Config, steps_per_epoch: int | None = None):
    """The optimizer's learning rate: a float, or the schedule ``train.lr_schedule`` asks for.

    Args:
        config: the configuration (``train.learning_rate``, ``lr_schedule``, ``epochs``).
        steps_per_epoch: batches per epoch; a schedule needs it (None: constant).
    """
    t = config.train
    if t.lr_schedule == "constant" or steps_per_epoch is None:
        return t.learning_rate
    return keras.optimizers.schedules.CosineDecay(
        t.learning_rate, decay_steps=max(1, t.epochs * steps_per_epoch), alpha=COSINE_FLOOR
    )


def compile_model(model: Seq2Seq, config: Config, steps_per_epoch: int | None = None) -> None:
    """Compiles ``model`` with Adam, the masked loss and the masked metrics.

    ``steps_per_epoch`` lets ``train.lr_schedule`` lay its curve over the run.
    """
    model.compile(
        optimizer=keras.optimizers.Adam(
            learning_rate=learning_rate(config, steps_per_epoch), clipnorm=config.train.clipnorm
        ),
        loss=MaskedSparseCrossEntropy(label_smoothing=config.train.label_smoothing),
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
    devices: Sequence[str] | None = None,
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
        devices: with ``train.distribution="mirrored"``, the devices to
            mirror over (default: every GPU).

    With ``train.distribution="multi_worker"`` every worker calls ``train``
    with the same arguments; only the chief writes ``model_dir``, the others
    write to a temporary directory (see ``seq2seq.distribute``). The strategy
    is made before anything else, as TensorFlow requires for multi-worker.

    Returns:
        ``TrainResult``.

    Raises:
        ConfigError: when ``model_dir`` holds a model of another configuration.
        ValueError: when no training pair survives the length limits.
        TrainingDivergedError: when the loss becomes NaN or infinite.
        ModelDirBusyError: when another process trains into ``model_dir``.
        TrainingError: when the resume checkpoint cannot be loaded.
    """
    if config.model.source_input == "features":
        raise ConfigError(
            "train() reads text pairs; a model with model.source_input='features' is built "
            "with seq2seq.model.build_model and fitted on your own feature arrays."
        )
    # First: multi-worker collectives must be set up before any other TensorFlow op.
    strategy = make_strategy(config.train.distribution, devices)
    with worker_dir(strategy, model_dir) as write_dir:
        os.makedirs(write_dir, exist_ok=True)
        with lock_model_dir(write_dir):
            return _train_locked(
                config,
                train_pairs,
                valid_pairs,
                model_dir,
                write_dir,
                strategy,
                verbose,
                callbacks,
            )


def _train_locked(
    config, train_pairs, valid_pairs, model_dir, write_dir, strategy, verbose, callbacks
) -> TrainResult:
    """``train`` once the directory it writes (``write_dir``) is locked.

    Every process reads the committed run from ``model_dir``; it writes to
    ``write_dir``, which is ``model_dir`` but on the non-chief workers of a
    multi-worker run.
    """
    if os.path.exists(os.path.join(model_dir, "config.json")):
        _check_same_architecture(Config.load(model_dir), config, model_dir)
    state = read_state(model_dir)
    if write_dir == model_dir:
        remove_leftovers(model_dir, state)
    if state.get("history"):  # a kill may have come between the commit and history.csv
        write_text_atomic(os.path.join(write_dir, HISTORY_FILENAME), history_csv(state["history"]))
    if valid_pairs is None:
        train_pairs, valid_pairs = split_validation(
            train_pairs, config.train.valid_fraction, config.train.seed
        )
        logging.info("Held out %d training pairs for validation.", len(valid_pairs))

    source_vocab, target_vocab = load_or_build_vocabularies(
        config, train_pairs, model_dir, write_dir
    )
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
    config.save(write_dir)

    done = state.get("epochs_done", 0)
    if state.get("finished") and (done >= config.train.epochs or state.get("stopped_early")):
        logging.info(
            "%s already holds a finished run of %d epochs; nothing to train.", model_dir, done
        )
        return TrainResult(
            model_dir, done, state.get("best_loss"), {}, len(train_encoded), len(valid_encoded)
        )

    keras.utils.set_random_seed(config.train.seed)
    if strategy.num_replicas_in_sync > 1:
        logging.info(
            "Training on %d replicas (%s), global batch %d.",
            strategy.num_replicas_in_sync,
            config.train.distribution,
            config.train.batch_size,
        )
    with strategy.scope(), dtype_policy(config.train.mixed_precision):
        model = build_model(config.model, source_vocab.size, target_vocab.size)
        # Before compiling (and restoring): freezing changes what the optimizer holds.
        vocabs = {"source": source_vocab, "target": target_vocab}
        files = {"source": config.train.source_embeddings, "target": config.train.target_embeddings}
        for side, path in files.items():
            if path:
                load_pretrained_embeddings(
                    model,
                    side,
                    path,
                    vocabs[side],
                    trainable=not config.train.freeze_embeddings,
                    seed=config.train.seed,
                )
        d = config.data
        steps = epoch_steps(
            train_encoded, config.train.batch_size, d.bucket_width, d.batch_length_limit
        )
        compile_model(model, config, steps)
        if state.get("finished"):
            restore_checkpoint(model, config, os.path.join(model_dir, LAST_MODEL_FILENAME), state)
            logging.info("Continuing a finished run of %d epochs.", done)
        elif state.get("checkpoint"):
            restore_checkpoint(model, config, os.path.join(model_dir, state["checkpoint"]), state)
            logging.info("Resuming an interrupted run after epoch %d.", done)
        else:
            done, state = 0, {}

    # Under XLA every new batch shape is a new compilation: keep the shapes few.
    pad_multiple = d.bucket_width if config.train.jit_compile else 1

    def make_train_stream():
        return make_epoch_stream(
            train_encoded,
            config.train.batch_size,
            seed=config.train.seed,
            initial_epoch=done,
            bucket_width=d.bucket_width,
            batch_length_limit=d.batch_length_limit,
            pad_multiple=pad_multiple,
        )[0]

    train_stream = distribute_batches(strategy, make_train_stream)
    valid_ds = None
    if len(valid_encoded):
        valid_ds = distribute_batches(
            strategy,
            lambda: make_dataset(
                valid_encoded,
                config.train.batch_size,
                bucket_width=d.bucket_width,
                batch_length_limit=d.batch_length_limit,
                pad_multiple=pad_multiple,
            ),
        )

    checkpoint = ModelDirCheckpoint(
        write_dir,
        state,
        monitor="val_loss" if valid_ds is not None else "loss",
        patience=config.train.early_stopping_patience if valid_ds is not None else 0,
    )
    # TensorBoard first: an epoch re-run after a kill may be logged twice, but none is missing.
    all_callbacks = [keras.callbacks.TensorBoard(os.path.join(write_dir, LOGS_DIRNAME)), checkpoint]
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    with fit_scope(model, strategy, make_train_stream):
        history = model.fit(
            train_stream,
            validation_data=valid_ds,
            epochs=config.train.epochs,
            initial_epoch=done,
            steps_per_epoch=steps,
            callbacks=[*all_callbacks, *callbacks],
            shuffle=False,  # the dataset shuffles itself, seeded
            verbose=verbose,
        )
    if checkpoint.diverged is not None:
        raise TrainingDivergedError(checkpoint.divergence_message(config))
    state = read_state(write_dir)
    state["finished"] = True
    state.pop("checkpoint", None)
    write_json_atomic(os.path.join(write_dir, STATE_FILENAME), state)
    shutil.rmtree(os.path.join(write_dir, BACKUP_DIRNAME), ignore_errors=True)
    barrier(strategy)  # every worker returns once the chief has committed the end
    return TrainResult(
        model_dir=model_dir,
        epochs_done=state.get("epochs_done", 0),
        best_loss=state.get("best_loss"),
        history={k: [float(v) for v in vs] for k, vs in history.history.items()},
        num_train=len(train_encoded),
        num_valid=len(valid_encoded),
    )
