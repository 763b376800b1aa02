"""Masked loss and metrics: padding counts nowhere; values match a direct computation."""

import keras
import numpy as np

from seq2seq.metrics import MaskedSparseCrossEntropy, MaskedTokenAccuracy, SequenceExactMatch


def _log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_masked_loss_equals_one_hot_cross_entropy_over_real_tokens():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 4, 6)).astype("float32")
    targets = np.array([[3, 4, 2, 0], [5, 2, 0, 0]], "int32")
    loss = float(MaskedSparseCrossEntropy()(targets, logits))
    one_hot = np.eye(6)[targets]
    per_token = -(one_hot * _log_softmax(logits)).sum(-1)
    mask = targets != 0
    assert np.isclose(loss, per_token[mask].mean(), atol=1e-5)


def test_masked_loss_ignores_padding_logits():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(1, 5, 6)).astype("float32")
    targets = np.array([[3, 4, 2, 0, 0]], "int32")
    changed = logits.copy()
    changed[0, 3:] = 100.0 * rng.normal(size=(2, 6))
    loss = MaskedSparseCrossEntropy()
    assert np.isclose(float(loss(targets, logits)), float(loss(targets, changed)), atol=1e-6)


def test_token_accuracy_and_exact_match_count_real_tokens_only():
    targets = np.array([[3, 4, 2, 0], [5, 2, 0, 0]], "int32")
    predicted = np.array([[3, 4, 2, 1], [5, 3, 1, 1]])  # wrong only on row 1 step 1 and pads
    logits = keras.ops.convert_to_numpy(keras.ops.one_hot(predicted, 6))
    accuracy = MaskedTokenAccuracy()
    accuracy.update_state(targets, logits)
    assert np.isclose(float(accuracy.result()), 4 / 5)
    exact = SequenceExactMatch()
    exact.update_state(targets, logits)
    assert np.isclose(float(exact.result()), 1 / 2)
    exact.reset_state()
    assert float(exact.result()) == 0.0
