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
that was never interrupted: epoch ``k`` sees the same data order (the
shuffled stream is replayed up to epoch ``k``), the same dropout masks (the
dropout random state is part of the commit) and the same optimizer state.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from seq2seq.config import Config, ConfigError, write_json_atomic
from seq2seq.data import encode_pairs, make_dataset, split_validation
from seq2seq.metrics import MaskedSparseCrossEntropy, MaskedTokenAccuracy, SequenceExactMatch
from seq2seq.model import Seq2Seq, build_model
from seq2seq.vocab import Vocabulary

try:  # POSIX only; elsewhere the model directory is not locked.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

SOURCE_VOCAB_FILENAME = "source_vocab.json"
TARGET_VOCAB_FILENAME = "target_vocab.json"
BEST_MODEL_FILENAME = "model.keras"
LAST_MODEL_FILENAME = "last.keras"
STATE_FILENAME = "train_state.json"
HISTORY_FILENAME = "history.csv"
LOGS_DIRNAME = "logs"
BACKUP_DIRNAME = "backup"
LOCK_FILENAME = ".lock"
CHECKPOINT_TEMPLATE = "epoch-{:05d}.weights.h5"
# Prefix of every temporary file written here; leftovers of a killed run are removed.
TEMP_PREFIX = ".tmp-"
# Keras names the state variable of every keras.random.SeedGenerator (dropout) so.
SEED_STATE_NAME = "seed_generator_state"
# Decoding may produce somewhat longer outputs than seen in training.
DECODE_LENGTH_FACTOR = 1.5
DECODE_LENGTH_MARGIN = 5


class TrainingError(RuntimeError):
    """Training cannot go on; the message says why and what to do."""


class TrainingDivergedError(TrainingError):
    """The loss became NaN or infinite; the last good checkpoint was kept."""


class ModelDirBusyError(TrainingError):
    """Another process is training into the same model directory."""


@dataclasses.dataclass
class TrainResult:
    """What a training run produced."""

    model_dir: str
    epochs_done: int
    best_loss: float | None  # of the monitored quantity: val_loss, or loss without validation
    history: dict[str, list[float]]
    num_train: int
    num_valid: int


def _write_atomic(path: str, suffix: str, write: Callable[[str], None]) -> None:
    """Calls ``write(tmp_path)``, flushes the file to disk and renames it to ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp_path = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX, suffix=suffix)
    os.close(fd)
    try:
        write(tmp_path)
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.unlink(tmp_path)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Flushes a rename to disk, so it survives a power cut too (POSIX; a no-op elsewhere)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def save_model_atomic(model: keras.Model, path: str) -> None:
    """Saves ``model`` in the .keras format through a temporary file and ``os.replace``."""
    _write_atomic(path, ".keras", model.save)


def save_checkpoint_atomic(model: keras.Model, path: str) -> None:
    """Saves the weights and optimizer state of ``model`` (``.weights.h5``) atomically."""
    _write_atomic(path, ".weights.h5", model.save_weights)


def _write_text_atomic(path: str, text: str) -> None:
    def write(tmp_path: str) -> None:
        with open(tmp_path, "w", encoding="utf-8", newline="") as f:
            f.write(text)

    _write_atomic(path, ".txt", write)


def read_state(model_dir: str) -> dict:
    """Returns ``train_state.json`` of ``model_dir`` ({} when absent).

    Raises:
        TrainingError: naming the file when it is not a JSON object.
    """
    path = os.path.join(model_dir, STATE_FILENAME)
    if not os.path.exists(path):
        return {}
    remedy = f"Delete it and {BACKUP_DIRNAME}/ to train from scratch."
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise TrainingError(f"{path}: not valid JSON ({error}). {remedy}") from None
    if not isinstance(state, dict):
        raise TrainingError(f"{path}: expected a JSON object. Received: {state!r}. {remedy}")
    return state


def history_csv(rows: Sequence[dict]) -> str:
    """Returns history rows (dicts with an "epoch" key) as CSV text, keys sorted."""
    keys = sorted({key for row in rows for key in row if key != "epoch"})
    out = io.StringIO()
    writer = csv.DictWriter(out, ["epoch", *keys], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _seed_states(model: keras.Model) -> list[keras.Variable]:
    """Returns the random states of the model's dropout (one per SeedGenerator)."""
    return [v for v in model.variables if v.name == SEED_STATE_NAME]


def _finite(value: float | None) -> bool:
    return value is None or math.isfinite(value)


class ModelDirCheckpoint(keras.callbacks.Callback):
    """Commits every finished epoch to the model directory; stops on NaN and early.

    At the end of an epoch it writes, each atomically: the resume checkpoint
    ``backup/epoch-NNNNN.weights.h5``, ``last.keras``, ``model.keras`` when the
    monitored loss improved, then ``train_state.json`` (the commit: epochs
    done, best loss and epoch, history, dropout random state, checkpoint name)
    and ``history.csv``. Early stopping is decided from the committed best
    epoch, so a resumed run stops where an uninterrupted one would.

    A NaN or infinite loss (checked after every batch) stops training without
    writing anything: the files of the last good epoch stay as they are.

    Args:
        model_dir: the model directory.
        state: the committed state this run starts from.
        monitor: "val_loss", or "loss" without validation data.
        patience: epochs without improvement before stopping; 0 disables it.
    """

    def __init__(self, model_dir: str, state: dict, monitor: str = "val_loss", patience: int = 0):
        super().__init__()
        self.model_dir = model_dir
        self.state = dict(state)
        self.monitor = monitor
        self.patience = patience
        best = state.get("best_loss")
        self.best = math.inf if best is None else best
        self.diverged: tuple[int, int | None, str, float] | None = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not _finite(float(loss)):
            self.diverged = (self._epoch, batch, "loss", float(loss))
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        if self.diverged is None:
            for key in ("loss", "val_loss"):
                if not _finite(logs.get(key)):
                    self.diverged = (epoch, None, key, logs[key])
        if self.diverged is not None:
            self.model.stop_training = True
            return
        backup_dir = os.path.join(self.model_dir, BACKUP_DIRNAME)
        os.makedirs(backup_dir, exist_ok=True)
        checkpoint = CHECKPOINT_TEMPLATE.format(epoch + 1)
        save_checkpoint_atomic(self.model, os.path.join(backup_dir, checkpoint))
        save_model_atomic(self.model, os.path.join(self.model_dir, LAST_MODEL_FILENAME))
        value = logs.get(self.monitor)
        if value is not None and value < self.best:
            self.best = value
            self.state["best_epoch"] = epoch
            save_model_atomic(self.model, os.path.join(self.model_dir, BEST_MODEL_FILENAME))
        stop = bool(self.patience) and epoch - self.state.get("best_epoch", 0) >= self.patience
        history = [row for row in self.state.get("history", []) if row["epoch"] < epoch]
        history.append({"epoch": epoch, **logs})
        self.state.update(
            epochs_done=epoch + 1,
            best_loss=self.best if math.isfinite(self.best) else None,
            monitor=self.monitor,
            finished=False,
            stopped_early=stop,
            checkpoint=f"{BACKUP_DIRNAME}/{checkpoint}",
            rng_states=[
                keras.ops.convert_to_numpy(v.value).tolist() for v in _seed_states(self.model)
            ],
            history=history,
        )
        write_json_atomic(os.path.join(self.model_dir, STATE_FILENAME), self.state)
        _write_text_atomic(os.path.join(self.model_dir, HISTORY_FILENAME), history_csv(history))
        for name in os.listdir(backup_dir):
            if name != checkpoint:
                os.unlink(os.path.join(backup_dir, name))
        if stop:
            logging.info(
                "Early stopping: no improvement of %s for %d epochs.",
                self.monitor,
                epoch - self.state.get("best_epoch", 0),
            )
            self.model.stop_training = True

    def divergence_message(self, config: Config) -> str:
        """Describes the divergence and what was kept, for ``TrainingDivergedError``."""
        epoch, batch, key, value = self.diverged
        where = f"epoch {epoch + 1}" + (f", batch {batch + 1}" if batch is not None else "")
        done = self.state.get("epochs_done", 0)
        kept = (
            f"The checkpoints of epoch {done} in {self.model_dir} are kept unchanged"
            if done
            else f"No epoch had finished; nothing was saved in {self.model_dir}"
        )
        return (
            f"Training diverged: {key} became {value} at {where}. {kept}. Try a lower "
            f"learning rate (train.learning_rate={config.train.learning_rate:g}) or "
            f"clipnorm (train.clipnorm={config.train.clipnorm:g}); the same model_dir "
            "resumes from the last good epoch."
        )


@contextlib.contextmanager
def lock_model_dir(model_dir: str) -> Iterator[None]:
    """Holds an exclusive lock on ``model_dir`` (released by the OS if the process dies).

    Raises:
        ModelDirBusyError: when another process holds it.
    """
    path = os.path.join(model_dir, LOCK_FILENAME)
    with open(path, "a") as f:
        if fcntl is not None:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ModelDirBusyError(
                    f"{model_dir} is in use by another training run (lock {path})."
                ) from None
        yield


def remove_leftovers(model_dir: str, state: dict) -> None:
    """Removes temporary files of a killed run and checkpoints the state does not name."""
    backup_dir = os.path.join(model_dir, BACKUP_DIRNAME)
    keep = os.path.join(model_dir, state["checkpoint"]) if state.get("checkpoint") else None
    for directory in (model_dir, backup_dir):
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            path = os.path.join(directory, name)
            temporary = name.startswith(TEMP_PREFIX) or (
                name.startswith(".") and name.endswith(".tmp")  # Vocabulary.save
            )
            stale = directory == backup_dir and path != keep
            if os.path.isfile(path) and (temporary or stale):
                logging.info("Removing %s, left over by an interrupted run.", path)
                os.unlink(path)


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


def restore_checkpoint(model: Seq2Seq, config: Config, path: str, state: dict) -> None:
    """Loads weights, optimizer and dropout random state of a committed epoch into ``model``.

    The learning rate of ``config`` wins over the saved one, so a run resumed
    with another ``train.learning_rate`` uses it.

    Raises:
        TrainingError: naming ``path`` when it is missing or cannot be loaded.
    """
    model.optimizer.build(model.trainable_variables)  # so that the saved moments load too
    try:
        model.load_weights(path)
    except Exception as error:  # a missing, corrupt or foreign file: say which
        reason = " ".join(str(error).split())
        raise TrainingError(
            f"{path}: cannot load the checkpoint of epoch {state.get('epochs_done')} "
            f"({type(error).__name__}: {reason}). Delete {STATE_FILENAME} and {BACKUP_DIRNAME}/ "
            "in the model directory to train from scratch."
        ) from error
    model.optimizer.learning_rate = config.train.learning_rate
    for variable, value in zip(_seed_states(model), state.get("rng_states", []), strict=False):
        variable.assign(np.asarray(value, dtype=variable.dtype))


def epoch_stream(dataset: tf.data.Dataset, initial_epoch: int) -> tuple[tf.data.Dataset, int]:
    """Returns the endless stream of epochs of ``dataset`` from ``initial_epoch``, and its steps.

    ``make_dataset`` reshuffles on every pass, drawing each pass's order from
    the seed in sequence; a new process starts that sequence again. Repeating
    the dataset and skipping the batches of the epochs already done gives
    epoch ``k`` the same order in a resumed run as in an uninterrupted one
    (skipping runs the input pipeline, not the model).
    """
    steps = int(dataset.cardinality())
    if steps < 1:
        raise ValueError(f"Expected a dataset of known, positive cardinality. Received: {steps}")
    stream = dataset.repeat()
    if initial_epoch:
        stream = stream.skip(initial_epoch * steps)
    return stream.prefetch(tf.data.AUTOTUNE), steps


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
        TrainingDivergedError: when the loss becomes NaN or infinite.
        ModelDirBusyError: when another process trains into ``model_dir``.
        TrainingError: when the resume checkpoint cannot be loaded.
    """
    if config.model.source_input == "features":
        raise ConfigError(
            "train() reads text pairs; a model with model.source_input='features' is built "
            "with seq2seq.model.build_model and fitted on your own feature arrays."
        )
    os.makedirs(model_dir, exist_ok=True)
    with lock_model_dir(model_dir):
        return _train_locked(config, train_pairs, valid_pairs, model_dir, verbose, callbacks)


def _train_locked(config, train_pairs, valid_pairs, model_dir, verbose, callbacks) -> TrainResult:
    """``train`` once ``model_dir`` is locked."""
    if os.path.exists(os.path.join(model_dir, "config.json")):
        _check_same_architecture(Config.load(model_dir), config, model_dir)
    state = read_state(model_dir)
    remove_leftovers(model_dir, state)
    if state.get("history"):  # a kill may have come between the commit and history.csv
        _write_text_atomic(os.path.join(model_dir, HISTORY_FILENAME), history_csv(state["history"]))
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

    done = state.get("epochs_done", 0)
    if state.get("finished") and (done >= config.train.epochs or state.get("stopped_early")):
        logging.info(
            "%s already holds a finished run of %d epochs; nothing to train.", model_dir, done
        )
        return TrainResult(
            model_dir, done, state.get("best_loss"), {}, len(train_encoded), len(valid_encoded)
        )

    keras.utils.set_random_seed(config.train.seed)
    model = build_model(config.model, source_vocab.size, target_vocab.size)
    compile_model(model, config)
    if state.get("finished"):
        restore_checkpoint(model, config, os.path.join(model_dir, LAST_MODEL_FILENAME), state)
        logging.info("Continuing a finished run of %d epochs.", done)
    elif state.get("checkpoint"):
        restore_checkpoint(model, config, os.path.join(model_dir, state["checkpoint"]), state)
        logging.info("Resuming an interrupted run after epoch %d.", done)
    else:
        done, state = 0, {}

    d = config.data
    train_ds = make_dataset(
        train_encoded,
        config.train.batch_size,
        shuffle=True,
        seed=config.train.seed,
        bucket_width=d.bucket_width,
        shuffle_buffer=d.shuffle_buffer,
    )
    train_stream, steps = epoch_stream(train_ds, done)
    valid_ds = None
    if len(valid_encoded):
        valid_ds = make_dataset(valid_encoded, config.train.batch_size, bucket_width=d.bucket_width)

    checkpoint = ModelDirCheckpoint(
        model_dir,
        state,
        monitor="val_loss" if valid_ds is not None else "loss",
        patience=config.train.early_stopping_patience if valid_ds is not None else 0,
    )
    # TensorBoard first: an epoch re-run after a kill may be logged twice, but none is missing.
    all_callbacks = [keras.callbacks.TensorBoard(os.path.join(model_dir, LOGS_DIRNAME)), checkpoint]
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
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
    state = read_state(model_dir)
    state["finished"] = True
    state.pop("checkpoint", None)
    write_json_atomic(os.path.join(model_dir, STATE_FILENAME), state)
    shutil.rmtree(os.path.join(model_dir, BACKUP_DIRNAME), ignore_errors=True)
    return TrainResult(
        model_dir=model_dir,
        epochs_done=state.get("epochs_done", 0),
        best_loss=state.get("best_loss"),
        history={k: [float(v) for v in vs] for k, vs in history.history.items()},
        num_train=len(train_encoded),
        num_valid=len(valid_encoded),
    )
