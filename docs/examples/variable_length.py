"""Variable-length training without padding waste: sequences of 10 to 1,000 steps.

The task is synthetic and generated here: each sequence is a series of
4-feature frames (a noisy sensor reading in feature 0, three distractor
features), 10 to 1,000 steps long (log-uniform, so short sequences are
common and long ones rare, as with utterances or sentences). The target at
every step is the sensor smoothed by an exponential moving average,
``y[t] = 0.8 * y[t - 1] + 0.2 * x[t, 0]``. A GRU ``Encoder``
(``source_input="features"``) with a per-step ``Dense`` head learns it.

What it shows:

- ``seq2seq.sequences.make_sequence_dataset`` groups sequences of similar
  length into the same batch and pads each batch only to its own longest
  sequence; training data stay shuffled (new batches every epoch). Two
  groupings are measured against plain batching ("none") on the same
  sequences: "buckets" (``tf.data`` length buckets 32 steps wide, as
  ``seq2seq.data`` does for tokens) and "pools" (sort each pool of 32
  batches by length, cut it into full batches, shuffle them; the default).
  Both cut the padding fraction (padded steps / all steps fed); pools also
  keep every batch full, so a recurrent layer runs the fewest steps one after
  another, and that is what an epoch's time follows on a CPU;
- padding counts nowhere: per-step sample weights are 0 on padding, the loss
  is reduced with ``"mean_with_sample_weight"`` and the metric is
  ``seq2seq.sequences.StepMeanError`` (a ``weighted_metrics`` MAE over real
  steps), so the test MAE is the same on grouped and on ungrouped test
  batches and equals the MAE computed from the per-sequence predictions.
  Keras' own weighted ``MeanAbsoluteError``, printed alongside, averages each
  row over its batch's padded length first, so it moves with the padding;
- ``seq2seq.sequences.predict_sequences`` predicts a variable-length test set
  in one call and returns one array per sequence, in input order, trimmed to
  its length (``pad_sequences`` turns that into one padded array plus
  lengths). Plain ``model.predict`` over length-grouped batches cannot: it
  concatenates batches of different time lengths, which fails on JAX ("all
  the input array dimensions except for the concatenation axis must match
  exactly", the error ``predict_generator`` users hit) and on TensorFlow
  gives a ``tf.RaggedTensor`` whose rows are in batch order, padded to their
  batch's length.

Measured result (``python docs/examples/variable_length.py``: 512 training
and 128 test sequences, batches of 16, 6 epochs on pools; 2 shared CPU
cores, TensorFlow backend, about 30 s in all):

    Training batches   padding   steps fed  sequential steps  s/epoch
      none               70.7%     420,880            26,305      4.3
      buckets             5.0%     129,920            17,313      2.6
      pools               5.9%     131,168             8,198      1.3

(seconds: median of 2 alternating epochs on a shared machine, so only the
ratios mean much). Test MAE 0.01056 on pools batches (23 % padding), on
ungrouped batches (71 % padding) and from ``predict_sequences`` alike;
predicting the mean gives 0.262. Keras' weighted MAE: 0.01045 against
0.01057. At the test size (``main(num_train=128, num_test=48, epochs=3,
compare_speed=False)``, about 5 s) the padding fractions are 70 % (none),
3.8 % (buckets) and 20 % (pools: a small set's rare long sequences share
batches with shorter ones).
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np

from seq2seq.layers import Encoder
from seq2seq.sequences import (
    StepMeanError,
    count_padding,
    make_sequence_dataset,
    predict_sequences,
)

GROUPINGS = ("none", "buckets", "pools")
NUM_FEATURES = 4
SMOOTHING = 0.2  # weight of the new reading in the moving average


def make_sequences(
    num_sequences: int, min_length: int, max_length: int, seed: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Generates the sequences and their per-step targets.

    Returns:
        ``(features, targets)``: lists of float32 arrays [time_i, 4] and [time_i, 1].
    """
    rng = np.random.default_rng(seed)
    lengths = np.exp(rng.uniform(np.log(min_length), np.log(max_length + 1), num_sequences))
    features, targets = [], []
    for length in lengths.astype(int):
        x = rng.normal(size=(length, NUM_FEATURES)).astype(np.float32)
        y = np.empty((length, 1), np.float32)
        average = 0.0
        for t in range(length):
            average = (1 - SMOOTHING) * average + SMOOTHING * x[t, 0]
            y[t, 0] = average
        features.append(x)
        targets.append(y)
    return features, targets


def build_model(units: int) -> keras.Model:
    """A GRU encoder over feature frames with a per-step regression head."""
    frames = keras.Input((None, NUM_FEATURES), name="frames")  # [batch, time, features]
    encoded = Encoder(
        "gru", units, source_input="features", num_features=NUM_FEATURES, name="encoder"
    )(frames)
    values = keras.layers.Dense(1, name="head")(encoded.outputs)  # [batch, time, 1]
    model = keras.Model(frames, values, name="smoother")
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        # Divides by the sum of the weights (the real steps), not by batch * time.
        loss=keras.losses.MeanSquaredError(reduction="mean_with_sample_weight"),
        # StepMeanError: the mean over all real steps, whatever the batching.
        # Keras' weighted MAE (kept here to compare) averages each batch over
        # its padded length first, so padding still sways it across batches.
        weighted_metrics=[
            StepMeanError("absolute", name="mae"),
            keras.metrics.MeanAbsoluteError(name="keras_mae"),
        ],
        # One graph for every padded length; XLA would compile once per length.
        jit_compile=False,
    )
    return model


def plain_predict_outcome(model: keras.Model, dataset, lengths: list[int]) -> str:
    """Describes what ``model.predict`` makes of variable-length batches."""
    try:
        result = model.predict(dataset, verbose=0)
    except Exception as error:  # the failure (on JAX, PyTorch) is what we report
        return f"fails: {type(error).__name__}: {str(error).splitlines()[0][:120]}"
    rows = [int(n) for n in getattr(result, "row_lengths", lambda: [])()]
    in_order = rows == list(lengths)
    return (
        f"returns a {type(result).__name__} of {len(rows)} rows in batch order, "
        f"{'' if in_order else 'not '}matching the sequences' lengths in input order"
    )


def main(
    num_train: int = 512,
    num_test: int = 128,
    min_length: int = 10,
    max_length: int = 1000,
    batch_size: int = 16,
    grouping: str = "pools",
    units: int = 16,
    epochs: int = 6,
    compare_speed: bool = True,
    seed: int = 0,
) -> dict:
    """Trains on length-grouped batches and predicts a variable-length test set.

    Args:
        num_train: training sequences.
        num_test: test sequences.
        min_length: shortest sequence, in steps.
        max_length: longest sequence, in steps.
        batch_size: sequences per batch.
        grouping: how training batches are grouped by length: "pools" or
            "buckets" (see ``make_sequence_dataset``).
        units: GRU units.
        epochs: training epochs.
        compare_speed: also time training epochs on every grouping.
        seed: seed of the data and of the weights.

    Returns:
        dict with, per grouping ("none", "buckets", "pools") of the training
        set, ``padding`` (a ``PaddingCount``: ``.fraction``, ``.total_steps``,
        ``.sequential_steps``) and ``seconds_per_epoch`` (None unless
        ``compare_speed``); ``test_mae`` from ``evaluate`` on test batches
        grouped with ``grouping``, ``test_mae_ungrouped`` on ungrouped ones,
        ``test_mae_from_predictions`` (from ``predict_sequences``), the same
        for Keras' weighted MAE (``keras_weighted_mae``,
        ``keras_weighted_mae_ungrouped``), ``test_padding_fraction`` and
        ``test_padding_fraction_ungrouped``, ``mean_baseline_mae``,
        ``predictions`` (one array per test sequence, in input order),
        ``test_targets``, ``plain_predict`` and ``seconds``.
    """
    start_time = time.perf_counter()
    keras.utils.set_random_seed(seed)
    train_x, train_y = make_sequences(num_train, min_length, max_length, seed)
    test_x, test_y = make_sequences(num_test, min_length, max_length, seed + 1)

    def dataset(x, y, grouping: str, shuffle: bool):
        return make_sequence_dataset(
            x, batch_size, step_targets=y, shuffle=shuffle, seed=seed, grouping=grouping
        )

    train = {g: dataset(train_x, train_y, g, shuffle=True) for g in GROUPINGS}
    padding = {g: count_padding(train[g]) for g in GROUPINGS}

    model = build_model(units)
    # shuffle=False: the dataset shuffles itself (Keras cannot shuffle a tf.data.Dataset).
    model.fit(train[grouping], epochs=epochs, shuffle=False, verbose=0)
    seconds = compare_epoch_times(model, units, train) if compare_speed else {}

    test_grouped = dataset(test_x, test_y, grouping, shuffle=False)
    test_ungrouped = dataset(test_x, test_y, "none", shuffle=False)
    on_grouped = model.evaluate(test_grouped, verbose=0, return_dict=True)
    on_ungrouped = model.evaluate(test_ungrouped, verbose=0, return_dict=True)

    predictions = predict_sequences(model, test_x, batch_size=batch_size)
    errors = np.concatenate([p - y for p, y in zip(predictions, test_y, strict=True)])
    all_targets = np.concatenate(test_y)
    results = {
        "grouping": grouping,
        "groupings": {
            g: {"padding": padding[g], "seconds_per_epoch": seconds.get(g)} for g in GROUPINGS
        },
        "test_padding_fraction": count_padding(test_grouped).fraction,
        "test_padding_fraction_ungrouped": count_padding(test_ungrouped).fraction,
        "test_mae": float(on_grouped["mae"]),
        "test_mae_ungrouped": float(on_ungrouped["mae"]),
        "test_mae_from_predictions": float(np.mean(np.abs(errors))),
        "keras_weighted_mae": float(on_grouped["keras_mae"]),
        "keras_weighted_mae_ungrouped": float(on_ungrouped["keras_mae"]),
        "mean_baseline_mae": float(np.mean(np.abs(all_targets - np.concatenate(train_y).mean()))),
        "predictions": predictions,
        "test_targets": test_y,
        "plain_predict": plain_predict_outcome(
            model, make_sequence_dataset(test_x, batch_size), [len(x) for x in test_x]
        ),
    }
    results["seconds"] = time.perf_counter() - start_time
    _print_results(results)
    return results


def compare_epoch_times(model: keras.Model, units: int, datasets: dict, rounds: int = 2) -> dict:
    """Times training epochs on each dataset, alternating, on a copy of ``model``.

    Returns:
        dict: per dataset name, the median seconds of an epoch.
    """
    timed = build_model(units)
    timed.set_weights(model.get_weights())
    # A few batches of different lengths first, so that the timed epochs run
    # the shape-generic traced step and include no tracing.
    timed.fit(datasets["none"].take(3), shuffle=False, verbose=0)
    seconds = {name: [] for name in datasets}
    for _ in range(rounds):
        for name, dataset in datasets.items():
            start = time.perf_counter()
            timed.fit(dataset, epochs=1, shuffle=False, verbose=0)
            seconds[name].append(time.perf_counter() - start)
    return {name: float(np.median(values)) for name, values in seconds.items()}


def _print_results(results: dict) -> None:
    print("Training batches   padding   steps fed  sequential steps  s/epoch")
    for name, row in results["groupings"].items():
        count, epoch = row["padding"], row["seconds_per_epoch"]
        print(
            f"  {name:<16} {count.fraction:>7.1%} {count.total_steps:>11,} "
            f"{count.sequential_steps:>17,}  {'-' if epoch is None else f'{epoch:.1f}':>7}"
        )
    print(
        f"Test MAE (StepMeanError): {results['test_mae']:.6f} on {results['grouping']} batches "
        f"({results['test_padding_fraction']:.0%} padding), "
        f"{results['test_mae_ungrouped']:.6f} on ungrouped batches "
        f"({results['test_padding_fraction_ungrouped']:.0%} padding), "
        f"{results['test_mae_from_predictions']:.6f} from per-sequence predictions; "
        f"predicting the mean: {results['mean_baseline_mae']:.4f}"
    )
    print(
        f"Keras' weighted MeanAbsoluteError on the same batches: "
        f"{results['keras_weighted_mae']:.6f} and {results['keras_weighted_mae_ungrouped']:.6f}"
    )
    predictions = results["predictions"]
    print(
        f"predict_sequences: {len(predictions)} arrays in input order, "
        f"lengths {[len(p) for p in predictions[:5]]}..."
    )
    print(f"Plain model.predict on length-grouped batches: {results['plain_predict']}")
    print(f"({results['seconds']:.1f} s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_train", type=int, default=512)
    parser.add_argument("--num_test", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--grouping", choices=["pools", "buckets"], default="pools")
    args = parser.parse_args()
    main(
        num_train=args.num_train, num_test=args.num_test, epochs=args.epochs, grouping=args.grouping
    )
