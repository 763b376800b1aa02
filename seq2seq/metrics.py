"""Masked loss and metrics on integer targets: padding counts nowhere."""

from __future__ import annotations

import keras
from keras import ops

from seq2seq.vocab import PAD_ID


def _real_token_mask(y_true, dtype="float32"):
    """Returns the float mask [batch, time] of non-PAD target positions."""
    return ops.cast(ops.not_equal(ops.cast(y_true, "int32"), PAD_ID), dtype)


@keras.saving.register_keras_serializable(package="seq2seq")
class MaskedSparseCrossEntropy(keras.losses.Loss):
    """Mean cross-entropy over the real (non-PAD) target tokens of a batch.

    Takes integer targets, so no dense one-hot target array is ever built; the
    value equals one-hot categorical cross-entropy restricted to real tokens.

    Args:
        label_smoothing: Float in [0, 1): the target distribution puts
            ``1 - label_smoothing`` on the target token and spreads
            ``label_smoothing`` uniformly over the vocabulary.

    Call arguments:
        y_true: int ids [batch, tgt_time], PAD_ID on padding.
        y_pred: float logits [batch, tgt_time, vocab_size].
    """

    def __init__(
        self,
        label_smoothing: float = 0.0,
        name: str = "masked_sparse_cross_entropy",
        **kwargs,
    ):
        kwargs.setdefault("reduction", "sum_over_batch_size")
        super().__init__(name=name, **kwargs)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(
                "Expected a value in [0, 1) for `label_smoothing`. "
                f"Received: label_smoothing={label_smoothing!r}"
            )
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        logits = ops.cast(y_pred, "float32")
        losses = keras.losses.sparse_categorical_crossentropy(y_true, logits, from_logits=True)
        if self.label_smoothing:
            # Cross-entropy against the uniform distribution: -mean log p.
            uniform = -ops.mean(ops.log_softmax(logits, axis=-1), axis=-1)
            losses = (1.0 - self.label_smoothing) * losses + self.label_smoothing * uniform
        mask = _real_token_mask(y_true)
        # Weigh real tokens by total/real so that the "sum_over_batch_size"
        # reduction (which divides by batch * time and keeps Keras' scaling
        # under tf.distribute) yields the mean over real tokens, as Keras does
        # itself for masked outputs.
        total = ops.cast(ops.size(mask), "float32")
        real, replicas = _global_token_count(ops.sum(mask))
        # Under tf.distribute each replica holds part of the global batch and
        # Keras divides every replica's loss by the number of replicas before
        # summing their gradients: dividing by the real tokens of the whole
        # global batch (times the replicas) makes the sum the global token mean.
        return losses * mask * (total * replicas / ops.maximum(real, 1.0))

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def _global_token_count(count):
    """Returns (real tokens of the global batch, number of replicas) for a local ``count``.

    Outside ``tf.distribute`` replication (or off the TensorFlow backend) the
    local batch is the global batch.
    """
    if keras.backend.backend() != "tensorflow":
        return count, 1.0
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return count, 1.0
    total = context.all_reduce(tf.distribute.ReduceOp.SUM, count)
    return total, float(context.num_replicas_in_sync)


@keras.saving.register_keras_serializable(package="seq2seq")
class MaskedTokenAccuracy(keras.metrics.Metric):
    """Share of real (non-PAD) target tokens whose argmax prediction is right.

    Call arguments (``update_state``):
        y_true: int ids [batch, tgt_time].
        y_pred: float logits or probabilities [batch, tgt_time, vocab_size].
    """

    def __init__(self, name: str = "token_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        mask = _real_token_mask(y_true)
        hits = ops.cast(
            ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), y_true), "float32"
        )
        self.correct.assign_add(ops.sum(hits * mask))
        self.total.assign_add(ops.sum(mask))

    def result(self):
        return ops.divide_no_nan(self.correct, self.total)

    def reset_state(self):
        self.correct.assign(0.0)
        self.total.assign(0.0)


@keras.saving.register_keras_serializable(package="seq2seq")
class SequenceExactMatch(keras.metrics.Metric):
    """Share of sequences whose every real target token is predicted right.

    Under teacher forcing this is the teacher-forced exact match; the exact
    match of free-running decoding is measured by ``seq2seq.evaluation``.
    """

    def __init__(self, name: str = "exact_match", **kwargs):
        super().__init__(name=name, **kwargs)
        self.matches = self.add_variable(shape=(), initializer="zeros", name="matches")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        mask = ops.not_equal(y_true, PAD_ID)
        wrong = ops.logical_and(
            mask, ops.not_equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), y_true)
        )
        has_tokens = ops.any(mask, axis=-1)
        exact = ops.logical_and(has_tokens, ops.logical_not(ops.any(wrong, axis=-1)))
        self.matches.assign_add(ops.sum(ops.cast(exact, "float32")))
        self.count.assign_add(ops.sum(ops.cast(has_tokens, "float32")))

    def result(self):
        return ops.divide_no_nan(self.matches, self.count)

    def reset_state(self):
        self.matches.assign(0.0)
        self.count.assign(0.0)
