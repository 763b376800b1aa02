"""Masked loss and metrics: padding counts nowhere; values match a direct computation."""

import keras
import numpy as np
import pytest

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


def test_label_smoothing_mixes_target_and_uniform_cross_entropy():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(2, 3, 5)).astype("float32")
    targets = np.array([[3, 2, 0], [4, 0, 0]], "int32")
    log_p = _log_softmax(logits)
    nll = -np.take_along_axis(log_p, targets[..., None], axis=-1)[..., 0]
    smoothed = 0.9 * nll + 0.1 * -log_p.mean(-1)
    loss = float(MaskedSparseCrossEntropy(label_smoothing=0.1)(targets, logits))
    assert np.isclose(loss, smoothed[targets != 0].mean(), atol=1e-5)
    restored = MaskedSparseCrossEntropy.from_config(
        MaskedSparseCrossEntropy(label_smoothing=0.1).get_config()
    )
    assert restored.label_smoothing == 0.1
    with pytest.raises(ValueError, match="label_smoothing=1.0"):
        MaskedSparseCrossEntropy(label_smoothing=1.0)
