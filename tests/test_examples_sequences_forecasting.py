"""The variable-length and forecasting examples of docs/examples run and reach their stated results."""

import importlib.util
import pathlib

import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "docs" / "examples"


def _load(name):
    """Imports docs/examples/<name>.py (docs/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def variable_length():
    return _load("variable_length").main(num_train=128, num_test=48, epochs=3, compare_speed=False)


def test_length_grouping_cuts_the_padding_fraction(variable_length):
    padding = {name: row["padding"] for name, row in variable_length["groupings"].items()}
    assert padding["none"].fraction > 0.5
    # Buckets bound the length spread of a batch; pools fill every batch, so in
    # a small set the rare long sequences share batches with shorter ones.
    assert padding["buckets"].fraction < 0.1 and padding["pools"].fraction < 0.25
    for grouped in (padding["buckets"], padding["pools"]):
        assert padding["none"].fraction - grouped.fraction > 0.4
        assert grouped.real_steps == padding["none"].real_steps
        assert grouped.total_steps < padding["none"].total_steps / 2
    # Pools fill every batch: fewer batches, so fewer sequential RNN steps.
    assert padding["pools"].sequential_steps < padding["none"].sequential_steps / 2


def test_predictions_for_every_sequence_in_input_order(variable_length):
    predictions, targets = variable_length["predictions"], variable_length["test_targets"]
    assert len(predictions) == len(targets) == 48
    assert [p.shape for p in predictions] == [t.shape for t in targets]
    assert len({len(t) for t in targets}) > 10  # really variable lengths, 10 to 1,000 steps
    assert min(len(t) for t in targets) >= 10 and max(len(t) for t in targets) <= 1000
    assert "not matching" in variable_length["plain_predict"] or variable_length[
        "plain_predict"
    ].startswith("fails")


def test_padding_counts_nowhere_in_the_test_metric(variable_length):
    mae = variable_length["test_mae"]
    assert variable_length["test_padding_fraction_ungrouped"] > 0.5
    assert variable_length["test_mae_ungrouped"] == pytest.approx(mae, rel=1e-4)
    assert variable_length["test_mae_from_predictions"] == pytest.approx(mae, rel=1e-4)
    assert mae < 0.25 * variable_length["mean_baseline_mae"]


def test_forecaster_beats_the_naive_forecast():
    results = _load("forecasting").main(num_days=365, stride=2, epochs=4)
    assert results["num_test_windows"] > 1000
    assert np.isfinite(results["model_mae"])
    assert results["model_mae"] < 0.8 * results["naive_mae"]
