"""Checkpoints of a model directory: atomic saves, the commit record, resume, locking.

See ``seq2seq.training`` for the layout of a model directory and the resume
guarantees these pieces give together.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
from collections.abc import Iterator, Sequence

import keras
import numpy as np
from absl import logging

from seq2seq.atomic import TEMP_PREFIX, write_atomic, write_json_atomic, write_text_atomic
from seq2seq.config import Config

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
# Keras names the state variable of every keras.random.SeedGenerator (dropout) so.
SEED_STATE_NAME = "seed_generator_state"


class TrainingError(RuntimeError):
    """Training cannot go on; the message says why and what to do."""


class TrainingDivergedError(TrainingError):
    """The loss became NaN or infinite; the last good checkpoint was kept."""


class ModelDirBusyError(TrainingError):
    """Another process is training into the same model directory."""


def save_model_atomic(model: keras.Model, path: str) -> None:
    """Saves ``model`` in the .keras format through a temporary file and ``os.replace``."""
    write_atomic(path, ".keras", model.save)


def save_checkpoint_atomic(model: keras.Model, path: str) -> None:
    """Saves the weights and optimizer state of ``model`` (``.weights.h5``) atomically."""
    write_atomic(path, ".weights.h5", model.save_weights)


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
        write_text_atomic(os.path.join(self.model_dir, HISTORY_FILENAME), history_csv(history))
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
            temporary = name.startswith(TEMP_PREFIX)
            stale = directory == backup_dir and path != keep
            if os.path.isfile(path) and (temporary or stale):
                logging.info("Removing %s, left over by an interrupted run.", path)
                os.unlink(path)


def restore_checkpoint(model: keras.Model, config: Config, path: str, state: dict) -> None:
    """Loads weights, optimizer and dropout random state of a committed epoch into ``model``.

    The learning rate of ``config`` wins over the saved one, so a run resumed
    with another ``train.learning_rate`` uses it (a schedule goes on from the
    restored optimizer step).

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
    if config.train.lr_schedule == "constant":
        model.optimizer.learning_rate = config.train.learning_rate
    for variable, value in zip(_seed_states(model), state.get("rng_states", []), strict=False):
        variable.assign(np.asarray(value, dtype=variable.dtype))
