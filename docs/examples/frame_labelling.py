"""Frame labelling: one of 39 classes for every frame of 26 float features.

A phoneme-style task, generated here (no download): every class has a
prototype vector of 26 features; a sequence of 20 to 60 frames is a run of
segments of 2 to 6 frames, each class followed by one of its 3 usual
successors 80% of the time; each frame is its prototype blurred with its
neighbours' (coarticulation) plus Gaussian noise. One frame alone is
ambiguous; its neighbours and the label sequence's regularities tell.

Two models label every frame, both built from the package's layers and both
trained with the masked loss and accuracy of ``seq2seq.metrics`` (labels are
ids ``class + 1``; id 0 = PAD marks padded frames, which count in neither):

(a) **Encoder-decoder with GRU.** ``Encoder(source_input="features")`` reads
    the frames (an all-zero frame is padding, masked); its final states go
    through ``ConcatBridge`` to initialise a decoder GRU that reads the
    encoder's per-frame outputs and emits one label per frame (aligned:
    frame t in, label t out).
(b) **Aligned tagger.** ``seq2seq.tagger.Tagger``: a stack of two
    bidirectional GRU layers and a softmax per frame.

For comparison, ``token_seq2seq`` trains the package's token-by-token
``Seq2Seq`` (labels as target tokens, decoder started from the encoder's final
state only). Teacher-forced it looks fine, because it is given the previous
label and a label mostly repeats; decoding greedily it must recall 20 to 60
labels from one state vector and falls to chance: use an aligned model for
aligned labels.

The unpacking mistake. A Keras GRU returns one tensor, or ``[outputs, h]``
with ``return_state=True`` (an LSTM ``[outputs, h, c]``). Code written for
one case breaks on the other (``unpacking_pitfalls`` runs each):

- ``outputs, _ = gru(x)`` without ``return_state``, eagerly: no error at all,
  it unpacks the *batch* axis (``outputs`` is example 0);
- the same line while Keras builds a model: ``NotImplementedError: Iterating
  over a symbolic KerasTensor is not supported.``;
- inside a traced ``tf.function`` (what ``fit`` runs): ``Iterating over a
  symbolic `tf.Tensor` is not allowed``, TensorFlow 2's form of TF 1's
  "Tensor objects are only iterable when eager execution is enabled";
- ``outputs, _ = lstm(x)`` with ``return_state``: ``too many values to unpack``.

``Encoder`` returns an ``EncoderOutput`` instead: ``encoded.outputs``
[batch, time, units * directions], ``encoded.mask`` [batch, time] and
``encoded.states`` with one nesting for every cell (per layer, per direction,
``(h,)`` for GRU, ``(h, c)`` for LSTM). Nothing is read by position, so the
same code serves GRU and LSTM, one or two directions; ``ConcatBridge`` turns
the states into decoder initial states.

Measured (``python docs/examples/frame_labelling.py --size test|full``, seed 0,
TensorFlow backend, a shared 2-core machine; masked per-frame accuracy on
held-out sequences; chance 1/39 = 0.026)::

    size  train seqs  epochs  nearest   (a) enc-dec  (b) tagger  Seq2Seq     Seq2Seq  wall
                              prototype                          teacher-f.  greedy
    test  256         8       0.48      0.75         0.77        0.69        0.02     22 s
    full  2000        12      0.48      0.79         0.81        0.73        0.04     180 s

(nearest prototype: each frame alone matched to the true prototypes, an
oracle without context.) Appending as many all-zero frames again to every
test sequence leaves the tagger's loss and accuracy unchanged: padding counts
nowhere.

Run: ``python docs/examples/frame_labelling.py --size test``.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import keras
import numpy as np

from seq2seq.config import ModelConfig
from seq2seq.decoding import DecodingModel, GreedySearch
from seq2seq.layers import ConcatBridge, Encoder
from seq2seq.metrics import MaskedSparseCrossEntropy
from seq2seq.model import build_model
from seq2seq.tagger import (
    LABEL_OFFSET,
    FrameBatch,
    Tagger,
    compile_tagger,
    pad_frames,
    predict_labels,
    tag_logits,
)
from seq2seq.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID

NUM_FEATURES = 26
NUM_CLASSES = 39
NUM_SUCCESSORS = 3  # usual successors of each class
SUCCESSOR_PROBABILITY = 0.8
SEGMENT_FRAMES = (2, 6)  # inclusive range of a segment's length
SEQUENCE_FRAMES = (20, 60)  # inclusive range of a sequence's length
BLUR = (0.25, 0.5, 0.25)  # weights of previous, own, next prototype
NOISE = 2.0
BATCH_SIZE = 32
FIRST_TOKEN_ID = UNK_ID + 1  # Seq2Seq target ids: class c is token c + FIRST_TOKEN_ID


@dataclasses.dataclass(frozen=True)
class Size:
    """How much data and training one run uses."""

    train_sequences: int
    test_sequences: int
    epochs: int
    units: int


SIZES = {
    "test": Size(train_sequences=256, test_sequences=128, epochs=8, units=64),
    "full": Size(train_sequences=2000, test_sequences=400, epochs=12, units=64),
}


@dataclasses.dataclass(frozen=True)
class PhoneTask:
    """The synthetic task: class prototypes, usual successors and noise.

    Attributes:
        prototypes: float [NUM_CLASSES, NUM_FEATURES], the clean frame of each class.
        successors: int [NUM_CLASSES, NUM_SUCCESSORS], the usual next classes.
        noise: standard deviation of the Gaussian noise added to every feature.
    """

    prototypes: np.ndarray
    successors: np.ndarray
    noise: float

    @classmethod
    def create(cls, rng: np.random.Generator, noise: float = NOISE) -> PhoneTask:
        """Draws a task: random prototypes and successors."""
        return cls(
            prototypes=rng.normal(size=(NUM_CLASSES, NUM_FEATURES)),
            successors=rng.integers(NUM_CLASSES, size=(NUM_CLASSES, NUM_SUCCESSORS)),
            noise=noise,
        )

    def labels(self, num_frames: int, rng: np.random.Generator) -> np.ndarray:
        """Returns int labels [num_frames]: segments of one class, usual successors mostly."""
        labels: list[int] = []
        label = int(rng.integers(NUM_CLASSES))
        while len(labels) < num_frames:
            labels += [label] * int(rng.integers(SEGMENT_FRAMES[0], SEGMENT_FRAMES[1] + 1))
            if rng.random() < SUCCESSOR_PROBABILITY:
                label = int(self.successors[label, rng.integers(NUM_SUCCESSORS)])
            else:
                label = int(rng.integers(NUM_CLASSES))
        return np.array(labels[:num_frames])

    def frames(self, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Returns float32 frames [time, NUM_FEATURES] for ``labels`` [time]."""
        clean = self.prototypes[labels]
        edged = np.concatenate([clean[:1], clean, clean[-1:]])  # repeat the end frames
        blurred = BLUR[0] * edged[:-2] + BLUR[1] * edged[1:-1] + BLUR[2] * edged[2:]
        return (blurred + self.noise * rng.normal(size=blurred.shape)).astype("float32")

    def sample(
        self, num_sequences: int, rng: np.random.Generator
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Returns ``num_sequences`` (frames [time_i, 26], labels [time_i]) pairs as two lists."""
        frames, labels = [], []
        for _ in range(num_sequences):
            y = self.labels(int(rng.integers(SEQUENCE_FRAMES[0], SEQUENCE_FRAMES[1] + 1)), rng)
            frames.append(self.frames(y, rng))
            labels.append(y)
        return frames, labels

    def nearest_prototype_accuracy(self, frames: list[np.ndarray], labels: list[np.ndarray]):
        """Accuracy of labelling each frame alone by its nearest true prototype (no context)."""
        x, y = np.concatenate(frames), np.concatenate(labels)
        distances = ((x[:, None, :] - self.prototypes[None]) ** 2).sum(-1)
        return float(np.mean(distances.argmin(-1) == y))


def unpacking_pitfalls() -> dict[str, str]:
    """Runs the hand-unpacking mistakes on raw Keras layers; returns what each one did."""
    x = np.random.default_rng(0).normal(size=(2, 5, NUM_FEATURES)).astype("float32")
    found = {}

    gru = keras.layers.GRU(8, return_sequences=True)  # no return_state: one tensor
    outputs, _ = gru(x)  # the mistake, eagerly: unpacks the batch axis
    found["eager_gru"] = f"no error; `outputs` is example 0 only: shape {tuple(outputs.shape)}"

    try:
        outputs, _ = gru(keras.Input((None, NUM_FEATURES)))  # the mistake, building a model
    except NotImplementedError as error:
        found["functional_gru"] = f"NotImplementedError: {error}"

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        @tf.function
        def traced(x):
            outputs, _ = gru(x)  # the mistake, in a graph (what fit() runs)
            return outputs

        try:
            traced(x)
        except TypeError as error:  # OperatorNotAllowedInGraphError is a TypeError
            message = str(error).splitlines()[-1].strip().split(". ")[0]  # the first sentence
            found["traced_gru"] = f"{type(error).__name__}: {message.split(': ', 1)[-1]}."

    lstm = keras.layers.LSTM(8, return_sequences=True, return_state=True)
    try:
        outputs, _ = lstm(x)  # the mistake, on [outputs, h, c]
    except ValueError as error:
        found["lstm_return_state"] = f"ValueError: {error}"

    # Our encoder: fields by name, one state nesting whatever the cell.
    for cell in ("gru", "lstm"):
        encoder = Encoder(cell=cell, units=8, source_input="features", num_features=NUM_FEATURES)
        encoded = encoder(x)
        found[f"encoder_{cell}"] = (
            f"outputs {tuple(encoded.outputs.shape)}, states per layer and direction "
            f"{[[tuple(s.shape) for s in d] for layer in encoded.states for d in layer]}"
        )
    return found


def build_encoder_decoder(units: int) -> keras.Model:
    """(a): bidirectional GRU encoder -> bridge -> GRU decoder over the encoder outputs.

    Takes frames [batch, time, 26]; returns logits [batch, time, 39 + LABEL_OFFSET].
    """
    frames = keras.Input((None, NUM_FEATURES), name="frames")
    encoder = Encoder(
        cell="gru",
        units=units,
        bidirectional=True,
        source_input="features",
        num_features=NUM_FEATURES,
        name="encoder",
    )
    # The Keras recipe writes `outputs, h = gru(frames)` here, and `outputs, _ =`
    # on the decoder: right for one cell and return_state setting, an error (or,
    # eagerly, a silent unpacking of the batch axis) for the others. The Encoder
    # returns an EncoderOutput instead, read by field name for every cell.
    encoded = encoder(frames)
    # Per layer one (h,) state [batch, 2 * units]: forward and backward concatenated.
    initial_states = ConcatBridge(name="bridge")(encoded.states)
    x = encoded.outputs  # [batch, time, 2 * units]
    for i, state in enumerate(initial_states):
        decoder = keras.layers.GRU(2 * units, return_sequences=True, name=f"decoder_gru_{i}")
        x = decoder(x, initial_state=list(state), mask=encoded.mask)
    projection = keras.layers.Dense(NUM_CLASSES + LABEL_OFFSET, name="output_projection")
    return keras.Model(frames, tag_logits(projection(x)), name="encoder_decoder")


def _token_targets(labels: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Returns Seq2Seq decoder inputs (BOS + ids) and targets (ids + EOS), [batch, time + 1]."""
    longest = max(len(y) for y in labels)
    decoder_input = np.full((len(labels), longest + 1), PAD_ID, "int32")
    target = np.full((len(labels), longest + 1), PAD_ID, "int32")
    for i, y in enumerate(labels):
        decoder_input[i, : len(y) + 1] = [BOS_ID, *(y + FIRST_TOKEN_ID)]
        target[i, : len(y) + 1] = [*(y + FIRST_TOKEN_ID), EOS_ID]
    return decoder_input, target


def _positional_accuracy(predicted: np.ndarray, labels: list[np.ndarray]) -> float:
    """Share of frames whose label is the token at the same position of ``predicted`` [batch, n]."""
    hits = [np.sum(predicted[i, : len(y)] - FIRST_TOKEN_ID == y) for i, y in enumerate(labels)]
    return float(np.sum(hits) / sum(len(y) for y in labels))


def token_seq2seq(
    setting: Size,
    train: FrameBatch,
    train_labels: list[np.ndarray],
    test: FrameBatch,
    test_labels: list[np.ndarray],
) -> dict[str, float]:
    """Trains the package's token-by-token ``Seq2Seq`` on the frames; returns its frame accuracies.

    The decoder sees only the encoder's final state, then writes the labels
    one by one. Teacher-forced, it is given the true previous label (and mostly
    copies it); decoding greedily, it must recall every label from the state.
    """
    config = ModelConfig(
        cell="gru", units=2 * setting.units, source_input="features", num_features=NUM_FEATURES
    )
    model = build_model(config, None, NUM_CLASSES + FIRST_TOKEN_ID)
    model.compile(keras.optimizers.Adam(3e-3, clipnorm=5.0), MaskedSparseCrossEntropy())
    decoder_input, target = _token_targets(train_labels)
    inputs = {"source": train.frames, "decoder_input": decoder_input}
    model.fit(inputs, target, batch_size=BATCH_SIZE, epochs=setting.epochs, verbose=0)
    test_input, _ = _token_targets(test_labels)
    logits = model.predict({"source": test.frames, "decoder_input": test_input}, verbose=0)
    greedy = DecodingModel(model, GreedySearch(), max_length=test.frames.shape[1])
    decoded = np.asarray(greedy.predict_on_batch(test.frames)["ids"])[:, 0]
    return {
        "teacher_forced_accuracy": _positional_accuracy(np.argmax(logits, -1), test_labels),
        "greedy_accuracy": _positional_accuracy(decoded, test_labels),
    }


def _evaluate(
    model: keras.Model, batch: FrameBatch, frames: list[np.ndarray], labels: list[np.ndarray]
) -> dict[str, float]:
    """Masked loss and frame accuracy of ``model`` on ``batch``, checked against a numpy count."""
    loss, accuracy = model.evaluate(batch.frames, batch.ids, batch_size=BATCH_SIZE, verbose=0)
    predicted = predict_labels(model, frames, batch_size=BATCH_SIZE)
    counted = float(np.mean(np.concatenate(predicted) == np.concatenate(labels)))
    if not np.isclose(accuracy, counted, atol=1e-4):
        raise AssertionError(f"masked accuracy {accuracy} != counted {counted}")
    return {"loss": float(loss), "accuracy": float(accuracy)}


def main(size: str = "test", seed: int = 0, verbose: int = 0) -> dict:
    """Trains (a), (b) and the token-by-token Seq2Seq; prints and returns the results.

    Args:
        size: "test" (small, for the test suite) or "full".
        seed: seed of the data and of the weight initialisation.
        verbose: Keras ``fit`` verbosity.

    Returns:
        dict with the chance and nearest-prototype accuracies, the share of
        padded test frames, per model (a) and (b) the masked frame loss and
        accuracy, the tagger's with extra padding, the token-by-token
        ``Seq2Seq`` accuracies, the unpacking pitfalls and the seconds taken.
    """
    if size not in SIZES:
        raise ValueError(f"Expected one of {list(SIZES)} for `size`. Received: size={size!r}")
    setting = SIZES[size]
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    task = PhoneTask.create(rng)
    train_frames, train_labels = task.sample(setting.train_sequences, rng)
    test_frames, test_labels = task.sample(setting.test_sequences, rng)
    train = pad_frames(train_frames, train_labels, num_classes=NUM_CLASSES)
    test = pad_frames(test_frames, test_labels, num_classes=NUM_CLASSES)
    results = {
        "size": size,
        "chance": 1.0 / NUM_CLASSES,
        "nearest_prototype_accuracy": task.nearest_prototype_accuracy(test_frames, test_labels),
        "padded_share_of_test_frames": float(np.mean(test.ids == PAD_ID)),
        "pitfalls": unpacking_pitfalls(),
    }

    models = {
        "encoder_decoder": lambda: build_encoder_decoder(setting.units),
        "tagger": lambda: Tagger(
            NUM_CLASSES,
            NUM_FEATURES,
            cell="gru",
            units=setting.units,
            num_layers=2,
            bidirectional=True,
            name="tagger",
        ),
    }
    trained = {}
    for name, build in models.items():
        keras.utils.set_random_seed(seed)
        model = trained[name] = build()
        compile_tagger(model)
        model.fit(
            train.frames, train.ids, batch_size=BATCH_SIZE, epochs=setting.epochs, verbose=verbose
        )
        results[name] = _evaluate(model, test, test_frames, test_labels)

    # Masking: the same test sequences with as many all-zero frames again appended.
    padded_frames = np.concatenate([test.frames, np.zeros_like(test.frames)], axis=1)
    padded_ids = np.concatenate([test.ids, np.zeros_like(test.ids)], axis=1)
    loss, accuracy = trained["tagger"].evaluate(
        padded_frames, padded_ids, batch_size=BATCH_SIZE, verbose=0
    )
    results["tagger_extra_padding"] = {"loss": float(loss), "accuracy": float(accuracy)}
    keras.utils.set_random_seed(seed)
    results["token_seq2seq"] = token_seq2seq(setting, train, train_labels, test, test_labels)
    results["seconds"] = time.perf_counter() - start

    print(f"chance {results['chance']:.3f}")
    print(f"nearest prototype (one frame, no context) {results['nearest_prototype_accuracy']:.3f}")
    for name in models:
        print(f"{name}: masked frame accuracy {results[name]['accuracy']:.3f}")
    print(f"tagger with extra padding: {results['tagger_extra_padding']['accuracy']:.3f}")
    token = results["token_seq2seq"]
    print(
        f"token-by-token Seq2Seq: teacher-forced {token['teacher_forced_accuracy']:.3f}, "
        f"greedy {token['greedy_accuracy']:.3f}"
    )
    for name, what in results["pitfalls"].items():
        print(f"pitfall {name}: {what}")
    print(f"{results['seconds']:.1f} s")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=0)
    args = parser.parse_args()
    main(args.size, args.seed, args.verbose)
