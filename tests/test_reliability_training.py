"""Training faults in-process: NaN loss, resume details, locking, leftovers, reproducibility."""

import json
import os
import random
import re

import keras
import numpy as np
import pytest

from seq2seq.checkpoint import (
    BACKUP_DIRNAME,
    BEST_MODEL_FILENAME,
    HISTORY_FILENAME,
    LAST_MODEL_FILENAME,
    STATE_FILENAME,
    ModelDirBusyError,
    ModelDirCheckpoint,
    TrainingDivergedError,
    TrainingError,
    lock_model_dir,
)
from seq2seq.config import Config, ModelConfig, TrainConfig
from seq2seq.data import encode_pairs, make_epoch_stream
from seq2seq.model import build_model
from seq2seq.training import train
from seq2seq.vocab import Vocabulary


def _pairs(n=120, seed=0):
    rng = random.Random(seed)
    words = ["".join(rng.choice("abcd") for _ in range(rng.randint(2, 5))) for _ in range(n)]
    return [(w, w[::-1]) for w in words]


def _config(**train):
    return Config(
        model=ModelConfig(cell="gru", units=8),
        train=TrainConfig(**{"epochs": 3, "batch_size": 16, "early_stopping_patience": 0, **train}),
    )


class _Stop(Exception):
    pass


class _Probe(keras.callbacks.Callback):
    """Records what fit started from; optionally poisons a weight or stops the run."""

    def __init__(self, poison_at=None, stop_after_epoch=None):
        super().__init__()
        self.poison_at = poison_at
        self.stop_after_epoch = stop_after_epoch
        self.learning_rate = None
        self.epochs = []

    def on_train_begin(self, logs=None):
        self.learning_rate = float(self.model.optimizer.learning_rate)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.epochs.append(epoch)

    def on_train_batch_begin(self, batch, logs=None):
        if (self.epoch, batch) == self.poison_at:
            kernel = self.model.trainable_variables[0]
            kernel.assign(np.full(kernel.shape, np.nan, dtype="float32"))

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.stop_after_epoch:
            raise _Stop()


def _file_bytes(model_dir, *names):
    return {name: (model_dir / name).read_bytes() for name in names}


def test_nan_loss_stops_keeps_last_good_epoch_and_resumes_with_new_learning_rate(tmp_path):
    pairs, model_dir = _pairs(), tmp_path / "run"
    probe = _Probe(poison_at=(1, 2))
    with pytest.raises(TrainingDivergedError) as info:
        train(_config(), pairs[:100], pairs[100:], str(model_dir), verbose=0, callbacks=[probe])
    message = str(info.value)
    assert "loss became nan at epoch 2, batch 3" in message
    assert "checkpoints of epoch 1" in message and "learning_rate=0.003" in message
    state = json.loads((model_dir / STATE_FILENAME).read_text())
    assert state["epochs_done"] == 1 and not state["finished"]
    for name in (BEST_MODEL_FILENAME, LAST_MODEL_FILENAME):
        weights = keras.saving.load_model(model_dir / name, safe_mode=True).get_weights()
        assert all(np.isfinite(w).all() for w in weights), name
    assert (model_dir / HISTORY_FILENAME).read_text().count("\n") == 2  # header and epoch 1

    probe = _Probe()
    config = _config(learning_rate=1e-3)
    result = train(config, pairs[:100], pairs[100:], str(model_dir), verbose=0, callbacks=[probe])
    assert probe.epochs == [1, 2] and result.epochs_done == 3
    assert probe.learning_rate == pytest.approx(1e-3)  # this run's setting, not the saved one


def test_second_run_on_a_busy_model_dir_is_refused(tmp_path):
    os.makedirs(tmp_path / "run")
    with lock_model_dir(str(tmp_path / "run")):
        with pytest.raises(ModelDirBusyError, match="in use by another training run"):
            train(_config(), _pairs(), None, str(tmp_path / "run"), verbose=0)
    with lock_model_dir(str(tmp_path / "run")):  # released again
        pass


def test_commit_holds_dropout_state_leftovers_go_a_corrupt_checkpoint_is_named(tmp_path):
    pairs, model_dir = _pairs(), tmp_path / "run"
    config = _config()
    config.model = ModelConfig(cell="lstm", units=4, dropout=0.3, recurrent_dropout=0.2)
    stop = _Probe(stop_after_epoch=0)
    with pytest.raises(_Stop):
        train(config, pairs[:100], pairs[100:], str(model_dir), verbose=0, callbacks=[stop])
    state = json.loads((model_dir / STATE_FILENAME).read_text())
    assert len(state["rng_states"]) == 2  # one per dropout cell: encoder and decoder
    assert all(counter > 0 for _, counter in state["rng_states"])  # advanced by training
    checkpoint = model_dir / state["checkpoint"]
    leftovers = [model_dir / ".tmp-x1.keras", model_dir / BACKUP_DIRNAME / "epoch-00009.weights.h5"]
    for path in leftovers:
        path.write_bytes(b"partial")
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])  # as a failing disk might leave it
    message = f"{re.escape(str(checkpoint))}: cannot load the checkpoint of epoch 1"
    with pytest.raises(TrainingError, match=message):
        train(config, pairs[:100], pairs[100:], str(model_dir), verbose=0)
    assert not any(path.exists() for path in leftovers)


def test_early_stopping_is_committed_so_a_rerun_trains_nothing(tmp_path):
    model_dir, pairs = tmp_path / "run", _pairs()
    config = _config(epochs=5, early_stopping_patience=1)
    os.makedirs(model_dir)
    sizes = [Vocabulary.build(side, "char").size for side in zip(*pairs[:100], strict=True)]
    model = build_model(config.model, *sizes)
    model.stop_training = False
    checkpoint = ModelDirCheckpoint(str(model_dir), {}, patience=1)
    checkpoint.set_model(model)
    checkpoint.on_epoch_end(0, {"loss": 2.0, "val_loss": 1.0})
    assert not model.stop_training
    checkpoint.on_epoch_end(1, {"loss": 1.5, "val_loss": 1.2})
    assert model.stop_training
    state = json.loads((model_dir / STATE_FILENAME).read_text())
    assert state["stopped_early"] and state["best_epoch"] == 0 and state["best_loss"] == 1.0
    state["finished"] = True  # as train() writes after fit returns
    (model_dir / STATE_FILENAME).write_text(json.dumps(state))
    before = _file_bytes(model_dir, LAST_MODEL_FILENAME, BEST_MODEL_FILENAME)
    result = train(config, pairs[:100], pairs[100:], str(model_dir), verbose=0)
    assert result.epochs_done == 2 and result.history == {}
    assert _file_bytes(model_dir, LAST_MODEL_FILENAME, BEST_MODEL_FILENAME) == before


def _encoded(n=64):
    pairs = _pairs(n, seed=3)
    vocab = Vocabulary.build([s for s, _ in pairs], "char")
    return encode_pairs(pairs, vocab, vocab, 50, 50)[0]


def _batches(dataset, count):
    return [
        tuple(np.asarray(t).tolist() for t in (x["source"], x["decoder_input"], y))
        for x, y in dataset.take(count)
    ]


def _stream(seed, initial_epoch):
    return make_epoch_stream(
        _encoded(), 8, seed=seed, initial_epoch=initial_epoch, bucket_width=100
    )


def test_same_seed_same_data_order_per_epoch_also_from_a_resumed_epoch():
    stream, steps = _stream(5, 0)
    batches = _batches(stream, 3 * steps)
    epochs = [batches[e * steps : (e + 1) * steps] for e in range(3)]
    assert _batches(stream, steps) == epochs[0]  # a new iterator starts at epoch 1 again
    assert epochs[0] != epochs[1] != epochs[2]  # reshuffled every epoch
    resumed = _batches(_stream(5, 2)[0], steps)
    assert resumed == epochs[2]  # epoch 3 of a run resumed after epoch 2
    assert _batches(_stream(6, 0)[0], steps) != epochs[0]
    every_pair = sorted(int(i) for x, _ in stream.take(steps) for i in np.ravel(x["source"][:, 0]))
    assert len(every_pair) == len(_encoded())  # an epoch is one pass over all pairs


def test_same_seed_same_initial_weights():
    def initial(seed):
        keras.utils.set_random_seed(seed)
        model = build_model(ModelConfig(cell="lstm", units=8, bidirectional=True), 9, 11)
        return model.get_weights()

    first, second, other = initial(4), initial(4), initial(5)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, c) for a, c in zip(first, other, strict=True))


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_unreadable_train_state_is_named(tmp_path, content):
    os.makedirs(tmp_path / "run")
    (tmp_path / "run" / STATE_FILENAME).write_text(content)
    with pytest.raises(TrainingError, match=f"{STATE_FILENAME}: .*train from scratch"):
        train(_config(), _pairs(), None, str(tmp_path / "run"), verbose=0)
