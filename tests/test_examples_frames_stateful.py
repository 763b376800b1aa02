"""The frame-labelling and stateful-stream examples in docs/examples, run at their test size."""

import importlib.util
import pathlib
import sys

import keras
import pytest

from seq2seq.stateful import BACKENDS_WITHOUT_COMPILED_STATES

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "docs" / "examples"


def _load(name):
    """Imports docs/examples/<name>.py (docs/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it runs
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def frames():
    return _load("frame_labelling").main(size="test")


@pytest.fixture(scope="module")
def stream():
    if keras.backend.backend() in BACKENDS_WITHOUT_COMPILED_STATES:
        pytest.skip("this backend's compiled steps do not update stateful RNN states")
    return _load("stateful_stream").main(size="test")


# Frame labelling. Measured at the test size: nearest prototype 0.48, (a) 0.75, (b) 0.77.


def test_both_frame_models_are_far_above_chance_and_above_one_frame_alone(frames):
    assert frames["chance"] == pytest.approx(1 / 39)
    assert 0.4 < frames["nearest_prototype_accuracy"] < 0.6
    for name in ("encoder_decoder", "tagger"):
        assert frames[name]["accuracy"] > 0.68, name
        # Context (neighbouring frames, label order) beats the oracle that sees one frame.
        assert frames[name]["accuracy"] > frames["nearest_prototype_accuracy"] + 0.15, name


def test_token_by_token_seq2seq_cannot_recall_aligned_labels_from_one_state(frames):
    # Measured at the test size: 0.69 teacher-forced, 0.02 greedy.
    token = frames["token_seq2seq"]
    assert token["teacher_forced_accuracy"] > 0.5  # mostly copying the given previous label
    assert token["greedy_accuracy"] < 0.1  # chance is 0.026
    assert token["greedy_accuracy"] < frames["encoder_decoder"]["accuracy"] - 0.5


def test_padded_frames_count_in_neither_loss_nor_accuracy(frames):
    assert frames["padded_share_of_test_frames"] > 0.2  # padding would matter if counted
    padded = frames["tagger_extra_padding"]
    assert padded["accuracy"] == pytest.approx(frames["tagger"]["accuracy"], abs=1e-6)
    assert padded["loss"] == pytest.approx(frames["tagger"]["loss"], rel=1e-4)


def test_unpacking_pitfalls_behave_as_documented(frames):
    pitfalls = frames["pitfalls"]
    assert "is example 0 only: shape (5, 8)" in pitfalls["eager_gru"]
    assert "Iterating over a symbolic KerasTensor" in pitfalls["functional_gru"]
    if keras.backend.backend() == "tensorflow":
        assert "OperatorNotAllowedInGraphError" in pitfalls["traced_gru"]
        assert "Iterating over a symbolic `tf.Tensor`" in pitfalls["traced_gru"]
    assert "too many values to unpack (expected 2)" in pitfalls["lstm_return_state"]
    # One structure per layer and direction; only the number of tensors per state differs.
    assert pitfalls["encoder_gru"].endswith("[[(2, 8)]]")
    assert pitfalls["encoder_lstm"].endswith("[[(2, 8), (2, 8)]]")


# Stateful stream. Measured at the test size: stateful 0.90, stateless 0.38.


def test_stateful_model_beats_the_stateless_one_on_the_stream(stream):
    assert stream["stateful_accuracy"] > 0.8
    assert stream["stateless_accuracy"] < 0.5
    assert stream["stateful_accuracy"] - stream["stateless_accuracy"] > 0.3


def test_the_gain_is_the_state_carried_between_batches(stream):
    # Zeroing the states before every batch takes the stateful model down to stateless level.
    assert stream["stateful_reset_every_batch_accuracy"] < 0.5
    assert stream["batch1_copy_matches"]


def test_stacking_demonstration(stream):
    assert "final states of 3 layers" in stream["stacking"]["encoder"]
    assert "expected ndim=3, found ndim=2" in stream["stacking"]["missing_return_sequences"]


@pytest.mark.parametrize(
    "case, fragment",
    [
        ("stream_not_divisible", "1001 is not a multiple of 320. Trim it to 960 steps"),
        ("predict_other_batch_size", "batch_size=32, so every batch must have 32 rows"),
        ("partial_last_batch", "35 windows do not fill whole batches of batch_size=32"),
        ("shuffle", "Received: shuffle=True"),
        ("validation_split", "Received: validation_split=0.1"),
    ],
)
def test_batch_size_constraints_raise_clear_errors(stream, case, fragment):
    assert fragment in stream["errors"][case]
