"""TFDS translation datasets as sentence pairs, on mocked data (no network): the Python API
and the load path of seq2seq-train and seq2seq-evaluate (--tfds)."""

import json

import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from cli_runner import FLAGS, run_cli
from model_dirs import write_untrained_model_dir

from seq2seq.cli import evaluate as evaluate_cli
from seq2seq.cli import train as train_cli
from seq2seq.datasets import ExampleReport, load_tfds, load_tfds_splits
from seq2seq.readers import DataError

TED = "ted_hrlr_translate/pt_to_en"
NUM_EXAMPLES = 6


@pytest.fixture
def mocked():
    """Mocked TFDS: every split of every dataset holds NUM_EXAMPLES random examples."""
    with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
        yield


def _raw_supervised_pairs(split="train"):
    """The (pt, en) examples as TFDS gives them, decoded and stripped."""
    dataset = tfds.load(TED, split=split, as_supervised=True)
    return [(s.decode().strip(), t.decode().strip()) for s, t in tfds.as_numpy(dataset)]


def test_load_tfds_reads_the_supervised_keys_as_str_pairs(mocked):
    pairs, report = load_tfds(TED, "train")
    assert pairs == _raw_supervised_pairs()
    assert len(pairs) == NUM_EXAMPLES
    assert all(isinstance(side, str) and side for pair in pairs for side in pair)
    assert report == ExampleReport(TED, "train", num_pairs=NUM_EXAMPLES, num_examples=NUM_EXAMPLES)
    assert report.summary() == f"{TED}, split 'train': {NUM_EXAMPLES} pairs"


@pytest.mark.parametrize(
    "keys",
    [{"source_key": "en", "target_key": "pt"}, {"source_key": "en"}, {"target_key": "pt"}],
    ids=["both", "source_only", "target_only"],
)
def test_feature_keys_turn_the_dataset_around(mocked, keys):
    pairs, _ = load_tfds(TED, "test", **keys)
    assert pairs == [(t, s) for s, t in _raw_supervised_pairs("test")]


@pytest.mark.parametrize(
    ("keys", "needle"),
    [
        ({"source_key": "de"}, "'de' is not one of them"),
        (
            {"source_key": "de", "target_key": "en"},
            "ted_hrlr_translate/pt_to_en: 'pt', 'en'. Received: source_key='de'",
        ),
        ({"source_key": "en", "target_key": "en"}, "different features"),
    ],
)
def test_bad_feature_keys_are_named(mocked, keys, needle):
    with pytest.raises(ValueError) as error:
        load_tfds(TED, "test", **keys)
    assert needle in str(error.value)


def test_load_tfds_splits_reads_train_validation_and_test(mocked):
    splits = load_tfds_splits(TED)
    assert [report.split for report in splits.reports] == ["train", "validation", "test"]
    assert len(splits.train) == len(splits.validation) == len(splits.test) == NUM_EXAMPLES
    without = load_tfds_splits(TED, with_validation=False, with_test=False)
    assert without.validation is None and without.test is None and len(without.reports) == 1


def _fake_examples(pt, en):
    """Mocks a TFDS split holding exactly these examples."""

    def as_dataset(self, *args, **kwargs):
        return tf.data.Dataset.from_tensor_slices({"pt": pt, "en": en})

    return tfds.testing.mock_data(as_dataset_fn=as_dataset)


BAD_EXAMPLES = (
    [b"ol\xc3\xa1 mundo ", b"vazio", b"\xff\xfe", b"  ", "não é 😀".encode()],
    [b" hello world", b"   ", b"bad source", b"empty source", b"it is not"],
)


@pytest.mark.parametrize(
    ("index", "reason"),
    [
        (1, "empty target sentence (feature 'en')"),
        (2, "invalid UTF-8 in the source sentence (feature 'pt', byte 0xff at byte offset 0)"),
        (3, "empty source sentence (feature 'pt')"),
    ],
)
def test_bad_example_error_names_dataset_split_and_index(index, reason):
    pt, en = (list(side) for side in BAD_EXAMPLES)
    # Keep only the bad example of this case (and the good ones).
    keep = [i for i in range(len(pt)) if i in (0, index, 4)]
    with _fake_examples([pt[i] for i in keep], [en[i] for i in keep]):
        with pytest.raises(DataError) as error:
            load_tfds(TED, "validation")
    assert str(error.value) == f"{TED}, split 'validation', example 1: {reason}"


def test_bad_examples_are_skipped_and_counted():
    with _fake_examples(*BAD_EXAMPLES):
        pairs, report = load_tfds(TED, "train", on_bad_line="skip")
    assert pairs == [("olá mundo", "hello world"), ("não é 😀", "it is not")]
    assert report.pair_indices == [0, 4]
    assert (report.num_examples, report.num_skipped, report.skipped_examples) == (5, 3, [1, 2, 3])
    assert report.summary().endswith("2 pairs, 3 bad examples skipped (examples 1, 2, 3)")
    with (
        _fake_examples([b""], [b"x"]),
        pytest.raises(DataError, match="contains no sentence pairs"),
    ):
        load_tfds(TED, "train", on_bad_line="skip")


def test_unknown_dataset_is_a_value_error():
    with pytest.raises(ValueError, match="Unknown TFDS dataset 'no_such_dataset/x'"):
        load_tfds("no_such_dataset/x", download=False)


def _parse(args):
    FLAGS.unparse_flags()
    FLAGS(["seq2seq-train", *args])


def test_train_cli_loads_tfds_splits(mocked):
    try:
        _parse([f"--tfds={TED}", "--tfds_source_key=en", "--model_dir=unused"])
        data = train_cli.load_data()
    finally:
        FLAGS.unparse_flags()
    assert data.task is None
    assert data.train == [(t, s) for s, t in _raw_supervised_pairs()]
    assert len(data.valid) == len(data.test) == NUM_EXAMPLES
    assert [(what, report.split) for what, _, report in data.files] == [
        ("training", "train"),
        ("validation", "validation"),
        ("test", "test"),
    ]


def test_train_cli_valid_file_replaces_the_validation_split(mocked, tmp_path):
    valid_file = tmp_path / "valid.tsv"
    valid_file.write_text("a\tb\n")
    try:
        _parse([f"--tfds={TED}", f"--valid_file={valid_file}"])
        data = train_cli.load_data()
    finally:
        FLAGS.unparse_flags()
    assert data.valid == [("a", "b")] and len(data.test) == NUM_EXAMPLES
    assert [report.split for what, _, report in data.files if what != "validation"] == [
        "train",
        "test",
    ]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([f"--tfds={TED}", "--train_file=x.tsv"], "Give either --tfds or --train_file, not both"),
        ([f"--tfds={TED}", "--task=dates"], "Give either --tfds or --task, not both"),
        (
            ["--train_file=x.tsv", "--tfds_source_key=en"],
            "--tfds_source_key only applies with --tfds",
        ),
    ],
)
def test_train_cli_tfds_conflicts_are_clear_errors(args, needle):
    try:
        _parse(args)
        with pytest.raises(ValueError, match=needle):
            train_cli.load_data()
    finally:
        FLAGS.unparse_flags()


def test_evaluate_cli_scores_a_model_on_a_tfds_split(mocked, tmp_path, capfd):
    model_dir = write_untrained_model_dir(tmp_path / "model")
    status, out, err = run_cli(
        evaluate_cli,
        [f"--model_dir={model_dir}", f"--tfds={TED}", "--split=test", "--bleu_tokenize=char"],
        capfd,
    )
    assert status == 0, err[-2000:]
    scores = json.loads(out)
    assert scores["num_examples"] == NUM_EXAMPLES
    assert scores["bleu_tokenize"] == "char" and "tok:char" in scores["bleu_signature"]
