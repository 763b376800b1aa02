"""Aligned sequence labelling: one label per input frame, from a recurrent stack.

Frame labelling (phoneme per audio frame, tag per token) needs no decoder loop:
the label of frame ``t`` is read from the encoder's output at frame ``t``.
``Tagger`` is our ``Encoder`` (``source_input="features"``, so an all-zero
frame is padding) followed by a softmax per frame.

Labels follow the package's id convention so that the masked loss and accuracy
of ``seq2seq.metrics`` apply unchanged: class ``c`` is stored as id
``c + LABEL_OFFSET`` and ``PAD_ID`` (0) marks padded frames, which then count
in neither the loss nor the accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import keras
import numpy as np
from keras import ops

from seq2seq.config import check_positive_ints
from seq2seq.layers import Encoder, state_count
from seq2seq.metrics import MaskedSparseCrossEntropy, MaskedTokenAccuracy
from seq2seq.model import OUTPUT_MASK_VALUE
from seq2seq.vocab import PAD_ID

LABEL_OFFSET = PAD_ID + 1  # class c <-> id c + LABEL_OFFSET; id PAD_ID = padding
NO_LABEL = -1  # what ``ids_to_labels`` returns on padded frames
ENCODER_NAME = "encoder"
PROJECTION_NAME = "output_projection"


class FrameBatch(NamedTuple):
    """Variable-length sequences padded into one batch.

    Attributes:
        frames: float32 [batch, time, num_features], all-zero frames after each sequence.
        ids: int32 [batch, time], label ids (class + LABEL_OFFSET), PAD_ID on
            padding; None when no labels were given.
        lengths: int32 [batch], number of real frames of each sequence.
    """

    frames: np.ndarray
    ids: np.ndarray | None
    lengths: np.ndarray


def labels_to_ids(labels: np.ndarray) -> np.ndarray:
    """Returns the int32 ids (``labels + LABEL_OFFSET``) of non-negative class labels."""
    labels = np.asarray(labels)
    if labels.size and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0):
        raise ValueError(
            "Expected non-negative integer class labels. "
            f"Received: dtype={labels.dtype}, min={labels.min()!r}"
        )
    return (labels + LABEL_OFFSET).astype("int32")


def ids_to_labels(ids: np.ndarray) -> np.ndarray:
    """Returns the class labels of ``ids``, ``NO_LABEL`` where the id is ``PAD_ID``."""
    ids = np.asarray(ids).astype("int32")
    return np.where(ids == PAD_ID, NO_LABEL, ids - LABEL_OFFSET)


def _check_sequence(i: int, frames: np.ndarray, num_features: int | None) -> None:
    """Raises a ValueError naming sequence ``i`` if ``frames`` [time, F] cannot be batched."""
    if frames.ndim != 2 or frames.shape[0] == 0 or frames.shape[1] != num_features:
        raise ValueError(
            f"Expected sequence {i} to be a non-empty [time, {num_features or 'num_features'}] "
            f"array of frames. Received: shape={frames.shape}"
        )
    zero = np.flatnonzero(~np.any(frames != 0.0, axis=-1))
    if zero.size:
        raise ValueError(
            f"Sequence {i} has an all-zero frame at step {int(zero[0])}. An all-zero frame "
            "marks padding (the Keras Masking convention) and would be skipped by the "
            "encoder; shift or rescale the features so that no real frame is all zeros."
        )


def pad_frames(
    frames: Sequence[np.ndarray],
    labels: Sequence[np.ndarray] | None = None,
    num_classes: int | None = None,
) -> FrameBatch:
    """Pads variable-length frame sequences (and their labels) into one batch.

    Args:
        frames: per sequence, float features [time_i, num_features].
        labels: per sequence, int class labels [time_i] in [0, num_classes), or None.
        num_classes: if given, labels outside [0, num_classes) are refused.

    Returns:
        ``FrameBatch`` padded to the longest sequence.

    Raises:
        ValueError: on no sequences, an empty or ill-shaped sequence, a real
            frame that is all zeros, or labels that do not match their frames.
    """
    if len(frames) == 0:
        raise ValueError("Expected at least one sequence of frames. Received: 0 sequences")
    arrays = [np.asarray(f, dtype="float32") for f in frames]
    num_features = arrays[0].shape[1] if arrays[0].ndim == 2 else None
    for i, f in enumerate(arrays):
        _check_sequence(i, f, num_features)
    lengths = np.array([len(f) for f in arrays], dtype="int32")
    batch = np.zeros((len(arrays), int(lengths.max()), num_features), dtype="float32")
    for i, f in enumerate(arrays):
        batch[i, : len(f)] = f
    if labels is None:
        return FrameBatch(frames=batch, ids=None, lengths=lengths)

    if len(labels) != len(arrays):
        raise ValueError(
            f"Expected one label sequence per frame sequence ({len(arrays)}). "
            f"Received: {len(labels)} label sequences"
        )
    ids = np.full(batch.shape[:2], PAD_ID, dtype="int32")
    for i, y in enumerate(labels):
        y = np.asarray(y)
        if y.shape != (lengths[i],):
            raise ValueError(
                f"Expected {lengths[i]} labels for sequence {i}, one per frame. "
                f"Received: shape={y.shape}"
            )
        if num_classes is not None and y.size and y.max() >= num_classes:
            raise ValueError(
                f"Expected labels in [0, {num_classes}) in sequence {i}. Received: {int(y.max())}"
            )
        ids[i, : lengths[i]] = labels_to_ids(y)
    return FrameBatch(frames=batch, ids=ids, lengths=lengths)


def tag_logits(logits):
    """Returns float32 ``logits`` [..., num_classes + 1] with the PAD_ID column made impossible."""
    ids = ops.arange(ops.shape(logits)[-1], dtype="int32")
    return ops.where(ops.equal(ids, PAD_ID), OUTPUT_MASK_VALUE, ops.cast(logits, "float32"))


def frame_accuracy(true_ids: np.ndarray, predicted_ids: np.ndarray) -> float:
    """Share of real frames (``true_ids != PAD_ID``) [batch, time] whose predicted id is right."""
    true_ids = np.asarray(true_ids)
    predicted_ids = np.asarray(predicted_ids)
    if true_ids.shape != predicted_ids.shape:
        raise ValueError(
            f"Expected predictions shaped like the targets {true_ids.shape}. "
            f"Received: {predicted_ids.shape}"
        )
    real = true_ids != PAD_ID
    return float(np.sum((predicted_ids == true_ids) & real) / max(int(np.sum(real)), 1))


@keras.saving.register_keras_serializable(package="seq2seq")
class Tagger(keras.Model):
    """Recurrent stack over feature frames with a softmax per frame (aligned labelling).

    Args:
        num_classes: Positive integer, number of label classes.
        num_features: Positive integer, size of each input frame.
        cell: "lstm", "gru" or "simple_rnn".
        units: Positive integer, state size of each layer and direction.
        num_layers: Positive integer, number of stacked recurrent layers (each
            returns its whole sequence to the next).
        bidirectional: Whether each layer also reads the sequence backwards, so
            the label of a frame can use the frames after it.
        dropout: Input dropout rate of each recurrent layer.
        recurrent_dropout: Recurrent-state dropout rate of each recurrent layer.

    Call arguments:
        frames: float features [batch, time, num_features]; an all-zero frame
            is padding and changes no output of a real frame.
        training: Python bool, enables dropout.

    Returns:
        float32 logits [batch, time, num_classes + LABEL_OFFSET]; the PAD_ID
        column is ``OUTPUT_MASK_VALUE``, so the argmax is always a class id.
    """

    def __init__(
        self,
        num_classes: int,
        num_features: int,
        cell: str = "gru",
        units: int = 128,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_ints(num_classes=num_classes)
        check_positive_ints(num_features=num_features)
        check_positive_ints(units=units)
        check_positive_ints(num_layers=num_layers)
        state_count(cell)  # refuses an unknown cell, quoting it
        self.num_classes = num_classes
        self.num_features = num_features
        self.cell = cell
        self.units = units
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.encoder = Encoder(
            cell=cell,
            units=units,
            num_layers=num_layers,
            bidirectional=bidirectional,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            source_input="features",
            num_features=num_features,
            name=ENCODER_NAME,
        )
        self.projection = keras.layers.Dense(
            num_classes + LABEL_OFFSET, dtype="float32", name=PROJECTION_NAME
        )

    def call(self, frames, training=None):
        encoded = self.encoder(frames, training=training)
        return tag_logits(self.projection(encoded.outputs))

    def build(self, input_shape=None):
        # Running call() builds every sub-layer through its own __call__.
        self.call(np.ones((1, 1, self.num_features), "float32"), training=False)
        self.built = True

    def get_build_config(self):
        return {"built": True}

    def build_from_config(self, config):
        self.build()

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "num_features": self.num_features,
            "cell": self.cell,
            "units": self.units,
            "num_layers": self.num_layers,
            "bidirectional": self.bidirectional,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
        }


def compile_tagger(
    model: keras.Model,
    learning_rate: float = 3e-3,
    clipnorm: float = 5.0,
    jit_compile: bool | str = "auto",
) -> None:
    """Compiles a model that outputs per-frame logits against label ids.

    Adam, ``MaskedSparseCrossEntropy`` (mean over real frames) and
    ``MaskedTokenAccuracy`` reported as ``frame_accuracy``: padded frames count
    in neither.
    """
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=clipnorm),
        loss=MaskedSparseCrossEntropy(),
        metrics=[MaskedTokenAccuracy(name="frame_accuracy")],
        jit_compile=jit_compile,
    )


def predict_labels(
    model: keras.Model, frames: Sequence[np.ndarray], batch_size: int = 64
) -> list[np.ndarray]:
    """Returns, per sequence, the predicted class labels [time_i] (argmax per frame).

    Args:
        model: a ``Tagger`` or any model mapping frames to per-frame logits over ids.
        frames: per sequence, float features [time_i, num_features].
        batch_size: sequences per prediction batch.
    """
    batch = pad_frames(frames)
    logits = model.predict(batch.frames, batch_size=batch_size, verbose=0)
    labels = ids_to_labels(np.argmax(logits, axis=-1))
    return [labels[i, :n] for i, n in enumerate(batch.lengths)]
