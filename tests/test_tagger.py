"""The aligned tagger: label ids, padding helpers, masking, save/load and a toy task."""

import keras
import numpy as np
import pytest

from seq2seq.metrics import MaskedSparseCrossEntropy, MaskedTokenAccuracy
from seq2seq.model import OUTPUT_MASK_VALUE
from seq2seq.tagger import (
    LABEL_OFFSET,
    NO_LABEL,
    Tagger,
    compile_tagger,
    frame_accuracy,
    ids_to_labels,
    labels_to_ids,
    pad_frames,
    predict_labels,
    tag_logits,
)
from seq2seq.vocab import PAD_ID

NUM_FEATURES = 3
NUM_CLASSES = 5


def _frames(*lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(n, NUM_FEATURES)).astype("float32") + 3.0 for n in lengths]


def _tagger(**overrides):
    kwargs = {"cell": "gru", "units": 6, "num_layers": 2, **overrides}
    model = Tagger(NUM_CLASSES, NUM_FEATURES, **kwargs)
    model.build()
    return model


@pytest.mark.parametrize("labels", [[0], [4, 0, 2], list(range(NUM_CLASSES))])
def test_label_ids_round_trip_and_never_use_pad(labels):
    ids = labels_to_ids(np.array(labels))
    assert ids.dtype == np.int32
    assert np.all(ids != PAD_ID)
    np.testing.assert_array_equal(ids, np.array(labels) + LABEL_OFFSET)
    np.testing.assert_array_equal(ids_to_labels(ids), labels)


def test_padding_ids_become_no_label():
    np.testing.assert_array_equal(ids_to_labels([[3, PAD_ID]]), [[3 - LABEL_OFFSET, NO_LABEL]])


@pytest.mark.parametrize("labels", [np.array([-1, 2]), np.array([0.5, 1.0])])
def test_bad_labels_are_refused(labels):
    with pytest.raises(ValueError, match="non-negative integer class labels"):
        labels_to_ids(labels)


def test_pad_frames_pads_to_longest_with_zero_frames_and_pad_ids():
    frames = _frames(2, 4, 1)
    labels = [np.array([1, 2]), np.array([0, 0, 3, 4]), np.array([2])]
    batch = pad_frames(frames, labels, num_classes=NUM_CLASSES)
    assert batch.frames.shape == (3, 4, NUM_FEATURES)
    np.testing.assert_array_equal(batch.lengths, [2, 4, 1])
    np.testing.assert_array_equal(batch.frames[0, :2], frames[0])
    assert not batch.frames[0, 2:].any() and not batch.frames[2, 1:].any()
    np.testing.assert_array_equal(
        batch.ids, [[2, 3, PAD_ID, PAD_ID], [1, 1, 4, 5], [3, PAD_ID, PAD_ID, PAD_ID]]
    )
    assert pad_frames(frames).ids is None


@pytest.mark.parametrize(
    "frames, labels, match",
    [
        ([], None, "at least one sequence"),
        ([np.ones((0, NUM_FEATURES))], None, r"sequence 0 .* Received: shape=\(0, 3\)"),
        ([np.ones((2, NUM_FEATURES)), np.ones((2, 4))], None, r"sequence 1 .*shape=\(2, 4\)"),
        ([np.ones((2, NUM_FEATURES)), np.ones(3)], None, r"sequence 1 .*shape=\(3,\)"),
        ([np.ones(3)], None, r"sequence 0 to be a non-empty \[time, num_features\]"),
        ([np.array([[1.0, 1, 1], [0, 0, 0]])], None, "Sequence 0 has an all-zero frame at step 1"),
        ([np.ones((2, NUM_FEATURES))], [np.array([1, 2, 3])], r"Expected 2 labels for sequence 0"),
        ([np.ones((2, NUM_FEATURES))], [], r"one label sequence per frame sequence \(1\)"),
        ([np.ones((2, NUM_FEATURES))], [np.array([1, 5])], r"labels in \[0, 5\) .*Received: 5"),
    ],
)
def test_pad_frames_refuses_bad_input_with_a_clear_message(frames, labels, match):
    with pytest.raises(ValueError, match=match):
        pad_frames(frames, labels, num_classes=NUM_CLASSES)


def test_tag_logits_never_chooses_pad():
    logits = np.zeros((2, 3, NUM_CLASSES + LABEL_OFFSET), "float32")
    logits[..., PAD_ID] = 100.0  # the raw projection prefers PAD everywhere
    masked = keras.ops.convert_to_numpy(tag_logits(logits))
    assert np.all(masked[..., PAD_ID] == OUTPUT_MASK_VALUE)
    assert np.all(np.argmax(masked, axis=-1) != PAD_ID)


def test_frame_accuracy_counts_real_frames_only():
    true_ids = np.array([[2, 3, PAD_ID], [4, PAD_ID, PAD_ID]])
    predicted = np.array([[2, 1, 7], [4, 9, 9]])
    assert frame_accuracy(true_ids, predicted) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match=r"shaped like the targets \(2, 3\)"):
        frame_accuracy(true_ids, predicted[:, :2])


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple_rnn"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_changes_no_real_frame_logits_loss_or_accuracy(cell, bidirectional):
    model = _tagger(cell=cell, bidirectional=bidirectional)
    frames = _frames(3, 6)
    labels = [np.array([0, 1, 2]), np.array([4, 3, 2, 1, 0, 1])]
    alone = pad_frames(frames[:1], labels[:1])
    batch = pad_frames(frames, labels)
    logits_alone = keras.ops.convert_to_numpy(model(alone.frames))
    logits_batch = keras.ops.convert_to_numpy(model(batch.frames))
    assert logits_batch.shape == (2, 6, NUM_CLASSES + LABEL_OFFSET)
    np.testing.assert_allclose(logits_alone[0], logits_batch[0, :3], atol=1e-5)

    first_only = batch.ids.copy()
    first_only[1] = PAD_ID  # score only the first sequence inside the padded batch
    loss = MaskedSparseCrossEntropy()
    assert float(loss(alone.ids, logits_alone)) == pytest.approx(
        float(loss(first_only, logits_batch)), abs=1e-5
    )
    accuracy = MaskedTokenAccuracy()
    accuracy.update_state(first_only, logits_batch)
    expected = frame_accuracy(alone.ids, np.argmax(logits_alone, axis=-1))
    assert float(accuracy.result()) == pytest.approx(expected)


@pytest.mark.parametrize(
    "overrides", [{}, {"cell": "lstm", "bidirectional": True, "num_layers": 1, "dropout": 0.1}]
)
def test_save_and_load_keras_format_in_safe_mode(tmp_path, overrides):
    model = _tagger(**overrides)
    frames = pad_frames(_frames(4, 2)).frames
    expected = keras.ops.convert_to_numpy(model(frames))
    path = str(tmp_path / "tagger.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    assert isinstance(loaded, Tagger)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(frames)), expected, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_classes": 0}, "num_classes=0"),
        ({"num_features": -3}, "num_features=-3"),
        ({"units": 2.5}, "units=2.5"),
        ({"num_layers": True}, "num_layers=True"),
        ({"cell": "transformer"}, "Received: 'transformer'"),
    ],
)
def test_bad_arguments_are_refused_with_their_value(kwargs, match):
    arguments = {"num_classes": NUM_CLASSES, "num_features": NUM_FEATURES, **kwargs}
    with pytest.raises(ValueError, match=match):
        Tagger(**arguments)


def test_tagger_learns_a_toy_task_and_predicts_per_sequence_labels():
    # The label of a frame is the feature that is largest at that frame.
    rng = np.random.default_rng(0)
    frames = [rng.normal(size=(int(n), NUM_FEATURES)) for n in rng.integers(3, 12, size=192)]
    labels = [np.argmax(f, axis=-1) for f in frames]
    batch = pad_frames(frames, labels, num_classes=NUM_FEATURES)
    keras.utils.set_random_seed(0)
    model = Tagger(NUM_FEATURES, NUM_FEATURES, cell="gru", units=16)
    compile_tagger(model, learning_rate=1e-2)
    history = model.fit(batch.frames, batch.ids, batch_size=32, epochs=8, verbose=0)
    assert history.history["frame_accuracy"][-1] > 0.9
    predicted = predict_labels(model, frames[:5])
    assert [len(p) for p in predicted] == [len(f) for f in frames[:5]]
    hits = np.concatenate(predicted) == np.concatenate(labels[:5])
    assert hits.mean() > 0.9
